"""Daily KPIs of the jobs area, read by the Pulse store through the registry."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from memory.jobs.repository import JobKpiRepository
from tools.context import ToolContext
from tools.registry import tool


class KpiDay(BaseModel):
    day: dt.date = Field(description="UTC day")


def _bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


class JobKpis(BaseModel):
    jobs_run: int = Field(description="Jobs that finished (succeeded, failed or dead) on the day")
    succeeded: int
    failed: int
    dead: int
    job_success_rate: float | None = Field(description="Succeeded / finished, in percent; null with no jobs")


@tool("jobs.kpis", risk="read")
def job_kpis(ctx: ToolContext, params: KpiDay) -> JobKpis:
    """Count the organisation's jobs finished on a day and their success rate."""
    counts = JobKpiRepository(ctx.session).finished_by_state(ctx.org_id, *_bounds(params.day))
    ok, failed, dead = counts.get("succeeded", 0), counts.get("failed", 0), counts.get("dead", 0)
    total = ok + failed + dead
    return JobKpis(jobs_run=total, succeeded=ok, failed=failed, dead=dead,
                   job_success_rate=round(100.0 * ok / total, 2) if total else None)


class CreditKpis(BaseModel):
    credits_sold: int = Field(description="Credits granted or bought on the day")
    credits_spent: int = Field(description="Credits charged for runs on the day, net of refunds")


@tool("credits.kpis", risk="read")
def credit_kpis(ctx: ToolContext, params: KpiDay) -> CreditKpis:
    """Sum the organisation's credits granted and spent on a day (from the credit ledger)."""
    totals = JobKpiRepository(ctx.session).credit_totals(ctx.org_id, *_bounds(params.day))
    spent = -(totals.get("job_run", 0) + totals.get("refund", 0))
    return CreditKpis(credits_sold=max(0, totals.get("grant", 0)), credits_spent=max(0, spent))
