"""Streaming, causal anomaly detector: one instance per series, one score in [0, 1] per point.

A point is scored when it arrives, from state built on earlier points only, in O(1) time.
Four signals are combined:

* **prediction surprise**: the error of the better of two predictors (a fast level and, when
  the timestamps show a daily rhythm, a per-phase seasonal profile), scaled by its own running
  mean absolute error, so a spike, a dip or a broken daily shape stands out. A per-phase weekly
  profile is learned too; once its running error is clearly below the daily profile's (after two
  weeks) it replaces the daily one, and its own surprises get an error likelihood of their own
  (below), so a level shift in a series with a weekly rhythm is caught within hours;
* **error likelihood** (as in Numenta's anomaly likelihood): the short-term mean of those
  surprises compared with their long-term distribution, so a burst of failures, a sustained
  slowdown or a level shift raises the score even when no single point is extreme;
* **spatial novelty**: a new extreme that lies well beyond the range of the values seen up to
  a while ago, as a resource leak, a saturation or a runaway value produces; in a seasonal series
  whose error scale is growing (a growing daily amplitude) the margin grows with it, so the daily
  peaks of a growing season are not each a novelty;
* **frozen value**: a run of identical values twice as long as the longest run seen so far (and at
  least ``flat_min_run`` points), as a stuck sensor or exporter produces; scored once per run.

The first three signals run on the values themselves. In a seasonal series whose values are all
positive and whose level (a week's mean of the logs) has moved by ``sqrt(scale_fold)``-fold, they also
run on a second *track*: the log of each value minus a slow mean of the logs (its ratio to the slow
level). Once that level has changed ``scale_fold``-fold and the errors' scale has changed with it (a user
base that grows or shrinks, multiplicative noise), the second track's scores are used: its errors are
relative to the local scale and its range does not grow with the level. Other series never start it.
Counts (values that are all non-negative integers) get the same second track despite their zeros: from the
first value (``count_start``; before it, from the first zero) it is a *count track* on log(value + 1), whose
level is measured over a day instead of a week, whose predictors and error likelihoods run on the Anscombe
value 2 sqrt(value + 3/8) (Poisson noise of unit scale at any rate; there the daily profile is the predictor
whenever it beats the last value) and whose range runs on log(value + 1) over its slow level; it is used
once that level has changed ``scale_fold``-fold (a launch, a user base that grows or shrinks) and the
spread at least as Poisson noise's, half of it in logs. A fractional value before any zero makes it a log
track from there on.

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


def _running_error(prev: float, e: float, count: int, c: DetectorConfig) -> float:
    """A predictor's running mean absolute error after error ``e``, its ``count``-th: weight
    max(scale_alpha, 1/count), so a plain average until enough errors arrived, and winsorised at
    ``winsor`` x itself after ten, so one outlier does not blind the scale for long."""
    a = 1.0 / count if count * c.scale_alpha < 1.0 else c.scale_alpha
    w = c.winsor * prev
    return prev + a * ((w if e > w and count > 10 else e) - prev)


def _surprise_step(ring: list[float], j: int, total: float, z: float, mu: float, var: float, count: int,
                   c: DetectorConfig) -> tuple[int, float, float, float, float]:
    """One step of an error likelihood: put surprise ``z`` in the ring of the last ``short_window``
    (slot ``j``, running sum ``total``) and learn the long-term mean/variance of their short-term
    mean once ``count`` passes ``lik_start``. Returns (next slot, new sum, short-term mean minus the
    long-term mean before this step, new mean, new variance)."""
    total += z - ring[j]
    ring[j] = z
    d = total / len(ring) - mu
    if count > c.lik_start:
        k = count - c.lik_start
        a = 1.0 / k if k * c.long_alpha < 1.0 else c.long_alpha
        mu, var = mu + a * d, (1.0 - a) * (var + a * d * d)
    return (j + 1) % len(ring), total, d, mu, var


def _tail_score(d: float, var: float, decades: float) -> float:
    """Score of a short-term mean ``d`` above its long-term mean (variance ``var``): the Gaussian tail's
    -log10 over ``decades``, at most 1; 0 when it is not above or nothing is learnt yet."""
    if var <= 0 or d <= 0:
        return 0.0
    tail = 0.5 * math.erfc(d / math.sqrt(var) / _SQRT2)
    return 1.0 if tail <= 0 else min(1.0, -math.log10(tail) / decades)


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
    weekly: bool = True  # a per-phase weekly profile, used once it clearly beats the daily one (docs/models.md)
    week_pick: float = 0.8  # ... that is, once its running error is below this x the daily profile's
    week_decades: float = 1.5  # the weekly profile's error likelihood maps this x lik_decades to score 1
    spatial_growth: bool = True  # in a seasonal series whose error scale grows, the novelty margin grows with
    # it (a growing seasonal amplitude: docs/models.md)
    log_scale: bool = True  # in a positive seasonal series whose level and spread change together, score
    # the log of each value over its slow level (scale-aware errors and range: docs/models.md) ...
    scale_fold: float = 2.0  # ... once that level has changed this many fold (and the spread with it; 2 is
    # the largest-effect value that switches no NAB dev file: docs/models.md)
    count_scale: bool = True  # in a series of non-negative integers (counts), a zero does not end the log track:
    # it restarts as a count track (a day's level, Anscombe errors, log(x + 1) range: docs/models.md)
    count_start: bool = True  # a series whose values are non-negative integers is a count track from its first value
    # (not its first zero), used once its spread grew as Poisson noise's, its daily profile the predictor whenever it
    # is the better one (docs/models.md, "Counts from their first value")
    wall_clock: bool = False  # the timestamps are local wall times (``levqor detect --tz``): a step back or a
    # repeated time (the clock going back in autumn) moves the seasonal phase back with it, so the daily and weekly
    # profiles stay on local hours (docs/models.md, "Time zones and calendar steps")


@dataclass
class _Track:
    """Predictors, error likelihoods and range of one stream of values (the values themselves, or their
    log ratio to the slow level: ``_State.rt``)."""

    n: int = 0  # values learned
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
    lag: list[float] = field(default_factory=list)
    lag_i: int = 0
    olo: float = math.inf
    ohi: float = -math.inf
    # weekly rhythm (config.weekly; absent from older snapshots, which restore with it off)
    wprofile: list[float] = field(default_factory=list)  # per-phase weekly profile (7 x period), once known
    err_week: float = 0.0  # its running mean absolute error
    week_n: int = 0  # errors it has made
    week_on: bool = False  # its error is clearly below the daily profile's (after a week of errors)
    wring: list[float] = field(default_factory=list)  # short-term surprises of the weekly profile
    wring_i: int = 0
    wring_sum: float = 0.0
    wmu: float = 0.0  # long-term mean/variance of their short-term mean
    wvar: float = 0.0
    scale_slow: float = 0.0  # slow running mean of the seasonal error scale (config.spatial_growth)


@dataclass
class _State(_Track):
    """The detector's state: the track of the values themselves (inherited) and what all tracks share."""

    last_ts: float | None = None
    steps: list[float] = field(default_factory=list)
    period: int = 0  # 0: not known yet, -1: none
    step: float = 0.0  # sampling interval in seconds, once known
    phase: int = 0  # samples since the start, counting missing ones (a gap does not shift the season)
    last_alert: int = -(10**9)
    prev: float = 0.0  # the previous value (frozen-value signal)
    run: int = 0  # repeats of the current value
    max_run: int = 0  # longest run of repeats that ended
    # scale-aware track (config.log_scale; absent from older snapshots, which restore with it off)
    pos_n: int = 0  # positive values so far; -1 once a value <= 0 arrived (then there is no log track)
    llevel: float = 0.0  # slow running mean of the log values (their scale: the log track subtracts it)
    lweek: float = 0.0  # a slower one, over about a week of points (the level whose change is measured)
    llo: float = math.inf  # its least and greatest value after the warm-up ...
    lhi: float = -math.inf
    elo: float = 0.0  # ... and the level predictor's error scale at those times
    ehi: float = 0.0
    log_on: bool = False  # the log track's scores are used (level and spread changed scale_fold-fold)
    rt: _Track | None = None  # the track of log(value) - llevel
    # count track (config.count_scale; absent from older snapshots, which restore with it off)
    ints: bool = True  # every value so far is an integer (while the log track runs on positive values)
    counts: bool = False  # the log track is a count track (from the first value, or without count_start from the
    # first zero, of an integer series)
    # count track from the first value (config.count_start; absent from older snapshots, which restore with it off)
    early: bool = False  # the count track started at the series' first value and has seen no zero yet


_INF_KEYS = ("lo", "hi", "olo", "ohi", "llo", "lhi")


def _to_json(st: dict[str, Any]) -> dict[str, Any]:
    """A track's (or the state's) ``asdict`` with infinities and NaNs as None, in place."""
    for k in _INF_KEYS:
        if k in st and math.isinf(st[k]):
            st[k] = None
    for k in ("profile", "wprofile"):
        st[k] = [None if v != v else v for v in st[k]]
    if st.get("rt") is not None:
        _to_json(st["rt"])
    return st


def _from_json(st: dict[str, Any]) -> dict[str, Any]:
    """Undo ``_to_json`` on a copy (None extremes as infinities, None profile slots as NaN)."""
    st = dict(st)
    for k in _INF_KEYS:
        if k in st and st[k] is None:
            st[k] = math.inf if k in ("lo", "olo", "llo") else -math.inf
    st["profile"] = [math.nan if v is None else float(v) for v in st["profile"]]
    st["wprofile"] = [math.nan if v is None else float(v) for v in st.get("wprofile", [])]
    if st.get("rt") is not None:
        st["rt"] = _Track(**_from_json(st["rt"]))
    return st


class AnomalyDetector:
    """Score each new value of one series in [0, 1] (causal, O(1) per point, snapshot-able)."""

    __slots__ = ("cfg", "s")

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.cfg = config or DetectorConfig()
        self.s = _State()
        self._init_track(self.s)

    def _init_track(self, t: _Track) -> None:
        """Give a new track its rings (and its profiles when the period is already known)."""
        c = self.cfg
        t.ring = [0.0] * c.short_window
        t.lag = [0.0] * c.spatial_lag
        if self.s.period > 0:
            self._init_profiles(t)

    def _init_profiles(self, t: _Track) -> None:
        c = self.cfg
        p = self.s.period
        t.profile = [math.nan] * p
        if c.weekly and 7 * p <= c.max_period:
            t.wprofile = [math.nan] * (7 * p)
            t.wring = [0.0] * c.short_window

    # ---- state ------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Return the full state as a dict of plain JSON values (no NaN or infinity)."""
        return {"config": asdict(self.cfg), "state": _to_json(asdict(self.s))}

    @classmethod
    def restore(cls, snap: dict[str, Any]) -> AnomalyDetector:
        """Rebuild a detector from ``snapshot()`` output (also one saved before the frozen-value signal,
        the weekly profile, the growing novelty margin, the log track or the count track existed: it continues
        exactly as it was, with those off)."""
        cfg = dict(snap["config"])
        cfg.setdefault("flat_score", 0.0)
        cfg.setdefault("weekly", False)
        cfg.setdefault("spatial_growth", False)
        cfg.setdefault("log_scale", False)
        cfg.setdefault("count_scale", False)
        cfg.setdefault("count_start", False)
        det = cls(DetectorConfig(**cfg))
        det.s = _State(**_from_json(snap["state"]))
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
                self._init_profiles(s)
                if s.rt is not None:
                    self._init_profiles(s.rt)

    def _week(self, t: _Track, x: float, err_day: float) -> float:
        """Learn the weekly profile at this phase; return its error likelihood's score once it is in use
        (the short-term mean of its surprises against their long-term distribution, as for the main one)."""
        c = self.cfg
        wp = t.wprofile
        i = self.s.phase % len(wp)
        pv = wp[i]
        if pv != pv:
            wp[i] = x
            return 0.0
        e = abs(x - pv)
        wp[i] = pv + c.season_alpha * (x - pv)
        ew = t.err_week
        z = e / ew if ew > 0 else (0.0 if e == 0 else c.z_cap)
        wn = t.week_n = t.week_n + 1
        t.err_week = _running_error(ew, e, wn, c)
        if wn >= len(wp):  # a week of errors before it may be used
            t.week_on = ew < c.week_pick * err_day
        if z > c.z_cap:
            z = c.z_cap
        var = t.wvar
        t.wring_i, t.wring_sum, d, t.wmu, t.wvar = _surprise_step(t.wring, t.wring_i, t.wring_sum, z, t.wmu, var,
                                                                   wn, c)
        return _tail_score(d, var, c.week_decades * c.lik_decades) if t.week_on else 0.0

    def update(self, value: float, ts: float | None = None) -> float:
        """Learn one point (``ts`` in seconds, optional) and return its anomaly score."""
        s = self.s
        c = self.cfg
        prev_ts = s.last_ts
        if s.period == 0:
            if ts is None:
                s.period = -1
            else:
                self._learn_period(ts)
        x = float(value)
        if not -_MAX_ABS < x < _MAX_ABS:  # also false for NaN
            return 0.0
        n = s.n
        if ts is not None and s.step > 0 and s.last_ts is not None:
            gap = round((ts - s.last_ts) / s.step)
            if gap < 1 and c.wall_clock and prev_ts is not None:  # local wall times: the clock went back (autumn),
                s.phase += round((ts - prev_ts) / s.step)  # so the phase goes back with it (0 on a repeated time)
            else:
                s.phase += gap if gap > 1 else 1
        else:
            s.phase += 1
        if ts is not None and s.period != 0:
            s.last_ts = ts
        score = self._track(s, x, x)
        if c.log_scale and s.pos_n >= 0:
            rscore = self._log_track(x)
            if s.log_on:
                score = rscore
        if n == 0:
            s.prev = x
            return 0.0

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

        if n < c.warmup:
            return 0.0
        if frozen and c.flat_score > score:
            score = c.flat_score
        if score >= c.alert_level:
            if n - s.last_alert < c.suppress:
                score *= c.suppress_factor
            else:
                s.last_alert = n
        return score

    def _log_track(self, x: float) -> float:
        """Learn log(x) over the slow level on the log track and return its score; decide, from the level
        and the level predictor's error scale seen so far, whether its scores are used (``log_on``, kept
        once set). A value <= 0 ends the log track for good, except in a series of integers (with
        ``count_scale``): a count track takes over, from the first value with ``count_start`` (a fractional
        value before any zero turns it into a log track from there), else from the first zero; it takes
        log(x + 1), measures its level over a day instead of a week and learns its predictors on the Anscombe
        value 2 sqrt(x + 3/8) (Poisson noise of unit scale at any rate); a negative value, or a fractional one
        after a zero, ends it."""
        s = self.s
        c = self.cfg
        if c.count_start and c.count_scale and s.pos_n == 0 and not s.counts and x >= 0 and not x % 1.0:  # integer
            s.counts = s.early = True  # first value: counts until a value says otherwise
        if s.counts and s.early and x > 0 and x % 1.0:  # not counts after all: a log track from this value on
            s.early = s.ints = False
            self._restart_log_track(counts=False)
        if s.counts:
            if x < 0 or x % 1.0:
                return self._end_log_track()
            if x == 0:
                s.early = False
            lx = math.log(x + 1.0)
        elif x > 0:
            if s.ints and x % 1.0:
                s.ints = False
            lx = math.log(x)
        elif x == 0 and s.ints and c.count_scale:  # the first zero of a count series: start afresh
            self._restart_log_track(counts=True)
            lx = 0.0
        else:
            return self._end_log_track()
        k = s.pos_n = s.pos_n + 1
        ll = s.llevel
        s.llevel = ll + (1.0 / k if k * c.scale_alpha < 1.0 else c.scale_alpha) * (lx - ll)
        lw = s.lweek  # memory: a week of points (a day for counts) once the daily period is known (a plain mean
        wk = s.period if s.counts else 7 * s.period  # until then)
        lw = s.lweek = lw + (1.0 / k if k < wk or s.period <= 0 else 1.0 / wk) * (lx - lw)
        if s.period <= 0 or k <= c.warmup or k <= wk:  # a seasonal series, after the warm-up and a week (a day
            # for counts; the mean is a plain mean of what was seen until then)
            return 0.0
        if not s.log_on:  # has the level changed, and the spread with it?
            if lw < s.llo:
                s.llo, s.elo = lw, s.err_level
            if lw > s.lhi:
                s.lhi, s.ehi = lw, s.err_level
        fold = math.exp(s.lhi - s.llo)
        rt = s.rt
        if rt is None:
            if fold * fold < c.scale_fold:  # the log track starts half-way (in logs) to scale_fold
                return 0.0
            rt = s.rt = _Track()
            self._init_track(rt)
        r = lx - ll
        score = self._track(rt, 2.0 * math.sqrt(x + 0.375), r) if s.counts else self._track(rt, r, r)
        if not s.log_on:  # the level changed scale_fold-fold and the spread with it: at least as the level's square
            # root (half its fold in logs: the noise of a positive series grows as its level) or, in counts taken from
            # their first value, as its fourth root (half, in logs, of Poisson noise's square root)
            if c.count_start and s.counts:
                spread = s.ehi >= s.elo * math.sqrt(math.sqrt(fold))
            else:
                spread = s.ehi * s.ehi >= fold * s.elo * s.elo
            s.log_on = fold >= c.scale_fold and spread and rt.n > c.warmup
        return score

    def _restart_log_track(self, counts: bool) -> None:
        """Forget what the log track learned and start it afresh at this value, as a count track or not."""
        s = self.s
        s.counts = counts
        s.pos_n = 0
        s.llevel = s.lweek = 0.0
        s.llo, s.lhi, s.elo, s.ehi = math.inf, -math.inf, 0.0, 0.0
        s.rt = None
        s.log_on = False

    def _end_log_track(self) -> float:
        """End the log track for good (a value it cannot take arrived); the point's log-track score is 0."""
        s = self.s
        s.pos_n = -1
        s.rt = None
        s.log_on = False
        return 0.0

    def _track(self, t: _Track, x: float, nx: float) -> float:
        """Learn value ``x`` on track ``t`` and return its score from the prediction surprise and the error
        likelihoods of ``x`` and the spatial novelty of ``nx`` (``x`` itself but on the count track; before
        warm-up, frozen value and damping)."""
        s = self.s
        c = self.cfg
        n = t.n
        t.n = n + 1
        if n == 0:
            t.level = x
            t.lo = t.hi = nx
            return 0.0

        # prediction surprise: the better of level and seasonal predictors, each error over its
        # predictor's running mean absolute error (_running_error)
        e = abs(x - t.level)
        t.level += c.level_alpha * (x - t.level)
        el = t.err_level
        z = e / el if el > 0 else (0.0 if e == 0 else c.z_cap)
        t.err_level = _running_error(el, e, n, c)
        wlik = 0.0
        scale = 0.0  # the seasonal profile's error scale, when it clearly beats the level predictor's
        if s.period > 0:
            i = s.phase % s.period
            pv = t.profile[i]
            if pv == pv:
                es = abs(x - pv)
                sn = t.season_n = t.season_n + 1
                ss = t.err_season
                if t.wprofile:
                    if t.week_on:  # the weekly profile replaces the daily one as the seasonal predictor
                        es = abs(x - t.wprofile[s.phase % len(t.wprofile)])
                        ss = t.err_week
                    wlik = self._week(t, x, t.err_season)
                if sn > s.period:
                    zs = es / ss if ss > 0 else (0.0 if es == 0 else c.z_cap)
                    # a seasonal series; in counts (count_start) the profile whenever it is the better predictor: on
                    # Poisson noise it is better by 0.82 even on a flat rate, so a margin hands a storm to the last
                    # value
                    pick = 1.0 if c.count_start and s.counts and t is s.rt else c.season_pick
                    if ss < pick * el:
                        z = zs
                        scale = ss
                    elif zs < z:
                        z = zs
                t.err_season = _running_error(t.err_season, abs(x - pv), sn, c)
                t.profile[i] = pv + c.season_alpha * (x - pv)
            else:
                t.profile[i] = x
        if z > c.z_cap:
            z = c.z_cap

        # error likelihood: short-term mean of surprises vs their long-term distribution
        var = t.var
        t.ring_i, t.ring_sum, d, t.mu, t.var = _surprise_step(t.ring, t.ring_i, t.ring_sum, z, t.mu, var, n, c)

        # spatial novelty: a new extreme that also lies well beyond the range of the values
        # older than spatial_lag points (a leak keeps going further; noise and small steps do not)
        lo = t.lo
        hi = t.hi
        new_hi = nx > hi
        new_lo = nx < lo
        if new_lo:
            t.lo = nx
        elif new_hi:
            t.hi = nx
        if c.spatial_lag:
            lag = t.lag
            k = t.lag_i
            old = lag[k]
            lag[k] = nx
            t.lag_i = (k + 1) % c.spatial_lag
            if n > c.spatial_lag:
                if old < t.olo:
                    t.olo = old
                if old > t.ohi:
                    t.ohi = old
                lo = t.olo
                hi = t.ohi
        width = hi - lo
        margin = c.spatial_margin * width
        if scale > 0 and c.spatial_growth:  # a growing seasonal amplitude widens the range it will reach:
            sl = t.scale_slow  # the margin grows by half the width per doubling of the error scale (at most)
            t.scale_slow = sl + c.long_alpha * (scale - sl) if sl > 0 else scale
            if sl > 0 and scale > sl:
                margin += 0.5 * width * (min(scale / sl, 2.0) - 1.0)
        novel = (new_hi and nx > hi + margin) or (new_lo and nx < lo - margin)

        score = _tail_score(d, var, c.lik_decades)
        if wlik > score:
            score = wlik
        pz = c.point_weight * (z / c.z_cap)
        if pz > score:
            score = pz
        if novel:
            beyond = (nx - hi if new_hi else lo - nx) / (width + 1e-12) - c.spatial_margin
            sp = c.spatial_score + (1.0 - c.spatial_score) * min(1.0, beyond)
            if sp > score:
                score = sp
        return score
