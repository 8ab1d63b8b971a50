"""Payout runs: partners' shares of unpaid revenue, transferred through Stripe Connect exactly once.

A payout run for a period (1) prepares, in one transaction, one ``partner_payouts`` row per
partner with the unpaid revenue up to that period (partner share = sum of
``floor(amount * bps / 10000)``; platform fee = the rest), skipping suspended partners (held)
and shares under ``LEVQOR_PAYOUT_MINIMUM_MINOR`` (they roll over); then (2) for each payout,
marks it ``transferring`` and commits, calls Stripe ``transfers.create`` with the idempotency key
``levqor-payout-{id}`` derived from the row, and records the transfer. A run repeated after a
crash between the Stripe call and the record sends the same key, so Stripe returns the same
transfer: a partner is never paid twice.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Literal

from pydantic import BaseModel, Field

from levqor.settings import get_settings
from memory.billing.models import RevenueEntry
from memory.billing.repository import BillingRepository
from memory.db import session_scope, utcnow
from memory.partner.models import Payout
from memory.partner.repository import PartnerRepository
from tools.context import SYSTEM, ToolContext
from tools.enterprise import audit_log
from tools.enterprise.rbac import is_staff, require_staff
from tools.partner_api import metrics
from tools.partner_api.revenue import PeriodIn, accrue_subscriptions, partner_share, period_of
from tools.partner_api.stripe_connect import stripe_client
from tools.registry import tool
from tools.schedules import Schedule

log = logging.getLogger(__name__)


class PayoutRead(BaseModel):
    id: int
    partner_id: int
    period: str
    currency: str
    gross_minor: int
    platform_fee_minor: int
    amount_minor: int
    status: str
    stripe_transfer_id: str | None
    error: str | None
    created_at: dt.datetime

    @classmethod
    def of(cls, p: Payout) -> PayoutRead:
        return cls(id=p.id, partner_id=p.partner_id, period=p.period, currency=p.currency, gross_minor=p.gross_minor,
                   platform_fee_minor=p.platform_fee_minor, amount_minor=p.amount_minor, status=p.status,
                   stripe_transfer_id=p.stripe_transfer_id, error=p.error, created_at=p.created_at)


class HeldShare(BaseModel):
    partner_id: int
    amount_minor: int
    reason: Literal["partner_suspended", "below_minimum", "no_stripe_account"]


class PrepareResult(BaseModel):
    period: str
    payouts: list[PayoutRead]
    held: list[HeldShare]


@tool("payouts.prepare", risk="financial")
def prepare_payouts(ctx: ToolContext, params: PeriodIn) -> PrepareResult:
    """Compute each partner's share of unpaid revenue up to a month and create its payout (Levqor staff)."""
    require_staff(ctx, "run payouts")
    minimum = get_settings().payout_minimum_minor
    repo = PartnerRepository(ctx.session)
    created: list[PayoutRead] = []
    held: list[HeldShare] = []
    for partner in repo.partners():
        entries = repo.unpaid_revenue(partner.id, params.period)
        if not entries:
            continue
        gross = sum(e.amount_minor for e in entries)
        share = sum(partner_share(e.amount_minor, e.share_bps) for e in entries)
        if partner.status != "active":
            held.append(HeldShare(partner_id=partner.id, amount_minor=share, reason="partner_suspended"))
            continue
        if share < minimum:
            held.append(HeldShare(partner_id=partner.id, amount_minor=share, reason="below_minimum"))
            continue
        if repo.payout_for(partner.id, params.period, "usd") is not None:
            continue  # this period is paid; newer revenue rolls into the next run
        if not partner.stripe_account_id:
            held.append(HeldShare(partner_id=partner.id, amount_minor=share, reason="no_stripe_account"))
        payout = Payout(partner_id=partner.id, period=params.period, currency="usd", gross_minor=gross,
                        platform_fee_minor=gross - share, amount_minor=share, status="pending",
                        idempotency_key=f"pending-{partner.id}-{params.period}")
        repo.add(payout)
        payout.idempotency_key = f"levqor-payout-{payout.id}"
        repo.attach_revenue([e.id for e in entries], payout.id)
        ctx.session.flush()
        created.append(PayoutRead.of(payout))
    audit_log.record(ctx, "payouts.prepared", f"period:{params.period}",
                     detail={"payouts": [p.id for p in created], "held": [h.model_dump() for h in held]})
    return PrepareResult(period=params.period, payouts=created, held=held)


# ---- transfers (each step its own transaction: the commit points are what make a re-run safe) -----

def _record_transfer(payout_id: int, transfer: Any) -> None:
    """Store a Stripe transfer on its payout and its money-out row in the revenue ledger, in one
    transaction (separate so tests can crash right before it). The ledger row is keyed by the transfer
    id, so a ``transfer.created`` webhook for the same transfer adds nothing, and vice versa."""
    with session_scope() as s:
        p = s.get(Payout, payout_id)
        assert p is not None
        p.stripe_transfer_id, p.status, p.error, p.updated_at = transfer["id"], "transferred", None, utcnow()
        partner = PartnerRepository(s).partner(p.partner_id)
        created = transfer["created"] if "created" in transfer else None
        BillingRepository(s).add_entry(RevenueEntry(
            org_id=partner.org_id if partner is not None else None, kind="partner_payout",
            amount_minor=-int(transfer["amount"]), currency=str(transfer["currency"]).lower(),
            stripe_object_id=str(transfer["id"]), event_id=f"payout:{payout_id}",
            occurred_at=dt.datetime.fromtimestamp(int(created), dt.UTC) if created else utcnow()))
    metrics.PAYOUTS.labels(outcome="transferred").inc()
    metrics.PAYOUT_AMOUNT.labels(currency=str(transfer["currency"])).inc(int(transfer["amount"]))


def transfer_pending(client: Any | None = None) -> list[int]:
    """Send every pending (or interrupted) payout to Stripe once; return the payout ids transferred.

    Each payout is marked ``transferring`` and committed before the call, and the call carries
    the payout's idempotency key, so a run after a crash re-sends the same request and Stripe
    answers with the transfer it already made.
    """
    import stripe  # kept lazy: start-up time

    done: list[int] = []
    with session_scope() as s:
        todo = [p.id for p in PartnerRepository(s).payouts(statuses=("pending", "transferring"))]
    for payout_id in todo:
        with session_scope() as s:
            repo = PartnerRepository(s)
            p = repo.payout(payout_id)
            partner = repo.partner(p.partner_id) if p else None
            if p is None or partner is None or p.status not in ("pending", "transferring"):
                continue
            if partner.status != "active" or not partner.stripe_account_id:
                continue  # held until reinstated or onboarded
            p.status, p.updated_at = "transferring", utcnow()
            req = {"amount": p.amount_minor, "currency": p.currency, "destination": partner.stripe_account_id,
                   "transfer_group": f"levqor-{p.period}",
                   "description": f"Levqor plugin revenue share {p.period}",
                   "metadata": {"levqor_payout_id": str(p.id), "partner_id": str(partner.id), "period": p.period}}
            key = p.idempotency_key
        client = client or stripe_client()
        try:
            transfer = client.v1.transfers.create(params=req, options={"idempotency_key": key})
        except (stripe.InvalidRequestError, stripe.PermissionError, stripe.CardError) as exc:
            with session_scope() as s:
                p = s.get(Payout, payout_id)
                if p is not None:
                    p.status, p.error, p.updated_at = "failed", str(exc.user_message or exc)[:1000], utcnow()
            metrics.PAYOUTS.labels(outcome="failed").inc()
            log.error("payout failed", extra={"fields": {"payout": payout_id, "error": str(exc)}})
            continue
        except stripe.StripeError as exc:  # network or server trouble: stays transferring, retried
            log.warning("payout transfer interrupted", extra={"fields": {"payout": payout_id, "error": str(exc)}})
            continue
        _record_transfer(payout_id, transfer)
        done.append(payout_id)
    return done


def run_payouts(period: str) -> tuple[PrepareResult, list[int]]:
    """Prepare the period's payouts (committed) then transfer them: the CLI and scheduled entry point."""
    with session_scope() as s:
        prepared = prepare_payouts(ToolContext(s, SYSTEM), PeriodIn(period=period))
    return prepared, transfer_pending()


def monthly() -> None:
    """Scheduled on the 1st: charge subscriptions for the new month, then pay the previous month's shares."""
    now = utcnow()
    with session_scope() as s:
        accrue_subscriptions(ToolContext(s, SYSTEM), PeriodIn(period=period_of(now)))
    if get_settings().stripe_api_key:
        last = now.replace(day=1) - dt.timedelta(days=1)
        run_payouts(period_of(last))


SCHEDULES = (Schedule("partners.payouts", "cron:0 6 1 * *", monthly),)


# ---- the payout list -----------------------------------------------------------------------------

class PayoutQuery(BaseModel):
    status: str | None = Field(None, max_length=16)


class PayoutList(BaseModel):
    items: list[PayoutRead]


@tool("payouts.list", risk="read")
def list_payouts(ctx: ToolContext, params: PayoutQuery) -> PayoutList:
    """List payouts: the partner's own, or every partner's for Levqor staff."""
    repo = PartnerRepository(ctx.session)
    statuses = [params.status] if params.status else None
    if is_staff(ctx):
        rows = repo.payouts(statuses=statuses)
    else:
        partner = repo.partner_for_org(ctx.org_id)
        rows = repo.payouts(partner_id=partner.id, statuses=statuses) if partner else []
    return PayoutList(items=[PayoutRead.of(p) for p in rows])
