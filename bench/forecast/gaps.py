"""Forecasts from histories with rows missing, scored on the complete series (docs/models.md, "Gaps in
the history").

For each series and each of the bench's origins, rows are removed from the history before the origin
(seeded: 3 % of the rows at random; eight outages of one to twelve hours, one to three days on daily
data; or three long outages of one to three seasons: days on sub-daily data, weeks on daily data, years
on weekly data; never the last row), and four forecasts are scored on the complete series' next
``horizon`` values with the bench's MASE scale: from the complete history, from the gappy history with
its rows taken by position (``fill_gaps=False``, the forecaster before stop 41), with the missing steps
interpolated linearly (``seasonal_fill=False``) and filled as the forecaster does by default (the
season's shape where it fills the history's own stretches better; docs/models.md). Last line:
``forecast_gaps: dev_complete=.. dev_positions=.. dev_linear=.. dev_filled=.. heldout_complete=..
heldout_positions=.. heldout_linear=.. heldout_filled=.. heldout_long_linear=.. heldout_long_filled=..
heldout_ratio_positions=.. heldout_ratio_linear=..`` (mean MASE over series and the three kinds of gaps,
and over the long outages alone; the ratios are the default's over by position and over linear).
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402  (the bench's series and protocol)

from tools.auto_intel.predictor import ForecastConfig, forecast  # noqa: E402

DEV = ("nyc_taxi (dev)", "dev_weekly_trend", "dev_daily_holidays", "dev_cov_counts 30min", "dev_cov_heavy hourly")
HELDOUT = ("page_views daily 8y", "hourly_load shift+trend", "co2 weekly (statsmodels)")
KINDS = ("rows3", "outages", "long")
WAYS = ("complete", "positions", "linear", "filled")


def removed(n: int, step_s: float, rng: np.random.Generator, kind: str) -> np.ndarray:
    """Which of ``n`` rows to remove: 3 % at random (``rows3``), eight outages (``outages``) or three
    outages of one to three seasons (``long``)."""
    drop = np.zeros(n, bool)
    if kind == "rows3":
        drop[rng.random(n) < 0.03] = True
        return drop
    per_day = max(1, round(86400 / step_s))
    if kind == "long":
        season = per_day if per_day > 1 else 7 if step_s < 6 * 86400 else 52
        for _ in range(3):
            length = int(rng.integers(season, 3 * season + 1))
            start = int(rng.integers(0, n - length))
            drop[start:start + length] = True
        return drop
    for _ in range(8):
        length = int(rng.integers(max(1, per_day // 12), per_day // 2 + 1)) if per_day > 1 else int(rng.integers(1, 4))
        start = int(rng.integers(0, n - length))
        drop[start:start + length] = True
    return drop


def score(s: bench.Series, kind: str) -> dict[str, tuple[float, float]]:
    """Mean MASE and coverage of the four ways over the series' origins, for one kind of gaps."""
    n = len(s.y)
    drop = removed(n, float(np.median(np.diff(s.ts))), np.random.default_rng(42), kind)
    got: dict[str, list[tuple[float, float]]] = {w: [] for w in WAYS}
    for k in range(s.origins, 0, -1):
        o = n - s.horizon - (k - 1) * s.spacing
        keep = ~drop[:o]
        keep[-1] = True
        actual = s.y[o:o + s.horizon]
        scale = float(np.mean(np.abs(s.y[:o][s.lag:] - s.y[:o][:-s.lag])))
        for way, sel, cfg in (("complete", np.ones(o, bool), ForecastConfig()),
                              ("positions", keep, ForecastConfig(fill_gaps=False)),
                              ("linear", keep, ForecastConfig(seasonal_fill=False)),
                              ("filled", keep, ForecastConfig())):
            fc = forecast(s.y[:o][sel], horizon=s.horizon, timestamps=list(s.ts[:o][sel]), config=cfg, tz=s.tz)
            inside = float(np.mean((actual >= np.array(fc.lower)) & (actual <= np.array(fc.upper))))
            got[way].append((float(np.mean(np.abs(actual - np.array(fc.yhat)))) / scale, inside))
    return {w: (float(np.mean([r[0] for r in v])), float(np.mean([r[1] for r in v]))) for w, v in got.items()}


def main() -> int:
    means: dict[str, dict[str, list[float]]] = {"dev": {w: [] for w in WAYS}, "heldout": {w: [] for w in WAYS}}
    long: dict[str, list[float]] = {"linear": [], "filled": []}  # held-out series, long outages
    tasks = [(s, kind, group) for s in bench.all_series()
             if (group := "dev" if s.name in DEV else "heldout" if s.name in HELDOUT else "")
             for kind in KINDS]
    # one process per core: each (series, kind) is independent
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        results = pool.map(score, [t[0] for t in tasks], [t[1] for t in tasks])
        for (s, kind, group), res in zip(tasks, results, strict=True):
            for w in WAYS:
                means[group][w].append(res[w][0])
            if group == "heldout" and kind == "long":
                for w in long:
                    long[w].append(res[w][0])
            print(f"{s.name:<28}{group:>8} {kind:<8} " + "  ".join(
                f"{w}={m:.3f} ({c:.3f})" for w, (m, c) in res.items()), flush=True)
    tail = " ".join(f"{g}_{w}={np.mean(means[g][w]):.4f}" for g in ("dev", "heldout") for w in WAYS)
    held = {w: float(np.mean(v)) for w, v in means["heldout"].items()}
    print(f"forecast_gaps: {tail} heldout_long_linear={np.mean(long['linear']):.4f} "
          f"heldout_long_filled={np.mean(long['filled']):.4f} "
          f"heldout_ratio_positions={held['filled'] / held['positions']:.3f} "
          f"heldout_ratio_linear={held['filled'] / held['linear']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
