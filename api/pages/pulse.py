"""Pulse and Advisor pages: KPIs with targets, trends, costs, planner suggestions, reports, advisor chat."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.deps import require
from api.pages.router import form_csrf, render
from levqor.llm import mode_info
from tools.context import ToolContext
from tools.enterprise.rbac import allowed
from tools.registry import registry

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
    from tools.pulse.report import fmt

    return fmt(value, unit)


@router.get("/pulse")
def pulse_page(request: Request, ctx: Annotated[ToolContext, require("pulse:read")]) -> HTMLResponse:
    """Show KPIs with targets and trends, costs, planner suggestions and the report archive."""
    from tools.decision_engine.metrics_feed import MetricsFeed

    latest = registry.invoke("pulse.kpis", ctx, {})
    targets = registry.invoke("pulse.targets", ctx, {})
    costs = registry.invoke("costs.summary", ctx, {"days": 30})
    feed = MetricsFeed(ctx, use_notion=False)
    until = feed.latest_day()
    import datetime as dt

    since = until - dt.timedelta(days=29)
    series: dict[str, list[float | None]] = {}
    for p in feed.points(since, until):
        series.setdefault(p.kpi, []).append(p.value)
    can_decide = allowed(ctx.principal.role, "decisions:write")
    sugg = registry.invoke("suggestions.list", ctx, {"limit": 30}) if allowed(
        ctx.principal.role, "decisions:read") else None
    reports = registry.invoke("pulse.reports", ctx, {})
    return render(request, "pulse.html", ctx, latest=latest, targets=targets, costs=costs,
                  spark={k: sparkline(v) for k, v in series.items()}, suggestions=sugg, reports=reports,
                  can_decide=can_decide, can_write=allowed(ctx.principal.role, "pulse:write"),
                  display=display)


@router.post("/pulse/suggestions/{suggestion_id}", dependencies=[Depends(form_csrf)])
def decide(suggestion_id: int, ctx: Annotated[ToolContext, require("decisions:write")],
           decision: Annotated[str, Form(pattern="^(accepted|rejected)$")]) -> Response:
    """Accept or reject a suggestion from the page."""
    registry.invoke("suggestions.decide", ctx, {"suggestion_id": suggestion_id, "decision": decision})
    return RedirectResponse("/pulse#suggestions", status_code=303)


@router.post("/pulse/planner", dependencies=[Depends(form_csrf)])
def plan(ctx: Annotated[ToolContext, require("decisions:write")]) -> Response:
    """Run the planner now from the page."""
    registry.invoke("planner.run", ctx, {})
    return RedirectResponse("/pulse#suggestions", status_code=303)


@router.post("/pulse/reports", dependencies=[Depends(form_csrf)])
def report(ctx: Annotated[ToolContext, require("pulse:write")],
           month: Annotated[str, Form(pattern=r"^(19|20)\d{2}-(0[1-9]|1[0-2])$")]) -> Response:
    """Generate a month's PDF from the page."""
    registry.invoke("pulse.report_generate", ctx, {"month": month})
    return RedirectResponse("/pulse#reports", status_code=303)


@router.get("/advisor")
def advisor_page(request: Request, ctx: Annotated[ToolContext, require("decisions:read")]) -> HTMLResponse:
    """The advisor chat: answers with the tool calls and data it used."""
    from tools.decision_engine.advisor import QUESTION_TYPES

    examples: list[str] = ["Are we meeting our targets?", "How has revenue changed over the last 30 days?",
                           "What are we spending money on?", "What if Pro goes from $29 to $35?",
                           "What if we add 5 partners?", "Summarise incidents this month"]
    data: dict[str, Any] = {"mode": mode_info(), "types": QUESTION_TYPES, "examples": examples,
                            "can_chat": allowed(ctx.principal.role, "agents:run")}
    return render(request, "advisor.html", ctx, **data)
