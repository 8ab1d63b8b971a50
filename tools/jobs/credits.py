"""Credits: a balance per organisation, a ledger row for every change, a price per run by plan.

Test mode has its own balance (``test_credit_accounts``): ``LEVQOR_TEST_CREDITS_MONTHLY`` credits,
refilled on the first charge of each calendar month (UTC) and restored by ``POST /v1/test-data/reset``;
its ledger rows carry ``mode = 'test'`` and never touch the live balance.

The balance only changes through ``UPDATE ... SET balance = balance - cost WHERE balance >= cost``,
so concurrent submissions can never take it below zero; a job is charged once (the ledger's
``(job_id, reason)`` is unique) however many times it runs.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from levqor.settings import get_settings
from memory.db import utcnow
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


def period_now() -> str:
    """The current month (UTC), ``YYYY-MM``: test credits are refilled once per period."""
    return utcnow().strftime("%Y-%m")


def next_refill(now: dt.datetime | None = None) -> dt.date:
    """The first day of next month (UTC), when test credits are refilled."""
    d = (now or utcnow()).date()
    return dt.date(d.year + (d.month == 12), d.month % 12 + 1, 1)


def test_balance(session: Session, org_id: int) -> int:
    """The organisation's test-mode balance as the next charge sees it (a due monthly refill counted);
    read-only."""
    account = CreditRepository(session).test_account(org_id)
    if account is None or account[1] < period_now():
        return get_settings().test_credits_monthly
    return account[0]


def _charge_test(session: Session, *, org_id: int, job_id: int, cost: int, actor: str) -> int:
    repo = CreditRepository(session)
    monthly = get_settings().test_credits_monthly
    repo.refill_test(org_id, period_now(), monthly)
    after = repo.debit_test(org_id, cost)
    if after is None:
        balance = repo.test_balance(org_id)
        refill = next_refill().isoformat()
        raise PaymentRequired(
            f"not enough test credits: a run costs {cost}, the test balance is {balance}. Test credits "
            f"({monthly} a month) are refilled on {refill}; an owner or admin can restore them now with "
            "POST /v1/test-data/reset (which also deletes the test data), or run the job with a live key",
            field="credits", extra={"balance": balance, "cost": cost, "mode": "test", "refills_on": refill,
                                    "reset": "/v1/test-data/reset"},
        )
    repo.add_entry(CreditLedger(org_id=org_id, delta=-cost, balance_after=after, reason="job_run", job_id=job_id,
                                actor=actor, mode="test"))
    return after


def charge_job(session: Session, *, org_id: int, job_id: int, cost: int, actor: str, mode: str = "live") -> int:
    """Take ``cost`` for ``job_id`` (from the test balance for a test job) or raise 402; write the ledger
    row. Returns the new balance."""
    if mode == "test":
        return _charge_test(session, org_id=org_id, job_id=job_id, cost=cost, actor=actor)
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


def refund_job(session: Session, *, org_id: int, job_id: int, cost: int, actor: str, note: str = "",
               mode: str = "live") -> int | None:
    """Give back a job's charge once (it never ran) to the balance of its mode; None if already refunded
    or never charged."""
    repo = CreditRepository(session)
    if cost <= 0 or repo.has_entry(job_id, "refund") or not repo.has_entry(job_id, "job_run"):
        return None
    after = repo.credit_test(org_id, cost) if mode == "test" else repo.credit(org_id, cost)
    repo.add_entry(CreditLedger(org_id=org_id, delta=cost, balance_after=after, reason="refund", job_id=job_id,
                                actor=actor, note=note[:500], mode=mode))
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
    mode: str = Field("live", description="`test` for a test-mode key: the separate test balance")
    refills_on: dt.date | None = Field(None, description="Test mode: when the test balance is refilled")


def _plan(ctx: ToolContext) -> str:
    org = ctx.session.get(Organization, ctx.org_id)
    return org.plan if org is not None else "free"


@tool("credits.get", risk="read")
def get_credits(ctx: ToolContext, params: CreditsQuery) -> CreditsRead:
    """Show the credit balance of the caller's mode (live, or test), price per run and recent ledger rows."""
    repo = CreditRepository(ctx.session)
    rows = repo.ledger(ctx.org_id, params.cursor, params.limit + 1, ctx.mode)
    more = len(rows) > params.limit
    rows = rows[: params.limit]
    plan = _plan(ctx)
    test = ctx.mode == "test"
    return CreditsRead(
        balance=test_balance(ctx.session, ctx.org_id) if test else repo.balance(ctx.org_id),
        cost_per_run=run_cost(plan), plan=plan, mode=ctx.mode, refills_on=next_refill() if test else None,
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
        # Test credits are refilled monthly or reset (POST /v1/test-data/reset), never granted.
        raise Forbidden("a test-mode API key cannot grant credits: test credits are refilled monthly, or "
                        "restored by POST /v1/test-data/reset", field="amount")
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
