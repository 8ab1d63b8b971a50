"""Pulse and Advisor pages: KPIs with targets, trends, costs, planner suggestions, reports, advisor chat."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from agents.runtime import execute_after_commit
from api.deps import require
from api.pages.router import form_csrf, render
from levqor.llm import mode_info
from tools.agents import service as agent_tools
from tools.agents.service import RunId, RunStart
from tools.context import ToolContext
from tools.decision_engine import planner
from tools.decision_engine.advisor import QUESTION_TYPES
from tools.decision_engine.metrics_feed import MetricsFeed
from tools.decision_engine.planner import DecideIn, SuggestionsIn
from tools.enterprise.rbac import allowed
from tools.errors import AppError
from tools.pulse import costs as cost_db
from tools.pulse import report as pulse_report
from tools.pulse import store
from tools.pulse import targets as pulse_targets
from tools.pulse.costs import CostSummaryIn
from tools.pulse.report import NoInput, ReportIn, fmt
from tools.pulse.store import LatestIn
from tools.pulse.targets import TargetsIn

router = APIRouter(tags=["pages"], include_in_schema=False)


def sparkline(values: list[float | None], width: int = 120, height: int = 28) -> str:
    """SVG polyline points for a small trend chart (gaps skipped)."""
    vals = [v for v in values if v is not None]
    if len(vals) < 2:
        return ""
    lo, hi = min(vals), max(vals)
    span = (hi - lo) or 1.0
    n = len(values) - 1 or 1
    pts = [f"{i * width / n:.1f},{height - 2 - (v - lo) / span * (height - 4):.1f}"
           for i, v in enumerate(values) if v is not None]
    return " ".join(pts)


def display(value: float | None, unit: str) -> str:
    return fmt(value, unit)


@router.get("/pulse")
def pulse_page(request: Request, ctx: Annotated[ToolContext, require("pulse:read")],
               planner_run: int | None = None) -> HTMLResponse:
    """Show KPIs with targets and trends, costs, planner suggestions and the report archive."""
    planned = None
    if planner_run is not None and 0 < planner_run < 2**31:
        try:
            planned = agent_tools.get_run(ctx, RunId(run_id=planner_run))
        except AppError:
            planned = None
    latest = store.kpis(ctx, LatestIn())
    targets = pulse_targets.targets(ctx, TargetsIn())
    costs = cost_db.cost_summary(ctx, CostSummaryIn(days=30))
    feed = MetricsFeed(ctx, use_notion=False)
    until = feed.latest_day()
    since = until - dt.timedelta(days=29)
    series: dict[str, list[float | None]] = {}
    for p in feed.points(since, until):
        series.setdefault(p.kpi, []).append(p.value)
    can_decide = allowed(ctx.principal.role, "decisions:write")
    sugg = planner.list_suggestions(ctx, SuggestionsIn(limit=30)) if allowed(
        ctx.principal.role, "decisions:read") else None
    reports = pulse_report.reports(ctx, NoInput())
    return render(request, "pulse.html", ctx, latest=latest, targets=targets, costs=costs,
                  spark={k: sparkline(v) for k, v in series.items()},
                  span={k: (min(x for x in v if x is not None), max(x for x in v if x is not None))
                        for k, v in series.items() if any(x is not None for x in v)}, suggestions=sugg, reports=reports,
                  can_decide=can_decide, can_write=allowed(ctx.principal.role, "pulse:write"),
                  display=display, planned=planned, period_label=pulse_report.period_label)


@router.post("/pulse/suggestions/{suggestion_id}", dependencies=[Depends(form_csrf)])
def decide(suggestion_id: int, ctx: Annotated[ToolContext, require("decisions:write")],
           decision: Annotated[str, Form(pattern="^(accepted|rejected)$")]) -> Response:
    """Accept or reject a suggestion from the page."""
    planner.decide(ctx, DecideIn(suggestion_id=suggestion_id, decision=decision))
    return RedirectResponse("/pulse#suggestions", status_code=303)


@router.post("/pulse/planner", dependencies=[Depends(form_csrf)])
def plan(ctx: Annotated[ToolContext, require("decisions:write")]) -> Response:
    """Run the planner now from the page: a planner agent run (listed on /agents), its summary shown here."""
    run = agent_tools.start_run(ctx, RunStart(agent="planner"))
    execute_after_commit(ctx.session, run.id)
    return RedirectResponse(f"/pulse?planner_run={run.id}#suggestions", status_code=303)


@router.post("/pulse/reports", dependencies=[Depends(form_csrf)])
def report(ctx: Annotated[ToolContext, require("pulse:write")],
           month: Annotated[str, Form(pattern=r"^(19|20)\d{2}-(0[1-9]|1[0-2])$")]) -> Response:
    """Generate a month's PDF from the page."""
    pulse_report.report_generate(ctx, ReportIn(month=month))
    return RedirectResponse("/pulse#reports", status_code=303)


@router.get("/advisor")
def advisor_page(request: Request, ctx: Annotated[ToolContext, require("decisions:read")]) -> HTMLResponse:
    """The advisor chat: answers with the tool calls and data it used."""
    examples: list[str] = ["Are we meeting our targets?", "How has revenue changed over the last 30 days?",
                           "What are we spending money on?", "What if Pro goes from $29 to $35?",
                           "What if we add 5 partners?", "Summarise incidents this month"]
    data: dict[str, Any] = {"mode": mode_info(), "types": QUESTION_TYPES, "examples": examples,
                            "can_chat": allowed(ctx.principal.role, "agents:run")}
    return render(request, "advisor.html", ctx, **data)
