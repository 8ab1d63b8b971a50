"""The chaos suite: break a small real platform in many ways and measure detection and self-healing.

    python bench/chaos/run.py [SCENARIO ...] [--here | --pg] [--workers N] [--json FILE] [--keep]

(``make bench-chaos`` and ``levqor chaos run`` run this script.) The scenarios run on a scratch SQLite
database, or with ``--pg`` (or ``LEVQOR_CHAOS_PG=1``) on a scratch PostgreSQL server the suite starts
itself (``initdb`` in the scratch directory, a free port, stopped at the end), which ``db_outage`` stops
and starts; ``--here`` uses the configured database (``db_outage`` then runs only on SQLite). Prints a
table per scenario, then as its last line
``chaos: detected=N/M healed=N/M lost=N unsafe=N mttr_worker_crash_s=X`` (M: the scenarios that ran).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench.chaos import harness, scenarios  # noqa: E402
from memory.db import dispose_engines  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="levqor chaos run", description=__doc__.splitlines()[0])
    ap.add_argument("scenario", nargs="*", help="Scenarios (default: all of them)")
    ap.add_argument("--here", action="store_true", help="Use the configured database, not a scratch one")
    ap.add_argument("--pg", action="store_true", default=os.environ.get("LEVQOR_CHAOS_PG") == "1",
                    help="Run on a scratch PostgreSQL server started for the suite")
    ap.add_argument("--workers", type=int, default=2, choices=range(2, 9), metavar="N", help="Worker processes (2-8)")
    ap.add_argument("--json", dest="json_out", type=Path, help="Also write the results here")
    ap.add_argument("--keep", action="store_true", help="Keep the scratch directory (database, logs)")
    args = ap.parse_args(argv)
    err = Console(stderr=True)
    names = list(args.scenario) if args.scenario else list(scenarios.ALL_SCENARIOS)
    unknown = [n for n in names if n not in scenarios.ALL_SCENARIOS]
    if unknown:
        err.print(f"[red]unknown scenario {unknown[0]!r}; one of {', '.join(scenarios.ALL_SCENARIOS)}[/red]")
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="levqor-chaos-"))
    if not args.here:
        harness.prepare_scratch(tmp, postgres=args.pg)
    try:
        results = scenarios.run(names, workers=args.workers, logdir=tmp / "logs")
    finally:
        if harness.scratch_pg is not None:
            dispose_engines()
            harness.scratch_pg.stop()
    if args.json_out is not None:
        args.json_out.write_text(json.dumps([dataclasses.asdict(r) for r in results], indent=1))
    t = Table("scenario", "detected", "ttd s", "recovered", "ttr s", "actions", "lost", "human", "note")
    for r in results:
        t.add_row(r.scenario, "yes" if r.detected else "no", f"{r.ttd_s:.1f}" if r.ttd_s is not None else "-",
                  "yes" if r.recovered else "no", f"{r.ttr_s:.1f}" if r.ttr_s is not None else "-",
                  "; ".join(r.actions)[:80] or "-", str(r.lost), "yes" if r.human else "no", r.note[:90])
    Console(width=200).print(t)
    if args.keep or not all(r.recovered and not r.lost for r in results):
        print(f"scratch directory (database, process logs): {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    print(scenarios.summary_line(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
