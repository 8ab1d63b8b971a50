"""Forecasts from histories with rows missing, scored on the complete series (docs/models.md, "Gaps in
the history").

For each series and each of the bench's origins, rows are removed from the history before the origin
(seeded: 3 % of the rows at random, or eight outages of one to twelve hours, one to three days on daily
data; never the last row), and three forecasts are scored on the complete series' next ``horizon``
values with the bench's MASE scale: from the complete history, from the gappy history with its rows taken
by position (``fill_gaps=False``, the forecaster before stop 41) and with the missing steps interpolated
(the default). Last line: ``forecast_gaps: dev_complete=.. dev_positions=.. dev_filled=..
heldout_complete=.. heldout_positions=.. heldout_filled=.. heldout_ratio_positions=..`` (mean MASE over
series and both kinds of gaps; the ratio is interpolated over by position).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402  (the bench's series and protocol)

from tools.auto_intel.predictor import ForecastConfig, forecast  # noqa: E402

DEV = ("nyc_taxi (dev)", "dev_weekly_trend", "dev_daily_holidays", "dev_cov_counts 30min", "dev_cov_heavy hourly")
HELDOUT = ("page_views daily 8y", "hourly_load shift+trend", "co2 weekly (statsmodels)")
KINDS = ("rows3", "outages")
WAYS = ("complete", "positions", "filled")


def removed(n: int, step_s: float, rng: np.random.Generator, kind: str) -> np.ndarray:
    """Which of ``n`` rows to remove: 3 % at random (``rows3``) or eight outages (``outages``)."""
    drop = np.zeros(n, bool)
    if kind == "rows3":
        drop[rng.random(n) < 0.03] = True
        return drop
    per_day = max(1, round(86400 / step_s))
    for _ in range(8):
        length = int(rng.integers(max(1, per_day // 12), per_day // 2 + 1)) if per_day > 1 else int(rng.integers(1, 4))
        start = int(rng.integers(0, n - length))
        drop[start:start + length] = True
    return drop


def score(s: bench.Series, kind: str) -> dict[str, tuple[float, float]]:
    """Mean MASE and coverage of the three ways over the series' origins, for one kind of gaps."""
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
                              ("positions", keep, ForecastConfig(fill_gaps=False)), ("filled", keep, ForecastConfig())):
            fc = forecast(s.y[:o][sel], horizon=s.horizon, timestamps=list(s.ts[:o][sel]), config=cfg, tz=s.tz)
            inside = float(np.mean((actual >= np.array(fc.lower)) & (actual <= np.array(fc.upper))))
            got[way].append((float(np.mean(np.abs(actual - np.array(fc.yhat)))) / scale, inside))
    return {w: (float(np.mean([r[0] for r in v])), float(np.mean([r[1] for r in v]))) for w, v in got.items()}


def main() -> int:
    means: dict[str, dict[str, list[float]]] = {"dev": {w: [] for w in WAYS}, "heldout": {w: [] for w in WAYS}}
    for s in bench.all_series():
        group = "dev" if s.name in DEV else "heldout" if s.name in HELDOUT else None
        if group is None:
            continue
        for kind in KINDS:
            res = score(s, kind)
            for w in WAYS:
                means[group][w].append(res[w][0])
            print(f"{s.name:<28}{group:>8} {kind:<8} " + "  ".join(
                f"{w}={m:.3f} ({c:.3f})" for w, (m, c) in res.items()), flush=True)
    tail = " ".join(f"{g}_{w}={np.mean(means[g][w]):.4f}" for g in ("dev", "heldout") for w in WAYS)
    ratio = np.mean(means["heldout"]["filled"]) / np.mean(means["heldout"]["positions"])
    print(f"forecast_gaps: {tail} heldout_ratio_positions={ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
