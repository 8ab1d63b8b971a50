"""Streaming, causal anomaly detector: one instance per series, one score in [0, 1] per point.

A point is scored when it arrives, from state built on earlier points only, in O(1) time.
Four signals are combined:

* **prediction surprise**: the error of the better of two predictors (a fast level and, when
  the timestamps show a daily rhythm, a per-phase seasonal profile), scaled by its own running
  mean absolute error, so a spike, a dip or a broken daily shape stands out;
* **error likelihood** (as in Numenta's anomaly likelihood): the short-term mean of those
  surprises compared with their long-term distribution, so a burst of failures, a sustained
  slowdown or a level shift raises the score even when no single point is extreme;
* **spatial novelty**: a new extreme that lies well beyond the range of the values seen up to
  a while ago, as a resource leak, a saturation or a runaway value produces;
* **frozen value**: a run of identical values twice as long as the longest run seen so far (and at
  least ``flat_min_run`` points), as a stuck sensor or exporter produces; scored once per run.

After an alert, scores are damped for a while so one event yields one alert. State is plain
numbers and lists: ``snapshot()`` gives a JSON-able dict and ``AnomalyDetector.restore``
continues exactly where it left off. The seasonal phase comes from the timestamps, so missing
samples do not shift it. Values that are not finite (or absurdly large) are ignored and score 0.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

_DAY_S = 86400.0
_MAX_ABS = 1e100
# Scores at or above this are alerts (the default alert level; on the NAB dev set the optimal
# corpus threshold of every profile is slightly higher, ~0.55: see `make bench-anomaly`).
ALERT_THRESHOLD = 0.5
_SQRT2 = math.sqrt(2.0)


@dataclass(frozen=True)
class DetectorConfig:
    """Tuning knobs. Defaults: see docs/models.md (lik_decades, spatial_score and suppress chosen by
    cross-validation across files; the others fixed by design, not tuned)."""

    warmup: int = 300  # points learned before any score is given
    level_alpha: float = 1.0  # level predictor smoothing (1: the last value)
    season_alpha: float = 0.5  # per-phase seasonal profile smoothing
    season_pick: float = 0.9  # use the seasonal predictor alone when its error is below this x level's
    scale_alpha: float = 0.005  # running mean absolute error of each predictor
    winsor: float = 2.0  # errors are capped at this many scales when updating the scale
    z_cap: float = 20.0  # surprise beyond this many scales counts the same
    short_window: int = 20  # points in the short-term mean of surprises
    long_alpha: float = 0.002  # long-term mean/variance of that short-term mean
    lik_start: int = 50  # points before that distribution starts learning
    lik_decades: float = 8.0  # -log10 tail probability that maps to score 1
    point_weight: float = 0.3  # weight of a single point's surprise (below any alert on its own)
    spatial_margin: float = 0.1  # fraction of the seen range a new extreme must exceed
    spatial_lag: int = 150  # novelty is graded against the range of values at least this old
    spatial_score: float = 0.65  # score of a value just outside the range seen
    alert_level: float = ALERT_THRESHOLD  # a score at or above this starts a suppression period
    suppress: int = 300  # points after an alert during which scores are damped (chosen by CV, docs/models.md)
    suppress_factor: float = 0.0  # damping applied in that period
    max_period: int = 4096  # longest seasonal period kept (points)
    flat_score: float = 0.65  # score of a frozen value: a run of repeats twice the longest seen (0: off;
    # kept on by judgement for flat lines, its NAB held-out cost is one false alert: docs/models.md)
    flat_min_run: int = 12  # a frozen run is at least this long
    art_score: float = 0.0  # > 0 (candidate, off): score of a window shape no learned category resonates with
    art_window: int = 8  # downsampled values in that window (fuzzy ART, complement coded)
    art_stride: int = 4  # points averaged into one downsampled value
    art_cats: int = 64  # categories kept (the least recently used is replaced when full)
    art_rho: float = 0.9  # initial vigilance (lowered during probation while categories pile up)
    art_gap: float = 0.05  # a window is novel only when its best match is this far below the vigilance
    art_probation: int = 600  # points during which categories are learned without scoring
    art_tail: bool = False  # candidate variant: score the mismatch (1 - best match) by its tail probability
    # against its own online mean and variance (per-series self-calibration), as the likelihood is scored


@dataclass
class _State:
    n: int = 0
    last_ts: float | None = None
    steps: list[float] = field(default_factory=list)
    period: int = 0  # 0: not known yet, -1: none
    step: float = 0.0  # sampling interval in seconds, once known
    phase: int = 0  # samples since the start, counting missing ones (a gap does not shift the season)
    level: float = 0.0
    err_level: float = 0.0
    profile: list[float] = field(default_factory=list)
    err_season: float = 0.0
    season_n: int = 0
    ring: list[float] = field(default_factory=list)
    ring_i: int = 0
    ring_sum: float = 0.0
    mu: float = 0.0
    var: float = 0.0
    lo: float = math.inf
    hi: float = -math.inf
    last_alert: int = -(10**9)
    lag: list[float] = field(default_factory=list)
    lag_i: int = 0
    olo: float = math.inf
    ohi: float = -math.inf
    prev: float = 0.0  # the previous value (frozen-value signal)
    run: int = 0  # repeats of the current value
    max_run: int = 0  # longest run of repeats that ended
    art_acc: float = 0.0  # fuzzy ART member (candidate): sum of the current downsampling block
    art_k: int = 0
    art_ring: list[float] = field(default_factory=list)  # last downsampled values (oldest first)
    art_w: list[list[float]] = field(default_factory=list)  # category weights (complement coded)
    art_used: list[int] = field(default_factory=list)  # when each category last resonated
    art_rho: float = -1.0  # current vigilance (-1: not started)
    art_n: int = 0  # mismatches learned (art_tail)
    art_mu: float = 0.0
    art_var: float = 0.0


class AnomalyDetector:
    """Score each new value of one series in [0, 1] (causal, O(1) per point, snapshot-able)."""

    __slots__ = ("_artw", "cfg", "s")

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.cfg = config or DetectorConfig()
        c = self.cfg
        self.s = _State(ring=[0.0] * c.short_window, lag=[0.0] * c.spatial_lag)
        self._artw: Any = None  # numpy mirror of s.art_w (rebuilt from the state when needed)

    # ---- state ------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Return the full state as a dict of plain JSON values (no NaN or infinity)."""
        st = asdict(self.s)
        for k in ("lo", "hi", "olo", "ohi"):
            if math.isinf(st[k]):
                st[k] = None
        st["profile"] = [None if v != v else v for v in st["profile"]]
        return {"config": asdict(self.cfg), "state": st}

    @classmethod
    def restore(cls, snap: dict[str, Any]) -> AnomalyDetector:
        """Rebuild a detector from ``snapshot()`` output (also one saved before the frozen-value signal
        existed: it continues exactly as it was, with that signal off, as it has no repeat history)."""
        cfg = dict(snap["config"])
        cfg.setdefault("flat_score", 0.0)
        cfg.setdefault("art_score", 0.0)
        det = cls(DetectorConfig(**cfg))
        st = dict(snap["state"])
        for k in ("lo", "olo"):
            if st[k] is None:
                st[k] = math.inf
        for k in ("hi", "ohi"):
            if st[k] is None:
                st[k] = -math.inf
        st["profile"] = [math.nan if v is None else float(v) for v in st["profile"]]
        det.s = _State(**st)
        return det

    # ---- scoring ----------------------------------------------------------------------------

    def _learn_period(self, ts: float) -> None:
        s = self.s
        if s.last_ts is not None and ts > s.last_ts:
            s.steps.append(ts - s.last_ts)
        s.last_ts = ts
        if len(s.steps) >= 16:
            step = sorted(s.steps)[len(s.steps) // 2]
            s.step = step
            p = round(_DAY_S / step) if step > 0 else 0
            s.period = p if 4 <= p <= self.cfg.max_period else -1
            s.steps = []
            if s.period > 0:
                s.profile = [math.nan] * s.period

    def _art(self, v: float, n: int) -> float:
        """Fuzzy ART on the window of downsampled values, min-max normalised over the values seen so far.
        Return its score: after probation, art_score when no category comes near resonance (a new shape),
        or with art_tail the mismatch's tail probability against its own history."""
        import numpy as np

        s = self.s
        c = self.cfg
        ring = s.art_ring
        ring.append(v)
        if len(ring) > c.art_window:
            del ring[0]
        lo = s.lo
        width = s.hi - lo
        if len(ring) < c.art_window or not width > 0:
            return 0.0
        a = np.clip((np.asarray(ring) - lo) / width, 0.0, 1.0)
        inp = np.concatenate((a, 1.0 - a))
        if s.art_rho < 0:
            s.art_rho = c.art_rho
        w = self._artw
        if w is None or len(w) != len(s.art_w):
            w = self._artw = np.asarray(s.art_w, dtype=np.float64).reshape(len(s.art_w), 2 * c.art_window)
        probation = n < c.art_probation
        if len(w):
            m = np.minimum(w, inp)
            inter = m.sum(axis=1)
            match = inter / c.art_window
            ok = match >= s.art_rho
            if ok.any():
                j = int(np.argmax(np.where(ok, inter / (1e-3 + w.sum(axis=1)), -1.0)))
                w[j] = m[j]
                s.art_w[j] = m[j].tolist()
                s.art_used[j] = n
                return self._art_tail(1.0 - float(match.max()), n) if c.art_tail else 0.0
            best = float(match.max())
        else:
            best = 0.0
        row = inp.tolist()
        if len(s.art_w) < c.art_cats:
            s.art_w.append(row)
            s.art_used.append(n)
            self._artw = None
        else:
            j = min(range(len(s.art_used)), key=s.art_used.__getitem__)
            s.art_w[j] = row
            s.art_used[j] = n
            w[j] = inp
        if probation and len(s.art_w) > c.art_cats // 2:
            s.art_rho = max(0.5, s.art_rho - 0.01)
        if c.art_tail:
            return self._art_tail(1.0 - best, n) if best > 0 else 0.0
        if probation:
            return 0.0
        return c.art_score if best < s.art_rho - c.art_gap else 0.0

    def _art_tail(self, mis: float, n: int) -> float:
        s = self.s
        c = self.cfg
        mu = s.art_mu
        var = s.art_var
        d = mis - mu
        k = s.art_n = s.art_n + 1
        a = 1.0 / k if k * c.long_alpha < 1.0 else c.long_alpha
        s.art_mu = mu + a * d
        s.art_var = (1.0 - a) * (var + a * d * d)
        if n < c.art_probation or not (var > 0 and d > 0):
            return 0.0
        tail = 0.5 * math.erfc(d / math.sqrt(var) / _SQRT2)
        return 1.0 if tail <= 0 else min(1.0, -math.log10(tail) / c.lik_decades)

    def update(self, value: float, ts: float | None = None) -> float:
        """Learn one point (``ts`` in seconds, optional) and return its anomaly score."""
        s = self.s
        c = self.cfg
        if s.period == 0:
            if ts is None:
                s.period = -1
            else:
                self._learn_period(ts)
        x = float(value)
        if not -_MAX_ABS < x < _MAX_ABS:  # also false for NaN
            return 0.0
        n = s.n
        s.n = n + 1
        if ts is not None and s.step > 0 and s.last_ts is not None:
            gap = round((ts - s.last_ts) / s.step)
            s.phase += gap if gap > 1 else 1
        else:
            s.phase += 1
        if ts is not None and s.period != 0:
            s.last_ts = ts
        if n == 0:
            s.level = s.prev = x
            s.lo = s.hi = x
            return 0.0

        # prediction surprise: the better of level and seasonal predictors. Running means use
        # weight max(alpha, 1/count), so they are plain averages until enough points arrived,
        # and are winsorised so one outlier does not blind the scale for long.
        e = abs(x - s.level)
        s.level += c.level_alpha * (x - s.level)
        el = s.err_level
        z = e / el if el > 0 else (0.0 if e == 0 else c.z_cap)
        a = 1.0 / n if n * c.scale_alpha < 1.0 else c.scale_alpha
        w = c.winsor * el
        s.err_level = el + a * ((w if e > w and n > 10 else e) - el)
        if s.period > 0:
            i = s.phase % s.period
            pv = s.profile[i]
            if pv == pv:
                es = abs(x - pv)
                sn = s.season_n = s.season_n + 1
                ss = s.err_season
                if sn > s.period:
                    zs = es / ss if ss > 0 else (0.0 if es == 0 else c.z_cap)
                    if ss < c.season_pick * el or zs < z:
                        z = zs
                a = 1.0 / sn if sn * c.scale_alpha < 1.0 else c.scale_alpha
                w = c.winsor * ss
                s.err_season = ss + a * ((w if es > w and sn > 10 else es) - ss)
                s.profile[i] = pv + c.season_alpha * (x - pv)
            else:
                s.profile[i] = x
        if z > c.z_cap:
            z = c.z_cap

        # error likelihood: short-term mean of surprises vs their long-term distribution
        ring = s.ring
        j = s.ring_i
        s.ring_sum += z - ring[j]
        ring[j] = z
        s.ring_i = (j + 1) % len(ring)
        m = s.ring_sum / len(ring)
        mu = s.mu
        var = s.var
        d = m - mu
        if n > c.lik_start:
            k = n - c.lik_start
            a = 1.0 / k if k * c.long_alpha < 1.0 else c.long_alpha
            s.mu = mu + a * d
            s.var = (1.0 - a) * (var + a * d * d)

        # spatial novelty: a new extreme that also lies well beyond the range of the values
        # older than spatial_lag points (a leak keeps going further; noise and small steps do not)
        lo = s.lo
        hi = s.hi
        new_hi = x > hi
        new_lo = x < lo
        if new_lo:
            s.lo = x
        elif new_hi:
            s.hi = x
        if c.spatial_lag:
            lag = s.lag
            k = s.lag_i
            old = lag[k]
            lag[k] = x
            s.lag_i = (k + 1) % c.spatial_lag
            if n > c.spatial_lag:
                if old < s.olo:
                    s.olo = old
                if old > s.ohi:
                    s.ohi = old
                lo = s.olo
                hi = s.ohi
        width = hi - lo
        margin = c.spatial_margin * width
        novel = (new_hi and x > hi + margin) or (new_lo and x < lo - margin)

        frozen = False
        if c.flat_score > 0:
            if x == s.prev:
                r = s.run = s.run + 1
                frozen = r == max(2 * s.max_run, c.flat_min_run)
            else:
                if s.run > s.max_run:
                    s.max_run = s.run
                s.run = 0
            s.prev = x

        art = 0.0
        if c.art_score > 0:
            s.art_acc += x
            s.art_k += 1
            if s.art_k >= c.art_stride:
                art = self._art(s.art_acc / s.art_k, n)
                s.art_acc = 0.0
                s.art_k = 0

        if n < c.warmup:
            return 0.0
        score = c.flat_score if frozen else 0.0
        if art > score:
            score = art
        if var > 0 and d > 0:
            zz = d / math.sqrt(var)
            tail = 0.5 * math.erfc(zz / _SQRT2)
            lik = 1.0 if tail <= 0 else min(1.0, -math.log10(tail) / c.lik_decades)
            if lik > score:
                score = lik
        pz = c.point_weight * (z / c.z_cap)
        if pz > score:
            score = pz
        if novel:
            beyond = (x - hi if new_hi else lo - x) / (width + 1e-12) - c.spatial_margin
            sp = c.spatial_score + (1.0 - c.spatial_score) * min(1.0, beyond)
            if sp > score:
                score = sp
        if score >= c.alert_level:
            if n - s.last_alert < c.suppress:
                score *= c.suppress_factor
            else:
                s.last_alert = n
        return score
