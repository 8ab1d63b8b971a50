"""How much the detector's held-out figures depend on the random draw of synthetic training series.

Runs the cross-validations of run.py (leave-one-file-out and leave-one-folder-out, configuration and
thresholds chosen per fold on the training files) once per training draw, for one training procedure,
and prints the held-out NAB figures per draw with their mean and spread (docs/models.md, "Training on
several synthetic draws"). A procedure is a number of seeds per draw (the synthetic series are one per
kind and seed) and the synthetic block's weight (``--synthetic-share``, as in run.py). The NAB files'
scores are computed once and shared by all draws.

    .venv/bin/python bench/anomaly/draws.py --sets='1,2;3,4;5,6;7,8'             # the default procedure
    .venv/bin/python bench/anomaly/draws.py --sets='1-8;11-18;21-28;31-38'       # 4 draws pooled
    .venv/bin/python bench/anomaly/draws.py --sets='1-8;11-18' --synthetic-share=0.5
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402
from synthetic import corpus as synthetic_corpus  # noqa: E402


def parse_sets(text: str) -> list[tuple[int, ...]]:
    """'1,2;3-6' -> [(1, 2), (3, 4, 5, 6)]."""
    out = []
    for part in text.split(";"):
        seeds: list[int] = []
        for item in part.split(","):
            lo, _, hi = item.partition("-")
            seeds += range(int(lo), int(hi or lo) + 1)
        out.append(tuple(seeds))
    return out


def main() -> int:
    shared = run.shared_dir()
    nab = run.load_nabscore(shared)
    cp = run.Corpus(nab, shared / "data" / "nab-dev", synthetic_seeds=())
    sets = parse_sets(run.option("--sets", "1,2;3,4;5,6;7,8"))
    share = float(run.option("--synthetic-share", "1"))
    grid = list(run.GRID)
    artificial = [k for k in cp.nab_keys if k.startswith("artificial")]
    real = [k for k in cp.nab_keys if not k.startswith("artificial")]
    print(f"synthetic share {share:g}; per draw: leave-one-file-out all 28 | realAWS | "
          "leave-one-folder-out all 28 (standard / low FP / low FN); final fit's config and thresholds")
    rows = []
    for seeds in sets:
        keys = cp.add_synthetic(synthetic_corpus(seeds=seeds))
        cp.set_synthetic(keys, share)
        loo = [([j for j in cp.nab_keys if j != k] + keys, [k]) for k in cp.nab_keys]
        lofo = [(artificial + keys, real), (real + keys, artificial)]
        raw_loo, chosen_loo = run.cross_validate(cp, loo, grid)
        raw_lofo, chosen_lofo = run.cross_validate(cp, lofo, grid)

        def norm(raw: dict[str, list[float]], keys: list[str]) -> list[float]:
            return cp.normalised(keys, [sum(raw[k][i] for k in keys) for i in range(3)])

        row = norm(raw_loo, cp.nab_keys) + norm(raw_loo, real) + norm(raw_lofo, cp.nab_keys)
        final, thr = cp.fit(cp.nab_keys + keys, grid)
        rows.append(row)
        label = f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 2 else ",".join(map(str, seeds))
        cells = " | ".join(" / ".join(f"{v:.1f}" for v in row[i:i + 3]) for i in (0, 3, 6))
        print(f"seeds {label:<8} {cells}   final {final} {' '.join(f'{t:.3f}' for t in thr)}; "
              f"file folds {dict(sorted(chosen_loo.items()))}; folder folds {dict(sorted(chosen_lofo.items()))}",
              flush=True)
    a = np.array(rows)
    for name, vals in (("mean", a.mean(0)), ("min", a.min(0)), ("max", a.max(0)),
                       ("max-min", a.max(0) - a.min(0)), ("std", a.std(0))):
        print(f"{name:<14} " + " | ".join(" / ".join(f"{v:.1f}" for v in vals[i:i + 3]) for i in (0, 3, 6)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
