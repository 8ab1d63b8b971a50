"""Platform insights: the latest anonymised aggregates, the Insights Report archive, staff publishing,
and each organisation's industry, size band and opt-out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from api.deps import SessionDep, public, require
from tools.context import SYSTEM, ToolContext
from tools.data_insights import aggregator, report_builder
from tools.data_insights.aggregator import InsightsRead, NoInput, ProfileIn, ProfileRead, RefreshIn
from tools.data_insights.report_builder import InsightsReportIn, InsightsReportList, InsightsReportRead

router = APIRouter(prefix="/v1", tags=["insights"])


@router.get("/insights", response_model=InsightsRead, dependencies=[public()])
def latest_insights(session: SessionDep) -> InsightsRead:
    """Show the latest published platform aggregates (anonymised: no identifiers, no group below k)."""
    return aggregator.latest(ToolContext(session, SYSTEM), NoInput())


@router.get("/insights/reports", response_model=InsightsReportList, dependencies=[public()])
def list_insights_reports(session: SessionDep) -> InsightsReportList:
    """List the quarterly Insights Reports, newest first, with their stable download URLs."""
    return report_builder.reports(ToolContext(session, SYSTEM), report_builder.NoInput())


@router.post("/insights/refresh", response_model=InsightsRead)
def refresh_insights(body: RefreshIn, ctx: Annotated[ToolContext, require("insights:write")]) -> InsightsRead:
    """Recompute and publish the aggregates of a quarter now (Levqor staff)."""
    return aggregator.refresh(ctx, body)


@router.post("/insights/reports", response_model=InsightsReportRead, status_code=201)
def generate_insights_report(body: InsightsReportIn,
                             ctx: Annotated[ToolContext, require("insights:write")]) -> InsightsReportRead:
    """Generate, archive and publish the quarterly Insights Report now (Levqor staff)."""
    return report_builder.report_generate(ctx, body)


@router.get("/insights/profile", response_model=ProfileRead)
def get_profile(ctx: Annotated[ToolContext, require("org:read")]) -> ProfileRead:
    """Show your organisation's industry, size band and insights opt-out."""
    return aggregator.profile(ctx, NoInput())


@router.patch("/insights/profile", response_model=ProfileRead)
def set_profile(body: ProfileIn, ctx: Annotated[ToolContext, require("org:write")]) -> ProfileRead:
    """Set your organisation's industry and size band, or opt out of the platform insights."""
    return aggregator.set_profile(ctx, body)
