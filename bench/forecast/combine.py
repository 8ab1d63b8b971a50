"""The forecaster with and without averaging the methods its backtests cannot tell apart
(``ForecastConfig.combine``; docs/models.md, "Combining"), side by side on the development series, the
held-out series and the spent final sets (``--final`` .. ``--final9``, each scored once before and
development data since). MASE and 90 % coverage per series, the bench's protocol (``run.py``); no Prophet.
Last line: ``forecast_combine: dev_single=.. dev_combined=.. spent_single=.. spent_combined=..
spent_gmean_ratio=.. spent_worse5=.. spent_better5=.. spent_cov_in_87_93=a/b heldout_single=..
heldout_combined=.. heldout_ratio=..`` (means of MASE; the geometric mean of the per-series ratios;
how many series the combination makes more than 5 % worse or better; coverage counts single/combined).
"""

from __future__ import annotations

import math
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402  (the bench's series and protocol)

from tools.auto_intel.predictor import ForecastConfig, forecast  # noqa: E402

SPENT = {f"final{k}" if k > 1 else "final": True for k in range(1, 10)}


def score(args: tuple[int, bool]) -> tuple[str, str, bool, float, float]:
    """MASE and coverage of one series (by index) with ``combine`` on or off."""
    idx, combine = args
    s = bench.cached_series(**SPENT)[idx]
    cfg = ForecastConfig(combine=combine)

    def model(ts: np.ndarray, y: np.ndarray, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        fc = forecast(y, horizon=h, timestamps=list(ts), tz=s.tz, config=cfg)
        return np.array(fc.yhat), np.array(fc.lower), np.array(fc.upper)

    m, cov = bench.evaluate(model, s)[:2]
    return s.name, s.group, combine, m, cov


def main() -> int:
    series = bench.cached_series(**SPENT)
    jobs = [(i, c) for i in range(len(series)) for c in (False, True)]
    with ProcessPoolExecutor(os.cpu_count() or 1) as ex:
        got = list(ex.map(score, jobs))
    res: dict[tuple[str, str], dict[bool, tuple[float, float]]] = {}
    for name, group, combine, m, cov in got:
        res.setdefault((name, group), {})[combine] = (m, cov)
    print(f"{'series':<32}{'group':>8}{'single MASE':>13}{'combined':>10}{'single cov':>12}{'combined':>10}")
    for (name, group), r in res.items():
        print(f"{name:<32}{group:>8}{r[False][0]:>13.4f}{r[True][0]:>10.4f}{r[False][1]:>12.3f}{r[True][1]:>10.3f}")

    def part(kind: str) -> list[dict[bool, tuple[float, float]]]:
        return [r for (_, g), r in res.items() if (g.startswith("final") if kind == "spent" else g == kind)]

    def mean(kind: str, combine: bool) -> float:
        return float(np.mean([r[combine][0] for r in part(kind)]))

    spent = part("spent")
    ratios = [r[True][0] / r[False][0] for r in spent]
    in_range = [sum(0.87 <= r[c][1] <= 0.93 for r in spent) for c in (False, True)]
    print(f"forecast_combine: dev_single={mean('dev', False):.4f} dev_combined={mean('dev', True):.4f} "
          f"spent_single={mean('spent', False):.4f} spent_combined={mean('spent', True):.4f} "
          f"spent_gmean_ratio={math.exp(float(np.mean(np.log(ratios)))):.3f} "
          f"spent_worse5={sum(x > 1.05 for x in ratios)} spent_better5={sum(x < 0.95 for x in ratios)} "
          f"spent_cov_in_87_93={in_range[0]}/{in_range[1]} of {len(spent)} heldout_single={mean('heldout', False):.4f} "
          f"heldout_combined={mean('heldout', True):.4f} "
          f"heldout_ratio={mean('heldout', True) / mean('heldout', False):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
