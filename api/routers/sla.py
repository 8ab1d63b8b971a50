"""SLA: the monthly report (JSON and PDF) for the caller's organisation, maintenance windows, and the
staff's on-demand credit run."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from api.deps import require
from tools.context import ToolContext
from tools.enterprise import sla
from tools.enterprise.sla import (
    MONTH_PATTERN,
    CreditRunIn,
    CreditRunOut,
    MaintenanceIn,
    MaintenanceList,
    MaintenanceQuery,
    SlaReport,
    SlaReportIn,
    WindowId,
    WindowRead,
)
from tools.enterprise.sla_pdf import filename, render_pdf

router = APIRouter(prefix="/v1", tags=["sla"])
Month = Annotated[str | None, Query(pattern=MONTH_PATTERN, description="YYYY-MM (UTC); default: this month")]
OrgSlug = Annotated[str | None, Query(max_length=64, pattern=r"^[a-z0-9][a-z0-9-]{0,63}$",
                                      description="Another organisation's slug (Levqor staff only)")]


@router.get("/sla/report", response_model=SlaReport)
def get_report(ctx: Annotated[ToolContext, require("sla:read")], month: Month = None,
               org: OrgSlug = None) -> SlaReport:
    """Show the organisation's SLA report for a month: measured uptime, downtime events, credit owed."""
    return sla.sla_report(ctx, SlaReportIn(month=month, org=org))


@router.get("/sla/report.pdf", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}, "description": "The PDF"}})
def get_report_pdf(ctx: Annotated[ToolContext, require("sla:read")], month: Month = None,
                   org: OrgSlug = None) -> Response:
    """Download the organisation's SLA report for a month as a PDF."""
    report = sla.sla_report(ctx, SlaReportIn(month=month, org=org))
    return Response(render_pdf(report), media_type="application/pdf",
                    headers={"content-disposition": f'attachment; filename="{filename(report)}"'})


@router.get("/sla/maintenance", response_model=MaintenanceList)
def get_maintenance(ctx: Annotated[ToolContext, require("sla:read")],
                    days: Annotated[int, Query(ge=1, le=800)] = 90) -> MaintenanceList:
    """List the maintenance windows that apply to the organisation (past days and upcoming)."""
    return sla.list_maintenance(ctx, MaintenanceQuery(days=days))


@router.post("/sla/maintenance", response_model=WindowRead, status_code=201)
def post_maintenance(body: MaintenanceIn, ctx: Annotated[ToolContext, require("sla:write")]) -> WindowRead:
    """Announce a maintenance window (Levqor staff, at least 72 hours ahead); excluded from downtime."""
    return sla.announce_maintenance(ctx, body)


@router.post("/sla/maintenance/{window_id}/cancel", response_model=WindowRead)
def post_cancel(window_id: int, ctx: Annotated[ToolContext, require("sla:write")]) -> WindowRead:
    """Cancel an announced maintenance window that has not started (Levqor staff)."""
    return sla.cancel_maintenance(ctx, WindowId(id=window_id))


@router.post("/sla/credits", response_model=CreditRunOut)
def post_credits(body: CreditRunIn, ctx: Annotated[ToolContext, require("sla:write")]) -> CreditRunOut:
    """Issue the credit notes owed for a finished month now (Levqor staff; once per organisation and month)."""
    return sla.issue_credits(ctx, body)
