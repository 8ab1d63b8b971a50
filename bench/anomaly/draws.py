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
    .venv/bin/python bench/anomaly/draws.py --sets='1-8;11-18' --nested-shares=1,0.5,0.25  # chosen per fold
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


def nested_cross_validate(cp: run.Corpus, folds: list[tuple[list[str], list[str]]], grid: list[str],
                          shares: list[float]) -> tuple[dict[str, list[float]], dict[str, int]]:
    """``run.cross_validate`` with the synthetic block's weight also chosen per fold, by an inner
    two-fold cross-validation on that fold's NAB training files (alternate files held out); ties go to
    the share listed first."""
    synth = list(cp.synth_keys)
    raw: dict[str, list[float]] = {}
    chosen: dict[str, int] = {}
    for train, test in folds:
        nab_train = [k for k in train if k in cp.windows and not k.startswith("synthetic/")]
        inner = [nab_train[0::2], nab_train[1::2]]
        best: tuple[float, float] | None = None
        for share in shares:
            cp.set_synthetic(synth, share)
            held: dict[str, list[float]] = {}
            for part in inner:
                src, thr = cp.fit([k for k in nab_train if k not in part] + synth, grid)
                for k in part:
                    held[k] = cp.raw(k, src, thr)
            norm = float(np.mean(cp.normalised_sum(nab_train, held)))
            if best is None or norm > best[0]:
                best = (norm, share)
        assert best is not None
        cp.set_synthetic(synth, best[1])
        src, thr = cp.fit(train, grid)
        tag = f"{src} share {best[1]:g}"
        chosen[tag] = chosen.get(tag, 0) + 1
        for k in test:
            raw[k] = cp.raw(k, src, thr)
    return raw, chosen


def main() -> int:
    shared = run.shared_dir()
    nab = run.load_nabscore(shared)
    cp = run.Corpus(nab, shared / "data" / "nab-dev", synthetic_seeds=())
    sets = parse_sets(run.option("--sets", "1,2;3,4;5,6;7,8"))
    share = float(run.option("--synthetic-share", "1"))
    # --nested-shares=1,0.5,0.25: the share is chosen per fold by an inner cross-validation instead
    nested = [float(x) for x in run.option("--nested-shares", "").split(",") if x]
    grid = list(run.GRID)
    artificial = [k for k in cp.nab_keys if k.startswith("artificial")]
    real = [k for k in cp.nab_keys if not k.startswith("artificial")]
    print(f"synthetic share {nested or share}; per draw: leave-one-file-out all 28 | realAWS | "
          "leave-one-folder-out all 28 (standard / low FP / low FN); final fit's config and thresholds")
    rows = []
    for seeds in sets:
        keys = cp.add_synthetic(synthetic_corpus(seeds=seeds))
        cp.set_synthetic(keys, share)
        loo = [([j for j in cp.nab_keys if j != k] + keys, [k]) for k in cp.nab_keys]
        lofo = [(artificial + keys, real), (real + keys, artificial)]
        if nested:
            raw_loo, chosen_loo = nested_cross_validate(cp, loo, grid, nested)
            raw_lofo, chosen_lofo = nested_cross_validate(cp, lofo, grid, nested)
        else:
            raw_loo, chosen_loo = run.cross_validate(cp, loo, grid)
            raw_lofo, chosen_lofo = run.cross_validate(cp, lofo, grid)
        row = (cp.normalised_sum(cp.nab_keys, raw_loo) + cp.normalised_sum(real, raw_loo)
               + cp.normalised_sum(cp.nab_keys, raw_lofo))
        cp.set_synthetic(keys, share)
        final, thr = cp.fit(cp.nab_keys + keys, grid)  # (with --nested-shares: at --synthetic-share)
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
