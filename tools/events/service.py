"""Platform events: the transactional outbox, reactions to events, and one dispatch step.

``emit`` writes an event row in the caller's transaction, so an event exists exactly when the
change that caused it committed. :func:`dispatch_pending` delivers each event to every
:class:`Reaction` to its name, at least once, each handler in its own transaction; failures are
retried with exponential backoff and jitter, recorded, and after ``LEVQOR_EVENTS_MAX_ATTEMPTS``
marked dead.

Features declare their reactions in their own module (``REACTIONS``); the loops edge
(``workers.wiring``) collects them into one :class:`Reactions` table and runs the dispatcher.

Hot paths (the partner webhook fan-out runs for every event) react in batches: a batch handler first
runs once for all the new events a dispatcher claimed, inside the claiming transaction (one
savepoint), and its delivery rows are written as done in the same commit; only when the batch raises
does each event fall back to its own delivery and transaction, so one bad event is retried and
recorded alone. On PostgreSQL a transaction that emitted events also sends one ``NOTIFY levqor_events``
(delivered at commit) and dispatchers in other processes ``LISTEN`` for it instead of waiting for their
next poll.

Events nobody reacts to are still written (they are the organisation's event log) but not as outbox
work: :func:`emit_many` marks them dispatched at once when every reaction to the name declares which
organisations it watches (``Reaction.watches``) and the event's is not among them. The jobs runtime
writes its completion events that way, so an organisation without partner installs costs the dispatcher
nothing per job.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import traceback
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import event as sa_event
from sqlalchemy import text
from sqlalchemy.orm import Session

from levqor.settings import get_settings
from memory.db import after_close, session_scope, utcnow
from memory.events.models import Event, EventDelivery
from memory.events.repository import OPEN, EventRepository
from tools.context import ToolContext
from tools.enterprise import audit_log
from tools.errors import Conflict, NotFound
from tools.registry import tool

log = logging.getLogger(__name__)

# Event names the platform emits; handlers may subscribe to any of them or to "*".
KNOWN_EVENTS: frozenset[str] = frozenset({
    "user_signup", "org_created", "job_complete", "job_failed", "job_dead", "job_retrying", "job_cancelled",
    "pipeline_created", "credits_low", "notification_requested", "incident_opened", "incident_resolved"})


@dataclass(frozen=True)
class EventRecord:
    id: int
    uid: str
    name: str
    org_id: int | None
    payload: dict[str, Any]
    created_at: dt.datetime


Handler = Callable[[Session, EventRecord], None]
BatchHandler = Callable[[Session, list[EventRecord]], None]
# The organisations, among those given, whose events a reaction cares about (read in the caller's session).
Watcher = Callable[[Session, set[int]], set[int]]
wakeup = threading.Event()
NOTIFY_CHANNEL = "levqor_events"


@dataclass(frozen=True)
class Reaction:
    """What a feature does when an event happens: ``handle(session, event)``, each event in its own
    transaction, or ``batch(session, events)`` once per claimed batch (falling back to one by one).

    ``name`` keys the delivery rows, so it must stay the same across releases. ``watches`` (optional)
    names the organisations whose events the reaction can do anything with; its answer must be a
    superset (an event it leaves out is never delivered to it)."""

    event: str  # an event name, or "*" for every event
    name: str
    handle: Handler | None = None
    batch: BatchHandler | None = None
    watches: Watcher | None = None

    def __post_init__(self) -> None:
        if (self.handle is None) == (self.batch is None):
            raise ValueError(f"reaction {self.name}: give handle or batch, not both")


class Reactions:
    """Every reaction the dispatcher runs, by event name (built once by the edge that dispatches)."""

    def __init__(self, reactions: Iterable[Reaction] = ()):
        self._handlers: dict[str, dict[str, Handler]] = {}
        self._batches: dict[str, BatchHandler] = {}
        self._watchers: dict[str, list[Watcher | None]] = {}
        for r in reactions:
            self._watchers.setdefault(r.event, []).append(r.watches)
            if r.batch is not None:
                batch = r.batch

                def one(session: Session, ev: EventRecord, _batch: BatchHandler = batch) -> None:
                    _batch(session, [ev])

                self._handlers.setdefault(r.event, {})[r.name] = one
                self._batches[r.name] = batch
            else:
                assert r.handle is not None
                self._handlers.setdefault(r.event, {})[r.name] = r.handle

    def for_event(self, name: str) -> dict[str, Handler]:
        """Handlers of event ``name`` by reaction name (reactions to "*" included)."""
        return {**self._handlers.get("*", {}), **self._handlers.get(name, {})}

    def batch(self, name: str) -> BatchHandler | None:
        return self._batches.get(name)

    def unwatched(self, session: Session, name: str, org_ids: set[int]) -> set[int]:
        """The organisations among ``org_ids`` whose event ``name`` no reaction would do anything with."""
        watchers = [*self._watchers.get("*", []), *self._watchers.get(name, [])]
        if not org_ids or any(w is None for w in watchers):
            return set()
        left = set(org_ids)
        for w in watchers:
            assert w is not None
            left -= w(session, set(left))
            if not left:
                break
        return left


def after_commit(session: Session, fn: Callable[[], None]) -> None:
    """Run ``fn`` once the reaction's transaction has ended, to start work that must see its writes
    (an agent run queued in it); a crash in between is caught by whoever sweeps that work."""
    after_close(session, fn)


def event_mode(payload: dict[str, Any]) -> str:
    """``test`` for an event of test objects (its payload says ``livemode: false``), else ``live``."""
    return "test" if payload.get("livemode") is False else "live"


def emit(session: Session, name: str, payload: dict[str, Any], *, org_id: int | None = None,
         mode: str | None = None) -> Event:
    """Write event ``name`` in the caller's transaction; it is dispatched after commit.

    A test-mode event (``mode="test"``, or a payload with ``livemode: false``) carries ``livemode: false``
    and reaches only test subscribers (plugin installs made with a test key)."""
    mode = mode or event_mode(payload)
    if mode == "test":
        payload = {**payload, "livemode": False}
    ev = Event(uid=f"evt_{uuid.uuid4().hex}", name=name, org_id=org_id, payload=payload, mode=mode)
    EventRepository(session).add(ev)
    session.info["emitted_events"] = True
    return ev


def emit_many(session: Session, events: Iterable[tuple[str, dict[str, Any], int | None]],
              reactions: Reactions | None = None) -> int:
    """Write events ``(name, payload, org_id)`` in one statement in the caller's transaction; those no
    reaction in ``reactions`` watches are written already dispatched (no outbox work). Returns how many
    are outbox work."""
    events = list(events)
    if not events:
        return 0
    now = utcnow()
    quiet: dict[str, set[int]] = {}
    if reactions is not None:
        for name in {n for n, _, _ in events}:
            orgs = {o for n, _, o in events if n == name and o is not None}
            quiet[name] = reactions.unwatched(session, name, orgs)
    rows = [{"uid": f"evt_{uuid.uuid4().hex}", "name": name, "org_id": org_id, "payload": payload,
             "mode": event_mode(payload), "created_at": now,
             "dispatched_at": now if org_id in quiet.get(name, ()) else None}
            for name, payload, org_id in events]
    EventRepository(session).add_many(rows)
    work = sum(1 for r in rows if r["dispatched_at"] is None)
    if work:
        session.info["emitted_events"] = True
    return work


@sa_event.listens_for(Session, "before_commit")
def _notify_dispatchers(session: Session) -> None:
    # One NOTIFY per transaction that emitted events (delivered at commit); savepoints are not commits.
    if session.in_nested_transaction() or not session.info.get("emitted_events"):
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:c, '')"), {"c": NOTIFY_CHANNEL})


@sa_event.listens_for(Session, "after_commit")
def _wake_dispatcher(session: Session) -> None:
    if session.in_nested_transaction():
        return
    if session.info.pop("emitted_events", False):
        wakeup.set()


def backoff_seconds(attempts: int) -> float:
    """Exponential backoff with full jitter: up to 2**attempts seconds, capped at 10 minutes."""
    return random.uniform(0.5, min(600.0, 2.0 ** attempts))


def dispatch_pending(reactions: Reactions, limit: int = 100, *, now: dt.datetime | None = None) -> int:
    """Deliver events with work due to their reactions once; return the work done (0: nothing was due).

    One transaction claims up to ``limit`` events, creates a delivery per reaction to each, and marks
    those with nothing left open as dispatched; then each due delivery runs in its own transaction.
    ``now`` replaces the clock (tests).
    """
    max_attempts = get_settings().events_max_attempts
    clock = now or utcnow()
    work: list[int] = []
    with session_scope() as s:
        repo = EventRepository(s)
        events = repo.claim_due(clock, limit)
        existing = repo.deliveries_of([ev.id for ev in events])
        batches: dict[str, list[Event]] = {}
        for ev in events:
            mine = existing[ev.id]
            for hname in reactions.for_event(ev.name):
                if hname in mine:
                    continue
                if reactions.batch(hname) is not None:
                    batches.setdefault(hname, []).append(ev)
                    continue
                mine[hname] = EventDelivery(event_id=ev.id, handler=hname, status="pending", next_attempt_at=clock,
                                            updated_at=clock)
                s.add(mine[hname])
        done_rows: list[dict[str, Any]] = []
        for hname, evs in batches.items():
            if _run_batch(s, reactions, hname, evs):  # done: plain rows, no ORM objects (the hot path)
                done_rows += [{"event_id": ev.id, "handler": hname, "status": "done", "attempts": 1,
                               "next_attempt_at": clock, "updated_at": clock} for ev in evs]
                continue
            for ev in evs:
                existing[ev.id][hname] = d = EventDelivery(event_id=ev.id, handler=hname, status="pending",
                                                           next_attempt_at=clock, updated_at=clock)
                s.add(d)
        s.flush()  # one multi-row insert for the new pending delivery rows
        repo.add_done_deliveries(done_rows)
        dispatched: list[int] = []
        for ev in events:
            mine = existing[ev.id]
            open_ = [d for d in mine.values() if d.status in OPEN]
            if not open_:
                dispatched.append(ev.id)
            work.extend(d.id for d in sorted(open_, key=lambda d: d.id) if d.next_attempt_at <= clock)
        repo.mark_dispatched(dispatched, clock)
    ran = sum(_run_one(reactions, delivery_id, max_attempts, clock) for delivery_id in work)
    return len(events) + ran


def _run_batch(s: Session, reactions: Reactions, hname: str, events: list[Event]) -> bool:
    """Run batch handler ``hname`` on ``events`` in a savepoint; False (writes undone) if it raised."""
    handler = reactions.batch(hname)
    if handler is None:
        return False
    records = [EventRecord(ev.id, ev.uid, ev.name, ev.org_id, dict(ev.payload), ev.created_at) for ev in events]
    try:
        with s.begin_nested():
            handler(s, records)
    except Exception:
        log.warning("batch event handler failed; running its events one by one",
                    extra={"fields": {"handler": hname, "events": len(events)}}, exc_info=True)
        return False
    return True


def _run_one(reactions: Reactions, delivery_id: int, max_attempts: int, clock: dt.datetime) -> bool:
    """Run one due delivery under its row lock; the handler's writes commit with its outcome.

    Returns False when there was nothing to run (another dispatcher holds it, or it is no longer
    open or due). The handler runs in a savepoint: when it raises, its writes are undone and the
    failure is recorded in the same transaction, so no other dispatcher can slip in between.
    """
    with session_scope() as s:
        repo = EventRepository(s)
        d = repo.lock_delivery(delivery_id, skip_locked=True)
        if d is None or d.status not in OPEN or d.next_attempt_at > clock:
            return False
        ev = repo.get(d.event_id)
        assert ev is not None
        handler = reactions.for_event(ev.name).get(d.handler)
        if handler is None:
            d.status, d.last_error, d.updated_at = "dead", "handler no longer registered", utcnow()
            return True
        record = EventRecord(ev.id, ev.uid, ev.name, ev.org_id, dict(ev.payload), ev.created_at)
        error: str | None = None
        try:
            with s.begin_nested():
                handler(s, record)
        except Exception:
            error = traceback.format_exc(limit=5)
        d.attempts += 1
        d.updated_at = utcnow()
        if error is None:
            d.status, d.last_error = "done", None
            return True
        d.last_error = error[-4000:]
        fields = {"handler": d.handler, "delivery": d.id, "event": ev.uid, "attempt": d.attempts}
        if d.attempts >= max_attempts:
            d.status = "dead"
            log.error("event handler dead", extra={"fields": fields})
        else:
            d.status = "failing"
            d.next_attempt_at = clock + dt.timedelta(seconds=backoff_seconds(d.attempts))
            log.warning("event handler failed; will retry", extra={"fields": fields})
        return True


# ---- tools ---------------------------------------------------------------------------------

class EventRead(BaseModel):
    id: int
    uid: str
    name: str
    payload: dict[str, Any]
    created_at: dt.datetime
    dispatched_at: dt.datetime | None


class EventQuery(BaseModel):
    name: str | None = Field(None, max_length=100)
    cursor: int | None = Field(None, ge=1, le=2**62)
    limit: int = Field(50, ge=1, le=500)


class EventPage(BaseModel):
    items: list[EventRead]
    next_cursor: int | None


@tool("events.list", risk="read")
def list_events(ctx: ToolContext, params: EventQuery) -> EventPage:
    """List the organisation's platform events of the caller's mode (live or test), newest first."""
    rows = EventRepository(ctx.session).recent(ctx.org_id, params.name, params.cursor, params.limit + 1,
                                               ctx.mode)
    more = len(rows) > params.limit
    rows = rows[: params.limit]
    return EventPage(
        items=[EventRead(id=e.id, uid=e.uid, name=e.name, payload=e.payload, created_at=e.created_at,
                         dispatched_at=e.dispatched_at) for e in rows],
        next_cursor=rows[-1].id if more else None,
    )


class DeliveryRead(BaseModel):
    id: int
    event_id: int
    event_name: str
    handler: str
    status: str
    attempts: int
    last_error: str | None
    next_attempt_at: dt.datetime


class DeliveryList(BaseModel):
    items: list[DeliveryRead]


class FailureQuery(BaseModel):
    limit: int = Field(100, ge=1, le=1000)


@tool("events.failures", risk="read")
def list_failures(ctx: ToolContext, params: FailureQuery) -> DeliveryList:
    """List event handler deliveries that are failing or dead, with their last error."""
    rows = EventRepository(ctx.session).failures(ctx.org_id, params.limit, ctx.mode)
    return DeliveryList(items=[
        DeliveryRead(id=d.id, event_id=e.id, event_name=e.name, handler=d.handler, status=d.status,
                     attempts=d.attempts, last_error=d.last_error, next_attempt_at=d.next_attempt_at)
        for d, e in rows
    ])


class DeliveryRetry(BaseModel):
    delivery_id: int = Field(ge=1)


@tool("events.retry", risk="write")
def retry_delivery(ctx: ToolContext, params: DeliveryRetry) -> DeliveryRead:
    """Retry a failing or dead event handler delivery now."""
    repo = EventRepository(ctx.session)
    # Waits for a dispatcher running it right now, then sees its outcome.
    d = repo.lock_delivery(params.delivery_id, skip_locked=False)
    ev = repo.get(d.event_id) if d else None
    if d is None or ev is None or ev.org_id != ctx.org_id or ev.mode != ctx.mode:
        raise NotFound(f"delivery {params.delivery_id} not found", field="delivery_id")
    if d.status == "done":
        raise Conflict(f"delivery {d.id} already succeeded", field="delivery_id")
    d.status, d.next_attempt_at = "pending", utcnow()
    repo.reopen(ev)
    ctx.session.info["emitted_events"] = True  # wake the local dispatcher on commit
    audit_log.record(ctx, "events.retried", f"delivery:{d.id}", detail={"handler": d.handler})
    return DeliveryRead(id=d.id, event_id=ev.id, event_name=ev.name, handler=d.handler, status=d.status,
                        attempts=d.attempts, last_error=d.last_error, next_attempt_at=d.next_attempt_at)
