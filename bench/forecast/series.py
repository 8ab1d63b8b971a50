"""Series for the forecasting benchmark besides the development series (nyc_taxi).

None of these was used to tune the forecaster: they are its held-out set. ``co2`` ships with
statsmodels (weekly Mauna Loa CO2, yearly seasonality and a trend); the synthetic ones have the
structures the issue names, with a fixed seed: eight years of daily page views (weekly and yearly
seasonality, fixed-date holidays, a trend change) and four months of hourly load (daily and weekly
seasonality, a level shift and a trend change).
"""

from __future__ import annotations

import numpy as np

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
