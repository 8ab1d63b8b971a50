"""``levqor pulse``, ``levqor costs`` and ``levqor planner``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from api.cli.common import boot, console, err, fail, in_org, org_session, params, table
from levqor.settings import get_settings
from tools.decision_engine.planner import PlannerIn, planner_run
from tools.pulse.costs import CostImportIn, CostSummaryIn, cost_summary, import_csv
from tools.pulse.report import ReportIn, pdf_bytes, report_generate
from tools.pulse.store import SnapshotIn, take_snapshot
from tools.pulse.targets import TargetsIn, targets

pulse = typer.Typer(help="Pulse: KPI snapshots, targets, monthly report.", no_args_is_help=True)
costs = typer.Typer(help="The Cost DB: import bills, show spend.", no_args_is_help=True)
planner = typer.Typer(help="The planner: find KPIs off target and propose suggestions.", no_args_is_help=True)


@pulse.command("snapshot")
def pulse_snapshot(org: Annotated[str, typer.Option(help="Organisation slug")] = "demo") -> None:
    """Take (or refresh) today's KPI snapshot."""
    boot(log=False)
    out = in_org(org, lambda ctx: take_snapshot(ctx, SnapshotIn()))
    t = table("kpi", "value", "note")
    for i in out.items:
        t.add_row(i.kpi, "" if i.value is None else f"{i.value:g}", i.reason or "")
    console.print(t)


@pulse.command("targets")
def pulse_targets(org: Annotated[str, typer.Option(help="Organisation slug")] = "demo") -> None:
    """Evaluate the KPI targets."""
    boot(log=False)
    out = in_org(org, lambda ctx: targets(ctx, TargetsIn()))
    t = table("kpi", "actual", "target", "status", "trend", "why")
    for i in out.items:
        t.add_row(i.kpi, "n/a" if i.actual is None else f"{i.actual:g}", f"{i.op} {i.target:g}", i.status,
                  i.trend.direction, i.reason)
    console.print(t)


@pulse.command("report")
def pulse_report(month: Annotated[str, typer.Option(help="YYYY-MM, e.g. 2026-10")],
                 org: Annotated[str, typer.Option(help="Organisation slug")] = "demo",
                 out: Annotated[Path | None, typer.Option(help="Also write the PDF here")] = None) -> None:
    """Generate and archive the monthly Ecosystem Pulse PDF."""
    boot(log=False)
    if not re.match(r"^(19|20)\d{2}-(0[1-9]|1[0-2])$", month):
        fail(f"--month must be YYYY-MM, got {month!r}", 2)
    which = params(ReportIn, month=month)
    rep = in_org(org, lambda ctx: report_generate(ctx, which))
    if out is not None:
        with org_session(org) as ctx:
            out.write_bytes(pdf_bytes(ctx, month))
    where = f"written to {out.resolve()}" if out else f"download {get_settings().base_url}{rep.download_url}"
    # one unwrapped line: a path or URL split over two lines cannot be copied
    console.print(f"[green]Pulse report {month}[/green]: {rep.pages} pages, {rep.size_bytes} bytes; {where}",
                  soft_wrap=True)


@costs.command("import")
def costs_import(file: Annotated[Path, typer.Argument(help="CSV: day,source,amount_cents[,description,ref]")],
                 org: Annotated[str, typer.Option(help="Organisation slug")] = "demo") -> None:
    """Import spend entries from a CSV bill (all rows or none)."""
    boot(log=False)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        err.print(f"[red]cannot read {file}: {exc}[/red]")
        raise typer.Exit(2) from None
    bill = params(CostImportIn, csv=text)
    out = in_org(org, lambda ctx: import_csv(ctx, bill))
    console.print(f"[green]imported {out.rows} rows[/green] ({out.created} new, {out.updated} updated), "
                  f"total {out.total_cents / 100:.2f} USD")


@costs.command("summary")
def costs_summary(org: Annotated[str, typer.Option(help="Organisation slug")] = "demo",
                  days: Annotated[int, typer.Option()] = 30) -> None:
    """Show spend by source over the last N days."""
    boot(log=False)
    window = params(CostSummaryIn, days=days)
    out = in_org(org, lambda ctx: cost_summary(ctx, window))
    t = table("source", "total USD", "share", "per day USD")
    for s_ in out.by_source:
        t.add_row(s_.source, f"{s_.total_cents / 100:.2f}", f"{s_.share_pct} %", f"{s_.per_day_cents / 100:.2f}")
    console.print(t)


@planner.command("run")
def planner_run_now(org: Annotated[str, typer.Option(help="Organisation slug")] = "demo") -> None:
    """Run the deterministic planner now and print its suggestions."""
    boot(log=False)
    out = in_org(org, lambda ctx: planner_run(ctx, PlannerIn()))
    for f in out.findings:
        console.print(f"[bold]{f.kpi}[/bold] {f.status}: " + "; ".join(f.drivers))
    for sg in out.suggestions:
        console.print(f"  #{sg.id} {sg.title} (confidence {sg.confidence:.0%})")
    if not out.suggestions:
        console.print("no new suggestions")
