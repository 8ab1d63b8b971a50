"""``make bench-api`` end to end on SQLite, briefly: both servers answer, no request fails, the last line
is ``api: ...`` with figures and ratios for each concurrency (no speed is asserted); the aims are judged
from the figures."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.support import ROOT


def test_api_bench_runs_on_sqlite_and_prints_its_summary_line() -> None:
    out = subprocess.run([sys.executable, "bench/api/run.py", "--only", "sqlite", "--conns", "2,4",
                          "--seconds", "0.5", "--warmup", "0.2", "--jobs", "5"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    last = out.stdout.strip().splitlines()[-1]
    for c in (2, 4):
        figures = rf"sqlite_c{c}_rps=\d+ sqlite_c{c}_p99_ms=[\d.]+ .*sqlite_c{c}_vs_base_rps=[\d.]+x"
        assert re.search(figures, last), last
    assert last.startswith("api: ") and last.endswith(" errors=0"), last


def test_the_aims_of_issue_13_are_judged_from_the_run() -> None:
    sys.path.insert(0, str(ROOT))
    from bench.api.run import aim_results

    def r(per_s: float, p99: float, errors: int = 0) -> dict[str, float]:
        return {"per_s": per_s, "p99_ms": p99, "errors": errors}

    results = {("sqlite", 32, "levqor"): r(600, 20), ("sqlite", 32, "base"): r(1000, 15),
               ("sqlite", 64, "levqor"): r(600, 90, errors=1), ("sqlite", 64, "base"): r(1000, 40),
               ("pg", 32, "levqor"): r(400, 30), ("pg", 32, "base"): r(1000, 20),
               ("pg", 64, "levqor"): r(400, 60), ("pg", 64, "base"): r(1000, 40)}
    met = {name: ok for name, ok, _ in aim_results(results, [("sqlite", ""), ("pg", "")], [32, 64])}
    assert met == {"sqlite_c32_rps": True, "sqlite_c32_p99": True, "sqlite_c64_errors": False,
                   "pg_c32_rps": False, "pg_c32_p99": False, "pg_c64_errors": True}
