"""Platform events to partner endpoints: one delivery row per subscribed install and event.

Outbox -> deliveries table -> delivery loop, built for fan-out rates:

- Fan-out is a batch reaction to every event (``REACTIONS``): the outbox dispatcher runs it once for all the
  events it claimed, in the claiming transaction, reading subscriptions as plain rows (one query
  per organisation) and writing every ``webhook_deliveries`` row of the batch in one multi-row
  insert. The rows commit with the events' dispatch, so a delivery exists exactly when its event
  was dispatched; a failing batch falls back to one event per transaction (events service).
- In a worker running the delivery loop, that loop attaches its deliverer here (:func:`attach`): the
  fan-out inserts the rows the deliverer has room for already leased to it ("delivering") and hands
  them over when the transaction commits, so they are sent without a claim query or a wait for the
  loop (rows of an uncommitted or rolled-back transaction are never handed over; a worker killed in
  between leaves leased rows that any worker reclaims once the lease expires).
- Other rows wait as "pending": the commit wakes this process's deliverer, and other workers
  through ``NOTIFY levqor_hooks`` on PostgreSQL (replays from the API too).

The body holds only the event fields the install's granted scopes allow (``SCOPE_FIELDS``); anything
else is dropped.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from typing import Any, Protocol

from sqlalchemy import Row, text
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from memory.db import utcnow
from memory.identity.repository import IdentityRepository
from memory.jobs.repository import EndpointRepository
from memory.partner.repository import PartnerRepository
from tools.events.service import EventRecord, Reaction
from tools.partner_api import metrics
from tools.partner_api.admission import Admission
from tools.partner_api.delivery import HandoffRoom, Job
from tools.partner_api.revenue import accrue_runs
from tools.shared.urls import same_endpoint

# Which event fields each granted scope releases to a plugin. Fields in no list never leave Levqor.
SCOPE_FIELDS: dict[str, frozenset[str]] = {
    "events:read": frozenset(),
    "jobs:read": frozenset({"job_id", "pipeline_id", "state", "attempts", "trigger", "error", "retryable",
                            "previous", "name"}),
    "users:read": frozenset({"user_id", "email", "role"}),
    "org:read": frozenset({"org_id", "slug"}),
    "credits:read": frozenset({"balance", "cost_per_run"}),
}
NOTIFY_CHANNEL = "levqor_hooks"


class LocalDeliverer(Protocol):
    """What the fan-out needs of the deliverer of this process's delivery loop."""

    lease_s: float  # how long a row handed over stays leased to it
    send_s: float  # the longest one send may take

    def handoff_room(self) -> HandoffRoom:
        """The rows it takes now (in all, per organisation, not for endpoints holding their share)."""
        ...

    def accept(self, jobs: list[Job]) -> None:
        """Take jobs whose rows a committed fan-out leased to it."""
        ...

    def rows_queued(self) -> None:
        """Pending rows were committed in this process: claim soon."""
        ...


_local: LocalDeliverer | None = None


def attach(d: LocalDeliverer) -> bool:
    """Make ``d`` this process's deliverer, to which the fan-out hands rows; False if one is attached."""
    global _local
    if _local is not None:
        return False
    _local = d
    return True


def detach(d: LocalDeliverer) -> None:
    global _local
    if _local is d:
        _local = None


def scoped_data(payload: dict[str, Any], scopes: list[str]) -> dict[str, Any]:
    """The event fields the granted ``scopes`` release (no personal data without ``users:read``)."""
    allowed: set[str] = set()
    for s in scopes:
        allowed |= SCOPE_FIELDS.get(s, frozenset())
    return {k: v for k, v in payload.items() if k in allowed}


def message_body(ev: EventRecord, scopes: list[str], org_slug: str | None) -> str:
    data = scoped_data({**ev.payload, "org_id": ev.org_id, **({"slug": org_slug} if org_slug else {})}, scopes)
    data["event_id"] = ev.uid
    if _mode(ev) == "test":
        data["livemode"] = False  # whatever the scopes: the partner must tell test events from live ones
    doc = {"type": ev.name, "timestamp": ev.created_at.isoformat().replace("+00:00", "Z"), "data": data}
    return json.dumps(doc, separators=(",", ":"), sort_keys=True, default=str)


def endpoint_url(sub: Row[Any], event_name: str) -> str | None:
    """The endpoint of subscription ``sub`` (a :meth:`PartnerRepository.subscriptions` row) for events
    called ``event_name``, or None when it has none or does not subscribe to them."""
    m = sub.manifest
    url = (m.get("endpoints") or {}).get("webhook_url")
    if event_name not in m.get("events", []) or not url:
        return None
    return str(url)


def subscribed_url(ev: EventRecord, sub: Row[Any]) -> str | None:
    """The endpoint of ``sub`` for ``ev``, or None when it does not subscribe to it or the event
    happened before the install."""
    if ev.created_at < sub.created_at or _mode(ev) != sub.mode:
        return None
    return endpoint_url(sub, ev.name)


TEST_TARGET_ERROR = ("test mode: {url} is not a registered test webhook endpoint of this organisation "
                     "(POST /v1/webhook-endpoints with a test key); test deliveries go nowhere else")


class TestEndpoints:
    """The registered test webhook endpoints per organisation, read once per fan-out batch when needed."""

    def __init__(self, session: Session):
        self.session = session
        self.by_org: dict[int, list[str]] = {}

    def allows(self, org_id: int, url: str) -> bool:
        if org_id not in self.by_org:
            self.by_org[org_id] = [e.url for e in EndpointRepository(self.session).for_org(org_id, "test")]
        return any(same_endpoint(url, registered) for registered in self.by_org[org_id])


def _mode(ev: EventRecord) -> str:
    return "test" if ev.payload.get("livemode") is False else "live"


def webhook_id(ev: EventRecord, install_id: int) -> str:
    """The delivery's ``webhook-id``: one per event and install, stable across retries and replays."""
    return f"msg_{ev.uid.removeprefix('evt_')}_{install_id}"


def delivery_row(ev: EventRecord, sub: Row[Any], url: str, body: str, now: dt.datetime, *, status: str = "pending",
                 lease_until: dt.datetime | None = None, last_error: str | None = None) -> dict[str, Any]:
    """A ``webhook_deliveries`` row (for :meth:`PartnerRepository.add_deliveries`)."""
    return {"uid": webhook_id(ev, sub.id), "event_id": ev.id, "event_name": ev.name, "event_at": ev.created_at,
            "install_id": sub.id, "plugin_id": sub.plugin_id, "org_id": sub.org_id, "url": url, "body": body,
            "status": status, "attempts": 0, "next_attempt_at": now, "lease_until": lease_until, "replays": 0,
            "created_at": now, "last_error": last_error}


def rows_for_install(session: Session, sub: Row[Any], events: list[EventRecord], now: dt.datetime,
                     *, replays: int = 0) -> list[dict[str, Any]]:
    """Pending deliveries of ``events`` to one subscription, for those it subscribes to and that have none
    yet (the replay of shed work: never shed again)."""
    repo = PartnerRepository(session)
    done = repo.delivered_pairs([e.id for e in events])
    org = IdentityRepository(session).org(sub.org_id)
    slug = org.slug if org else None
    scopes = sorted(sub.scopes)
    test_endpoints = TestEndpoints(session)
    out = []
    for ev in events:
        url = subscribed_url(ev, sub)
        if url is None or (ev.id, sub.id) in done:
            continue
        blocked = sub.mode == "test" and not test_endpoints.allows(sub.org_id, url)
        row = delivery_row(ev, sub, url, message_body(ev, scopes, slug), now, status="failed" if blocked else "pending",
                           last_error=TEST_TARGET_ERROR.format(url=url)[:1000] if blocked else None)
        row["replays"] = replays
        out.append(row)
    return out


def fanout(session: Session, events: list[EventRecord]) -> None:
    """Queue one signed delivery per subscribed install and event, and accrue per-run plugin revenue.

    Runs on a dispatcher's whole batch: one installs query per organisation, one backlog query for the
    admission check (:mod:`tools.partner_api.admission`: what it sheds is recorded, not inserted), one
    body per distinct scope set, and one multi-row insert for every delivery of the batch (pairs that
    already have a delivery, from a re-run or a replay, are skipped by the insert). When this
    process runs the delivery loop (a deliverer is attached), rows it has room for are inserted
    already leased to it and handed to it at commit (no claim query, no wait for the loop); the
    others wait as "pending".
    """
    by_org: dict[int, list[EventRecord]] = {}
    for ev in events:
        if ev.org_id is not None:
            by_org.setdefault(ev.org_id, []).append(ev)
    if not by_org:
        return
    repo = PartnerRepository(session)
    now = utcnow()
    rows: list[dict[str, Any]] = []
    local = _local
    jobs: list[Job] = []
    admission: Admission | None = None
    if local is not None:
        room = local.handoff_room()
        lease_until = now + dt.timedelta(seconds=local.lease_s)
        send_by = time.monotonic() + local.lease_s - local.send_s - 5
    test_endpoints = TestEndpoints(session)
    for org_id, evs in by_org.items():
        subs = repo.subscriptions(org_id)
        if not subs:
            continue
        if admission is None:
            admission = Admission.load(repo, list(by_org), now)
        org = IdentityRepository(session).org(org_id)
        slug = org.slug if org else None
        per_run = any((sub.manifest.get("pricing") or {}).get("model") == "per_run" for sub in subs)
        installs = repo.subscribed_installs(org_id, "live") if per_run else []
        # Per event name: the subscriptions with an endpoint, those enabled, and the newest install's time.
        targets: dict[str, tuple[list[tuple[Row[Any], str]], list[Row[Any]], dt.datetime]] = {}
        for ev in evs:
            t = targets.get(ev.name)
            if t is None:
                subscribed = [(sub, url) for sub in subs if (url := endpoint_url(sub, ev.name)) is not None]
                newest = max((sub.created_at for sub, _ in subscribed), default=ev.created_at)
                t = targets[ev.name] = (subscribed, [sub for sub, _ in subscribed if sub.endpoint_disabled_at is None],
                                        newest)
            subscribed, enabled, newest = t
            if any(sub.mode == "test" for sub, _ in subscribed):
                # A test event reaches only test installs, a live one only live installs.
                mode = _mode(ev)
                subscribed = [(sub, url) for sub, url in subscribed if sub.mode == mode]
                enabled = [sub for sub in enabled if sub.mode == mode]
            elif _mode(ev) == "test":
                subscribed, enabled = [], []
            pairs = subscribed
            if enabled and ev.created_at >= newest and admission.org_full(org_id):
                # The organisation is over its backlog: the whole event is shed at once (held rows of
                # disabled endpoints are still written).
                admission.shed_event(org_id, ev.id, ev.name, ev.created_at, enabled)
                pairs = [(sub, url) for sub, url in subscribed if sub.endpoint_disabled_at is not None]
            bodies: dict[tuple[str, ...], str] = {}
            for sub, url in pairs:
                if ev.created_at < sub.created_at:
                    continue  # the event happened before the install
                if sub.mode == "test" and not test_endpoints.allows(org_id, url):
                    # Test mode calls out only to the organisation's registered test endpoints: the delivery
                    # is recorded as failed, with the reason, and never sent (a replay after registering works).
                    scopes = tuple(sorted(sub.scopes))
                    body = bodies.setdefault(scopes, message_body(ev, list(scopes), slug))
                    rows.append(delivery_row(ev, sub, url, body, now, status="failed",
                                             last_error=TEST_TARGET_ERROR.format(url=url)[:1000]))
                    continue
                if sub.endpoint_disabled_at is None:  # held deliveries of a disabled endpoint are not shed
                    why = admission.admit(org_id, sub.id)
                    if why is not None:
                        admission.record(install_id=sub.id, plugin_id=sub.plugin_id, org_id=sub.org_id,
                                         event_id=ev.id, event_at=ev.created_at, reason=why)
                        continue
                scopes = tuple(sorted(sub.scopes))
                if scopes not in bodies:
                    bodies[scopes] = message_body(ev, list(scopes), slug)
                uid = webhook_id(ev, sub.id)
                status, lease = "pending", None
                if local is not None and sub.endpoint_disabled_at is None and room.take(org_id, sub.id):
                    status, lease = "delivering", lease_until  # leased to this process's deliverer
                    secrets = (sub.secret,) + ((sub.previous_secret,) if sub.previous_secret and sub.previous_expires_at
                                               and sub.previous_expires_at > now else ())
                    jobs.append(Job(0, uid, url, bodies[scopes].encode(), 0, ev.created_at, sub.id, secrets,
                                    send_by, org_id))
                rows.append(delivery_row(ev, sub, url, bodies[scopes], now, status=status, lease_until=lease))
            if ev.name == "job_complete" and installs and _mode(ev) == "live":
                accrue_runs(session, ev, installs)
    if rows:
        ids = repo.add_deliveries(rows, returning=bool(jobs))
        if jobs:  # the rows' ids, matched by webhook-id; handed over by _wake once the rows are committed
            by_uid = dict(ids)  # (a pair a concurrent replay inserted first is not ours to send)
            session.info.setdefault("webhook_jobs", []).extend(
                dataclasses.replace(j, id=by_uid[j.uid]) for j in jobs if j.uid in by_uid)
        if len(jobs) < len(rows):
            mark_queued(session)
    if admission is not None:
        admission.flush(session)


# Every event, in the dispatcher's claimed batches. The name is stored with each event's deliveries: keep it.
def watching(session: Session, org_ids: set[int]) -> set[int]:
    """The organisations whose events the fan-out may deliver or accrue: those with a plugin install."""
    return PartnerRepository(session).orgs_with_installs(org_ids)


REACTIONS = (Reaction("*", "partner_api.hooks.fanout", batch=fanout, watches=watching),)


def mark_queued(session: Session) -> None:
    """Pending deliveries were written in this transaction: wake the delivery loops when it commits."""
    session.info["webhook_deliveries"] = True


@sa_event.listens_for(Session, "before_commit")
def _notify(session: Session) -> None:
    # Savepoints fire before/after_commit too: act on the real commit only (the fan-out runs in one).
    if session.in_nested_transaction():
        return
    if session.info.get("webhook_deliveries") and session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:c, '')"), {"c": NOTIFY_CHANNEL})  # wakes other workers


@sa_event.listens_for(Session, "after_commit")
def _wake(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint was released: the rows are not visible to others yet
    jobs = session.info.pop("webhook_jobs", None)
    local = _local
    if jobs and local is not None:
        local.accept(jobs)
    # (with no deliverer attached, the loop stopped in between: the rows come back when their lease expires)
    if session.info.pop("webhook_deliveries", False) and local is not None:
        local.rows_queued()
    for reason, n in session.info.pop("webhook_shed", {}).items():  # counted once the record is committed
        metrics.SHED.labels(reason=reason).inc(n)


@sa_event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop("webhook_jobs", None)  # not committed (after a savepoint: their lease brings them back)
    session.info.pop("webhook_shed", None)
