"""Pulse KPIs and targets, the Cost DB, simulations, planner suggestions, the advisor, monthly reports."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Request, status
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from api.deps import require
from tools.context import ToolContext
from tools.decision_engine import advisor, metrics_feed, planner, simulator
from tools.decision_engine.advisor import AdvisorAnswer, AskIn
from tools.decision_engine.metrics_feed import FeedIn, FeedOut, NotionPushIn, NotionPushOut
from tools.decision_engine.planner import (
    DecideIn,
    PlannerIn,
    PlannerRunRead,
    RunList,
    RunsIn,
    SuggestionList,
    SuggestionRead,
    SuggestionsIn,
)
from tools.decision_engine.simulator import AddPartnersIn, LlmIn, PartnerShareIn, PriceIn, SimulationResult
from tools.errors import Unprocessable
from tools.pulse import costs as cost_db
from tools.pulse import report, store
from tools.pulse import targets as pulse_targets
from tools.pulse.costs import CostImportIn, CostImportOut, CostIn, CostRead, CostSummary, CostSummaryIn
from tools.pulse.kpis import KPIS
from tools.pulse.report import NoInput, ReportIn, ReportList, ReportRead
from tools.pulse.store import History, HistoryIn, LatestIn, LatestKpis, Snapshot, SnapshotIn
from tools.pulse.targets import TargetsIn, TargetsReport

router = APIRouter(prefix="/v1", tags=["pulse"])
Month = Annotated[str, Path(pattern=r"^(19|20)\d{2}-(0[1-9]|1[0-2])$", description="YYYY-MM")]


@router.get("/pulse/kpis", response_model=LatestKpis)
def kpis(ctx: Annotated[ToolContext, require("pulse:read")]) -> LatestKpis:
    """Show every KPI's latest value, or why it is not available."""
    return store.kpis(ctx, LatestIn())


@router.get("/pulse/history", response_model=History)
def history(ctx: Annotated[ToolContext, require("pulse:read")],
            kpi: Annotated[str, Query(max_length=64, description=", ".join(KPIS))],
            days: Annotated[int, Query(ge=1, le=730)] = 30) -> History:
    """Show one KPI's daily history."""
    return store.history(ctx, HistoryIn(kpi=kpi, days=days))


@router.post("/pulse/snapshots", response_model=Snapshot)
def snapshot(body: SnapshotIn, ctx: Annotated[ToolContext, require("pulse:write")]) -> Snapshot:
    """Take (or refresh) a day's KPI snapshot now."""
    return store.take_snapshot(ctx, body)


@router.get("/pulse/targets", response_model=TargetsReport)
def targets(ctx: Annotated[ToolContext, require("pulse:read")]) -> TargetsReport:
    """Evaluate every KPI target: status, trend and error budget."""
    return pulse_targets.targets(ctx, TargetsIn())


@router.get("/pulse/feed", response_model=FeedOut)
def feed(ctx: Annotated[ToolContext, require("pulse:read")],
         days: Annotated[int, Query(ge=1, le=730)] = 30,
         until: Annotated[dt.date | None, Query(description="Last day of the window (default: latest snapshot)")]
         = None) -> FeedOut:
    """Read the merged metrics feed (Pulse store and, if enabled, Notion) and each KPI over the window."""
    return metrics_feed.feed(ctx, FeedIn(days=days, until=until))


@router.post("/pulse/notion", response_model=NotionPushOut)
def notion_push(body: NotionPushIn, ctx: Annotated[ToolContext, require("pulse:write")]) -> NotionPushOut:
    """Write a day's snapshot to the Notion Pulse data source."""
    return metrics_feed.notion_push(ctx, body)


@router.get("/costs", response_model=CostSummary)
def costs(ctx: Annotated[ToolContext, require("pulse:read")],
          days: Annotated[int, Query(ge=1, le=730)] = 30) -> CostSummary:
    """Break spend down by source and day."""
    return cost_db.cost_summary(ctx, CostSummaryIn(days=days))


@router.post("/costs", response_model=CostRead, status_code=status.HTTP_201_CREATED)
def add_cost(body: CostIn, ctx: Annotated[ToolContext, require("pulse:write")]) -> CostRead:
    """Record one spend entry in cents."""
    return cost_db.add_cost(ctx, body)


@router.post("/costs/import", response_model=CostImportOut,
             openapi_extra={"requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}},
                                            "required": True}})
async def import_costs(request: Request, ctx: Annotated[ToolContext, require("pulse:write")]) -> CostImportOut:
    """Import a CSV bill (day,source,amount_cents[,description,ref]); all rows or none."""
    raw = await request.body()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Unprocessable("body: the CSV must be UTF-8", field="body") from None
    return cost_db.import_csv(ctx, CostImportIn(csv=text))


@router.post("/simulations", response_model=SimulationResult)
def simulate(body: Annotated[PriceIn | PartnerShareIn | AddPartnersIn | LlmIn, Body(discriminator="kind")],
             ctx: Annotated[ToolContext, require("decisions:read")]) -> SimulationResult:
    """Run a what-if (kind: price, partner_share, add_partners, llm) with intervals and assumptions."""
    if isinstance(body, PriceIn):
        return simulator.simulate_price(ctx, body)
    if isinstance(body, PartnerShareIn):
        return simulator.simulate_partner_share(ctx, body)
    if isinstance(body, AddPartnersIn):
        return simulator.simulate_add_partners(ctx, body)
    return simulator.simulate_llm(ctx, body)


@router.get("/suggestions", response_model=SuggestionList)
def suggestions(ctx: Annotated[ToolContext, require("decisions:read")],
                status_: Annotated[str | None, Query(alias="status", pattern="^(proposed|accepted|rejected)$")]
                = None) -> SuggestionList:
    """List planner suggestions with the acceptance rate."""
    return planner.list_suggestions(ctx, SuggestionsIn(status=status_))


class DecisionBody(BaseModel):
    decision: str = Field(pattern="^(accepted|rejected)$")
    note: str | None = Field(None, max_length=1000)


@router.post("/suggestions/{suggestion_id}/decision", response_model=SuggestionRead)
def decide(suggestion_id: Annotated[int, Path(ge=1, le=2**31 - 1)], body: DecisionBody,
           ctx: Annotated[ToolContext, require("decisions:write")]) -> SuggestionRead:
    """Accept or reject a suggestion."""
    return planner.decide(ctx, DecideIn(suggestion_id=suggestion_id, decision=body.decision, note=body.note))


@router.post("/planner/runs", response_model=PlannerRunRead, status_code=status.HTTP_201_CREATED)
def run_planner(ctx: Annotated[ToolContext, require("decisions:write")]) -> PlannerRunRead:
    """Run the planner now."""
    return planner.planner_run(ctx, PlannerIn())


@router.get("/planner/runs", response_model=RunList)
def planner_runs(ctx: Annotated[ToolContext, require("decisions:read")]) -> RunList:
    """List recent planner runs."""
    return planner.planner_runs(ctx, RunsIn())


@router.get("/pulse/reports", response_model=ReportList)
def reports(ctx: Annotated[ToolContext, require("pulse:read")]) -> ReportList:
    """List archived monthly Ecosystem Pulse PDFs."""
    return report.reports(ctx, NoInput())


@router.post("/pulse/reports", response_model=ReportRead, status_code=status.HTTP_201_CREATED)
def make_report(body: ReportIn, ctx: Annotated[ToolContext, require("pulse:write")]) -> ReportRead:
    """Generate (or regenerate) a month's Ecosystem Pulse PDF."""
    return report.report_generate(ctx, body)


@router.get("/pulse/reports/{month}.pdf", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}, "description": "The PDF"}})
def download_report(month: Month, ctx: Annotated[ToolContext, require("pulse:read")]) -> Response:
    """Download a month's Ecosystem Pulse PDF."""
    return Response(report.pdf_bytes(ctx, month), media_type="application/pdf",
                    headers={"content-disposition": f'attachment; filename="levqor-pulse-{month}.pdf"'})


@router.post("/advisor/ask", response_model=AdvisorAnswer,
             responses={200: {"content": {"text/event-stream": {}, "application/json": {}},
                              "description": "SSE (default) or JSON with ?stream=false"}})
def advisor_ask(body: AskIn, ctx: Annotated[ToolContext, require("decisions:read")],
                stream: Annotated[bool, Query()] = True) -> Response:
    """Ask the advisor (offline mode); streams tool calls, results and the answer as server-sent events."""
    if not stream:
        out = advisor.ask(ctx, body)
        return Response(out.model_dump_json(), media_type="application/json")
    # Answer inside the request's session (the tools run now), then stream the recorded events.
    events = list(advisor.stream(ctx, body.question))

    def gen() -> Iterator[str]:
        for name, data in events:
            yield f"event: {name}\ndata: {json.dumps(data, default=str)}\n\n"

    return StreamingResponse(gen(), media_type="text/event-stream",
                             headers={"cache-control": "no-cache", "x-accel-buffering": "no"})


