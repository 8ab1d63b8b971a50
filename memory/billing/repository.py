"""Billing SQL: accounts, the Stripe event inbox, the revenue ledger (insert and read only), flags."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from memory.billing.models import BillingAccount, BillingEvent, BillingFlag, CreditNote, RevenueEntry

_Q = TypeVar("_Q", bound=Select[*tuple[Any, ...]])


def _scoped(q: _Q, org_id: int | None, start: dt.datetime | None, end: dt.datetime | None) -> _Q:
    """``q`` limited to one organisation's ledger rows (all when None) that occurred in ``[start, end)``."""
    if org_id is not None:
        q = q.where(RevenueEntry.org_id == org_id)
    if start is not None:
        q = q.where(RevenueEntry.occurred_at >= start)
    if end is not None:
        q = q.where(RevenueEntry.occurred_at < end)
    return q


class BillingRepository:
    def __init__(self, session: Session):
        self.session = session

    @classmethod
    def from_session(cls, session: Session) -> BillingRepository:
        return cls(session)

    # ---- accounts ----
    def account(self, org_id: int) -> BillingAccount | None:
        return self.session.get(BillingAccount, org_id)

    def account_for_update(self, org_id: int) -> BillingAccount:
        """The organisation's account row (created if missing), locked for this transaction on PostgreSQL."""
        acct = self.session.execute(
            select(BillingAccount).where(BillingAccount.org_id == org_id).with_for_update()).scalar_one_or_none()
        if acct is None:
            acct = BillingAccount(org_id=org_id, plan="free", interval="month", seats=1, status="none",
                                  subscription_event_at=0, demo=False)
            self.session.add(acct)
            self.session.flush()
        return acct

    def account_by_customer(self, customer_id: str) -> BillingAccount | None:
        return self.session.execute(select(BillingAccount).where(
            BillingAccount.stripe_customer_id == customer_id)).scalar_one_or_none()

    def accounts_past_grace(self, now: dt.datetime) -> list[BillingAccount]:
        return list(self.session.execute(select(BillingAccount).where(
            BillingAccount.status == "past_due", BillingAccount.grace_until.is_not(None),
            BillingAccount.grace_until <= now).order_by(BillingAccount.org_id)).scalars())

    def active_accounts(self) -> list[BillingAccount]:
        return list(self.session.execute(select(BillingAccount).where(
            BillingAccount.status.in_(("active", "past_due"))).order_by(BillingAccount.org_id)).scalars())

    # ---- event inbox ----
    def record_event(self, event: BillingEvent) -> bool:
        """Insert the event; False when its id is already there (a redelivery or a concurrent twin)."""
        if self.session.get(BillingEvent, event.id) is not None:
            return False
        try:
            with self.session.begin_nested():
                self.session.add(event)
                self.session.flush()
        except IntegrityError:
            return False
        return True

    def events(self, *, org_id: int | None = None, limit: int = 50) -> list[BillingEvent]:
        q = select(BillingEvent).order_by(BillingEvent.received_at.desc(), BillingEvent.id.desc()).limit(limit)
        if org_id is not None:
            q = q.where(BillingEvent.org_id == org_id)
        return list(self.session.execute(q).scalars())

    # ---- revenue ledger (append-only: no update or delete here, by design) ----
    def has_entry(self, stripe_object_id: str, kind: str) -> bool:
        return self.session.execute(select(RevenueEntry.id).where(
            RevenueEntry.stripe_object_id == stripe_object_id, RevenueEntry.kind == kind)).first() is not None

    def add_entry(self, entry: RevenueEntry) -> bool:
        """Append a row; False (nothing written) when that Stripe object already has a row of that kind."""
        if self.has_entry(entry.stripe_object_id, entry.kind):
            return False
        self.session.add(entry)
        self.session.flush()
        return True

    def entries(self, *, org_id: int | None = None, start: dt.datetime | None = None,
                end: dt.datetime | None = None, kinds: Sequence[str] | None = None,
                limit: int | None = None, offset: int = 0) -> list[RevenueEntry]:
        q = _scoped(select(RevenueEntry).order_by(RevenueEntry.occurred_at.desc(), RevenueEntry.id.desc()),
                    org_id, start, end)
        if kinds is not None:
            q = q.where(RevenueEntry.kind.in_(tuple(kinds)))
        if limit is not None:
            q = q.limit(limit)
        if offset:
            q = q.offset(offset)
        return list(self.session.execute(q).scalars())

    def sums_by_kind(self, *, org_id: int | None = None, start: dt.datetime | None = None,
                     end: dt.datetime | None = None) -> dict[str, int]:
        q = _scoped(select(RevenueEntry.kind, func.coalesce(func.sum(RevenueEntry.amount_minor), 0)).group_by(
            RevenueEntry.kind), org_id, start, end)
        return {str(k): int(v) for k, v in self.session.execute(q)}

    def subscriptions_covering(self, at: dt.datetime, *, org_id: int | None = None) -> list[RevenueEntry]:
        """Subscription and proration rows paid by ``at`` whose billed period contains it (for MRR),
        oldest first."""
        q = select(RevenueEntry).where(
            RevenueEntry.kind.in_(("subscription", "proration")), RevenueEntry.period_start <= at,
            RevenueEntry.period_end > at, RevenueEntry.occurred_at <= at).order_by(
            RevenueEntry.occurred_at, RevenueEntry.id)
        if org_id is not None:
            q = q.where(RevenueEntry.org_id == org_id)
        return list(self.session.execute(q).scalars())

    def any_demo(self, *, org_id: int | None = None) -> bool:
        q = select(RevenueEntry.id).where(RevenueEntry.demo.is_(True)).limit(1)
        if org_id is not None:
            q = q.where(RevenueEntry.org_id == org_id)
        return self.session.execute(q).first() is not None

    # ---- flags ----
    def add_flag(self, flag: BillingFlag) -> None:
        self.session.add(flag)
        self.session.flush()

    def flags(self, *, org_id: int | None = None, limit: int = 50) -> list[BillingFlag]:
        q = select(BillingFlag).order_by(BillingFlag.id.desc()).limit(limit)
        if org_id is not None:
            q = q.where(BillingFlag.org_id == org_id)
        return list(self.session.execute(q).scalars())

    # ---- credit notes (one per organisation, period and source) ----
    def credit_note(self, org_id: int, period: str, source: str = "sla") -> CreditNote | None:
        return self.session.execute(select(CreditNote).where(
            CreditNote.org_id == org_id, CreditNote.period == period, CreditNote.source == source)
        ).scalar_one_or_none()

    def add_credit_note(self, note: CreditNote) -> bool:
        """Insert ``note``; False (nothing written) when that organisation, period and source already has
        one, including when a concurrent transaction inserted it first (the unique key decides)."""
        if self.credit_note(note.org_id, note.period, note.source) is not None:
            return False
        try:
            with self.session.begin_nested():
                self.session.add(note)
                self.session.flush()
        except IntegrityError:
            return False
        return True

    def credit_notes(self, *, org_id: int | None = None, limit: int = 50) -> list[CreditNote]:
        q = select(CreditNote).order_by(CreditNote.period.desc(), CreditNote.id.desc()).limit(limit)
        if org_id is not None:
            q = q.where(CreditNote.org_id == org_id)
        return list(self.session.execute(q).scalars())
