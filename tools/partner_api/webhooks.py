"""Webhook tools: the delivery log (with every attempt), replays, and the work shed under overload."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from memory.db import utcnow
from memory.partner.models import WebhookAttempt, WebhookDeferral, WebhookDelivery
from memory.partner.repository import PartnerRepository
from tools.context import ToolContext
from tools.enterprise import audit_log
from tools.errors import Conflict, NotFound
from tools.events.service import EventRecord
from tools.partner_api import metrics
from tools.partner_api.access import install_for_org_or_partner, visible_to_org_or_publisher
from tools.partner_api.fanout import TEST_TARGET_ERROR, TestEndpoints, mark_queued, rows_for_install
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
        ctx.org_id, install_id=params.install_id, status=params.status, cursor=params.cursor, limit=params.limit + 1,
        mode=ctx.mode)
    more = len(rows) > params.limit
    rows = rows[: params.limit]
    return DeliveryPage(items=[DeliveryRead.of(d) for d in rows], next_cursor=rows[-1].id if more else None)


def _visible_delivery(ctx: ToolContext, delivery_id: int) -> WebhookDelivery:
    repo = PartnerRepository(ctx.session)
    d = repo.delivery(delivery_id)
    inst = repo.install(d.install_id) if d is not None and d.org_id == ctx.org_id else None
    if d is None or not visible_to_org_or_publisher(repo, ctx.org_id, d.org_id, d.plugin_id) or (
            inst is not None and inst.mode != ctx.mode):
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


def _test_target_blocked(ctx: ToolContext, d: WebhookDelivery) -> bool:
    """Whether ``d`` belongs to a test install and its URL is no registered test endpoint of its
    organisation (test mode calls out nowhere else, replays included)."""
    inst = PartnerRepository(ctx.session).install(d.install_id)
    return inst is not None and inst.mode == "test" and not TestEndpoints(ctx.session).allows(d.org_id, d.url)


@tool("webhooks.replay", risk="write")
def replay(ctx: ToolContext, params: DeliveryRef) -> DeliveryRead:
    """Send one delivery again now (same webhook-id, fresh attempts)."""
    d = _visible_delivery(ctx, params.delivery_id)
    if d.status == "delivering":
        raise Conflict("the delivery is being sent right now; try again shortly", field="delivery_id")
    if _test_target_blocked(ctx, d):
        raise Conflict(TEST_TARGET_ERROR.format(url=d.url), field="delivery_id")
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
    rows = [d for d in PartnerRepository(ctx.session).failed_since([inst.id], since)
            if not _test_target_blocked(ctx, d)]  # test deliveries with no registered target stay failed
    for d in rows:
        _requeue(d)
    ctx.session.flush()
    if rows:
        mark_queued(ctx.session)
    audit_log.record(ctx, "webhooks.replayed_failures", f"install:{inst.id}",
                     detail={"since": since.isoformat(), "count": len(rows)})
    return ReplayResult(requeued=len(rows), delivery_ids=[d.id for d in rows])



# ---- work shed under overload (tools.partner_api.admission) -------------------------------------

class DeferralRead(BaseModel):
    id: int
    install_id: int
    minute: dt.datetime = Field(description="The minute the shed events happened in")
    reason: str = Field(description="org_backlog | endpoint_lag")
    first_event_id: int
    last_event_id: int
    first_event_at: dt.datetime
    last_event_at: dt.datetime
    shed: int = Field(description="Deliveries shed")
    status: str = Field(description="deferred (replayable) | replayed")
    replayed: int
    replayed_at: dt.datetime | None

    @classmethod
    def of(cls, d: WebhookDeferral) -> DeferralRead:
        return cls(id=d.id, install_id=d.install_id, minute=d.bucket, reason=d.reason,
                   first_event_id=d.first_event_id, last_event_id=d.last_event_id,
                   first_event_at=d.first_event_at, last_event_at=d.last_event_at, shed=d.shed, status=d.status,
                   replayed=d.replayed, replayed_at=d.replayed_at)


class DeferralQuery(BaseModel):
    install_id: int | None = Field(None, ge=1, le=2**31 - 1)
    status: str | None = Field(None, pattern="^(deferred|replayed)$")
    cursor: int | None = Field(None, ge=1, le=2**62)
    limit: int = Field(50, ge=1, le=500)


class DeferralPage(BaseModel):
    items: list[DeferralRead]
    next_cursor: int | None


@tool("webhooks.deferrals", risk="read")
def list_deferrals(ctx: ToolContext, params: DeferralQuery) -> DeferralPage:
    """List partner webhook deliveries shed under overload (per install and minute), newest first."""
    rows = PartnerRepository(ctx.session).deferrals(
        ctx.org_id, install_id=params.install_id, status=params.status, cursor=params.cursor, limit=params.limit + 1)
    more = len(rows) > params.limit
    rows = rows[: params.limit]
    return DeferralPage(items=[DeferralRead.of(d) for d in rows], next_cursor=rows[-1].id if more else None)


class ReplayDeferred(BaseModel):
    install_id: int = Field(ge=1, le=2**31 - 1)
    limit: int = Field(1000, ge=1, le=10000, description="Events to go through in this call, oldest first")


class ReplayDeferredResult(BaseModel):
    requeued: int = Field(description="Deliveries created now (pending, same webhook-id as they would have had)")
    remaining: int = Field(description="Minutes of shed work still deferred for this install (call again)")
    delivery_ids: list[int]


@tool("webhooks.replay_deferred", risk="write")
def replay_deferred(ctx: ToolContext, params: ReplayDeferred) -> ReplayDeferredResult:
    """Create the deliveries an install's fan-out shed under overload, oldest first, up to a limit of events."""
    inst = install_for_org_or_partner(ctx, params.install_id)
    repo = PartnerRepository(ctx.session)
    sub = next((s for s in repo.subscriptions(inst.org_id) if s.id == inst.id), None)
    now = utcnow()
    budget, ids = params.limit, []
    deferred = repo.deferred(inst.id)  # locked: two replays of one install take turns
    remaining = len(deferred)
    for d in deferred:
        if budget <= 0:
            break
        start = max(d.first_event_id, (d.replayed_through or 0) + 1)
        evs = repo.org_events(d.org_id, start, d.last_event_id, budget)
        records = [EventRecord(e.id, e.uid, e.name, e.org_id, dict(e.payload), e.created_at) for e in evs]
        rows = rows_for_install(ctx.session, sub, records, now, replays=1) if sub is not None else []
        made = [i for _, i in repo.add_deliveries(rows, returning=True)]
        ids += made
        d.replayed += len(made)
        d.replayed_at = now
        budget -= len(evs)
        if evs and budget <= 0 and evs[-1].id < d.last_event_id:
            d.replayed_through = evs[-1].id  # more events in this minute: the next call goes on from here
            break
        d.status, d.replayed_through = "replayed", d.last_event_id
        remaining -= 1
    ctx.session.flush()
    if ids:
        mark_queued(ctx.session)
        metrics.REPLAYED_SHED.inc(len(ids))
    audit_log.record(ctx, "webhooks.replayed_deferred", f"install:{inst.id}",
                     detail={"requeued": len(ids), "remaining": remaining})
    return ReplayDeferredResult(requeued=len(ids), remaining=remaining, delivery_ids=ids)
