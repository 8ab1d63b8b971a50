"""The revenue ledger: append rows tied to Stripe objects, and the figures computed from it
(revenue per day, refunds, MRR, partner share). Nothing else in Levqor keeps a revenue number."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from levqor.settings import get_settings
from memory.billing.models import RevenueEntry
from memory.billing.repository import BillingRepository
from memory.db import aware, utcnow
from memory.identity.repository import IdentityRepository
from tools.billing import catalogue
from tools.context import ToolContext
from tools.enterprise.rbac import is_platform
from tools.enterprise.sla import CreditNoteRead
from tools.registry import tool

MONEY_IN: tuple[str, ...] = ("subscription", "proration", "credit_pack")
MONEY_OUT: tuple[str, ...] = ("refund",)
PARTNER: tuple[str, ...] = ("partner_payout", "partner_payout_reversal")


def append(session: Session, entry: RevenueEntry) -> bool:
    """Append a ledger row; False when that Stripe object already has a row of that kind (a replay)."""
    return BillingRepository(session).add_entry(entry)


def platform_scope(ctx: ToolContext) -> bool:
    """Whether the caller sees platform-wide revenue: a platform principal, or any principal of a staff
    organisation (the operator's own Pulse snapshots run as a system principal of that organisation)."""
    p = ctx.principal
    if is_platform(p):
        return True
    if p.org_id is None:
        return False
    org = IdentityRepository(ctx.session).org(p.org_id)
    return org is not None and org.slug in get_settings().staff_orgs


def _bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


def mrr_minor(session: Session, at: dt.datetime, *, org_id: int | None = None) -> int:
    """Monthly recurring revenue at ``at``, from the ledger: for each organisation, the latest payment
    whose billed period covers ``at``. A period invoice counts its amount (a yearly one as a twelfth); a
    proration (upgrade, downgrade, seats) counts the list price of what it moved to, since its own amount
    covers only the rest of a period."""
    latest: dict[int | None, RevenueEntry] = {}
    for row in BillingRepository(session).subscriptions_covering(at, org_id=org_id):
        latest[row.org_id] = row
    total = 0
    for row in latest.values():
        interval: catalogue.Interval = "year" if row.interval == "year" else "month"
        if row.kind == "subscription":
            total += row.amount_minor // (12 if interval == "year" else 1)
        elif row.plan in catalogue.PLANS:
            total += catalogue.plan(row.plan).monthly_value_minor(interval, max(row.seats, 1))
    return total


class BillingKpiDay(BaseModel):
    day: dt.date = Field(description="UTC day")


class BillingKpis(BaseModel):
    scope: Literal["platform", "org"]
    revenue_cents: int = Field(description="Money in on the day (subscriptions, prorations, credit packs) "
                                           "less refunds, from the revenue ledger")
    gross_cents: int
    refunds_cents: int = Field(description="Refunds on the day (a positive number)")
    partner_payouts_cents: int = Field(description="Transfers to partners on the day, net of reversals")
    mrr_cents: int = Field(description="Monthly recurring revenue at the end of the day")
    demo: bool = Field(description="Some ledger rows are demo data (seeded through the webhook path)")


@tool("billing.kpis", risk="read")
def billing_kpis(ctx: ToolContext, params: BillingKpiDay) -> BillingKpis:
    """Report revenue, refunds, partner payouts and MRR for a day from the revenue ledger."""
    platform = platform_scope(ctx)
    org_id = None if platform else ctx.org_id
    repo = BillingRepository(ctx.session)
    start, end = _bounds(params.day)
    sums = repo.sums_by_kind(org_id=org_id, start=start, end=end)
    gross = sum(sums.get(k, 0) for k in MONEY_IN)
    refunds = -sum(sums.get(k, 0) for k in MONEY_OUT)
    partner = -sum(sums.get(k, 0) for k in PARTNER)
    at = min(end - dt.timedelta(microseconds=1), utcnow())
    return BillingKpis(scope="platform" if platform else "org", revenue_cents=gross - refunds, gross_cents=gross,
                       refunds_cents=refunds, partner_payouts_cents=partner,
                       mrr_cents=mrr_minor(ctx.session, at, org_id=org_id), demo=repo.any_demo(org_id=org_id))


class LedgerRow(BaseModel):
    id: int
    kind: str
    amount_minor: int
    currency: str
    stripe_object_id: str
    plan: str
    interval: str
    seats: int
    occurred_at: dt.datetime
    demo: bool


class RevenueSummary(BaseModel):
    scope: Literal["platform", "org"]
    currency: str = catalogue.CURRENCY
    gross_minor: int
    refunds_minor: int
    net_minor: int
    partner_payouts_minor: int
    partner_share: float = Field(description="Partner payouts / net revenue (0 with no revenue)")
    mrr_minor: int
    rows: list[LedgerRow]


class RevenueQuery(BaseModel):
    days: int = Field(30, ge=1, le=3660, description="How many days back")
    limit: int = Field(50, ge=1, le=500)


@tool("billing.revenue", risk="read")
def revenue(ctx: ToolContext, params: RevenueQuery) -> RevenueSummary:
    """Summarise the revenue ledger over the last days (platform-wide for Levqor staff)."""
    platform = platform_scope(ctx)
    org_id = None if platform else ctx.org_id
    repo = BillingRepository(ctx.session)
    now = utcnow()
    start = now - dt.timedelta(days=params.days)
    sums = repo.sums_by_kind(org_id=org_id, start=start, end=now + dt.timedelta(seconds=1))
    gross = sum(sums.get(k, 0) for k in MONEY_IN)
    refunds = -sum(sums.get(k, 0) for k in MONEY_OUT)
    partner = -sum(sums.get(k, 0) for k in PARTNER)
    net = gross - refunds
    rows = repo.entries(org_id=org_id, start=start, limit=params.limit)
    return RevenueSummary(
        scope="platform" if platform else "org", gross_minor=gross, refunds_minor=refunds, net_minor=net,
        partner_payouts_minor=partner, partner_share=round(partner / net, 4) if net > 0 else 0.0,
        mrr_minor=mrr_minor(ctx.session, now, org_id=org_id),
        rows=[LedgerRow(id=r.id, kind=r.kind, amount_minor=r.amount_minor, currency=r.currency,
                        stripe_object_id=r.stripe_object_id, plan=r.plan, interval=r.interval, seats=r.seats,
                        occurred_at=aware(r.occurred_at), demo=r.demo) for r in rows])


class CreditNotesQuery(BaseModel):
    limit: int = Field(24, ge=1, le=500)


class CreditNotes(BaseModel):
    notes: list[CreditNoteRead]
    total_minor: int = Field(description="Sum of the credit notes listed")


@tool("billing.credit_notes", risk="read")
def credit_notes(ctx: ToolContext, params: CreditNotesQuery) -> CreditNotes:
    """List the organisation's credit notes (service credits owed for missed SLA months), newest first."""
    rows = BillingRepository(ctx.session).credit_notes(org_id=ctx.org_id, limit=params.limit)
    return CreditNotes(notes=[CreditNoteRead.of(n) for n in rows], total_minor=sum(n.amount_minor for n in rows))
