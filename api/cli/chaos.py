"""``levqor chaos run``: the chaos suite, which lives with the benchmarks in the source checkout."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import typer

from api.cli.common import fail

chaos = typer.Typer(help="The chaos suite: inject faults, measure detection and self-healing.", no_args_is_help=True)
SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "chaos" / "run.py"


@chaos.command("run", add_help_option=False,
               context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def chaos_run(ctx: typer.Context) -> None:
    """Break a small real platform on purpose; print detection, recovery, losses per scenario (--help: options)."""
    if not SCRIPT.exists():
        fail(f"the chaos suite runs from a source checkout: {SCRIPT} not found", 2)
    sys.argv = [str(SCRIPT), *ctx.args]
    runpy.run_path(str(SCRIPT), run_name="__main__")
