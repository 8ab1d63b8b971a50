"""The SLA page: an organisation's monthly report (uptime, events counted and excluded, maintenance,
credit) with its PDF; Levqor staff pick any organisation with an SLA."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from api.deps import require
from api.pages.billing import money
from api.pages.router import render
from tools.context import ToolContext
from tools.enterprise import sla
from tools.enterprise.rbac import is_staff
from tools.enterprise.sla import MONTH_PATTERN, SlaReportIn, commitments
from tools.enterprise.sla_pdf import duration, filename, render_pdf

router = APIRouter(tags=["pages"], include_in_schema=False)
Month = Annotated[str | None, Query(pattern=MONTH_PATTERN)]
OrgSlug = Annotated[str | None, Query(max_length=64, pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]


@router.get("/sla")
def sla_page(request: Request, ctx: Annotated[ToolContext, require("sla:read")], month: Month = None,
             org: OrgSlug = None) -> HTMLResponse:
    """Show the SLA report of a month for the organisation (any organisation for Levqor staff)."""
    report = sla.sla_report(ctx, SlaReportIn(month=month, org=org))
    start = report.period_start
    months = []
    y, m = start.year, start.month
    for _ in range(12):
        months.append(f"{y:04d}-{m:02d}")
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
    staff = is_staff(ctx, read=True)
    orgs = sla.sla_orgs(ctx) if staff else []
    return render(request, "sla.html", ctx, r=report, months=months, orgs=orgs, staff=staff, money=money,
                  duration=duration, plans=list(commitments().values()), severities=sla.SEVERITIES,
                  channels=sla.CHANNELS, org_param=org)


@router.get("/sla/report.pdf")
def sla_pdf(ctx: Annotated[ToolContext, require("sla:read")], month: Month = None,
            org: OrgSlug = None) -> Response:
    """Download the SLA report as a PDF."""
    report = sla.sla_report(ctx, SlaReportIn(month=month, org=org))
    return Response(render_pdf(report), media_type="application/pdf",
                    headers={"content-disposition": f'attachment; filename="{filename(report)}"'})
