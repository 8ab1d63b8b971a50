"""Load forecasting (jobs per interval, API requests) with prediction intervals, and spike warnings.

The model is small and fitted with numpy in milliseconds:

* a **seasonal baseline**: for each future step, a robust (median) average of the values at the
  same phase of the last few seasons (weekly when there are three weeks of history, else daily);
* a **residual correction**: ridge regressions, one per horizon step, that map how far the
  recent past sits above or below its baseline (last point, last hour, last day) to the future
  step's deviation, so level shifts, holidays and trends carry into the forecast and fade
  with the horizon as the data says they do;
* **intervals** from the empirical quantiles of the in-sample errors of each horizon step.

Values are modelled on a log scale when they are all non-negative (counts and rates), so the
seasonal shape scales with the level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    Array = NDArray[np.float64]
    IntArray = NDArray[np.int_]

_DAY_S = 86400.0


class ForecastError(ValueError):
    """The history cannot be forecast (too short, or bad timestamps)."""


@dataclass(frozen=True)
class ForecastConfig:
    """Model knobs; defaults chosen on the development series only."""

    seasons: int = 5  # past seasons averaged for the baseline
    ridge: float = 1.0  # ridge penalty (relative to the number of samples)
    coverage: float = 0.9  # central prediction interval probability
    max_train: int = 6000  # most recent points used to fit the correction
    log_scale: bool = True  # model log(1 + y) when all values are >= 0
    interval_seasons: int = 4  # intervals come from the errors of the last N seasons (recent volatility)
    same_phase: bool = True  # also regress on the deviation one day before each target
    backtests: int = 4  # stretches of history backtested to choose the method and calibrate intervals


@dataclass(frozen=True)
class Forecast:
    """Point forecast and interval for each step after the history."""

    timestamps: list[float]  # epoch seconds (or step indices when no timestamps were given)
    yhat: list[float]
    lower: list[float]
    upper: list[float]
    step_s: float
    period: int  # seasonal period used (points); 0 when none
    method: str = "model"  # "model", "seasonal_naive" or "naive": the best in backtests on the history


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
    """Pick the main period: weekly with 3+ weeks of history, else daily with 3+ days, else yearly
    with 3+ years (weekly or monthly data); 0 when none fits the step and the history."""
    return _periods(step_s, n)[0]


def _periods(step_s: float, n: int) -> tuple[int, int]:
    """(main period, yearly lag used as an extra regressor or 0), both in steps."""
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


def _baseline(z: Array, period: int, seasons: int, start: int, stop: int) -> Array:
    """Median of the values 1..K periods before each index in [start, stop) (K as history allows)."""
    import numpy as np  # kept lazy: start-up time

    out: Array = np.empty(stop - start)
    pos = start
    while pos < stop:
        k = min(seasons, pos // period)
        end = stop if k == seasons else min(stop, (k + 1) * period)
        idx = np.arange(pos, end)
        lags = np.stack([z[idx - j * period] for j in range(1, k + 1)])
        out[pos - start:end - start] = np.median(lags, axis=0)
        pos = end
    return out


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


def _model(z: Array, horizon: int, period: int, yearly: int, day: int, cfg: ForecastConfig,
           ) -> tuple[Array, Array, Array]:
    """Seasonal baseline + ridge correction: (point forecast, lower and upper offsets) in z units."""
    import numpy as np  # kept lazy: start-up time

    n = len(z)
    ext = np.concatenate((z, np.zeros(horizon)))
    if period:
        first = period
        base_fit = np.zeros(n)
        base_fit[first:] = _baseline(z, period, cfg.seasons, first, n)
        base_fit[:first] = z[:first]
        # the future baseline, step by step so horizons beyond one period use earlier forecasts
        for s0 in range(n, n + horizon, period):
            s1 = min(s0 + period, n + horizon)
            ext[s0:s1] = _baseline(ext, period, cfg.seasons, s0, s1)
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
        for h in range(1, horizon + 1):
            tgt = r[t + h]
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
            xh = np.column_stack([x, *extra]) if extra else x
            xh_now = np.column_stack([x_now, *extra_now]) if extra_now else x_now
            reg = lam * np.eye(xh.shape[1])
            reg[0, 0] = 0.0
            beta = np.linalg.solve(xh.T @ xh + reg, xh.T @ tgt)
            resid = tgt - xh @ beta
            corr[h - 1] = float((xh_now @ beta)[0])
            lo_q[h - 1], hi_q[h - 1] = np.quantile(resid[-recent:], [a, 1.0 - a])
    else:
        spread = float(np.std(r[first:])) if n - first > 1 else 0.0
        zq = NormalDist().inv_cdf(0.5 + cfg.coverage / 2.0)
        lo_q[:] = -zq * spread
        hi_q[:] = zq * spread
    return base_future + corr, lo_q, hi_q


def _naive(z: Array, horizon: int, lag: int, cfg: ForecastConfig) -> tuple[Array, Array, Array]:
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
        d = z[k:] - z[:-k] if k < n else np.array([0.0])
        d = d[-cfg.max_train:]
        q = np.quantile(d, [a, 1.0 - a])
        lo_q[steps == k], hi_q[steps == k] = q[0], q[1]
    return mid, lo_q, hi_q


def _predict(method: str, z: Array, horizon: int, period: int, yearly: int, day: int,
             cfg: ForecastConfig) -> tuple[Array, Array, Array]:
    if method == "model":
        return _model(z, horizon, period, yearly, day, cfg)
    if method == "seasonal_naive":
        return _naive(z, horizon, period, cfg)
    return _naive(z, horizon, 0, cfg)


def forecast(values: list[float] | Array, *, horizon: int, timestamps: list[float] | None = None,
             step_s: float | None = None, config: ForecastConfig | None = None) -> Forecast:
    """Forecast ``horizon`` steps after the history, with a central prediction interval.

    The candidates (the seasonal model, seasonal naive, naive) are backtested on the history's
    last stretches, the one with the smallest error is used, and its interval is scaled so it
    would have covered ``coverage`` of those backtests' actual values (conformal calibration).
    """
    import numpy as np  # kept lazy: start-up time

    cfg = config or ForecastConfig()
    y = np.asarray(values, dtype=np.float64)
    if horizon < 1:
        raise ForecastError("horizon must be at least 1")
    if len(y) < 3 or not np.isfinite(y).all():
        raise ForecastError("need at least three finite values")
    if step_s is None:
        step_s = infer_step(timestamps) if timestamps is not None else 0.0
    last_ts = float(timestamps[-1]) if timestamps is not None else float(len(y) - 1)
    step = step_s if step_s > 0 else 1.0
    ts_out = [last_ts + step * (h + 1) for h in range(horizon)]

    use_log = cfg.log_scale and bool((y >= 0).all())
    z = np.log1p(y) if use_log else y.copy()
    n = len(z)
    period, yearly = _periods(step_s, n)
    day = round(_DAY_S / step_s) if step_s > 0 and period and _DAY_S / step_s >= 2 else (
        max(2, min(period or 48, n // 4)))

    def back(zz: Array) -> Array:
        return np.expm1(zz) if use_log else zz

    methods = ["model", "naive"] + (["seasonal_naive"] if period else [])
    # backtests: the last `backtests` stretches of `horizon` steps, each forecast from before it
    bh = horizon
    origins = [n - k * bh for k in range(cfg.backtests, 0, -1) if n - k * bh >= max(3 * period, 30)]
    chosen = "model"
    scores: list[float] = []
    if origins:
        errs: dict[str, list[float]] = {m: [] for m in methods}
        conf: dict[str, list[float]] = {m: [] for m in methods}
        for o in origins:
            zo = z[:o]
            po, yo = _periods(step_s, o)
            actual = y[o:o + bh]
            for m in methods:
                if m == "seasonal_naive" and not po:
                    errs[m].append(math.inf)
                    continue
                mid, lo_q, hi_q = _predict(m, zo, bh, po, yo, day, cfg)
                errs[m].append(float(np.mean(np.abs(back(mid) - actual))))
                za = np.log1p(actual) if use_log else actual
                up = np.maximum(hi_q, 1e-12)
                dn = np.maximum(-lo_q, 1e-12)
                dev = za - mid
                conf[m].extend(np.where(dev >= 0, dev / up, -dev / dn).tolist())
        chosen = min(methods, key=lambda m: float(np.mean(errs[m])))
        scores = conf[chosen]
    mid, lo_q, hi_q = _predict(chosen, z, horizon, period, yearly, day, cfg)
    if len(scores) >= 20:
        # conformal: widen or narrow the interval by the factor that covered `coverage` of backtests
        c = float(np.quantile(scores, min(1.0, cfg.coverage * (1 + 1 / len(scores)))))
        lo_q, hi_q = lo_q * c, hi_q * c
    lower = mid + np.minimum(lo_q, 0.0)
    upper = mid + np.maximum(hi_q, 0.0)
    if use_log:
        mid, lower, upper = np.expm1(mid), np.expm1(lower), np.expm1(upper)
        mid, lower = np.maximum(mid, 0.0), np.maximum(lower, 0.0)
    return Forecast(ts_out, [float(v) for v in mid], [float(v) for v in lower],
                    [float(v) for v in upper], step_s, period, chosen)


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
