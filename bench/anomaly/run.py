"""Benchmark the anomaly detector on the NAB dev files against ARTime and Numenta HTM, in-sample and
cross-validated (see docs/models.md for the protocol).

* **In-sample** (as NAB reports): ``levqor detect`` is run on every file exactly as a user would,
  and ../shared/tools/nabscore.py scores the outputs with the threshold it optimises on the same
  files. The references are scored the same way from their published results.
* **Held-out** (what to believe): the parameters of the detector (a small grid of candidate
  configurations) *and* the alert threshold of each NAB profile are chosen on training files only
  (the other NAB dev files plus synthetic series with known anomalies, bench/anomaly/synthetic.py)
  and applied unchanged to the held-out files. Two splits: leave-one-folder-out (realAWSCloudwatch
  vs the artificial folders) and leave-one-file-out. ARTime and HTM get the same protocol (their
  threshold is chosen on the training files). Held-out raw scores are summed over the folds and
  normalised on the held-out files with NAB's formula. In training, each synthetic file can be
  weighted (``--synthetic-share``: the synthetic block counts that many times the default draw, however
  many seeds ``--synthetic-seeds`` gives); the sweep is nabscore's, on weighted files.

Throughput is measured in-process on one core. Last line:
``anomaly: standard=.. low_fp=.. low_fn=.. ... cv_standard=.. cv_low_fp=.. cv_low_fn=.. ... points_per_s=..
kinds_detected=..`` (the last: held-out synthetic kinds' series with an alert in their window, of all).
"""

from __future__ import annotations

import csv
import importlib.util
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic import (  # noqa: E402
    FRESH3_KINDS,
    FRESH3_SEEDS,
    FRESH4_KINDS,
    FRESH4_SEEDS,
    FRESH5_KINDS,
    FRESH5_SEEDS,
    FRESH6_KINDS,
    FRESH6_SEEDS,
    FRESH_KINDS,
    FRESH_SCALE_KINDS,
    FRESH_SCALE_SEEDS,
    FRESH_SEEDS,
    HELDOUT_KINDS,
    HELDOUT_SEEDS,
)
from synthetic import corpus as synthetic_corpus  # noqa: E402

from tools.auto_intel.anomaly_detector import AnomalyDetector, DetectorConfig  # noqa: E402

PROFILES = ("standard", "low_FP", "low_FN")
DEFAULT_SEEDS = (1, 2)  # the synthetic training draw (one series per kind and seed)
BASE = DetectorConfig()
# The candidates cross-validation chooses among: the knobs that set how strong each signal's score
# is relative to the others (the threshold itself is chosen per profile), the weekly profile on or off, and
# the novelty margin that grows with a seasonal error scale (``spatial_growth``) on or off.
# Kept small on purpose. A tie goes to the first entry: the default's settings are listed first (the
# NAB dev files and the training series are two weeks long, too short for the weekly one to differ:
# docs/models.md).
GRID: dict[str, DetectorConfig] = {
    f"lik{ld:g}_sp{ss:g}_sup{su}{'_wk' if wk else ''}{'_gr' if gr else ''}": replace(
        BASE, lik_decades=ld, spatial_score=ss, suppress=su, weekly=wk, spatial_growth=gr)
    for gr in (BASE.spatial_growth, not BASE.spatial_growth)
    for wk in (BASE.weekly, not BASE.weekly)
    for ld in (4.0, 8.0, 12.0) for ss in (0.5, 0.65, 0.8) for su in (100, 300)
}


def shared_dir() -> Path:
    """Find the shared data directory: $LEVQOR_SHARED_DIR, else ../shared next to the repo."""
    env = os.environ.get("LEVQOR_SHARED_DIR")
    cands = [Path(env)] if env else []
    cands += [REPO.parent / "shared", REPO / ".." / "shared", REPO.parent.parent / "shared",
              Path.cwd().parent / "shared"]
    for c in cands:
        if (c / "tools" / "nabscore.py").is_file():
            return c.resolve()
    raise SystemExit("shared data not found: set LEVQOR_SHARED_DIR to the directory holding "
                     "tools/nabscore.py and data/nab-dev")


def load_nabscore(shared: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("nabscore", shared / "tools" / "nabscore.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["nabscore"] = mod
    spec.loader.exec_module(mod)
    return mod


def load_series(path: Path) -> tuple[list[float], list[float]]:
    ts: list[float] = []
    vals: list[float] = []
    with open(path, newline="") as f:
        for row in csv.reader(f):
            if not row or row[0] == "timestamp":
                continue
            ts.append(datetime.fromisoformat(row[0]).replace(tzinfo=UTC).timestamp())
            vals.append(float(row[1]))
    return ts, vals


def run_detector(cfg: DetectorConfig, ts: list[float], vals: list[float]) -> np.ndarray:
    upd = AnomalyDetector(cfg).update
    return np.fromiter((upd(v, t) for t, v in zip(ts, vals, strict=True)), np.float64, len(vals))


def weighted_case(base: Any, w: float, prof: Any) -> Any:
    """A copy of the scorer's file ``base`` (scores kept) whose raw score under ``prof`` is, at every threshold,
    ``w`` times ``base``'s plus ``weighted_shift`` (a constant), so that nabscore's own sweep
    (``optimise``) and ``score_file`` give a weighted sum over files. NAB's raw score of a file is
    fp * (sum of fp_unit over false detections) + per scored window either tp * (best tp_unit
    detected) or -fn: scaling fp_unit by ``w`` and mapping tp_unit to w*tp_unit + (w-1)*fn/tp
    scales every term by ``w`` up to (w-1)*fn per scored window. Needs w >= 0."""
    if w < 0:
        raise ValueError(f"file weight {w} < 0")
    inside = base.window >= 0
    tp = np.where(inside, w * base.tp_unit + (w - 1.0) * prof.fn / prof.tp, 0.0)
    return replace(base, tp_unit=tp, fp_unit=w * base.fp_unit)


def weighted_shift(base: Any, w: float, prof: Any) -> float:
    """The constant by which ``weighted_case``'s raw score exceeds ``w`` x the file's raw score."""
    return (w - 1.0) * prof.fn * len(base.windows_scored)


def weighted_optimise(nab: ModuleType, cases: list[Any], weights: list[float], prof: Any,
                      ) -> tuple[float, float]:
    """nabscore's threshold sweep (``optimise``) on the sum over files of weight x raw score:
    (threshold, that weighted raw score). Equal weights of 1 are nabscore's sweep itself."""
    if all(w == 1.0 for w in weights):
        best = nab.optimise(cases, prof)
        return best.threshold, best.raw
    best = nab.optimise([weighted_case(c, w, prof) for c, w in zip(cases, weights, strict=True)], prof)
    shift = sum(weighted_shift(c, w, prof) for c, w in zip(cases, weights, strict=True))
    return best.threshold, best.raw - shift


class Corpus:
    """NAB dev files and synthetic series, prepared once per score source for the scorer."""

    def __init__(self, nab: ModuleType, data: Path, extra_synthetic: bool = False,
                 synthetic_seeds: tuple[int, ...] = DEFAULT_SEEDS, synthetic_share: float = 1.0) -> None:
        self.nab = nab
        windows = nab.load_windows(str(data / "combined_windows.json"), set())
        self.series: dict[str, tuple[list[float], list[float]]] = {}
        self.ts_ns: dict[str, np.ndarray] = {}
        self.windows: dict[str, list[tuple[int, int]]] = {}
        for key, wins in windows.items():
            ts, vals = load_series(data / key)
            self.series[key] = (ts, vals)
            self.ts_ns[key] = (np.asarray(ts) * 1e9).round().astype(np.int64)
            self.windows[key] = wins
        self.nab_keys = sorted(windows)
        self.refs: dict[str, dict[str, np.ndarray]] = {}
        self._cases: dict[tuple[str, str], Any] = {}
        self._bases: dict[str, Any] = {}
        self._nulls: dict[str, Any] = {}
        self.weights: dict[str, float] = {}
        self.synth_keys: list[str] = []
        self.set_synthetic(self.add_synthetic(synthetic_corpus(seeds=synthetic_seeds, extra=extra_synthetic)),
                           synthetic_share)

    def add_synthetic(self, items: list[tuple[str, np.ndarray, np.ndarray, list[tuple[int, int]]]],
                      ) -> list[str]:
        keys = []
        for key, ts_a, y, rows in items:
            ns = (ts_a * 1e9).astype(np.int64)
            self.series[key] = (list(map(float, ts_a)), list(map(float, y)))
            self.ts_ns[key] = ns
            self.windows[key] = [(int(ns[a]), int(ns[b])) for a, b in rows]
            keys.append(key)
        return keys

    def add_reference(self, name: str, folder: Path) -> None:
        out = {}
        for key in self.nab_keys:
            fold, fname = key.split("/")
            path = folder / fold / f"{name}_{fname}"
            out[key] = np.array([float(r["anomaly_score"]) for r in csv.DictReader(open(path))])
        self.refs[name] = out

    def set_synthetic(self, keys: list[str], share: float = 1.0) -> None:
        """Train on the synthetic series ``keys``, their block weighted ``share`` x the default draw's.

        Each synthetic file weighs ``share * len(DEFAULT_SEEDS) / seeds`` in the training objective, so
        a union of several draws counts as much as one draw (``share=1``): the objective is the mean
        over the draws instead of one draw's, whatever the number of series."""
        n_seeds = len({k.rsplit("_", 1)[1] for k in keys}) or 1
        w = share * len(DEFAULT_SEEDS) / n_seeds
        self.synth_keys = list(keys)
        self.weights = {k: w for k in keys}

    def weight(self, key: str) -> float:
        return self.weights.get(key, 1.0)

    def _base(self, key: str) -> Any:
        """The scorer's prepared file without scores (windows, probation, reward per row)."""
        got = self._bases.get(key)
        if got is None:
            got = self.nab.prepare_file(key, self.ts_ns[key], self.windows[key],
                                        np.zeros(len(self.ts_ns[key])))
            self._bases[key] = got
        return got

    def case(self, source: str, key: str) -> Any:
        """The scorer's prepared file for one score source (a GRID name or a reference)."""
        got = self._cases.get((source, key))
        if got is None:
            if source in self.refs:
                scores = self.refs[source][key]
            else:
                scores = run_detector(GRID[source], *self.series[key])
            base = self._base(key)  # the probationary rows are a prefix
            got = base.with_scores(np.asarray(scores, np.float64)[len(scores) - len(base.scores):])
            self._cases[(source, key)] = got
        return got

    def null(self, key: str) -> Any:
        if key not in self._nulls:
            c = self._base(key)
            self._nulls[key] = c.with_scores(np.full(len(c.scores), self.nab.NULL_SCORE))
        return self._nulls[key]

    def n_windows(self, keys: list[str]) -> int:
        return sum(len(self.windows[k]) for k in keys)

    def sweep(self, cases: list[Any], keys: list[str], prof: Any) -> tuple[float, float]:
        """NAB's threshold sweep with each file weighted by ``weight``: (threshold, weighted raw)."""
        return weighted_optimise(self.nab, cases, [self.weight(k) for k in keys], prof)

    def null_raw(self, keys: list[str]) -> list[float]:
        """The (weighted) raw score of the null detector on ``keys``, its threshold optimised, per profile."""
        nulls = [self.null(k) for k in keys]
        return [self.sweep(nulls, keys, prof)[1] for prof in self.nab.PROFILES]

    def normalised_sum(self, keys: list[str], raw: dict[str, list[float]]) -> list[float]:
        """``normalised`` of the per-profile sums over ``keys`` of each file's raw scores ``raw[key]``."""
        return self.normalised(keys, [sum(raw[k][i] for k in keys) for i in range(len(PROFILES))])

    def normalised(self, keys: list[str], raw: list[float], null: list[float] | None = None,
                   ) -> list[float]:
        """NAB's 100*(raw-null)/(perfect-null) on ``keys``, per profile (nan without windows); raw,
        null and perfect are sums over the files weighted by ``weight`` (1 for NAB files)."""
        out = []
        wins = sum(self.weight(k) * len(self.windows[k]) for k in keys)
        null = self.null_raw(keys) if null is None else null
        for prof, r, null_raw in zip(self.nab.PROFILES, raw, null, strict=True):
            perfect = prof.tp * wins
            out.append(100.0 * (r - null_raw) / (perfect - null_raw) if perfect != null_raw else np.nan)
        return out

    def fit(self, keys: list[str], sources: list[str]) -> tuple[str, list[float]]:
        """Choose the source (config) with the best mean normalised training score, and its thresholds
        (each file's raw score weighted by ``weight``)."""
        best: tuple[float, str, list[float]] | None = None
        null: list[float] | None = None
        for src in sources:
            if src in self.refs:  # published results exist for the NAB files only
                keys = [k for k in keys if k in self.refs[src]]
                null = None
            cases = [self.case(src, k) for k in keys]
            sweeps = [self.sweep(cases, keys, p) for p in self.nab.PROFILES]
            null = self.null_raw(keys) if null is None else null
            norm = float(np.mean(self.normalised(keys, [s[1] for s in sweeps], null)))
            if best is None or norm > best[0]:
                best = (norm, src, [s[0] for s in sweeps])
        assert best is not None
        return best[1], best[2]

    def raw(self, key: str, src: str, thresholds: list[float]) -> list[float]:
        c = self.case(src, key)
        return [self.nab.score_file(c, p, t).raw for p, t in zip(self.nab.PROFILES, thresholds, strict=True)]


def cross_validate(cp: Corpus, folds: list[tuple[list[str], list[str]]], sources: list[str],
                   ) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Held-out raw score per NAB file (per profile) and how often each source was chosen."""
    raw: dict[str, list[float]] = {}
    chosen: dict[str, int] = {}
    for train, test in folds:
        src, thr = cp.fit(train, sources)
        chosen[src] = chosen.get(src, 0) + 1
        for k in test:
            raw[k] = cp.raw(k, src, thr)
    return raw, chosen


def table(cp: Corpus, per_file: dict[str, dict[str, list[float]]], groups: dict[str, list[str]]) -> list[str]:
    names = list(per_file)
    head = f"{'held-out files':<36}" + "".join(f"{n + ' ' + p:>22}" for p in PROFILES for n in names)
    lines = [head]
    for label, keys in groups.items():
        cells = []
        norms = {n: cp.normalised_sum(keys, per_file[n]) for n in names}
        for i in range(3):
            for n in names:
                v = norms[n][i]
                cells.append(f"{v:>22.1f}" if v == v else f"{'(no windows)':>22}")
        lines.append(f"{label:<36}" + "".join(cells))
    return lines


def kinds_heldout(cp: Corpus, src: str, thresholds: list[float]) -> tuple[list[str], int, int]:
    """Detection on synthetic series of kinds never in training (synthetic.HELDOUT_KINDS, seeds 101-110),
    with the configuration and thresholds chosen on all dev files + synthetic training series. Returns the
    table's lines and (series detected, series with an anomaly)."""
    keys = cp.add_synthetic(synthetic_corpus(seeds=HELDOUT_SEEDS, kinds=HELDOUT_KINDS))
    full = "--cv-only" not in sys.argv  # the fresh kinds are scored by the full bench only (docs/models.md)
    fresh = FRESH_KINDS + FRESH_SCALE_KINDS + FRESH3_KINDS + FRESH4_KINDS + FRESH5_KINDS if full else ()
    # the sixth fresh kinds are sealed (docs/models.md): only --fresh6 scores them, once, after a change
    fresh6 = "--fresh6" in sys.argv
    fresh += FRESH6_KINDS if fresh6 else ()
    if full:
        keys += cp.add_synthetic(synthetic_corpus(seeds=FRESH_SEEDS, kinds=FRESH_KINDS))
        keys += cp.add_synthetic(synthetic_corpus(seeds=FRESH_SCALE_SEEDS, kinds=FRESH_SCALE_KINDS))
        keys += cp.add_synthetic(synthetic_corpus(seeds=FRESH3_SEEDS, kinds=FRESH3_KINDS))
        keys += cp.add_synthetic(synthetic_corpus(seeds=FRESH4_SEEDS, kinds=FRESH4_KINDS))
        keys += cp.add_synthetic(synthetic_corpus(seeds=FRESH5_SEEDS, kinds=FRESH5_KINDS))
    if fresh6:
        keys += cp.add_synthetic(synthetic_corpus(seeds=FRESH6_SEEDS, kinds=FRESH6_KINDS))
    lines = [f"HELD-OUT synthetic kinds (never in training; {src}, standard threshold {thresholds[0]:.3f}):",
             f"{'kind':<30}{'detected':>10}{'false alerts':>14}{'standard':>10}{'low_FP':>10}{'low_FN':>10}"]
    hits = total = 0
    for kind in HELDOUT_KINDS + fresh:
        ks = [k for k in keys if k.rsplit("_", 1)[0] == f"synthetic/{kind}"]
        hit = fp = 0
        for k in ks:
            sc = np.asarray(cp.case(src, k).scores)
            ns = cp.ts_ns[k][-len(sc):]  # the scorer drops the probationary rows
            inside = np.zeros(len(sc), bool)
            for w0, w1 in cp.windows[k]:
                inside |= (ns >= w0) & (ns <= w1)
            alerts = sc >= thresholds[0]
            hit += bool((alerts & inside).any())
            fp += int((alerts & ~inside).sum())
        n_anom = sum(bool(cp.windows[k]) for k in ks)
        hits, total = hits + hit, total + n_anom
        norm = cp.normalised_sum(ks, {k: cp.raw(k, src, thresholds) for k in ks})
        det = f"{hit}/{n_anom}" if n_anom else "-"
        lines.append(f"{kind:<30}{det:>10}{fp:>14}" + "".join(
            f"{v:>10.1f}" if v == v else f"{'-':>10}" for v in norm))
    return lines, hits, total


def nabscore_in_sample(shared: Path, scores_dir: Path) -> tuple[float, float, float, str]:
    data = shared / "data" / "nab-dev"
    cmd = [sys.executable, str(shared / "tools" / "nabscore.py"), "--windows",
           str(data / "combined_windows.json"), "--data", str(data), "--scores", str(scores_dir)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"nabscore failed: {out.stderr[-2000:]}")
    last = out.stdout.strip().splitlines()[-1]
    m = re.search(r"standard=([-\d.]+) reward_low_FP=([-\d.]+) reward_low_FN=([-\d.]+)", last)
    if not m:
        raise SystemExit(f"unexpected nabscore output: {last}")
    return float(m[1]), float(m[2]), float(m[3]), out.stdout


def cli_scores(cp: Corpus, data: Path, out_dir: Path) -> None:
    """Run ``levqor detect`` on every NAB dev file (as a user would) and save NAB result files."""
    for key in cp.nab_keys:
        proc = subprocess.run([sys.executable, "-m", "api.cli", "detect", str(data / key)], cwd=REPO,
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"levqor detect failed on {key}: {proc.stderr[-500:]}")
        lines = proc.stdout.strip().splitlines()
        assert lines[0] == "timestamp,score", lines[0]
        dest = out_dir / key
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(data / key) as src, open(dest, "w") as f:
            rows = [r for r in src.read().splitlines()[1:] if r.strip()]
            f.write("timestamp,value,anomaly_score\n")
            for r, s in zip(rows, lines[1:], strict=True):
                f.write(f"{r},{s.rsplit(',', 1)[1]}\n")


def points_per_second(cp: Corpus, repeats: int = 3) -> tuple[float, int]:
    series = [cp.series[k] for k in cp.nab_keys]
    total = sum(len(v) for _, v in series)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for ts, vals in series:
            upd = AnomalyDetector().update
            for t, v in zip(ts, vals, strict=True):
                upd(v, t)
        best = min(best, time.perf_counter() - t0)
    return total / best, total


def option(name: str, default: str) -> str:
    return next((a.split("=", 1)[1] for a in sys.argv if a.startswith(name + "=")), default)


def main() -> int:
    shared = shared_dir()
    nab = load_nabscore(shared)
    data = shared / "data" / "nab-dev"
    refs = data / "reference-results"
    seeds = option("--synthetic-seeds", ",".join(map(str, DEFAULT_SEEDS)))
    cp = Corpus(nab, data, extra_synthetic="--synthetic-extra" in sys.argv,
                synthetic_seeds=tuple(int(x) for x in seeds.split(",")),
                synthetic_share=float(option("--synthetic-share", "1")))
    cp.add_reference("ARTime", refs / "ARTime")
    cp.add_reference("numenta", refs / "numenta")

    # in-sample, through the command line (--cv-only skips it while iterating)
    art = nabscore_in_sample(shared, refs / "ARTime")
    htm = nabscore_in_sample(shared, refs / "numenta")
    wall = 0.0
    ours = (math.nan, math.nan, math.nan, "")
    if "--cv-only" not in sys.argv:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            cli_scores(cp, data, Path(tmp))
            wall = time.perf_counter() - t0
            ours = nabscore_in_sample(shared, Path(tmp))
    print(ours[3].rstrip())
    print()
    print("IN-SAMPLE (default configuration; threshold optimised on the same 28 files, as NAB does):")
    print(f"{'detector':<14}{'standard':>10}{'low_FP':>10}{'low_FN':>10}")
    for name, r in (("levqor", ours), ("ARTime", art), ("Numenta HTM", htm)):
        print(f"{name:<14}{r[0]:>10.2f}{r[1]:>10.2f}{r[2]:>10.2f}")

    # held-out
    grid = list(GRID)
    folders = sorted({k.split("/")[0] for k in cp.nab_keys})
    artificial = [k for k in cp.nab_keys if k.startswith("artificial")]
    real = [k for k in cp.nab_keys if not k.startswith("artificial")]
    lofo = [(artificial + cp.synth_keys, real), (real + cp.synth_keys, artificial)]
    loo = [([j for j in cp.nab_keys if j != k] + cp.synth_keys, [k]) for k in cp.nab_keys]
    groups = {f: [k for k in cp.nab_keys if k.startswith(f + "/")] for f in folders}
    groups["all 28 NAB dev files"] = cp.nab_keys
    results: dict[str, dict[str, dict[str, list[float]]]] = {}
    for split, folds in (("leave-one-folder-out", lofo), ("leave-one-file-out", loo)):
        per: dict[str, dict[str, list[float]]] = {}
        raw, chosen = cross_validate(cp, folds, grid)
        per["levqor"] = raw
        for ref, label in (("ARTime", "ARTime"), ("numenta", "HTM")):
            per[label] = cross_validate(cp, folds, [ref])[0]
        results[split] = per
        print()
        print(f"HELD-OUT, {split} ({len(folds)} folds; configuration and thresholds chosen on the "
              "training files + synthetic series only):")
        print("\n".join(table(cp, per, groups)))
        print("configurations chosen: " + ", ".join(f"{k} x{v}" for k, v in sorted(chosen.items())))
    final, thr = cp.fit(cp.nab_keys + cp.synth_keys, grid)
    default_name = next((n for n, c in GRID.items() if c == BASE), "(not in grid)")
    print(f"configuration chosen on all dev files + synthetic: {final}; DetectorConfig() default: "
          f"{default_name}")
    if GRID[final] != BASE:
        diff = {k: v for k, v in asdict(GRID[final]).items() if asdict(BASE)[k] != v}
        print(f"  (differs from the default in {diff})")

    print()
    kinds_lines, kinds_hit, kinds_total = kinds_heldout(cp, final, thr)
    print("\n".join(kinds_lines))

    pps, total = points_per_second(cp)
    print(f"{total} points; in-process detector throughput {pps:,.0f} points/s on one core; "
          f"levqor detect on 28 files: {wall:.1f}s wall")
    cv = results["leave-one-file-out"]
    cvn = {n: cp.normalised_sum(cp.nab_keys, cv[n]) for n in cv}
    lf = results["leave-one-folder-out"]
    lfn = {n: cp.normalised_sum(cp.nab_keys, lf[n]) for n in lf}

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.3f}" if b else "nan"

    print(f"anomaly: standard={ours[0]:.2f} low_fp={ours[1]:.2f} low_fn={ours[2]:.2f} "
          f"artime_standard={art[0]:.2f} artime_low_fp={art[1]:.2f} artime_low_fn={art[2]:.2f} "
          f"htm_standard={htm[0]:.2f} htm_low_fp={htm[1]:.2f} htm_low_fn={htm[2]:.2f} "
          f"ratio_artime_standard={ratio(ours[0], art[0])} ratio_htm_standard={ratio(ours[0], htm[0])} "
          f"cv_standard={cvn['levqor'][0]:.2f} cv_low_fp={cvn['levqor'][1]:.2f} "
          f"cv_low_fn={cvn['levqor'][2]:.2f} cv_artime_standard={cvn['ARTime'][0]:.2f} "
          f"cv_artime_low_fp={cvn['ARTime'][1]:.2f} cv_artime_low_fn={cvn['ARTime'][2]:.2f} "
          f"cv_htm_standard={cvn['HTM'][0]:.2f} cv_htm_low_fp={cvn['HTM'][1]:.2f} "
          f"cv_htm_low_fn={cvn['HTM'][2]:.2f} lofo_standard={lfn['levqor'][0]:.2f} "
          f"lofo_low_fp={lfn['levqor'][1]:.2f} lofo_low_fn={lfn['levqor'][2]:.2f} "
          f"lofo_artime_standard={lfn['ARTime'][0]:.2f} lofo_htm_standard={lfn['HTM'][0]:.2f} "
          f"points_per_s={pps:.0f} kinds_detected={kinds_hit}/{kinds_total}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
