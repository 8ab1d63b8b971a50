"""Billing: each organisation's Stripe customer and subscription, the Stripe event inbox, the
append-only revenue ledger and the flags raised when Stripe and the catalogue disagree.

Money is integer minor units with an ISO currency. Revenue rows keep a plain ``org_id`` (no foreign
key): money history outlives an organisation, and nothing here is ever updated or deleted.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from memory.db import Base, UTCDateTime, utcnow

_BigId = BigInteger().with_variant(Integer, "sqlite")


class BillingAccount(Base):
    """An organisation's Stripe customer, its current subscription and its dunning state."""

    __tablename__ = "billing_accounts"

    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True)
    stripe_customer_id: Mapped[str | None] = mapped_column(String(100), nullable=True, unique=True)
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(100), nullable=True, index=True)
    plan: Mapped[str] = mapped_column(String(32), default="free")
    interval: Mapped[str] = mapped_column(String(8), default="month")
    seats: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default="none")  # none | active | past_due | canceled
    current_period_end: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Stripe ``created`` of the newest subscription-changing event applied: older ones arrive late.
    subscription_event_at: Mapped[int] = mapped_column(BigInteger, default=0)
    grace_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    downgraded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    demo: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class BillingEvent(Base):
    """A Stripe event received (the inbox): written in the same transaction as its effects, so an
    event is applied exactly once however often Stripe delivers it and wherever a process dies."""

    __tablename__ = "billing_events"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    created: Mapped[int] = mapped_column(BigInteger)  # Stripe's timestamp of the event
    org_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    outcome: Mapped[str] = mapped_column(String(16), default="applied")  # applied | ignored | stale | flagged
    note: Mapped[str] = mapped_column(String(500), default="")
    demo: Mapped[bool] = mapped_column(Boolean, default=False)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class RevenueEntry(Base):
    """Money in (positive) or out (negative), one row per Stripe object and kind, never changed."""

    __tablename__ = "revenue_ledger"
    __table_args__ = (UniqueConstraint("stripe_object_id", "kind"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    org_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    # subscription | proration | credit_pack | refund | partner_payout | partner_payout_reversal
    kind: Mapped[str] = mapped_column(String(32))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="usd")
    stripe_object_id: Mapped[str] = mapped_column(String(100))
    event_id: Mapped[str] = mapped_column(String(100))
    plan: Mapped[str] = mapped_column(String(32), default="")
    interval: Mapped[str] = mapped_column(String(8), default="")
    seats: Mapped[int] = mapped_column(Integer, default=0)
    period_start: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    period_end: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    demo: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class BillingFlag(Base):
    """Stripe and the catalogue disagree (an amount, a price): shown on /billing, resolved by a person."""

    __tablename__ = "billing_flags"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    event_id: Mapped[str] = mapped_column(String(100))
    stripe_object_id: Mapped[str] = mapped_column(String(100), default="")
    kind: Mapped[str] = mapped_column(String(32))  # amount_mismatch | unknown_price | currency_mismatch
    expected_minor: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    actual_minor: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    detail: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class CreditNote(Base):
    """Money owed back to an organisation (a service credit for a missed SLA month), at most one per
    organisation, period and source: issuing twice, concurrently or after a crash, writes one row."""

    __tablename__ = "billing_credit_notes"
    __table_args__ = (UniqueConstraint("org_id", "period", "source"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(Integer, index=True)
    period: Mapped[str] = mapped_column(String(7))  # YYYY-MM
    source: Mapped[str] = mapped_column(String(16), default="sla")
    amount_minor: Mapped[int] = mapped_column(BigInteger)  # positive: what Levqor owes
    currency: Mapped[str] = mapped_column(String(3), default="usd")
    percent: Mapped[int] = mapped_column(Integer, default=0)  # of the fee the credit is
    fee_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    plan: Mapped[str] = mapped_column(String(32), default="")
    reason: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[str] = mapped_column(String(16), default="issued")  # issued | applied
    demo: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
