"""Partners, plugins and their versions, installs, webhook deliveries, revenue ledger and payouts.

Money is in integer minor units (cents) with an ISO currency; revenue shares in basis points.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from memory.db import Base, UTCDateTime, utcnow

PLUGIN_STATES: tuple[str, ...] = ("draft", "in_review", "listed", "suspended", "retired")
_BigId = BigInteger().with_variant(Integer, "sqlite")
# Webhook deliveries a claim may take (the predicate of their partial index; claims repeat it literally).
CLAIMABLE = "status IN ('pending', 'failing', 'delivering')"


class Partner(Base):
    """An organisation that publishes plugins and is paid a revenue share (Stripe Connect account)."""

    __tablename__ = "partners"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    website: Mapped[str] = mapped_column(String(500), default="")
    contact_email: Mapped[str] = mapped_column(String(320))
    bio: Mapped[str] = mapped_column(String(2000), default="")
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | suspended
    stripe_account_id: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    payouts_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    details_submitted: Mapped[bool] = mapped_column(Boolean, default=False)
    # A demo partner (make run's seed): its plugins are audited for real, but failed audits are never
    # enforced against it (migration 1810).
    demo: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Plugin(Base):
    """A plugin (manifest ``id`` is ``slug``); its manifest lives in versions."""

    __tablename__ = "plugins"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(16), default="draft", index=True)
    listed_version_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rating_sum: Mapped[int] = mapped_column(Integer, default=0)
    rating_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PluginVersion(Base):
    """One manifest version; immutable once listed (a change is a new version)."""

    __tablename__ = "plugin_versions"
    __table_args__ = (UniqueConstraint("plugin_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plugin_id: Mapped[int] = mapped_column(ForeignKey("plugins.id", ondelete="CASCADE"), index=True)
    version: Mapped[str] = mapped_column(String(64))
    # draft | in_review | listed | superseded | rejected
    state: Mapped[str] = mapped_column(String(16), default="draft")
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    review_note: Mapped[str] = mapped_column(String(2000), default="")
    reviewed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    listed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PluginInstall(Base):
    """A plugin installed by an organisation: granted scopes, signing secrets, endpoint health."""

    __tablename__ = "plugin_installs"
    __table_args__ = (UniqueConstraint("plugin_id", "org_id", "mode"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plugin_id: Mapped[int] = mapped_column(ForeignKey("plugins.id", ondelete="CASCADE"), index=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("plugin_versions.id"))
    # live | test: a test install receives only test events and never accrues revenue (migration 1101)
    mode: Mapped[str] = mapped_column(String(8), default="live", server_default="live")
    status: Mapped[str] = mapped_column(String(16), default="active", index=True)  # active | uninstalled
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Standard Webhooks secrets (``whsec_`` + base64). During rotation the previous one stays valid.
    secret: Mapped[str] = mapped_column(String(100))
    previous_secret: Mapped[str | None] = mapped_column(String(100), nullable=True)
    previous_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    endpoint_disabled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    failing_since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    installed_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    uninstalled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PluginRating(Base):
    __tablename__ = "plugin_ratings"
    __table_args__ = (UniqueConstraint("plugin_id", "org_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plugin_id: Mapped[int] = mapped_column(ForeignKey("plugins.id", ondelete="CASCADE"), index=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    stars: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(Base):
    """The partner webhook outbox: one platform event to one install, retried until done."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "install_id"),
        # Only claimable rows (migration 0700): the churn of finished rows leaves the claim path alone.
        Index("ix_webhook_deliveries_claimable", "next_attempt_at", "id",
              postgresql_where=text(CLAIMABLE), sqlite_where=text(CLAIMABLE)),
        Index("ix_webhook_deliveries_install_created", "install_id", "created_at"),
        # The fan-out's admission check reads each organisation's unfinished due work (migration 0900).
        Index("ix_webhook_deliveries_org_claimable", "org_id", "install_id", "next_attempt_at",
              postgresql_where=text(CLAIMABLE), sqlite_where=text(CLAIMABLE)),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    uid: Mapped[str] = mapped_column(String(64), unique=True)  # webhook-id, stable across retries
    event_id: Mapped[int] = mapped_column(Integer, index=True)
    event_name: Mapped[str] = mapped_column(String(100))
    event_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    install_id: Mapped[int] = mapped_column(ForeignKey("plugin_installs.id", ondelete="CASCADE"))
    plugin_id: Mapped[int] = mapped_column(Integer, index=True)
    org_id: Mapped[int] = mapped_column(Integer, index=True)
    url: Mapped[str] = mapped_column(String(2000))
    body: Mapped[str] = mapped_column(Text)  # exactly the bytes signed and sent (UTF-8 JSON)
    # pending | delivering | failing | succeeded | failed
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    last_latency_ms: Mapped[float | None] = mapped_column(nullable=True)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    replays: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookAttempt(Base):
    """The delivery log: one row per HTTP attempt (request headers, response code, latency)."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    request_headers: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latency_ms: Mapped[float] = mapped_column(default=0.0)
    error: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    response_excerpt: Mapped[str] = mapped_column(String(500), default="")


class WebhookDeferral(Base):
    """Deliveries the fan-out shed under overload, one row per install and minute of events.

    Shed work is recorded, not dropped: the events of ``org_id`` with ids in
    ``[first_event_id, last_event_id]`` that the install subscribes to and that have no delivery
    were shed (``shed`` counts them). A replay (``webhooks.replay_deferred``) creates those
    deliveries, event by event, from ``replayed_through`` on; ``status`` is ``deferred`` until every
    event of the range was replayed, then ``replayed``.
    """

    __tablename__ = "webhook_deferrals"
    __table_args__ = (UniqueConstraint("install_id", "bucket"),
                      Index("ix_webhook_deferrals_org_status", "org_id", "status"))

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    install_id: Mapped[int] = mapped_column(ForeignKey("plugin_installs.id", ondelete="CASCADE"))
    plugin_id: Mapped[int] = mapped_column(Integer, index=True)
    org_id: Mapped[int] = mapped_column(Integer)
    bucket: Mapped[dt.datetime] = mapped_column(UTCDateTime)  # the minute the shed events happened in
    reason: Mapped[str] = mapped_column(String(32))  # org_backlog | endpoint_lag (the latest)
    first_event_id: Mapped[int] = mapped_column(BigInteger)
    last_event_id: Mapped[int] = mapped_column(BigInteger)
    first_event_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_event_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    shed: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="deferred")  # deferred | replayed
    replayed_through: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # last event id replayed
    replayed: Mapped[int] = mapped_column(Integer, default=0)  # deliveries created by replays
    replayed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class PartnerEmail(Base):
    """Email to a partner, queued here and sent by the shared mail transport (SMTP or .eml) or a set sender."""

    __tablename__ = "partner_emails"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id", ondelete="CASCADE"), index=True)
    to: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class RevenueEntry(Base):
    """Plugin revenue from one org: a subscription charge or per-run credit usage (minor units)."""

    __tablename__ = "plugin_revenue"
    __table_args__ = (Index("ix_plugin_revenue_partner_unpaid", "partner_id", "payout_id"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    source_ref: Mapped[str] = mapped_column(String(200), unique=True)  # accrual idempotency
    plugin_id: Mapped[int] = mapped_column(ForeignKey("plugins.id"), index=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    org_id: Mapped[int] = mapped_column(Integer, index=True)
    kind: Mapped[str] = mapped_column(String(16))  # subscription | per_run
    period: Mapped[str] = mapped_column(String(7), index=True)  # YYYY-MM
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="usd")
    share_bps: Mapped[int] = mapped_column(Integer)  # partner share at accrual time
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    payout_id: Mapped[int | None] = mapped_column(ForeignKey("partner_payouts.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Payout(Base):
    """One transfer to one partner for one period; ``idempotency_key`` is sent to Stripe."""

    __tablename__ = "partner_payouts"
    __table_args__ = (UniqueConstraint("partner_id", "period", "currency"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)
    period: Mapped[str] = mapped_column(String(7))
    currency: Mapped[str] = mapped_column(String(3), default="usd")
    gross_minor: Mapped[int] = mapped_column(BigInteger)
    platform_fee_minor: Mapped[int] = mapped_column(BigInteger)
    amount_minor: Mapped[int] = mapped_column(BigInteger)  # the partner share, transferred
    # pending | transferring | transferred | paid | reversed | failed
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    stripe_transfer_id: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    error: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class StripeEventSeen(Base):
    """Stripe webhook events already applied (Stripe delivers at least once)."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
