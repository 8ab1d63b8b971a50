"""Platform events to partner endpoints, following Standard Webhooks.

Outbox -> deliveries table -> dispatcher, built for fan-out rates:

- Fan-out is a batch reaction to every event (``REACTIONS``): the outbox dispatcher runs it once for all the
  events it claimed, in the claiming transaction, reading subscriptions as plain rows (one query
  per organisation) and writing every ``webhook_deliveries`` row of the batch in one multi-row
  insert. The rows commit with the events' dispatch, so a delivery exists exactly when its event
  was dispatched; a failing batch falls back to one event per transaction (events service).
- In a worker running the delivery loop, the fan-out inserts the rows its deliverer has room for
  already leased to it ("delivering") and hands them over when the transaction commits, so they
  are sent without a claim query or a wait for the loop (rows of an uncommitted or rolled-back
  transaction are never handed over; a worker killed in between leaves leased rows, as below).
- Other rows wait as "pending": the commit wakes the deliverer in-process, and other workers
  through ``NOTIFY levqor_hooks`` on PostgreSQL (replays from the API too); polling every 0.5 s
  remains for retries falling due.
- Each worker leases due rows in batches with one ``UPDATE ... RETURNING`` (``SKIP LOCKED`` on
  PostgreSQL) and sends them from a thread pool with keep-alive connections, at most
  ``LEVQOR_HOOKS_PER_ENDPOINT`` in flight per endpoint and a per-request timeout (a hanging
  partner holds only its own senders; see the delivery section), then records finished attempts
  in batched transactions (2xx as bulk statements; failures one by one through the retry rules).
- At least once: a row leaves "delivering" only when its outcome commits; a worker killed with
  ``kill -9`` leaves leased rows that any worker reclaims once the lease expires.

A request carries ``webhook-id`` (stable across retries), ``webhook-timestamp`` and
``webhook-signature: v1,<base64 HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>``, one signature
per valid secret (two during a rotation). Retries follow the recommended schedule with jitter
(``RETRY_SCHEDULE_S``); ``Retry-After`` is honoured; 410 disables the endpoint; an endpoint failing
for ``LEVQOR_HOOKS_DISABLE_AFTER_S`` is disabled and its partner emailed. The body holds only the
event fields the install's granted scopes allow (``SCOPE_FIELDS``); anything else is dropped.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import datetime as dt
import email.utils
import hashlib
import hmac
import json
import logging
import queue
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, Field
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from memory.db import session_scope, utcnow
from memory.partner.models import PartnerEmail, PluginInstall, WebhookAttempt, WebhookDelivery
from memory.partner.repository import PartnerRepository
from tools.context import ToolContext
from tools.enterprise import audit_log
from tools.errors import Conflict, NotFound, Unauthorized
from tools.events.service import EventRecord, Reaction
from tools.partner_api import metrics
from tools.registry import tool

log = logging.getLogger(__name__)

# Standard Webhooks' suggested schedule: the delay before attempt n+1 (seconds), with jitter.
RETRY_SCHEDULE_S: tuple[int, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
MAX_ATTEMPTS = len(RETRY_SCHEDULE_S)
MAX_RETRY_AFTER_S = 86400
TOLERANCE_S = 300
USER_AGENT = "Levqor-Webhooks/1.0"
# Which event fields each granted scope releases to a plugin. Fields in no list never leave Levqor.
SCOPE_FIELDS: dict[str, frozenset[str]] = {
    "events:read": frozenset(),
    "jobs:read": frozenset({"job_id", "pipeline_id", "state", "attempts", "trigger", "error", "retryable",
                            "previous", "name"}),
    "users:read": frozenset({"user_id", "email", "role"}),
    "org:read": frozenset({"org_id", "slug"}),
    "credits:read": frozenset({"balance", "cost_per_run"}),
}
wakeup = threading.Event()  # the delivery loop has something to do (new rows, finished sends)
new_work = threading.Event()  # deliveries were queued or requeued (fan-out, replay, NOTIFY)
NOTIFY_CHANNEL = "levqor_hooks"
_local: Deliverer | None = None  # the deliverer of this process's run_hooks loop: fan-out hands it rows


# ---- signing (Standard Webhooks) ---------------------------------------------------------------

def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256>`` of ``{msg_id}.{timestamp}.{body}`` with a ``whsec_`` secret."""
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signature_header(secrets: list[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one ``v1,…`` signature per secret, space-separated."""
    return " ".join(sign(s, msg_id, timestamp, body) for s in secrets)


def webhook_headers(secrets: list[str], msg_id: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` for ``body`` (now, unless given)."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts),
            "webhook-signature": signature_header(secrets, msg_id, ts, body)}


def verify(secrets: list[str], headers: dict[str, str], body: bytes, *, tolerance_s: int = TOLERANCE_S,
           now: float | None = None) -> None:
    """Check a Standard Webhooks request against any of ``secrets``; raise Unauthorized if forged or stale."""
    h = {k.lower(): v for k, v in headers.items()}
    msg_id, ts, sigs = h.get("webhook-id"), h.get("webhook-timestamp"), h.get("webhook-signature")
    if not msg_id or not ts or not sigs:
        raise Unauthorized("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        stamp = int(ts)
    except ValueError:
        raise Unauthorized("webhook-timestamp is not an integer") from None
    current = time.time() if now is None else now
    if abs(current - stamp) > tolerance_s:
        raise Unauthorized("webhook-timestamp is too old or in the future")
    for secret in secrets:
        expected = sign(secret, msg_id, stamp, body).split(",", 1)[1]
        for sig in sigs.split():
            version, _, value = sig.partition(",")
            if version == "v1" and hmac.compare_digest(value, expected):
                return
    raise Unauthorized("no valid webhook signature")


def valid_secrets(inst: PluginInstall, now: dt.datetime | None = None) -> list[str]:
    now = now or utcnow()
    out = [inst.secret]
    if inst.previous_secret and inst.previous_expires_at and inst.previous_expires_at > now:
        out.append(inst.previous_secret)
    return out


# ---- payloads and fan-out ----------------------------------------------------------------------

def scoped_data(payload: dict[str, Any], scopes: list[str]) -> dict[str, Any]:
    """The event fields the granted ``scopes`` release (no personal data without ``users:read``)."""
    allowed: set[str] = set()
    for s in scopes:
        allowed |= SCOPE_FIELDS.get(s, frozenset())
    return {k: v for k, v in payload.items() if k in allowed}


def message_body(ev: EventRecord, scopes: list[str], org_slug: str | None) -> str:
    data = scoped_data({**ev.payload, "org_id": ev.org_id, **({"slug": org_slug} if org_slug else {})}, scopes)
    data["event_id"] = ev.uid
    doc = {"type": ev.name, "timestamp": ev.created_at.isoformat().replace("+00:00", "Z"), "data": data}
    return json.dumps(doc, separators=(",", ":"), sort_keys=True, default=str)


def fanout(session: Session, events: list[EventRecord]) -> None:
    """Queue one signed delivery per subscribed install and event, and accrue per-run plugin revenue.

    Runs on a dispatcher's whole batch: one installs query per organisation, one body per distinct
    scope set, and one multi-row insert for every delivery of the batch. When this process runs the
    delivery loop (:func:`run_hooks`), rows it has room for are inserted already leased to it and
    handed to it at commit (no claim query, no wait for the loop); the others wait as "pending".
    """
    by_org: dict[int, list[EventRecord]] = {}
    for ev in events:
        if ev.org_id is not None:
            by_org.setdefault(ev.org_id, []).append(ev)
    if not by_org:
        return
    from memory.identity.repository import IdentityRepository

    repo = PartnerRepository(session)
    done: set[tuple[int, int]] | None = None
    now = utcnow()
    rows: list[dict[str, Any]] = []
    local = _local
    jobs: list[Job] = []
    if local is not None:
        room, full = local.handoff_room()
        lease_until = now + dt.timedelta(seconds=local.lease_s)
        send_by = time.monotonic() + local.lease_s - local.send_s - 5
    for org_id, evs in by_org.items():
        subs = repo.subscriptions(org_id)
        if not subs:
            continue
        if done is None:
            done = repo.delivered_pairs([e.id for e in events])
        org = IdentityRepository(session).org(org_id)
        slug = org.slug if org else None
        per_run = any((sub.manifest.get("pricing") or {}).get("model") == "per_run" for sub in subs)
        installs = repo.subscribed_installs(org_id) if per_run else []
        for ev in evs:
            bodies: dict[tuple[str, ...], str] = {}
            for sub in subs:
                m = sub.manifest
                url = (m.get("endpoints") or {}).get("webhook_url")
                if ev.name not in m.get("events", []) or not url or ev.created_at < sub.created_at:
                    continue  # not subscribed, or the event happened before the install
                if (ev.id, sub.id) in done:
                    continue
                scopes = tuple(sorted(sub.scopes))
                if scopes not in bodies:
                    bodies[scopes] = message_body(ev, list(scopes), slug)
                uid = f"msg_{ev.uid.removeprefix('evt_')}_{sub.id}"
                status, lease = "pending", None
                if local is not None and room > 0 and sub.endpoint_disabled_at is None and sub.id not in full:
                    status, lease = "delivering", lease_until  # leased to this process's deliverer
                    room -= 1
                    secrets = (sub.secret,) + ((sub.previous_secret,) if sub.previous_secret and sub.previous_expires_at
                                               and sub.previous_expires_at > now else ())
                    jobs.append(Job(0, uid, url, bodies[scopes].encode(), 0, ev.created_at, sub.id, secrets,
                                    send_by))
                rows.append({
                    "uid": uid, "event_id": ev.id, "event_name": ev.name,
                    "event_at": ev.created_at, "install_id": sub.id, "plugin_id": sub.plugin_id,
                    "org_id": sub.org_id, "url": url, "body": bodies[scopes], "status": status, "attempts": 0,
                    "next_attempt_at": now, "lease_until": lease, "replays": 0, "created_at": now})
            if ev.name == "job_complete" and installs:
                from tools.partner_api import payouts

                payouts.accrue_runs(session, ev, installs)
    if rows:
        ids = repo.add_deliveries(rows, returning=bool(jobs))
        if jobs:  # the rows' ids, matched by webhook-id; handed over by _wake once the rows are committed
            by_uid = dict(ids)
            session.info.setdefault("webhook_jobs", []).extend(
                dataclasses.replace(j, id=by_uid[j.uid]) for j in jobs)
        if len(jobs) < len(rows):
            session.info["webhook_deliveries"] = True


# Every event, in the dispatcher's claimed batches.
REACTIONS = (Reaction("*", "partner_api.hooks.fanout", batch=fanout),)


@sa_event.listens_for(Session, "before_commit")
def _notify(session: Session) -> None:
    # Savepoints fire before/after_commit too: act on the real commit only (the fan-out runs in one).
    if session.in_nested_transaction():
        return
    if session.info.get("webhook_deliveries") and session.get_bind().dialect.name == "postgresql":
        from sqlalchemy import text

        session.execute(text("SELECT pg_notify(:c, '')"), {"c": NOTIFY_CHANNEL})  # wakes other workers


@sa_event.listens_for(Session, "after_commit")
def _wake(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint was released: the rows are not visible to others yet
    jobs = session.info.pop("webhook_jobs", None)
    if jobs:
        local = _local
        if local is not None:
            local.accept(jobs)
        # else the loop stopped in between: the rows come back when their lease expires
    if session.info.pop("webhook_deliveries", False):
        new_work.set()
        wakeup.set()


@sa_event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop("webhook_jobs", None)  # not committed (after a savepoint: their lease brings them back)


# ---- partner email (pluggable sender) -----------------------------------------------------------

class EmailSender(Protocol):
    def __call__(self, to: str, subject: str, body: str) -> None: ...


def mail_sender(to: str, subject: str, body: str) -> None:
    """The default sender: the jobs mailer (``LEVQOR_SMTP_URL``, else an .eml file in ``VAR_DIR/mail``)."""
    import uuid

    from tools.shared import mail as mailer

    uid = f"partner-{uuid.uuid4().hex}"
    mailer.deliver(mailer.compose(to, subject, body, uid=uid), uid)


_sender: EmailSender = mail_sender


def set_email_sender(sender: EmailSender | None) -> None:
    """Send partner emails with ``sender(to, subject, body)`` (None: back to the mailer, :func:`mail_sender`)."""
    global _sender
    _sender = sender or mail_sender


def send_pending_emails() -> int:
    """Send queued partner emails with the configured sender; return how many were sent.

    The first failure ends the round (the mail server is likely down, and a hanging one must not
    hold the caller once per email); unsent emails stay queued for the next round.
    """
    sent = 0
    with session_scope() as s:
        for mail in PartnerRepository(s).unsent_emails():
            try:
                _sender(mail.to, mail.subject, mail.body)
            except Exception:
                log.exception("partner email failed", extra={"fields": {"email": mail.id}})
                break
            mail.sent_at = utcnow()
            sent += 1
    return sent


def _disable(session: Session, inst: PluginInstall, reason: str, kind: str) -> None:
    if inst.endpoint_disabled_at is not None:
        return
    repo = PartnerRepository(session)
    inst.endpoint_disabled_at, inst.disabled_reason = utcnow(), reason[:500]
    plugin = repo.plugin(inst.plugin_id)
    partner = repo.partner(plugin.partner_id) if plugin else None
    if partner is not None and plugin is not None:
        repo.add_email(PartnerEmail(
            partner_id=partner.id, to=partner.contact_email,
            subject=f"Levqor disabled a webhook endpoint of {plugin.name}",
            body=(f"Deliveries of {plugin.slug} to install {inst.id} (organisation {inst.org_id}) were stopped: "
                  f"{reason}.\nFix the endpoint, then re-enable it with POST /v1/installs/{inst.id}/enable; "
                  "held deliveries resume and failed ones can be replayed.")))
    metrics.ENDPOINTS_DISABLED.labels(reason=kind).inc()
    log.warning("partner endpoint disabled", extra={"fields": {"install": inst.id, "reason": reason}})


def disable_install_endpoint(session: Session, inst: PluginInstall, reason: str) -> None:
    """Disable an endpoint by hand or by the healer (``plugins.disable_endpoint``): held, partner emailed."""
    _disable(session, inst, reason, "requested")


# ---- delivery ------------------------------------------------------------------------------------
#
# One Deliverer per worker process. Its loop thread owns the database side: it leases due rows
# in batches (one ``UPDATE ... RETURNING``, ``SKIP LOCKED`` on PostgreSQL) and records finished
# attempts in batches every RECORD_TICK_S (successes as a few bulk statements; failures through
# :func:`record`, which applies the retry schedule, Retry-After, 410 and sustained-failure rules
# one by one, in order). Claimed jobs wait in a queue per endpoint (install); sender threads
# take them, endpoints taking turns, while the endpoint has fewer than ``per_endpoint`` requests
# in flight and the process fewer than ``concurrency``. A sender that finishes takes the next job
# itself (no hand-off to another thread per request). A hanging endpoint therefore holds at most
# ``per_endpoint`` senders, each bounded by the request timeout, and as its pace slows it may hold
# only two rounds of queued jobs, so claims skip it and leave its rows in the table. Senders
# share keep-alive connections (:class:`tools.jobs.ssrf.GuardedPool`): the SSRF guard checks the
# address of every new connection, and connections are reused only for their own
# scheme/host/port. A job whose lease could run out before it is sent is dropped, not sent: its
# row comes back when the lease expires. Every row stays in the database until its outcome is
# committed, so a worker killed at any point only delays deliveries (at least once).
# Threads rather than asyncio: the work per request is small and httpcore's synchronous
# connection is the cheapest HTTP client here; a few dozen threads saturate two cores.

@dataclass(frozen=True)
class Job:
    id: int
    uid: str
    url: str
    body: bytes
    attempts: int
    event_at: dt.datetime
    install_id: int
    secrets: tuple[str, ...]
    send_by: float = float("inf")  # time.monotonic() after which the lease may run out mid-send


@dataclass
class Outcome:
    job: Job
    started: dt.datetime
    headers: dict[str, str]
    status_code: int | None
    latency_ms: float
    error: str | None
    excerpt: str
    retry_after: float | None
    finished: dt.datetime


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, min(float(value), MAX_RETRY_AFTER_S))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, min((when - utcnow()).total_seconds(), MAX_RETRY_AFTER_S))


MAX_REDIRECTS = 2
RECORD_BATCH = 64  # finished attempts that wake the loop to record them at once
RECORD_TICK_S = 0.02  # how long finished attempts may wait to be recorded in one transaction
BACKLOG_S = 2.0  # claimed work an endpoint may hold, in seconds of its recent pace
MAX_ROUNDS = 64  # ... at most this many rounds of ``per_endpoint`` requests


def send(job: Job, timeout_s: float, client: Any = None) -> Outcome:
    """Sign and POST one delivery through the SSRF guard (no DB access); ``client``: a GuardedPool."""
    from tools.errors import AppError
    from tools.shared import ssrf

    ts = int(time.time())
    headers = {
        "content-type": "application/json", "user-agent": USER_AGENT, "webhook-id": job.uid,
        "webhook-timestamp": str(ts), "webhook-signature": signature_header(list(job.secrets), job.uid, ts, job.body),
    }
    started = utcnow()
    t0 = time.perf_counter()
    code: int | None = None
    error: str | None = None
    excerpt = ""
    retry_after: float | None = None
    try:
        req = client.request if client is not None else ssrf.request
        resp = req("POST", job.url, headers=headers, content=job.body, timeout=timeout_s,
                   max_redirects=MAX_REDIRECTS, max_body=64_000)
        code, excerpt = resp.status_code, resp.text[:500]
        retry_after = _retry_after({k.lower(): v for k, v in resp.headers.items()}.get("retry-after"))
        if resp.redirects:
            excerpt = f"(after redirects {resp.redirects}) " + excerpt
    except AppError as exc:  # the SSRF guard refused the target (or a redirect)
        error = f"refused: {exc.detail}"
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:1000]
    latency = (time.perf_counter() - t0) * 1000
    metrics.ATTEMPT_DURATION.observe(latency / 1000)
    shown = {k: v for k, v in headers.items() if k != "webhook-signature"}
    shown["webhook-signature"] = " ".join(s.split(",")[0] + ",…" for s in headers["webhook-signature"].split())
    return Outcome(job, started, shown, code, latency, error, excerpt, retry_after, utcnow())


def record(session: Session, out: Outcome) -> None:
    """Write one attempt's result: the log row, the delivery's next state, the endpoint's health."""
    from levqor.settings import get_settings

    d = session.get(WebhookDelivery, out.job.id)
    if d is None:
        return
    inst = session.get(PluginInstall, d.install_id)
    d.attempts += 1
    session.add(WebhookAttempt(delivery_id=d.id, attempt=d.attempts, started_at=out.started,
                               request_headers=out.headers, status_code=out.status_code,
                               latency_ms=round(out.latency_ms, 2), error=out.error, response_excerpt=out.excerpt))
    d.last_status_code, d.last_error, d.last_latency_ms = out.status_code, out.error, round(out.latency_ms, 2)
    d.lease_until = None
    code = out.status_code
    if code is not None and 200 <= code < 300:
        d.status, d.delivered_at = "succeeded", out.finished
        metrics.DELIVERIES.labels(result="success").inc()
        metrics.DELIVERY_LATENCY.observe(max(0.0, (out.finished - d.event_at).total_seconds()))
        if inst is not None and inst.failing_since is not None:
            inst.failing_since = None
        return
    if code == 410:
        d.status = "failed"
        d.last_error = "410 Gone: endpoint disabled"
        metrics.DELIVERIES.labels(result="gone").inc()
        if inst is not None:
            _disable(session, inst, "the endpoint answered 410 Gone", "gone")
        return
    metrics.DELIVERIES.labels(result="http_error" if code is not None else
                              ("blocked" if (out.error or "").startswith("refused") else "network_error")).inc()
    if d.last_error is None:
        d.last_error = f"HTTP {code}"
    now = out.finished
    if d.attempts >= MAX_ATTEMPTS:
        d.status = "failed"
    else:
        d.status = "failing"
        delay = RETRY_SCHEDULE_S[d.attempts] * random.uniform(0.8, 1.2)
        if out.retry_after is not None:
            delay = out.retry_after
        d.next_attempt_at = now + dt.timedelta(seconds=delay)
    if inst is not None:
        if inst.failing_since is None:
            inst.failing_since = out.started
        limit = get_settings().hooks_disable_after_s
        if (now - inst.failing_since).total_seconds() >= limit:
            _disable(session, inst, f"deliveries have failed for over {limit} seconds (last: {d.last_error})",
                     "sustained_failure")


def record_batch(session: Session, outs: list[Outcome]) -> None:
    """Record many attempts: 2xx in bulk statements, anything else through :func:`record`, in order."""
    ok: list[Outcome] = []
    last_ok: dict[int, bool] = {}
    for out in outs:
        code = out.status_code
        if code is not None and 200 <= code < 300:
            ok.append(out)
            last_ok[out.job.install_id] = True
            continue
        if last_ok.get(out.job.install_id):  # an earlier success in this batch ended the failure streak
            inst = session.get(PluginInstall, out.job.install_id)
            if inst is not None:
                inst.failing_since = None
        last_ok[out.job.install_id] = False
        record(session, out)
    if not ok:
        return
    deliveries, attempts = [], []
    for out in ok:
        ms = round(out.latency_ms, 2)
        deliveries.append({"b_id": out.job.id, "b_at": out.finished, "b_code": out.status_code, "b_ms": ms})
        attempts.append({"delivery_id": out.job.id, "attempt": out.job.attempts + 1, "started_at": out.started,
                         "request_headers": out.headers, "status_code": out.status_code, "latency_ms": ms,
                         "error": None, "response_excerpt": out.excerpt})
        metrics.DELIVERY_LATENCY.observe(max(0.0, (out.finished - out.job.event_at).total_seconds()))
    metrics.DELIVERIES.labels(result="success").inc(len(ok))
    repo = PartnerRepository(session)
    repo.record_successes(deliveries, attempts)
    repo.clear_failing([i for i, good in last_ok.items() if good])


class Deliverer:
    """Claims due deliveries in batches and sends them from a thread pool; one per worker process."""

    def __init__(self, concurrency: int | None = None, per_endpoint: int | None = None,
                 timeout_s: float | None = None):
        from levqor.settings import get_settings
        from tools.shared import ssrf

        s = get_settings()
        self.concurrency = concurrency or s.hooks_concurrency
        self.per_endpoint = per_endpoint or s.hooks_per_endpoint
        self.timeout_s = timeout_s or s.hooks_timeout_s
        # Claimed jobs held in all, and per endpoint beyond those in flight: as many as it answers
        # in about BACKLOG_S at its recent pace (a fast endpoint keeps its senders busy between
        # claims), but only two rounds for a slow or new one.
        self.max_held = max(16 * self.concurrency, 64)
        self.pace: dict[int, float] = {}  # install -> moving average of send seconds
        # The lease outlasts two rounds of waiting plus the send (each redirect hop has its own
        # timeout); after it another worker may take the row. Jobs held longer are not sent.
        self.send_s = self.timeout_s * (MAX_REDIRECTS + 1)
        self.lease_s = self.send_s * 4 + 30
        self.client = ssrf.GuardedPool()
        self.pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="hooks")
        self.results: queue.Queue[Outcome] = queue.Queue()
        self.queues: dict[int, collections.deque[Job]] = {}
        self.inflight: dict[int, int] = {}
        self.running = 0
        self.queued = 0
        self.lock = threading.Lock()

    def busy(self) -> int:
        """Jobs claimed by this process and not yet finished (in flight or queued)."""
        with self.lock:
            return self.running + self.queued

    def handoff_room(self) -> tuple[int, set[int]]:
        """What a fan-out may hand over now, as a claim would take: the room left in all, and the
        endpoints already holding their share (:meth:`_cap`), whose rows stay pending."""
        with self.lock:
            room = self.max_held - self.running - self.queued
            full = {i for i in set(self.inflight) | set(self.queues)
                    if self.inflight.get(i, 0) + len(self.queues.get(i, ())) >= self._cap(i)}
        return room, full

    def accept(self, jobs: list[Job]) -> None:
        """Queue jobs whose rows a committed fan-out leased to this process, and start sending."""
        with self.lock:
            for j in jobs:
                self.queues.setdefault(j.install_id, collections.deque()).append(j)
            self.queued += len(jobs)
            self._pump()

    def claim_and_send(self) -> int:
        """Lease what fits in the local queues (skipping full endpoints) and start sending; return how many."""
        with self.lock:
            room = self.max_held - self.running - self.queued
            full = [i for i in set(self.inflight) | set(self.queues)
                    if self.inflight.get(i, 0) + len(self.queues.get(i, ())) >= self._cap(i)]
        if room <= 0:
            return 0
        now = utcnow()
        with session_scope() as s:
            repo = PartnerRepository(s)
            rows = repo.claim_batch(now, room, full, now + dt.timedelta(seconds=self.lease_s))
            secrets = repo.install_secrets(sorted({int(r.install_id) for r in rows}), now)
        send_by = time.monotonic() + self.lease_s - self.send_s - 5
        jobs = [Job(int(r.id), r.uid, r.url, r.body.encode(), int(r.attempts), r.event_at, int(r.install_id),
                    secrets.get(int(r.install_id), ()), send_by) for r in rows]
        with self.lock:
            for j in jobs:
                self.queues.setdefault(j.install_id, collections.deque()).append(j)
            self.queued += len(jobs)
            self._pump()
        return len(jobs)

    def _cap(self, install_id: int) -> int:
        """Jobs an endpoint may hold (in flight and queued), from its recent pace."""
        pace = self.pace.get(install_id)
        rounds = 2 if pace is None else max(2, min(MAX_ROUNDS, int(BACKLOG_S / max(pace, 1e-4))))
        return self.per_endpoint * (1 + rounds)

    def _take(self) -> Job | None:
        """The next job to start, endpoints taking turns, with its slot counted (lock held)."""
        while self.running < self.concurrency and self.queued:
            now = time.monotonic()
            for install_id in list(self.queues):
                if self.inflight.get(install_id, 0) >= self.per_endpoint:
                    continue
                q = self.queues.pop(install_id)  # put back at the end: endpoints take turns
                job = q.popleft()
                self.queued -= 1
                if q:
                    self.queues[install_id] = q
                if now > job.send_by:
                    log.warning("webhook lease too short to send; left for a later claim",
                                extra={"fields": {"delivery": job.id}})
                    break  # look again from the start
                self.inflight[install_id] = self.inflight.get(install_id, 0) + 1
                self.running += 1
                return job
            else:
                return None  # every endpoint with queued jobs is at its cap
        return None

    def _pump(self) -> None:
        """Start queued jobs on idle senders while there is room (lock held)."""
        while (job := self._take()) is not None:
            self.pool.submit(self._run, job)

    def _run(self, job: Job) -> None:
        """Send ``job``, then keep this sender busy with the next queued job (no hand-off per request)."""
        current: Job | None = job
        while current is not None:
            try:
                out = send(current, self.timeout_s, self.client)
            except Exception as exc:  # never lose a result
                out = Outcome(current, utcnow(), {}, None, 0.0, f"{type(exc).__name__}: {exc}", "", None,
                              utcnow())
            self.results.put(out)
            took = out.latency_ms / 1000 if out.status_code is not None else self.timeout_s
            i = current.install_id
            with self.lock:
                prev = self.pace.get(i)
                self.pace[i] = took if prev is None else 0.8 * prev + 0.2 * took
                n = self.inflight.get(i, 1) - 1
                if n <= 0:
                    self.inflight.pop(i, None)
                else:
                    self.inflight[i] = n
                self.running -= 1
                current = self._take()
                self._pump()
                idle = self.running == 0 and self.queued == 0
            if idle or self.results.qsize() >= RECORD_BATCH:
                wakeup.set()  # otherwise the loop records on its next tick, many results per transaction

    def record_results(self) -> int:
        """Write every finished attempt in one transaction; return how many."""
        outs: list[Outcome] = []
        while True:
            try:
                outs.append(self.results.get_nowait())
            except queue.Empty:
                break
        if outs:
            with session_scope() as s:
                record_batch(s, outs)
        return len(outs)

    def drain(self, timeout_s: float = 30.0) -> int:
        """Send everything due now and wait for the results (tests, CLI); return attempts made."""
        done = 0
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            started = self.claim_and_send()
            done += self.record_results()
            if started == 0 and self.busy() == 0 and self.results.empty():
                break
            if started == 0:
                wakeup.wait(0.05)
                wakeup.clear()
        send_pending_emails()
        return done

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=False)
        self.record_results()
        self.client.close()


def deliver_due(timeout_s: float = 30.0) -> int:
    """Send every due delivery once and record the results (a one-shot Deliverer)."""
    d = Deliverer()
    try:
        return d.drain(timeout_s)
    finally:
        d.close()


def notified() -> None:
    """New deliveries were committed somewhere (NOTIFY on PostgreSQL): wake this process's loop."""
    new_work.set()
    wakeup.set()


def attach(d: Deliverer) -> bool:
    """Make ``d`` this process's deliverer, to which the fan-out hands rows; False if one is attached."""
    global _local
    if _local is not None:
        return False
    _local = d
    return True


def detach(d: Deliverer) -> None:
    global _local
    if _local is d:
        _local = None


# ---- tools: delivery log and replay ---------------------------------------------------------------

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
    from tools.partner_api.registry import visible_to_org_or_publisher

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
    ctx.session.info["webhook_deliveries"] = True
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
    from tools.partner_api.registry import _install_for_org_or_partner

    inst = _install_for_org_or_partner(ctx, params.install_id)
    since = params.since if params.since.tzinfo else params.since.replace(tzinfo=dt.UTC)
    rows = PartnerRepository(ctx.session).failed_since([inst.id], since)
    for d in rows:
        _requeue(d)
    ctx.session.flush()
    if rows:
        ctx.session.info["webhook_deliveries"] = True
    audit_log.record(ctx, "webhooks.replayed_failures", f"install:{inst.id}",
                     detail={"since": since.isoformat(), "count": len(rows)})
    return ReplayResult(requeued=len(rows), delivery_ids=[d.id for d in rows])

