"""Webhook tools: the delivery log (with every attempt) and replays."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from memory.db import utcnow
from memory.partner.models import WebhookAttempt, WebhookDelivery
from memory.partner.repository import PartnerRepository
from tools.context import ToolContext
from tools.enterprise import audit_log
from tools.errors import Conflict, NotFound
from tools.partner_api.access import install_for_org_or_partner, visible_to_org_or_publisher
from tools.partner_api.fanout import mark_queued
from tools.registry import tool


class AttemptRead(BaseModel):
    attempt: int
    started_at: dt.datetime
    request_headers: dict[str, str]
    status_code: int | None
    latency_ms: float
    error: str | None
    response_excerpt: str


class DeliveryRead(BaseModel):
    id: int
    webhook_id: str
    install_id: int
    event_name: str
    url: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    last_latency_ms: float | None
    next_attempt_at: dt.datetime
    delivered_at: dt.datetime | None
    created_at: dt.datetime
    body: str | None = Field(None, description="The signed JSON body (detail view)")
    log: list[AttemptRead] | None = None

    @classmethod
    def of(cls, d: WebhookDelivery, log: list[WebhookAttempt] | None = None) -> DeliveryRead:
        return cls(id=d.id, webhook_id=d.uid, install_id=d.install_id, event_name=d.event_name, url=d.url,
                   status=d.status, attempts=d.attempts, last_status_code=d.last_status_code,
                   last_error=d.last_error, last_latency_ms=d.last_latency_ms, next_attempt_at=d.next_attempt_at,
                   delivered_at=d.delivered_at, created_at=d.created_at,
                   body=d.body if log is not None else None,
                   log=[AttemptRead(attempt=a.attempt, started_at=a.started_at, request_headers=a.request_headers,
                                    status_code=a.status_code, latency_ms=a.latency_ms, error=a.error,
                                    response_excerpt=a.response_excerpt) for a in log] if log is not None else None)


class DeliveryQuery(BaseModel):
    install_id: int | None = Field(None, ge=1, le=2**31 - 1)
    status: str | None = Field(None, pattern="^(pending|delivering|failing|succeeded|failed)$")
    cursor: int | None = Field(None, ge=1, le=2**62)
    limit: int = Field(50, ge=1, le=500)


class DeliveryPage(BaseModel):
    items: list[DeliveryRead]
    next_cursor: int | None


@tool("webhooks.deliveries", risk="read")
def list_deliveries(ctx: ToolContext, params: DeliveryQuery) -> DeliveryPage:
    """List partner webhook deliveries (the org's installs, or to the partner's own plugins)."""
    rows = PartnerRepository(ctx.session).deliveries_visible(
        ctx.org_id, install_id=params.install_id, status=params.status, cursor=params.cursor, limit=params.limit + 1)
    more = len(rows) > params.limit
    rows = rows[: params.limit]
    return DeliveryPage(items=[DeliveryRead.of(d) for d in rows], next_cursor=rows[-1].id if more else None)


def _visible_delivery(ctx: ToolContext, delivery_id: int) -> WebhookDelivery:
    repo = PartnerRepository(ctx.session)
    d = repo.delivery(delivery_id)
    if d is None or not visible_to_org_or_publisher(repo, ctx.org_id, d.org_id, d.plugin_id):
        raise NotFound(f"delivery {delivery_id} not found", field="delivery_id")
    return d


class DeliveryRef(BaseModel):
    delivery_id: int = Field(ge=1, le=2**62)


@tool("webhooks.delivery", risk="read")
def get_delivery(ctx: ToolContext, params: DeliveryRef) -> DeliveryRead:
    """Show one delivery with its body and every attempt (headers, response code, latency)."""
    d = _visible_delivery(ctx, params.delivery_id)
    return DeliveryRead.of(d, PartnerRepository(ctx.session).attempts(d.id))


def _requeue(d: WebhookDelivery) -> None:
    d.status, d.next_attempt_at, d.lease_until, d.replays = "pending", utcnow(), None, d.replays + 1
    d.attempts = 0


@tool("webhooks.replay", risk="write")
def replay(ctx: ToolContext, params: DeliveryRef) -> DeliveryRead:
    """Send one delivery again now (same webhook-id, fresh attempts)."""
    d = _visible_delivery(ctx, params.delivery_id)
    if d.status == "delivering":
        raise Conflict("the delivery is being sent right now; try again shortly", field="delivery_id")
    _requeue(d)
    ctx.session.flush()
    mark_queued(ctx.session)
    audit_log.record(ctx, "webhooks.replayed", f"delivery:{d.id}")
    return DeliveryRead.of(d)


class ReplaySince(BaseModel):
    install_id: int = Field(ge=1, le=2**31 - 1)
    since: dt.datetime


class ReplayResult(BaseModel):
    requeued: int
    delivery_ids: list[int]


@tool("webhooks.replay_failures", risk="write")
def replay_failures(ctx: ToolContext, params: ReplaySince) -> ReplayResult:
    """Send again every failed delivery of an install created since a time."""
    inst = install_for_org_or_partner(ctx, params.install_id)
    since = params.since if params.since.tzinfo else params.since.replace(tzinfo=dt.UTC)
    rows = PartnerRepository(ctx.session).failed_since([inst.id], since)
    for d in rows:
        _requeue(d)
    ctx.session.flush()
    if rows:
        mark_queued(ctx.session)
    audit_log.record(ctx, "webhooks.replayed_failures", f"install:{inst.id}",
                     detail={"since": since.isoformat(), "count": len(rows)})
    return ReplayResult(requeued=len(rows), delivery_ids=[d.id for d in rows])

