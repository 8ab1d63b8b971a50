"""Load forecasting (jobs per interval, API requests) with prediction intervals, and spike warnings.

The model is small and fitted with numpy in milliseconds:

* **seasons detected, not assumed**: the daily, weekly and yearly seasons the step allows are each
  tested (autocorrelation at one cycle after removing a one-cycle moving average,
  ``detect_seasons``); the longest of daily/weekly found is the main period, a yearly one found
  beside it enters as a regressor (yearly shape and fixed-date holidays);
* a **seasonal baseline**: for each future step, a robust (median) average of the values at the
  same phase of the last few seasons; the ``model+trend`` variant first moves each past season
  forward by the trend over the last two seasons (a steady trend otherwise makes the median lag);
* a **residual correction**: ridge regressions, one per horizon step, that map how far the
  recent past sits above or below its baseline (last point, last hour, last day, last season,
  the same day a year before) to the future step's deviation, so level shifts, holidays and
  trend changes carry into the forecast and fade with the horizon as the data says they do;
* for a yearly main season (weekly or monthly data), two **decompositions** as well (Prophet-like:
  a yearly Fourier profile fitted over up to 20 years plus a level, ``decomp``, or a recency-weighted
  linear trend with at most one changepoint, ``decomp+trend``; the last residual carried forward
  by the residuals' autocorrelation); for daily data with weekly and yearly seasons, ``decomp+trend``
  with a day-of-week profile and the holidays of a calendar beside the yearly profile;
* **the better of the candidates** (model, model+trend, seasonal naive, naive, and the
  decompositions when they apply) by backtests on the history itself, and **conformal intervals**
  scaled on those backtests.

Values are modelled on a log scale when they are all non-negative (counts and rates), so the
seasonal shape scales with the level.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from statistics import NormalDist
from typing import TYPE_CHECKING

from tools.auto_intel.clock import ClockError, future_stamps, utc_offsets, wall_to_utc, zone

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    Array = NDArray[np.float64]
    IntArray = NDArray[np.int_]
    BoolArray = NDArray[np.bool_]

_DAY_S = 86400.0
_NAIVE_FAMILY = ("naive", "seasonal_naive", "drift")  # the methods whose interval is the history's own changes


class ForecastError(ValueError):
    """The history cannot be forecast (too short, or bad timestamps)."""


@dataclass(frozen=True)
class ForecastConfig:
    """Model knobs; defaults chosen on development data only (the development series and, for
    ``combine``, the final sets already scored once: docs/models.md)."""

    seasons: int = 5  # past seasons averaged for the baseline
    ridge: float = 1.0  # ridge penalty (relative to the number of samples)
    coverage: float = 0.9  # central prediction interval probability
    max_train: int = 6000  # most recent points used to fit the correction
    log_scale: bool = True  # model log(1 + y) when all values are >= 0
    interval_seasons: int = 4  # intervals come from the errors of the last N seasons (recent volatility)
    same_phase: bool = True  # also regress on the deviation one day before each target
    backtests: int = 8  # origins backtested to choose the method and calibrate intervals
    trend_seasons: int = 2  # model+trend: the trend is the change of the season mean over this many seasons
    decomp_years: float = 20.0  # decomp: years of history the level (or trend) and yearly profile are fitted on
    decomp_half_life: float = 3.0  # decomp+trend: weight of a point halves every this many years back
    decomp_harmonics: int = 10  # decomp: most Fourier harmonics of the yearly season
    decomp_cal_origins: int = 24  # calibration origins when a decomposition of a yearly main season is chosen
    drift: bool = True  # a series without a season also backtests naive with drift
    holiday_prior: float = 0.5  # a named holiday's own effect is shrunk toward the shared one as if
    # this many past days had shown the shared effect (docs/models.md)
    calm_pooling: bool = True  # naive, seasonal naive and drift: a calibration factor below 1 (recent
    # backtests calmer than the history) is pooled with their whole-history interval (docs/models.md)
    fill_gaps: bool = True  # rows missing from a regular history are interpolated, so the seasons behind
    # each point stay a whole number of periods back (docs/models.md, "Gaps in the history")
    seasonal_fill: bool = True  # a gap is filled with the season's shape where that fills the history's
    # own stretches of its length better than a line; filled steps are never a target or an actual
    combine: bool = True  # average the backtests' best method with the next two unless they err clearly
    # more (by two standard errors of the paired difference over the origins; docs/models.md, "Combining")
    short_floor: bool = True  # with too few backtests to calibrate the interval (a short history), it is at
    # least as wide as the naive family's: the history's own changes over each step's distance (docs/models.md,
    # "Short histories")


@dataclass(frozen=True)
class Forecast:
    """Point forecast and interval for each step after the history."""

    timestamps: list[float]  # epoch seconds (or step indices when no timestamps were given)
    yhat: list[float]
    lower: list[float]
    upper: list[float]
    step_s: float
    period: int  # seasonal period used (points); 0 when none
    method: str = "model"  # "model", "model+trend", "decomp", "decomp+trend", "seasonal_naive", "naive"
    # or "drift" (no season only): the best in backtests
    members: tuple[str, ...] = ()  # the methods whose forecasts are averaged, ``method`` first (``combine``)
    seasons: tuple[str, ...] = ()  # seasons detected in the history ("daily", "weekly", "yearly")
    tz: str | None = None  # the time zone whose clock the series follows (None: UTC)
    clock_changes: int = 0  # UTC offset changes of ``tz`` over the history and the horizon
    local_clock: bool = False  # modelled on the local clock (a sub-daily step across clock changes)
    step_months: int = 0  # calendar months per step (monthly 1, quarterly 3, yearly 12); 0: ``step_s`` apart
    missing_steps: int = 0  # steps missing from the history (gaps in its timestamps), interpolated
    shaped_steps: int = 0  # of those, the steps filled with the season's shape rather than a line
    backtests: int = 0  # origins the candidates were backtested at (0: the history is too short; "model" is used)
    calibrated: bool = False  # the interval was calibrated on backtests (else the methods' own, floored at the
    # naive family's: ``ForecastConfig.short_floor``)


@dataclass(frozen=True)
class SpikeWarning:
    """The forecast crosses capacity: when, by how much, and whether there is time to scale."""

    crosses_at: float  # timestamp of the first step over capacity
    steps_ahead: int
    seconds_ahead: float
    peak: float
    peak_at: float
    capacity: float
    extra_capacity_ratio: float  # peak / capacity
    in_time: bool  # seconds_ahead >= the time needed to scale


def infer_step(timestamps: list[float] | Array) -> float:
    """Return the typical spacing (median difference) of increasing timestamps, in seconds."""
    import numpy as np  # kept lazy: start-up time

    t = np.asarray(timestamps, dtype=np.float64)
    if len(t) < 2:
        raise ForecastError("need at least two timestamps to infer the step")
    d = np.diff(t)
    d = d[d > 0]
    if not len(d):
        raise ForecastError("timestamps do not increase")
    return float(np.median(d))


def seasonal_period(step_s: float, n: int) -> int:
    """The calendar period the step and history allow (weekly with 3+ weeks of history, else daily
    with 3+ days, else yearly with 3+ years): seasonal naive's lag. 0 when none fits."""
    return _calendar(step_s, n)[0]


def _calendar(step_s: float, n: int) -> tuple[int, int]:
    """(main calendar period, yearly lag or 0), both in steps, from the step and history length only."""
    if step_s <= 0:
        return 0, 0
    day = _DAY_S / step_s
    main = 0
    for p in (7 * day, day):
        k = round(p)
        if k >= 2 and abs(p - k) < 0.02 * p and n >= 3 * k:
            main = k
            break
    year = round(365.25 * day)
    if not main and year >= 2 and n >= 3 * year:
        return year, 0
    yearly = year if main and year > main and n >= 2 * year + 4 * main else 0
    return main, yearly


def season_strength(z: Array, period: float, bins: int) -> float | None:
    """Autocorrelation at one cycle of the series averaged over ``bins`` steps, after removing a
    centred moving average of one cycle (trend and longer seasons); None when the history is too
    short to tell (fewer than three cycles)."""
    import numpy as np  # kept lazy: start-up time

    m = len(z) // bins
    k = round(period / bins)  # one cycle, in bins
    if k < 2 or m < 3 * k:
        return None
    x = z[len(z) - m * bins:].reshape(m, bins).mean(axis=1)
    c = np.concatenate(([0.0], np.cumsum(x)))
    ma = (c[k:] - c[:-k]) / k  # mean of x[i:i+k]
    d = x[k // 2:k // 2 + len(ma)] - ma
    a, b = d[k:], d[:-k]
    if len(a) < 4 or float(np.std(a)) == 0.0 or float(np.std(b)) == 0.0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def detect_seasons(z: Array, step_s: float) -> dict[str, bool]:
    """Which of the daily, weekly and yearly seasons the series has.

    A season is kept when its strength (``season_strength``) exceeds ``_MIN_STRENGTH`` and twice the
    noise level of the estimate (2/sqrt(pairs)). When the history is too short to tell, the
    calendar rule decides (the season is assumed when the history allows it); the backtests then
    choose between the model and the baselines.
    """
    out: dict[str, bool] = {}
    if step_s <= 0:
        return out
    day = _DAY_S / step_s
    n = len(z)
    for name, period, bins in (("daily", day, max(1, round(day / 24))), ("weekly", 7 * day, max(1, round(day))),
                               ("yearly", 365.25 * day, max(1, round(365.25 * day / 12)))):
        if period < 2 or period > n:
            continue
        if name != "yearly" and abs(period - round(period)) > 0.02 * period:
            continue
        r = season_strength(z, period, bins)
        if r is None:
            out[name] = n >= 2 * period  # too short to test: assumed, left to the backtests
            continue
        pairs = len(z) // bins - 2 * round(period / bins)
        out[name] = r > max(_MIN_STRENGTH, 2 / math.sqrt(max(pairs, 1)))
    return out


_MIN_STRENGTH = 0.3  # autocorrelation at one cycle below which a season is not used (docs/models.md)


def _periods(step_s: float, n: int, found: dict[str, bool]) -> tuple[int, int]:
    """(main period, yearly lag used as an extra regressor or 0), both in steps: the calendar
    periods the step allows, kept only when ``detect_seasons`` found them (``found``)."""
    main, yearly = _calendar(step_s, n)
    if step_s <= 0:
        return main, yearly
    day = _DAY_S / step_s
    year = round(365.25 * day)
    if main and main == round(7 * day) and not found.get("weekly", True):
        main = round(day) if round(day) >= 2 and found.get("daily") and n >= 3 * round(day) else 0
    elif main and main == round(day) and not found.get("daily", True):
        main = 0
    if main == year and not found.get("yearly", True):
        main = 0
    if not main and found.get("yearly") and year >= 2 and n >= 3 * year:
        main = year
    if yearly and not found.get("yearly", True):
        yearly = 0
    return main, yearly


def _baseline(z: Array, period: int, seasons: int, start: int, stop: int, slope: Array | None = None) -> Array:
    """Median of the values 1..K periods before each index in [start, stop) (K as history allows),
    each moved forward by ``slope`` (per step, per index) times its distance when a slope is given."""
    import numpy as np  # kept lazy: start-up time

    out: Array = np.empty(stop - start)
    pos = start
    while pos < stop:
        k = min(seasons, pos // period)
        end = stop if k == seasons else min(stop, (k + 1) * period)
        idx = np.arange(pos, end)
        lags = np.stack([z[idx - j * period] for j in range(1, k + 1)])
        if slope is not None:
            lags = lags + np.arange(1, k + 1)[:, None] * period * slope[pos - start:end - start][None, :]
        out[pos - start:end - start] = np.median(lags, axis=0)
        pos = end
    return out


def _slopes(z: Array, period: int, seasons: int, idx: IntArray) -> Array:
    """Trend per step at each index of ``idx`` from the data before it: the change of the last
    season's mean since (up to) ``seasons`` seasons before, divided by their length. With a
    yearly season beside the main one, ``period`` is the year and ``seasons`` 1 (a shorter
    window would take the yearly shape for a trend)."""
    import numpy as np  # kept lazy: start-up time

    c = np.concatenate(([0.0], np.cumsum(z)))
    k = np.minimum(seasons, idx // period - 1)
    ok = k >= 1
    kk = np.where(ok, k, 1)
    i = np.where(ok, idx, (kk + 1) * period)
    now = (c[i] - c[i - period]) / period
    then = (c[i - kk * period] - c[i - (kk + 1) * period]) / period
    res: Array = np.where(ok, (now - then) / (kk * period), 0.0)
    return res


def _tails(v: Array, a: float) -> tuple[float, float]:
    """The ``a`` and ``1 - a`` quantiles of ``v`` (linear interpolation, as ``np.quantile``), with
    one partial sort: ``np.quantile`` costs more in overhead than in work on these sizes."""
    import numpy as np  # kept lazy: start-up time

    pos = np.array([a, 1.0 - a]) * (len(v) - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, len(v) - 1)
    part = np.partition(v, np.unique(np.concatenate((lo, hi))))
    q = part[lo] + (part[hi] - part[lo]) * (pos - lo)
    return float(q[0]), float(q[1])


def _features(r: Array, t: IntArray, day: int, period: int) -> Array:
    """Deviation features at origins ``t`` (index of the last observed point)."""
    import numpy as np  # kept lazy: start-up time

    c = np.concatenate(([0.0], np.cumsum(r)))
    hour = max(1, day // 24)

    def mean_back(w: int) -> Array:
        lo = np.maximum(t + 1 - w, 0)
        res: Array = (c[t + 1] - c[lo]) / (t + 1 - lo)
        return res

    cols = [np.ones(len(t)), r[t], mean_back(hour), mean_back(day)]
    if period > day:
        cols.append(mean_back(period))  # the last season's mean deviation: trend changes
    return np.stack(cols, axis=1)


def holiday_key(name: str | None) -> str:
    """The key that makes two named holidays the same holiday (case and surrounding blanks ignored);
    "" for an unnamed one."""
    return (name or "").strip().casefold()


def _holiday_matrix(days: Array, holidays: Iterable[float], names: Sequence[str | None] | None) -> Array | None:
    """Holiday indicators for steps whose UTC day numbers are ``days``: column 0 is 1 on every step of
    any holiday's day (the shared effect), then one column per holiday key, 1 on that holiday's days.
    A holiday's key is its name (``names``, parallel to ``holidays``; case and surrounding blanks
    ignored) or, unnamed, its month and day (``"12-25"``), so an unnamed holiday on a fixed date has
    the effect of its past years and a moving one the shared effect. None when no step is a holiday."""
    import numpy as np  # kept lazy: start-up time

    stamps = [float(h) for h in holidays]
    if names is not None and len(names) != len(stamps):
        raise ForecastError(f"{len(names)} holiday names for {len(stamps)} holidays")
    hol_days = np.floor(np.asarray(stamps, dtype=np.float64) / _DAY_S)
    any_day = np.isin(days, hol_days)
    if not any_day.any():
        return None
    keys: dict[str, list[float]] = {}
    for i, d in enumerate(hol_days.tolist()):
        name = holiday_key(names[i]) if names is not None else ""
        keys.setdefault(name or datetime.fromtimestamp(d * _DAY_S, UTC).strftime("%m-%d"), []).append(d)
    cols = [any_day] + [np.isin(days, v) for v in keys.values()]
    res: Array = np.stack(cols, axis=1).astype(np.float64)
    return res


def _seen_holidays(hol: Array, lo: int, hi: int) -> Array | None:
    """The columns of ``hol`` (``_holiday_matrix``) a fit on rows ``lo:hi`` uses: the shared column,
    and each holiday's own column when it is among those rows and either recurs there (two days or
    more) or is ahead (after them, in the forecast); None when no holiday is among the rows. A
    holiday not seen keeps the shared effect; one seen once and not ahead (a moving unnamed holiday)
    is left to the shared effect as well (one column each would cost more than it changes)."""
    import numpy as np  # kept lazy: start-up time

    part = hol[lo:hi]
    if not part[:, 0].any():
        return None
    days = (np.diff(part, axis=0) > 0).sum(axis=0) + part[0]  # separate runs of holiday steps
    keep = (days >= 2) | (part.any(axis=0) & hol[hi:].any(axis=0))
    keep[0] = True
    res: Array = hol[:, keep]
    return res


def _holiday_effects(hol: Array, r: Array, pen: float) -> Array:
    """Least-squares effects of the columns of ``hol`` (``_seen_holidays``) on the deviations ``r``:
    the shared one (column 0) unpenalised, each named one's deviation from it with the ridge
    penalty ``pen`` (a named holiday seen on k days keeps about k / (k + ``holiday_prior``) of its
    own deviation from the shared effect)."""
    import numpy as np  # kept lazy: start-up time

    g = hol.T @ hol
    reg = np.full(hol.shape[1], pen)
    reg[0] = 1e-9 * float(g[0, 0])
    res: Array = np.linalg.solve(g + np.diag(reg), hol.T @ r).astype(np.float64)
    return res


def _model(z: Array, horizon: int, period: int, yearly: int, day: int, cfg: ForecastConfig,
           trend: int = 0, hol: Array | None = None, hol_pen: float = 0.0, obs: BoolArray | None = None
           ) -> tuple[Array, Array, Array]:
    """Seasonal baseline + ridge correction: (point forecast, lower and upper offsets) in z units.
    With ``trend`` (seasons) the seasons behind each point are moved forward by the trend over the
    last ``trend`` seasons first.
    ``hol`` (``_holiday_matrix``: ``len(z) + horizon`` rows; column 0 is 1 on any holiday, the
    others on each named holiday) gives the holidays' effects when the training stretch holds a
    holiday to learn from: each holiday's mean deviation from the baseline (``_holiday_effects``: a
    shared effect, and each named holiday's own shrunk toward it with the ridge penalty ``hol_pen``)
    is removed from the deviations before the regressions and added to the forecast on the
    holidays ahead, on every step of their days."""
    import numpy as np  # kept lazy: start-up time

    n = len(z)
    ext = np.concatenate((z, np.zeros(horizon)))
    if period:
        first = period
        base_fit = np.zeros(n)
        win, k = (yearly, 1) if yearly else (period, trend)
        fit_slope = _slopes(z, win, k, np.arange(first, n)) if trend else None
        base_fit[first:] = _baseline(z, period, cfg.seasons, first, n, fit_slope)
        base_fit[:first] = z[:first]
        # the future baseline, step by step so horizons beyond one period use earlier forecasts
        now_slope = _slopes(z, win, k, np.array([n]))[0] if trend else 0.0
        for s0 in range(n, n + horizon, period):
            s1 = min(s0 + period, n + horizon)
            ext[s0:s1] = _baseline(ext, period, cfg.seasons, s0, s1,
                                   np.full(s1 - s0, now_slope) if trend else None)
        base_future = ext[n:]
    else:
        first = 1
        csum = np.concatenate(([0.0], np.cumsum(z)))
        ends = np.arange(1, n + 1)
        starts = np.maximum(ends - day, 0)
        level = (csum[ends] - csum[starts]) / (ends - starts)  # mean of the last `day` points
        base_fit = np.concatenate(([z[0]], level[:-1]))
        base_future = np.full(horizon, level[-1])

    r = z - base_fit
    # training origins: enough history behind, and all horizon targets observed
    t_lo = max(first, n - horizon - cfg.max_train, yearly + 8 if yearly else 0)
    t_hi = n - horizon - 1
    corr = np.zeros(horizon)
    lo_q = np.zeros(horizon)
    hi_q = np.zeros(horizon)
    hol_future = np.zeros(horizon)
    if hol is not None and (hol := _seen_holidays(hol, t_lo + 1, n)) is not None:
        # the holidays' effects first (shared, and named ones shrunk toward it), taken out of the
        # deviations so they do not leak into the features (a holiday yesterday) or the targets
        b = _holiday_effects(hol[t_lo + 1:n], r[t_lo + 1:n], hol_pen)
        r = r - hol[:n] @ b
        hol_future = hol[n:] @ b
    if t_hi - t_lo >= 10:
        t = np.arange(t_lo, t_hi + 1)
        x = _features(r, t, day, period)
        x_now = _features(r, np.array([n - 1]), day, period)
        lam = cfg.ridge * len(t) * 1e-3
        a = (1.0 - cfg.coverage) / 2.0
        recent = max(100, cfg.interval_seasons * period) if period else len(t)
        rext = np.concatenate((r, np.zeros(horizon)))
        if yearly:  # the deviation around the same date a year before (yearly shape, holidays)
            cy = np.concatenate(([0.0], np.cumsum(r)))
            half = max(1, round(day))
        xtx = x.T @ x
        n_x = x.shape[1]
        for h in range(1, horizon + 1):
            tgt = r[t + h]
            seen = None if obs is None else obs[t + h]
            extra, extra_now = [], []
            if cfg.same_phase and h <= day and t_lo + h - day >= 0:
                # the deviation one day before the target: "today is like yesterday"
                extra.append(r[t + h - day])
                extra_now.append(rext[[n - 1 + h - day]])
            if yearly:
                for src, out in ((t + h - yearly, extra), (np.array([n - 1 + h - yearly]), extra_now)):
                    out.append(r[src])
                    lo = np.maximum(src - 3 * half, 0)
                    hi = np.minimum(src + 3 * half + 1, n)
                    out.append((cy[hi] - cy[lo]) / np.maximum(hi - lo, 1))
            # normal equations by blocks: the shared features' Gram matrix is computed once
            e = np.stack(extra, axis=1) if extra else np.empty((len(t), 0))
            e_now = np.concatenate(extra_now) if extra_now else np.empty(0)
            xh, xtx_h = x, xtx
            if seen is not None and not seen.all():  # a filled target is not learnt from
                xtx_h = xtx - x[~seen].T @ x[~seen]
                xh, e, tgt = x[seen], e[seen], tgt[seen]
            xe = xh.T @ e
            gram = np.empty((n_x + e.shape[1],) * 2)
            gram[:n_x, :n_x], gram[:n_x, n_x:], gram[n_x:, :n_x], gram[n_x:, n_x:] = xtx_h, xe, xe.T, e.T @ e
            ridge = np.arange(1, len(gram))  # the intercept is not penalised
            gram[ridge, ridge] += lam
            beta = np.linalg.solve(gram, np.concatenate((xh.T @ tgt, e.T @ tgt)))
            b_x, b_e = beta[:x.shape[1]], beta[x.shape[1]:]
            resid = tgt[-recent:] - xh[-recent:] @ b_x - e[-recent:] @ b_e
            corr[h - 1] = float(x_now[0] @ b_x + e_now @ b_e)
            lo_q[h - 1], hi_q[h - 1] = _tails(resid, a)
    else:
        spread = float(np.std(r[first:])) if n - first > 1 else 0.0
        zq = NormalDist().inv_cdf(0.5 + cfg.coverage / 2.0)
        lo_q[:] = -zq * spread
        hi_q[:] = zq * spread
    return base_future + corr + hol_future, lo_q, hi_q


def _decomp(z: Array, horizon: int, year: float, cfg: ForecastConfig, trend: bool, week: int = 0,
            hol: Array | None = None, hol_pen: float = 0.0, obs: BoolArray | None = None
            ) -> tuple[Array, Array, Array]:
    """Decomposition, Prophet-like: a yearly profile of Fourier terms (``year`` steps long,
    fractional for weekly data) plus a level (``decomp``) or a linear trend with at most one
    changepoint (``decomp+trend``), fitted by least squares on the last ``decomp_years`` years;
    for daily data (``week`` = 7, a yearly season beside the weekly one) also a day-of-week profile
    (one dummy per weekday) and, when ``hol`` (``_holiday_matrix``) marks a holiday in the window, a
    shared holiday effect and one per named holiday, each named one's deviation from the shared
    effect penalised by ``hol_pen`` (times the mean weight of a point). With a trend, each point
    weighs half as much every ``decomp_half_life`` years back, and the changepoint (every quarter of
    a year, at least a year from either end of the window; for daily data a quarter from the end) is
    kept when it lowers the BIC. The last residual is carried forward by the residuals'
    autocorrelation at each lag (anomalies persist or fade as they did; for daily data the last
    week's mean residual, by its correlation with the later residuals). Steps not observed (``obs``
    False: filled) weigh nothing in the fit and are no in-sample error.
    (Point forecast, lower and upper offsets) in z units."""
    import numpy as np  # kept lazy: start-up time

    n = len(z)
    w = min(n, round(cfg.decomp_years * year))
    zz = z[n - w:]
    tt = np.arange(n - w, n + horizon, dtype=np.float64)  # absolute positions keep the season's phase
    k = max(1, min(cfg.decomp_harmonics, (round(year) - 1) // 2))
    ang = 2 * np.pi * tt[:, None] * np.arange(1, k + 1)[None, :] / year
    yrs = (tt - tt[0]) / year
    cols = [np.ones(len(tt))] + ([yrs] if trend else []) + [np.cos(ang), np.sin(ang)]
    if week:
        cols.append((tt[:, None] % week == np.arange(1, week)[None, :]).astype(np.float64))
    named = 0
    if hol is not None and (hol := _seen_holidays(hol[n - w:], 0, w)) is not None:
        cols.append(hol)
        named = hol.shape[1] - 1
    x_all = np.column_stack(cols)
    sw = 0.5 ** ((w - 1 - np.arange(w)) / (2 * cfg.decomp_half_life * year)) if trend else np.ones(w)
    seen = np.ones(w, bool) if obs is None else obs[n - w:]
    sw = sw * seen
    x = x_all[:w] * sw[:, None]  # rows scaled by the square root of their weight
    zs = zz * sw
    p = x.shape[1]
    xtx, xty, yty = x.T @ x, x.T @ zs, float(zs @ zs)
    eps = 1e-9 * np.trace(xtx) / p
    if named:  # named holidays (the last columns): deviations from the shared effect, shrunk
        xtx[np.arange(p - named, p), np.arange(p - named, p)] += hol_pen * float(np.mean(sw * sw))
    beta = np.linalg.solve(xtx + eps * np.eye(p), xty)
    # changepoints every quarter of a year, a year from the start and a year from the end (daily data:
    # a quarter, still 91 points after it, more than a year of weekly data has)
    end_gap = 0.25 if week else 1.0
    knots = np.arange(1.0, w / year - end_gap + 1e-9, 0.25) if trend else np.empty(0)
    if len(knots):
        # every candidate changepoint at once: normal equations by blocks, one hinge column each
        hinge = np.maximum(yrs[:w, None] - knots[None, :], 0.0) * sw[:, None]
        # (einsum, not BLAS: a threaded matrix product of this shape costs 100x more on a busy machine)
        xh, hy = np.einsum("ij,ik->jk", x, hinge), zs @ hinge
        m = len(knots)
        gram = np.zeros((m, p + 1, p + 1))
        gram[:, :p, :p] = xtx
        gram[:, :p, p] = xh.T
        gram[:, p, :p] = xh.T
        gram[:, p, p] = np.einsum("ij,ij->j", hinge, hinge)
        gram += eps * np.eye(p + 1)
        rhs = np.concatenate((np.broadcast_to(xty, (m, p)), hy[:, None]), axis=1)
        betas = np.linalg.solve(gram, rhs[:, :, None])[:, :, 0]
        sse = np.maximum(yty - np.einsum("ij,ij->i", betas, rhs), 1e-12)
        bic = w * np.log(sse / w) + (p + 2) * math.log(w)
        j = int(np.argmin(bic))
        if bic[j] < w * math.log(max(yty - float(beta @ xty), 1e-12) / w) + p * math.log(w):
            x_all = np.column_stack((x_all, np.maximum(yrs - knots[j], 0.0)))
            beta = betas[j]
    fit = x_all @ beta
    r = zz - fit[:w]
    hs = np.arange(1, horizon + 1)
    if week:  # daily data: the last week's mean residual is carried (one day's is mostly noise)
        c = np.concatenate(([0.0], np.cumsum(r)))
        r_now = np.concatenate((r[:week - 1], (c[week:] - c[:-week]) / week))
    else:
        r_now = r
    var = float(r_now @ r_now)
    rho = np.array([float(r[h:] @ r_now[:-h]) / var if h < w and var > 0 else 0.0 for h in hs])
    a = (1.0 - cfg.coverage) / 2.0
    lo_q = np.empty(horizon)
    hi_q = np.empty(horizon)
    for h in hs:  # the in-sample errors of "residual h steps later = rho_h * residual now"
        e = _observed(r[h:] - rho[h - 1] * r_now[:-h], None if obs is None else seen, int(h)) if h < w else r
        lo_q[h - 1], hi_q[h - 1] = _tails(e, a)
    return fit[w:] + rho * r_now[-1], lo_q, hi_q


def _naive(z: Array, horizon: int, lag: int, cfg: ForecastConfig, obs: BoolArray | None = None
           ) -> tuple[Array, Array, Array]:
    """Seasonal naive (``lag`` = period) or naive (``lag`` = 0): forecast and in-sample error quantiles."""
    import numpy as np  # kept lazy: start-up time

    n = len(z)
    a = (1.0 - cfg.coverage) / 2.0
    hs = np.arange(1, horizon + 1)
    if lag:
        reps = (hs - 1) // lag + 1  # seasons back each step's value comes from
        mid = z[n - lag + (hs - 1) % lag]
        steps = reps * lag
    else:
        mid = np.full(horizon, z[-1])
        steps = hs
    lo_q = np.empty(horizon)
    hi_q = np.empty(horizon)
    for k in np.unique(steps):
        d = _observed(z[k:] - z[:-k], obs, int(k)) if k < n else np.array([0.0])
        d = d[-cfg.max_train:]
        q = np.quantile(d, [a, 1.0 - a])
        lo_q[steps == k], hi_q[steps == k] = q[0], q[1]
    return mid, lo_q, hi_q


def _drift(z: Array, horizon: int, cfg: ForecastConfig, obs: BoolArray | None = None) -> tuple[Array, Array, Array]:
    """Naive with drift: the last value moved on by the history's mean step (on the log scale a
    constant growth rate), and the quantiles of the history's own errors of that forecast at each
    step ahead (z units)."""
    import numpy as np  # kept lazy: start-up time

    n = len(z)
    slope = (z[-1] - z[0]) / (n - 1)
    a = (1.0 - cfg.coverage) / 2.0
    hs = np.arange(1, horizon + 1)
    mid = z[-1] + slope * hs
    lo_q = np.empty(horizon)
    hi_q = np.empty(horizon)
    for k in hs:
        d = _observed(z[k:] - z[:-k] - slope * k, obs, int(k)) if k < n else np.array([0.0])
        q = np.quantile(d[-cfg.max_train:], [a, 1.0 - a])
        lo_q[k - 1], hi_q[k - 1] = q[0], q[1]
    return mid, lo_q, hi_q


def _observed(d: Array, obs: BoolArray | None, k: int) -> Array:
    """``d``, one value per pair of steps ``k`` apart (as ``z[k:] - z[:-k]``), without the pairs that
    touch a filled step (``obs`` False); all of ``d`` when nothing was filled or no pair is observed."""
    if obs is None:
        return d
    both = obs[k:] & obs[:-k]
    return d[both] if both.any() else d


def _sides(mid: Array, lo_q: Array, hi_q: Array) -> tuple[Array, Array, Array]:
    """An uncalibrated interval with a side that does not reach past the forecast (the naive forecast of
    a series that only fell: every past k-step change negative, so the upper offset is below 0) gets
    that side mirrored from the other: a calibration factor scales each side, and a side at or below 0
    cannot be scaled (its backtest errors scored against it were unbounded: an infinite interval)."""
    import numpy as np  # kept lazy: start-up time

    lo = np.where(lo_q < 0, lo_q, -np.maximum(hi_q, 0.0))
    hi = np.where(hi_q > 0, hi_q, -np.minimum(lo_q, 0.0))
    return mid, lo, hi


def _scores(dev: Array, lo_q: Array, hi_q: Array) -> Array:
    """Conformal scores of backtest errors ``dev`` (actual - forecast): each error over the
    interval offset on its side (above 1: outside the uncalibrated interval)."""
    import numpy as np  # kept lazy: start-up time

    res: Array = np.where(dev >= 0, dev / np.maximum(hi_q, 1e-12), -dev / np.maximum(-lo_q, 1e-12))
    return res


def _growth(dev: Array) -> Array:
    """How the backtests' errors ``dev`` (origins x steps) grow with the step: the root mean square
    error at each step, averaged over the steps within an eighth of the horizon on either side, over
    the first step's."""
    import numpy as np  # kept lazy: start-up time

    horizon = dev.shape[1]
    sq = dev ** 2
    seen = np.isfinite(sq)
    per = np.where(seen, sq, 0.0).sum(axis=0)
    cnt = seen.sum(axis=0)
    if cnt.any() and not cnt.all():  # a step no backtest observed (filled): its neighbours' mean
        idx = np.flatnonzero(cnt)
        per_mean = np.interp(np.arange(horizon), idx, per[idx] / cnt[idx])
    else:
        per_mean = per / np.maximum(cnt, 1)
    c = np.concatenate(([0.0], np.cumsum(per_mean)))
    w = max(1, horizon // 8)
    i = np.arange(horizon)
    lo, hi = np.maximum(i - w, 0), np.minimum(i + w + 1, horizon)
    ms = (c[hi] - c[lo]) / (hi - lo)
    res: Array = np.sqrt(ms / ms[0]) if ms[0] > 0 else np.ones(horizon)
    return res


def _members(ranked: list[str], errs: dict[str, list[float]], calendar: bool = False) -> tuple[str, ...]:
    """The methods to average: the best in backtests (``ranked[0]``) and each of the next two whose
    errors over the same origins (``errs``, per origin) are not larger than the best's by more than
    two standard errors of the paired difference. Eight origins rarely tell close methods apart, and
    the mean of methods that are about as good errs less on new data than the one that won the
    backtests by chance (docs/models.md, "Combining"). With a ``calendar`` (holidays in the history and
    ahead), a method that ignores it (the naive family) is not averaged with one that uses it: that
    would dilute the holidays' effect the caller asked for."""
    import numpy as np  # kept lazy: start-up time

    best = np.array(errs[ranked[0]])
    out = [ranked[0]]
    for m in ranked[1:3]:
        if (m not in errs or len(errs[m]) != len(best)
                or calendar and (m in _NAIVE_FAMILY) != (ranked[0] in _NAIVE_FAMILY)):
            continue
        d = np.array(errs[m]) - best
        if len(d) < 2 or d.mean() <= 2.0 * d.std(ddof=1) / math.sqrt(len(d)):
            out.append(m)
    return tuple(out)


def _predict(method: str, z: Array, horizon: int, period: int, yearly: int, day: int,
             cfg: ForecastConfig, hol: Array | None, year: float, obs: BoolArray | None = None
             ) -> tuple[Array, Array, Array]:
    """Method ``method``'s point forecast and uncalibrated interval offsets (z units)."""
    # a named holiday's deviation from the shared effect: the ridge penalty of `holiday_prior` days
    hol_pen = cfg.holiday_prior * max(1, round(year / 365.25))
    if method.startswith("decomp"):
        week = period if period != round(year) else 0  # daily data: the weekly profile as well
        return _decomp(z, horizon, year, cfg, trend=method == "decomp+trend", week=week,
                       hol=hol if week else None, hol_pen=hol_pen, obs=obs)
    if method.startswith("model"):
        trend = cfg.trend_seasons if method == "model+trend" else 0
        return _model(z, horizon, period, yearly, day, cfg, trend=trend, hol=hol, hol_pen=hol_pen, obs=obs)
    if method == "seasonal_naive":
        return _naive(z, horizon, period, cfg, obs)
    if method == "drift":
        return _drift(z, horizon, cfg, obs)
    return _naive(z, horizon, 0, cfg, obs)


def forecast(values: list[float] | Array, *, horizon: int, timestamps: list[float] | None = None,
             step_s: float | None = None, config: ForecastConfig | None = None,
             holidays: Iterable[float] | None = None,
             holiday_names: Sequence[str | None] | None = None, tz: str | None = None) -> Forecast:
    """Forecast ``horizon`` steps after the history, with a central prediction interval.

    ``holidays``: epoch seconds of any moment of each holiday (UTC days, past and future); the
    model learns their effect from the holidays in the history (needs timestamps): one effect shared
    by all holidays and, for each holiday seen in the history, its own, shrunk toward the shared one
    when it has few past days (``holiday_prior``). ``holiday_names``, parallel to ``holidays``
    (``None`` or ``""`` for an unnamed one), says which days are the same holiday; an unnamed holiday
    is the same as the past ones on its month and day (fixed dates). A future holiday never seen in
    the history (a new name, or a moving unnamed one) gets the shared effect. Raises
    ``ForecastError`` when ``holiday_names`` is not as long as ``holidays``.

    ``tz`` (an IANA time zone name; needs timestamps): the series follows that zone's clock. Its
    holidays are local dates; a daily or longer step keeps the same local time of day across clock
    changes; and a step of an hour or a fraction of one is modelled on the local clock (``_local_grid``),
    so the daily shape does not move an hour when the clocks change. The forecast's timestamps are
    the steps after the last one: by calendar months for a monthly, quarterly or yearly series (on
    the same day of the month), else ``step_s`` apart (by local days in ``tz`` for a daily step).
    Rows missing from a regular history (timestamps k steps apart: k - 1 missing) are interpolated on
    the same grid first (``fill_gaps``; not when more are missing than present), so the seasons behind
    each point stay whole periods back; ``Forecast.missing_steps`` counts them.

    The candidates (the seasonal model, the decompositions for a yearly main season, seasonal naive,
    naive, and naive with drift for a series without a season) are backtested on the history's last
    stretches; the one with the smallest error is used, averaged with the next two where their errors
    are not clearly larger (``combine``; ``Forecast.members``), and the interval is scaled so it would
    have covered ``coverage`` of those backtests' actual values (conformal calibration).
    """
    import numpy as np  # kept lazy: start-up time

    cfg = config or ForecastConfig()
    y = np.asarray(values, dtype=np.float64)
    if horizon < 1:
        raise ForecastError("horizon must be at least 1")
    if len(y) < 3 or not np.isfinite(y).all():
        raise ForecastError("need at least three finite values")
    if timestamps is not None and len(timestamps) != len(y):
        raise ForecastError(f"{len(timestamps)} timestamps for {len(y)} values")
    if tz is not None and timestamps is None:
        raise ForecastError("a time zone needs timestamps")
    try:
        tzi = zone(tz) if tz is not None else None
    except ClockError as exc:
        raise ForecastError(str(exc)) from None
    if step_s is None:
        step_s = infer_step(timestamps) if timestamps is not None else 0.0
    step = step_s if step_s > 0 else 1.0
    days: Array | None = None  # the date (day number) of each step, history then horizon: holidays
    pick: IntArray | None = None  # the local-clock forecast's step for each step ahead (_local_grid)
    changes = months = missing = shaped = 0
    obs: BoolArray | None = None  # which steps of the history were observed (not filled)
    if timestamps is not None:
        t = np.asarray(timestamps, dtype=np.float64)
        off = utc_offsets(t, tzi) if tzi is not None else np.zeros(len(t))
        ts_out, months = future_stamps(t, off, step, horizon, tzi)
        t_out = np.asarray(ts_out)
        off_out = utc_offsets(t_out, tzi) if tzi is not None else np.zeros(horizon)
        changes = int(np.count_nonzero(np.diff(np.concatenate((off, off_out)))))
        k = np.round(np.diff(t) / step) if step_s > 0 else np.zeros(0)
        missing = int(np.sum(k[k > 1] - 1)) if cfg.fill_gaps and not months else 0
        if missing > len(t):  # more missing than present: interpolation would be most of the history
            missing = 0
        grid = _local_grid(t + off, t_out + off_out, step_s) if step_s > 0 and not months and (
            changes and step_s < _DAY_S or missing) else None
        if grid is not None:
            pos, pick = grid
            y, shaped = _on_grid(y, pos, step_s, cfg.seasonal_fill)
            obs = np.bincount(pos, minlength=len(y)) > 0
            wall: Array = float(t[0] + off[0]) + step_s * np.arange(len(y) + int(pick.max()) + 1, dtype=np.float64)
            days = np.floor(wall / _DAY_S)
            missing = _missing(pos, wall, tzi)
            shaped = min(shaped, missing)  # (an hour the clock skips may take the shape too: not missing)
        else:
            missing = 0
            days = np.floor(np.concatenate((t + off, t_out + off_out)) / _DAY_S)
        # the year in steps from the mean spacing (monthly data: the median step is 31 days, the mean 30.44)
        mean_step = step_s if grid is not None else (float(t[-1]) - float(t[0])) / (len(t) - 1)
    else:
        last_ts = float(len(y) - 1)
        ts_out = [last_ts + step * (h + 1) for h in range(horizon)]
        mean_step = step_s
        if step_s > 0:
            days = np.floor((last_ts + step * np.arange(1 - len(y), horizon + 1)) / _DAY_S)
    hol = None
    if holidays is not None and days is not None and step_s > 0:
        hol = _holiday_matrix(days, holidays, holiday_names)
    fit_h = horizon if pick is None else int(pick.max()) + 1
    mid, lower, upper, members, period, found, tested, calibrated = _fit(
        y, fit_h, step_s, mean_step, hol, cfg, None if obs is None or obs.all() else obs)
    if pick is not None:
        mid, lower, upper = mid[pick], lower[pick], upper[pick]
    return Forecast(ts_out, [float(v) for v in mid], [float(v) for v in lower],
                    [float(v) for v in upper], step_s, period, members[0], members,
                    tuple(name for name, ok in found.items() if ok), tz=tz, clock_changes=changes,
                    local_clock=pick is not None and changes > 0, step_months=months, missing_steps=missing,
                    shaped_steps=shaped, backtests=tested, calibrated=calibrated)


def _local_grid(wall: Array, wall_out: Array, step_s: float) -> tuple[IntArray, IntArray] | None:
    """Put a series on its local clock: from the wall times of the history (``wall``) and of the steps
    ahead (``wall_out``), each history point's position on a regular grid of ``step_s`` local seconds,
    and for each step ahead its position after the grid's last (0 for the first step after it). None
    when the rows are not whole steps apart (within 5 % of a step; a clock change that is not a whole
    number of steps, as an hour against two-hour steps, or irregular timestamps): the rows are then
    used as they are, on UTC. (With no time zone the wall times are the UTC times: a gap's steps are filled.)
    Across a clock change forward the grid steps of the hour skipped have no point (``_on_grid`` fills
    them); back, the points of the repeated hour share its grid steps with the first pass (averaged),
    and the steps ahead on a repeated hour get the same forecasts as its first pass."""
    import numpy as np  # kept lazy: start-up time

    raw = (wall - wall[0]) / step_s
    pos = np.round(raw).astype(np.int_)
    if np.abs(raw - pos).max() > 0.05:
        return None
    ahead = np.round((wall_out - wall[0]) / step_s).astype(np.int_) - int(pos.max()) - 1
    return pos, np.maximum(ahead, 0)  # a step ahead on an hour already seen: the next step's forecast


def _missing(pos: IntArray, wall: Array, tz: tzinfo | None) -> int:
    """Grid steps without a row (``pos``: the rows' positions; ``wall``: each step's wall time), not
    counting the steps the zone's clock skips (spring): a file written on the local clock has no row
    there, and none is missing."""
    import numpy as np  # kept lazy: start-up time

    holes = np.setdiff1d(np.arange(int(pos.max()) + 1), pos)
    if tz is None or not len(holes):
        return len(holes)
    real = np.array([wall_to_utc(float(wall[i]), tz) for i in holes])
    return int(np.count_nonzero(real + utc_offsets(real, tz) == wall[holes]))


def _on_grid(y: Array, pos: IntArray, step_s: float = 0.0, seasonal: bool = False) -> tuple[Array, int]:
    """The values ``y`` at grid positions ``pos`` (from 0) as a regular series: the mean of the points
    that share a position, and positions without a point filled. Linearly; with ``seasonal`` (and a
    calendar season the history holds three of), a gap is filled with the season's shape where that
    fills the history's own stretches of the gap's length better (``_seasonal_fill``, ``_shape_wins``)
    and the gap is shorter than the season. Returns the series and the number of steps filled with
    the shape."""
    import numpy as np  # kept lazy: start-up time

    size = int(pos.max()) + 1
    count = np.bincount(pos, minlength=size)
    total = np.bincount(pos, weights=y, minlength=size)
    have = count > 0
    out: Array = np.interp(np.arange(size), np.flatnonzero(have), total[have] / count[have])
    season = _fill_season(step_s, size) if seasonal and step_s > 0 and not have.all() else 0
    if not season:
        return out, 0
    logs = bool((out >= 0).all())  # a season that scales with the level, as the model sees it
    z = np.log1p(out) if logs else out
    shaped = _seasonal_fill(z, have, season)
    starts, ends = _runs(~have)
    run_len = np.zeros(size, np.int_)  # each missing step: the length of its gap
    run_len[~have] = np.repeat(ends - starts, ends - starts)
    # a gap of a whole season or more stays a line: filled whole seasons of the shape are taken by the
    # seasonal model as real ones and chosen over the decomposition (docs/models.md, held-out co2)
    wins = [length for length in np.unique(ends - starts)
            if length < season and _shape_wins(z, have, season, int(length), logs)]
    use = np.isin(run_len, wins)  # observed steps have length 0: kept as they are
    out[use] = np.maximum(np.expm1(shaped[use]), 0.0) if logs else shaped[use]
    return out, int(np.count_nonzero(use))


def _fill_season(step_s: float, n: int) -> float:
    """The season (steps, fractional for the year of weekly data: 52.18) a gap is filled with: the
    week, else the day, else the year, the first of at least two steps that ``n`` steps hold three
    of; 0 when none."""
    day = _DAY_S / step_s
    for p in (7 * day, day, 365.25 * day):
        if p >= 2 and n >= 3 * p:
            return p
    return 0.0


def _runs(mask: BoolArray) -> tuple[IntArray, IntArray]:
    """Starts and ends (exclusive) of the runs of True in ``mask``."""
    import numpy as np  # kept lazy: start-up time

    d = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def _seasonal_fill(z: Array, have: BoolArray, season: float) -> Array:
    """``z`` (linearly filled where ``have`` is False) with each gap filled by the season's shape:
    the shape is the median, at each phase of the season (``round(season)`` phases; a fractional
    season, the year of weekly data, keeps its phase across the years), of the observed points'
    deviation from a centred moving average of one season; the series less its shape is
    interpolated linearly across the gap (so the fill meets both edges) and the shape added back."""
    import numpy as np  # kept lazy: start-up time

    n = len(z)
    bins = round(season)
    c = np.concatenate(([0.0], np.cumsum(z)))
    lo = np.clip(np.arange(n) - bins // 2, 0, n)
    hi = np.clip(lo + bins, 0, n)
    level = (c[hi] - c[lo]) / np.maximum(hi - lo, 1)
    phase = (np.floor(np.mod(np.arange(n), season) * (bins / season)).astype(np.int_)) % bins
    # the median deviation of each phase: sorted by phase, then by value, each phase's middle
    idx = np.flatnonzero(have)
    dev = z[idx] - level[idx]
    order = np.lexsort((dev, phase[idx]))
    ph, v = phase[idx][order], dev[order]
    first = np.searchsorted(ph, np.arange(bins))
    count = np.searchsorted(ph, np.arange(bins), side="right") - first
    shape = np.zeros(bins)
    some = count > 0
    mid_lo = first[some] + (count[some] - 1) // 2
    mid_hi = first[some] + count[some] // 2
    shape[some] = (v[mid_lo] + v[mid_hi]) / 2.0
    shape -= shape.mean()
    prof = shape[phase]
    out = z.copy()
    gap = np.flatnonzero(~have)
    out[gap] = np.interp(gap, idx, z[idx] - prof[idx]) + prof[gap]
    return out


def _shape_wins(z: Array, have: BoolArray, season: float, length: int, logs: bool = False) -> bool:
    """Whether the season's shape fills gaps of ``length`` steps better than a straight line on this
    history. Stretches of that length (observed, with an observed step on either side; at most 400,
    spread evenly over half the history) are hidden, a quarter of them at a time, and filled both
    ways; the shape wins when its absolute error over a stretch is smaller on average by more than
    twice the standard error of that mean (a paired test: on noisy counts a one-step gap is filled
    about as well either way, and the line is kept). Errors in the series' units (``z`` is ``log1p``
    of them with ``logs``)."""
    import numpy as np  # kept lazy: start-up time

    n = len(z)
    taken = np.zeros(n, bool)
    starts = []
    for p in np.linspace(1, n - length - 1, max(1, min(400, n // (2 * (length + 2))))).astype(np.int_):
        if have[p - 1:p + length + 1].all() and not taken[max(p - 2, 0):p + length + 2].any():
            taken[p:p + length] = True
            starts.append(int(p))
    if len(starts) < 3:
        return False
    back = (lambda v: np.maximum(np.expm1(v), 0.0)) if logs else (lambda v: v)
    actual = back(z)
    gains = []
    for part in range(4):
        mine = starts[part::4]
        if not mine:
            continue
        hide = np.zeros(n, bool)
        for p in mine:
            hide[p:p + length] = True
        known = have & ~hide
        idx = np.flatnonzero(known)
        line = np.interp(np.arange(n), idx, z[idx])
        gain = np.abs(back(line) - actual) - np.abs(back(_seasonal_fill(line, known, season)) - actual)
        gains += [float(gain[p:p + length].sum()) for p in mine]
    per = np.array(gains)
    return bool(per.mean() > 2.0 * per.std(ddof=1) / math.sqrt(len(per)))


def _fit(y: Array, horizon: int, step_s: float, mean_step: float, hol: Array | None, cfg: ForecastConfig,
         obs: BoolArray | None = None
         ) -> tuple[Array, Array, Array, tuple[str, ...], int, dict[str, bool], int, bool]:
    """``forecast``'s model on a regular series ``y``: (point forecast, lower, upper, the methods averaged
    (the best in backtests first), the period, the seasons found, the backtest origins, whether the interval
    was calibrated on them). ``mean_step``: the mean spacing (seconds), for the year's length."""
    import numpy as np  # kept lazy: start-up time

    use_log = cfg.log_scale and bool((y >= 0).all())
    z = np.log1p(y) if use_log else y.copy()
    n = len(z)
    found = detect_seasons(z, step_s)
    period, yearly = _periods(step_s, n, found)
    lag = seasonal_period(step_s, n)  # seasonal naive's lag: the calendar's, detected or not
    day = round(_DAY_S / step_s) if step_s > 0 and _DAY_S / step_s >= 2 else (
        max(2, min(period or 48, n // 4)))

    def back(zz: Array) -> Array:
        return np.expm1(zz) if use_log else zz

    methods = ["model", "naive"] + (["model+trend"] if period else []) + (["seasonal_naive"] if lag else [])
    if not period and cfg.drift:
        methods.append("drift")
    year = 365.25 * _DAY_S / mean_step if step_s > 0 and mean_step > 0 else 0.0
    if period and period == round(year):  # a yearly main season (weekly or monthly data)
        methods += ["decomp", "decomp+trend"]
    elif yearly and period == 7:  # daily data with weekly and yearly seasons: with the trend only
        methods.append("decomp+trend")
    # backtests: `backtests` origins spread over the last stretch of history (at least four seasons
    # or `backtests` horizons), each forecasting `horizon` steps from the history before it
    spacing = max(horizon, -(-4 * max(period, lag) // cfg.backtests))
    need = max(3 * period, 3 * lag, 30)
    origins = [o for o in (n - horizon - k * spacing for k in range(cfg.backtests - 1, -1, -1)) if o >= need]
    members: tuple[str, ...] = ("model",)
    scores: list[float] = []
    cal_origins: list[int] = []
    yearly_decomp = False
    memo: dict[tuple[str, int], tuple[Array, Array, Array]] = {}

    def backtest(ms: tuple[str, ...], o: int) -> tuple[Array, Array, Array, Array]:
        """The mean of methods ``ms`` forecasting ``horizon`` steps from the history before origin ``o``:
        the point forecast (z units), its errors (actual - forecast, z units) and uncalibrated interval
        offsets (each member's, averaged)."""
        for m in ms:
            if (m, o) not in memo:
                yo = yearly if o >= 2 * yearly + 4 * period else 0
                memo[m, o] = _sides(*_predict(m, z[:o], horizon, lag if m == "seasonal_naive" else period, yo, day,
                                              cfg, None if hol is None else hol[:o + horizon], year,
                                              None if obs is None else obs[:o]))
        mid, lo_q, hi_q = (np.mean([memo[m, o][i] for m in ms], axis=0) for i in range(3))
        dev = z[o:o + horizon] - mid
        if obs is not None:  # a filled step is no actual to score against
            dev = np.where(obs[o:o + horizon], dev, np.nan)
        return mid, dev, lo_q, hi_q

    if origins:
        errs: dict[tuple[str, ...], list[float]] = {}
        # per origin: the backtest's errors (actual - forecast) and its uncalibrated interval offsets
        conf: dict[tuple[str, ...], dict[int, tuple[Array, Array, Array]]] = {}

        def score(ms: tuple[str, ...], os: list[int]) -> None:
            """Backtest ``ms`` at origins ``os``: their errors (y units) and conformal inputs."""
            for o in os:
                mid, dev, lo_q, hi_q = backtest(ms, o)
                err = np.abs(back(mid) - y[o:o + horizon])
                seen = np.isfinite(dev)
                if seen.any():
                    errs.setdefault(ms, []).append(float(np.mean(err[seen])))
                conf.setdefault(ms, {})[o] = (dev, lo_q, hi_q)

        for m in methods:
            score((m,), origins)
        ranked = sorted(methods, key=lambda m: float(np.mean(errs[(m,)])) if (m,) in errs else math.inf)
        members = (ranked[0],)
        if cfg.combine and (ranked[0],) in errs:
            # a calendar whose holidays are in the history (effects learnt) and ahead (the forecast shows them)
            calendar = hol is not None and bool(hol[:n, 0].any() and hol[n:, 0].any())
            members = _members(ranked, {m: errs[(m,)] for m in methods if (m,) in errs}, calendar)
            if len(members) > 1:
                score(members, origins)
        # The interval is calibrated on the chosen methods' backtests. When the origins reach back
        # more than a quarter of the history (a long horizon on a short history: weekly data, a
        # year ahead), the oldest backtests learnt from much less history and err more than the
        # forecast will; the calibration origins are then half a horizon apart over the last
        # four seasons (or horizons), the chosen methods being backtested at the new ones.
        cal_sp = spacing
        if cfg.backtests * spacing > n // 4:
            cal_sp = max(-(-horizon // 2), -(-4 * max(period, lag) // cfg.backtests))
        n_cal = cfg.backtests
        yearly_decomp = any(m.startswith("decomp") for m in members) and period == round(year)
        if yearly_decomp:
            # a decomposition of a yearly main season costs a few ms a fit: more origins over the same
            # span (8 origins give a coarse factor), and the interval's growth with the step is taken
            # from the backtests (its in-sample errors miss the trend's and the season's estimation error)
            n_cal = cfg.decomp_cal_origins
            cal_sp = max(1, -(-cfg.backtests * cal_sp // n_cal))
        cal_origins = [o for o in (n - horizon - k * cal_sp for k in range(n_cal - 1, -1, -1)) if o >= need]
        for o in cal_origins:
            if o not in conf[members]:
                conf[members][o] = backtest(members, o)[1:]
    mid, lo_q, hi_q = (np.mean(v, axis=0) for v in zip(*(
        _sides(*_predict(m, z, horizon, lag if m == "seasonal_naive" else period, yearly, day, cfg, hol, year, obs))
        for m in members), strict=True))
    if origins:
        if yearly_decomp:  # the backtests' errors on the forecast's own interval, grown as theirs grow
            g = _growth(np.stack([conf[members][o][0] for o in cal_origins]))
            lo_q, hi_q = lo_q * g, hi_q * g
            sc = np.concatenate([_scores(conf[members][o][0], lo_q, hi_q) for o in cal_origins])
        else:
            sc = np.concatenate([_scores(*conf[members][o]) for o in cal_origins])
        scores = sc[np.isfinite(sc)].tolist()
    calibrated = len(scores) >= 20
    if calibrated:
        # conformal: widen or narrow the interval by the factor that covered `coverage` of backtests
        c = float(np.quantile(scores, min(1.0, cfg.coverage + (1 - cfg.coverage) / len(cal_origins))))
        if cfg.calm_pooling and c < 1.0 and all(m in _NAIVE_FAMILY for m in members):
            # these methods' own intervals come from the whole history's k-step changes (every regime it
            # went through); a factor below 1 says the few recent backtests were calmer than that history:
            # each is given half the say (the geometric mean of the two widths; docs/models.md)
            c = math.sqrt(c)
        lo_q, hi_q = lo_q * c, hi_q * c
    elif cfg.short_floor and not all(m in _NAIVE_FAMILY for m in members):
        # nothing to check the model's interval against: it comes from in-sample errors, which a model fitted
        # on a short history makes small (its 90 % covered about 74 % on the bench's short histories); it is
        # widened, side by side and step by step, to the history's own changes over the same distance (seasonal
        # naive's interval, naive's without a season), which assumes nothing the history cannot show
        _, n_lo, n_hi = _sides(*_naive(z, horizon, lag, cfg, obs))
        lo_q, hi_q = np.minimum(lo_q, n_lo), np.maximum(hi_q, n_hi)
    lower = mid + np.minimum(lo_q, 0.0)
    upper = mid + np.maximum(hi_q, 0.0)
    if use_log:
        mid, lower, upper = np.expm1(mid), np.expm1(lower), np.expm1(upper)
        mid, lower = np.maximum(mid, 0.0), np.maximum(lower, 0.0)
    return mid, lower, upper, members, period, found, len(origins), calibrated


def spike_warning(fc: Forecast, *, capacity: float, scale_lead_s: float = 0.0,
                  use_upper: bool = False) -> SpikeWarning | None:
    """Return a warning when the forecast (or its upper bound) exceeds capacity, else None."""
    series = fc.upper if use_upper else fc.yhat
    over = [i for i, v in enumerate(series) if v > capacity]
    if not over or capacity <= 0 or math.isnan(capacity):
        return None
    i = over[0]
    peak_i = max(range(len(series)), key=lambda k: series[k])
    ahead = (i + 1) * (fc.step_s if fc.step_s > 0 else 1.0)
    return SpikeWarning(crosses_at=fc.timestamps[i], steps_ahead=i + 1, seconds_ahead=ahead,
                        peak=series[peak_i], peak_at=fc.timestamps[peak_i], capacity=capacity,
                        extra_capacity_ratio=series[peak_i] / capacity, in_time=ahead >= scale_lead_s)
