"""Platform events to partner endpoints, following Standard Webhooks.

Every platform event (``on_event("*")``) fans out, in the outbox dispatcher's transaction, to a
durable ``webhook_deliveries`` row per active install subscribed to it. Worker loops claim due
rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, with a lease), send them concurrently from a
thread pool with a per-request timeout and a cap of in-flight requests per endpoint (a hanging
partner holds at most ``LEVQOR_HOOKS_PER_ENDPOINT`` threads), and record every attempt.

A request carries ``webhook-id`` (stable across retries), ``webhook-timestamp`` and
``webhook-signature: v1,<base64 HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>``, one signature
per valid secret (two during a rotation). Retries follow the recommended schedule with jitter
(``RETRY_SCHEDULE_S``); ``Retry-After`` is honoured; 410 disables the endpoint; an endpoint failing
for ``LEVQOR_HOOKS_DISABLE_AFTER_S`` is disabled and its partner emailed. The body holds only the
event fields the install's granted scopes allow (``SCOPE_FIELDS``); anything else is dropped.
"""

from __future__ import annotations

import base64
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
from tools.events.service import EventRecord, on_event
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
wakeup = threading.Event()


# ---- signing (Standard Webhooks) ---------------------------------------------------------------

def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256>`` of ``{msg_id}.{timestamp}.{body}`` with a ``whsec_`` secret."""
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signature_header(secrets: list[str], msg_id: str, timestamp: int, body: bytes) -> str:
    return " ".join(sign(s, msg_id, timestamp, body) for s in secrets)


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


@on_event("*", handler_name="partner_api.hooks.fanout")
def fanout(session: Session, ev: EventRecord) -> None:
    """Queue one signed delivery per subscribed install, and accrue per-run plugin revenue."""
    if ev.org_id is None:
        return
    repo = PartnerRepository(session)
    installs = repo.subscribed_installs(ev.org_id)
    if not installs:
        return
    from memory.identity.repository import IdentityRepository

    org = IdentityRepository(session).org(ev.org_id)
    done = repo.delivered_installs(ev.id)
    created = 0
    for inst, plugin, version in installs:
        m = version.manifest
        url = (m.get("endpoints") or {}).get("webhook_url")
        if ev.name not in m.get("events", []) or not url or ev.created_at < inst.created_at:
            continue  # not subscribed, or the event happened before the install
        if inst.id in done:
            continue
        body = message_body(ev, list(inst.scopes), org.slug if org else None)
        session.add(WebhookDelivery(
            uid=f"msg_{ev.uid.removeprefix('evt_')}_{inst.id}", event_id=ev.id, event_name=ev.name,
            event_at=ev.created_at, install_id=inst.id, plugin_id=plugin.id, org_id=inst.org_id, url=url,
            body=body, status="pending", next_attempt_at=utcnow()))
        created += 1
    if ev.name == "job_complete":
        from tools.partner_api import payouts

        payouts.accrue_runs(session, ev, installs)
    if created:
        session.flush()
        session.info["webhook_deliveries"] = True


@sa_event.listens_for(Session, "after_commit")
def _wake(session: Session) -> None:
    if session.info.pop("webhook_deliveries", False):
        wakeup.set()


# ---- partner email (pluggable sender) -----------------------------------------------------------

class EmailSender(Protocol):
    def __call__(self, to: str, subject: str, body: str) -> None: ...


def _log_sender(to: str, subject: str, body: str) -> None:
    log.warning("partner email", extra={"fields": {"to": to, "subject": subject, "body": body}})


_sender: EmailSender = _log_sender


def set_email_sender(sender: EmailSender | None) -> None:
    """Send partner emails with ``sender(to, subject, body)`` (default: the log; there is no SMTP here)."""
    global _sender
    _sender = sender or _log_sender


def send_pending_emails() -> int:
    """Send queued partner emails with the configured sender; return how many were sent."""
    sent = 0
    with session_scope() as s:
        for mail in PartnerRepository(s).unsent_emails():
            try:
                _sender(mail.to, mail.subject, mail.body)
            except Exception:
                log.exception("partner email failed", extra={"fields": {"email": mail.id}})
                continue
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


# ---- delivery ------------------------------------------------------------------------------------

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


def send(job: Job, timeout_s: float) -> Outcome:
    """Sign and POST one delivery through the SSRF guard (no DB access)."""
    from tools.errors import AppError
    from tools.jobs import ssrf

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
        resp = ssrf.request("POST", job.url, headers=headers, content=job.body, timeout=timeout_s,
                            max_redirects=2, max_body=64_000)
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


class Deliverer:
    """Claims due deliveries and sends them from a thread pool; one per worker process."""

    def __init__(self, concurrency: int | None = None, per_endpoint: int | None = None,
                 timeout_s: float | None = None):
        from levqor.settings import get_settings

        s = get_settings()
        self.concurrency = concurrency or s.hooks_concurrency
        self.per_endpoint = per_endpoint or s.hooks_per_endpoint
        self.timeout_s = timeout_s or s.hooks_timeout_s
        self.pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="hooks")
        self.results: queue.Queue[Outcome] = queue.Queue()
        self.inflight: dict[int, int] = {}
        self.lock = threading.Lock()

    def busy(self) -> int:
        with self.lock:
            return sum(self.inflight.values())

    def claim_and_send(self) -> int:
        """Claim what fits in free capacity (per endpoint too) and start sending; return how many."""
        free = self.concurrency - self.busy()
        if free <= 0:
            return 0
        now = utcnow()
        with self.lock:
            counts = dict(self.inflight)
        full = [i for i, n in counts.items() if n >= self.per_endpoint]
        jobs: list[Job] = []
        with session_scope() as s:
            repo = PartnerRepository(s)
            lease = now + dt.timedelta(seconds=self.timeout_s * 3 + 30)
            rows = repo.claim_due(now, free * 4, full, lease)
            secrets: dict[int, tuple[str, ...]] = {}
            for d in rows:
                if len(jobs) >= free or counts.get(d.install_id, 0) >= self.per_endpoint:
                    d.status = "failing" if d.attempts else "pending"  # not ours this round
                    d.lease_until = None
                    continue
                counts[d.install_id] = counts.get(d.install_id, 0) + 1
                if d.install_id not in secrets:
                    inst = s.get(PluginInstall, d.install_id)
                    secrets[d.install_id] = tuple(valid_secrets(inst, now)) if inst else ()
                jobs.append(Job(d.id, d.uid, d.url, d.body.encode(), d.attempts, d.event_at, d.install_id,
                                secrets[d.install_id]))
        with self.lock:
            for j in jobs:
                self.inflight[j.install_id] = self.inflight.get(j.install_id, 0) + 1
        for j in jobs:
            self.pool.submit(self._run, j)
        return len(jobs)

    def _run(self, job: Job) -> None:
        try:
            out = send(job, self.timeout_s)
        except Exception as exc:  # never lose a result
            out = Outcome(job, utcnow(), {}, None, 0.0, f"{type(exc).__name__}: {exc}", "", None, utcnow())
        self.results.put(out)
        wakeup.set()

    def record_results(self) -> int:
        """Write every finished attempt in one transaction; return how many."""
        outs: list[Outcome] = []
        while True:
            try:
                outs.append(self.results.get_nowait())
            except queue.Empty:
                break
        if not outs:
            return 0
        try:
            with session_scope() as s:
                for out in outs:
                    record(s, out)
        finally:
            with self.lock:
                for out in outs:
                    n = self.inflight.get(out.job.install_id, 1) - 1
                    if n <= 0:
                        self.inflight.pop(out.job.install_id, None)
                    else:
                        self.inflight[out.job.install_id] = n
        return len(outs)

    def drain(self, timeout_s: float = 30.0) -> int:
        """Send everything due now and wait for the results (tests, CLI); return attempts made."""
        done = 0
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            started = self.claim_and_send()
            done += self.record_results()
            if started == 0 and self.busy() == 0:
                break
            if started == 0:
                wakeup.wait(0.05)
                wakeup.clear()
        send_pending_emails()
        return done

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=False)
        self.record_results()


def deliver_due(timeout_s: float = 30.0) -> int:
    """Send every due delivery once and record the results (a one-shot Deliverer)."""
    d = Deliverer()
    try:
        return d.drain(timeout_s)
    finally:
        d.close()


def run_hooks(stop: threading.Event, concurrency: int | None = None) -> None:
    """Worker loop: claim, send concurrently, record; wake on new deliveries or finished sends."""
    d = Deliverer()
    last_mail = 0.0
    try:
        while not stop.is_set():
            try:
                recorded = d.record_results()
                started = d.claim_and_send()
                if time.monotonic() - last_mail > 5:
                    last_mail = time.monotonic()
                    send_pending_emails()
            except Exception:
                log.exception("webhook delivery loop failed")
                recorded = started = 0
                stop.wait(1.0)
            if recorded == 0 and started == 0:
                wakeup.wait(0.5)
                wakeup.clear()
    finally:
        d.close()


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

