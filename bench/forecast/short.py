"""Intervals from histories too short to calibrate them (docs/models.md, "Short histories"): the forecaster
with and without ``ForecastConfig.short_floor``, side by side, on the early stretch of every series of the
bench (development, held-out, the spent final sets and R's classic series; ``--final11`` adds the sealed
eleventh final set, to be scored once).

For each series, origins from two seasons (at least 24 values) of history, half a horizon apart (the bench's
spacing), up to the history at which the forecaster first has backtests of its own to calibrate on (three
seasons or 30 values, plus a horizon); each forecasts the next ``horizon`` values. The point forecasts are the
same both ways; the 90 % interval's coverage is counted over those values. Last line:
``forecast_short: values=.. pooled_off=.. pooled_on=.. median_off=.. median_on=.. in_87_93=a/b under=a/b
over=a/b mean_abs_dev_off=.. mean_abs_dev_on=.. series=..`` (coverage pooled over every value and the
median of the series' coverage; how many series fall within 87-93 %, under 87 % and over 93 %, without/with
the floor; the mean distance of a series' coverage from 0.90).
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

SETS = {f"final{k}" if k > 1 else "final": True for k in range(1, 11)} | {"rdata": True}
if "--final11" in sys.argv[1:]:
    SETS["final11"] = True


def score(idx: int) -> tuple[str, str, int, int, int]:
    """(name, group, values scored, inside the interval without the floor, inside with it) of one series."""
    s = bench.cached_series(**SETS)[idx]
    need = max(3 * s.lag, 30) + s.horizon  # from here on the forecaster has backtests of its own
    inside = {False: 0, True: 0}
    total = 0
    o = max(2 * s.lag, 24)
    while o < need and o + s.horizon <= len(s.y):
        actual = s.y[o:o + s.horizon]
        for floor in (False, True):
            fc = forecast(s.y[:o], horizon=s.horizon, timestamps=list(s.ts[:o]), tz=s.tz,
                          config=ForecastConfig(short_floor=floor))
            inside[floor] += int(np.sum((actual >= np.array(fc.lower)) & (actual <= np.array(fc.upper))))
        total += len(actual)
        o += max(1, s.spacing)
    return s.name, s.group, total, inside[False], inside[True]


def main() -> int:
    n = len(bench.cached_series(**SETS))
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        got = [g for g in pool.map(score, range(n)) if g[2] > 0]
    print(f"{'series':<34}{'group':>8}{'values':>8}{'coverage off':>14}{'on':>8}")
    for name, group, total, off, on in got:
        print(f"{name:<34}{group:>8}{total:>8}{off / total:>14.3f}{on / total:>8.3f}")
    cov = {k: np.array([g[3 + k] / g[2] for g in got]) for k in (0, 1)}
    values = sum(g[2] for g in got)
    pooled = {k: sum(g[3 + k] for g in got) / values for k in (0, 1)}

    def count(k: int, lo: float, hi: float) -> int:
        return int(np.sum((cov[k] >= lo) & (cov[k] <= hi)))

    for group in sorted({g[1] for g in got}):
        sel = [g for g in got if g[1] == group]
        print(f"{group}: {len(sel)} series, mean coverage {np.mean([g[3] / g[2] for g in sel]):.3f} -> "
              f"{np.mean([g[4] / g[2] for g in sel]):.3f}")
    print(f"forecast_short: values={values} pooled_off={pooled[0]:.3f} pooled_on={pooled[1]:.3f} "
          f"median_off={np.median(cov[0]):.3f} median_on={np.median(cov[1]):.3f} "
          f"in_87_93={count(0, 0.87, 0.93)}/{count(1, 0.87, 0.93)} under={count(0, 0, 0.87 - 1e-12)}/"
          f"{count(1, 0, 0.87 - 1e-12)} over={count(0, 0.93 + 1e-12, 1)}/{count(1, 0.93 + 1e-12, 1)} "
          f"mean_abs_dev_off={np.mean(np.abs(cov[0] - 0.9)):.3f} mean_abs_dev_on={np.mean(np.abs(cov[1] - 0.9)):.3f} "
          f"series={len(got)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
