"""Credits: a balance per organisation, a ledger row for every change, a price per run by plan.

The balance only changes through ``UPDATE ... SET balance = balance - cost WHERE balance >= cost``,
so concurrent submissions can never take it below zero; a job is charged once (the ledger's
``(job_id, reason)`` is unique) however many times it runs.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from memory.identity.models import Organization
from memory.jobs.models import CreditLedger
from memory.jobs.repository import CreditRepository
from tools.context import ToolContext
from tools.enterprise import audit_log
from tools.errors import Forbidden, PaymentRequired
from tools.events.service import emit
from tools.jobs.metrics import CREDITS_SPENT
from tools.registry import tool

# Credits one job run costs, by organisation plan.
RUN_COST: dict[str, int] = {"free": 2, "pro": 1, "business": 1, "enterprise": 1}
LOW_BALANCE_RUNS = 10  # ``credits_low`` fires when the balance drops below this many runs


def run_cost(plan: str) -> int:
    return RUN_COST.get(plan, RUN_COST["free"])


def charge_job(session: Session, *, org_id: int, job_id: int, cost: int, actor: str) -> int:
    """Take ``cost`` for ``job_id`` or raise 402; write the ledger row. Returns the new balance."""
    repo = CreditRepository(session)
    after = repo.debit(org_id, cost)
    if after is None:
        balance = repo.balance(org_id)
        raise PaymentRequired(
            f"not enough credits: a run costs {cost}, the balance is {balance}",
            field="credits", extra={"balance": balance, "cost": cost},
        )
    repo.add_entry(CreditLedger(org_id=org_id, delta=-cost, balance_after=after, reason="job_run", job_id=job_id,
                                actor=actor))
    threshold = LOW_BALANCE_RUNS * cost
    if after < threshold <= after + cost:
        emit(session, "credits_low", {"balance": after, "cost_per_run": cost}, org_id=org_id)
    CREDITS_SPENT.inc(cost)
    return after


def refund_job(session: Session, *, org_id: int, job_id: int, cost: int, actor: str, note: str = "") -> int | None:
    """Give back a job's charge once (it never ran); None if already refunded or never charged."""
    repo = CreditRepository(session)
    if cost <= 0 or repo.has_entry(job_id, "refund") or not repo.has_entry(job_id, "job_run"):
        return None
    after = repo.credit(org_id, cost)
    repo.add_entry(CreditLedger(org_id=org_id, delta=cost, balance_after=after, reason="refund", job_id=job_id,
                                actor=actor, note=note[:500]))
    return after


# ---- tools ---------------------------------------------------------------------------------

class LedgerRead(BaseModel):
    id: int
    delta: int
    balance_after: int
    reason: str
    job_id: int | None
    actor: str
    note: str
    created_at: dt.datetime


class CreditsQuery(BaseModel):
    cursor: int | None = Field(None, ge=1, le=2**62, description="Ledger rows older than this id")
    limit: int = Field(20, ge=1, le=200)


class CreditsRead(BaseModel):
    balance: int
    cost_per_run: int
    plan: str
    ledger: list[LedgerRead]
    next_cursor: int | None


def _plan(ctx: ToolContext) -> str:
    org = ctx.session.get(Organization, ctx.org_id)
    return org.plan if org is not None else "free"


@tool("credits.get", risk="read")
def get_credits(ctx: ToolContext, params: CreditsQuery) -> CreditsRead:
    """Show the organisation's credit balance, price per run and recent ledger rows."""
    repo = CreditRepository(ctx.session)
    rows = repo.ledger(ctx.org_id, params.cursor, params.limit + 1)
    more = len(rows) > params.limit
    rows = rows[: params.limit]
    plan = _plan(ctx)
    return CreditsRead(
        balance=repo.balance(ctx.org_id), cost_per_run=run_cost(plan), plan=plan,
        ledger=[LedgerRead(id=r.id, delta=r.delta, balance_after=r.balance_after, reason=r.reason, job_id=r.job_id,
                           actor=r.actor, note=r.note, created_at=r.created_at) for r in rows],
        next_cursor=rows[-1].id if more else None,
    )


class CreditGrant(BaseModel):
    amount: int = Field(ge=1, le=10_000_000, description="Credits to add")
    note: str = Field("", max_length=500)


class CreditGrantOut(BaseModel):
    balance: int
    entry: LedgerRead


@tool("credits.grant", risk="financial")
def grant_credits(ctx: ToolContext, params: CreditGrant) -> CreditGrantOut:
    """Add credits to the organisation's balance (a ledger row records who and why)."""
    p = ctx.principal
    if p.key_mode == "test":
        # A test-mode key must never change the organisation's one real balance.
        raise Forbidden("a test-mode API key cannot add to the organisation's live credit balance", field="amount")
    if p.kind != "system":
        # Customers buy credits through billing; only Levqor itself (CLI, seed, billing) adds them directly.
        raise Forbidden("credits can be granted only by Levqor operators", field="amount")
    repo = CreditRepository(ctx.session)
    after = repo.credit(ctx.org_id, params.amount)
    entry = CreditLedger(org_id=ctx.org_id, delta=params.amount, balance_after=after, reason="grant",
                         actor=ctx.principal.actor, note=params.note)
    repo.add_entry(entry)
    audit_log.record(ctx, "credits.granted", f"org:{ctx.org_id}", detail={"amount": params.amount,
                                                                          "balance": after, "note": params.note})
    return CreditGrantOut(balance=after, entry=LedgerRead(
        id=entry.id, delta=entry.delta, balance_after=after, reason="grant", job_id=None, actor=entry.actor,
        note=entry.note, created_at=entry.created_at))
