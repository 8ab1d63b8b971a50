"""Benchmark the anomaly detector on NAB dev files against ARTime and Numenta HTM.

Scores all three with ../shared/tools/nabscore.py (ours through ``levqor detect``, exactly as
a user would run it; the references from their published results) and measures our
detector's points per second on one core in-process. Last line:
``anomaly: standard=.. low_fp=.. low_fn=.. artime_standard=.. htm_standard=.. ... points_per_s=..``
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tools.auto_intel.anomaly_detector import AnomalyDetector  # noqa: E402


def shared_dir() -> Path:
    """Find the shared data directory: $LEVQOR_SHARED_DIR, else ../shared next to the repo."""
    env = os.environ.get("LEVQOR_SHARED_DIR")
    cands = [Path(env)] if env else []
    cands += [REPO.parent / "shared", REPO / ".." / "shared", Path.cwd().parent / "shared"]
    for c in cands:
        if (c / "tools" / "nabscore.py").is_file():
            return c.resolve()
    raise SystemExit("shared data not found: set LEVQOR_SHARED_DIR to the directory holding "
                     "tools/nabscore.py and data/nab-dev")


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


def nab_files(data: Path) -> list[Path]:
    return sorted(p for p in data.glob("*/*.csv") if p.parent.name != "reference-results")


def points_per_second(files: list[Path], repeats: int = 3) -> tuple[float, int]:
    series = [load_series(p) for p in files]
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


def nabscore(shared: Path, *args: str) -> tuple[float, float, float, str]:
    data = shared / "data" / "nab-dev"
    cmd = [sys.executable, str(shared / "tools" / "nabscore.py"), "--windows",
           str(data / "combined_windows.json"), "--data", str(data), *args]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"nabscore failed: {out.stderr[-2000:]}")
    last = out.stdout.strip().splitlines()[-1]
    m = re.search(r"standard=([-\d.]+) reward_low_FP=([-\d.]+) reward_low_FN=([-\d.]+)", last)
    if not m:
        raise SystemExit(f"unexpected nabscore output: {last}")
    return float(m[1]), float(m[2]), float(m[3]), out.stdout


def main() -> int:
    shared = shared_dir()
    data = shared / "data" / "nab-dev"
    refs = data / "reference-results"
    detector = f"{sys.executable} -m api.cli detect"
    t0 = time.perf_counter()
    ours = nabscore(shared, "--detector", detector, "--jobs", "2")
    wall = time.perf_counter() - t0
    art = nabscore(shared, "--scores", str(refs / "ARTime"))
    htm = nabscore(shared, "--scores", str(refs / "numenta"))
    pps, total = points_per_second(nab_files(data))
    print(ours[3].rstrip())
    print()
    print(f"{'detector':<14}{'standard':>10}{'low_FP':>10}{'low_FN':>10}")
    for name, r in (("levqor", ours), ("ARTime", art), ("Numenta HTM", htm)):
        print(f"{name:<14}{r[0]:>10.2f}{r[1]:>10.2f}{r[2]:>10.2f}")
    beats = [ours[i] > art[i] and ours[i] > htm[i] for i in range(3)]
    print(f"beats both references: standard={beats[0]} low_FP={beats[1]} low_FN={beats[2]}")
    print(f"{total} points; in-process detector throughput {pps:,.0f} points/s on one core; "
          f"levqor detect via nabscore: {wall:.1f}s wall")

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.3f}" if b else "nan"

    print(f"anomaly: standard={ours[0]:.2f} low_fp={ours[1]:.2f} low_fn={ours[2]:.2f} "
          f"artime_standard={art[0]:.2f} artime_low_fp={art[1]:.2f} artime_low_fn={art[2]:.2f} "
          f"htm_standard={htm[0]:.2f} htm_low_fp={htm[1]:.2f} htm_low_fn={htm[2]:.2f} "
          f"ratio_artime_standard={ratio(ours[0], art[0])} ratio_htm_standard={ratio(ours[0], htm[0])} "
          f"ratio_artime_low_fp={ratio(ours[1], art[1])} ratio_htm_low_fp={ratio(ours[1], htm[1])} "
          f"ratio_artime_low_fn={ratio(ours[2], art[2])} ratio_htm_low_fn={ratio(ours[2], htm[2])} "
          f"points_per_s={pps:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
