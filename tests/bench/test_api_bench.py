"""``make bench-api`` end to end on SQLite, briefly: both servers answer, no request fails, the last line
is ``api: ...`` with figures and ratios for each concurrency (no speed is asserted)."""

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
