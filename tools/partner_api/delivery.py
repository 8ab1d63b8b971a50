"""Webhook delivery, the part that is not a loop: lease due rows, sign and send one, record outcomes.

The delivery loop (:mod:`workers.hooks`) calls these. :func:`claim` leases due rows in one
``UPDATE ... RETURNING`` (``SKIP LOCKED`` on PostgreSQL); :func:`send` signs and POSTs one job
through the SSRF guard and touches no database; :func:`record_batch` writes finished attempts
(successes as a few bulk statements, failures through :func:`record`, which applies the retry
schedule, Retry-After, 410 and sustained-failure rules one by one, in order). Every row stays in
the database until its outcome is committed, so a worker killed at any point only delays
deliveries (at least once). Retries follow Standard Webhooks' recommended schedule with jitter
(``RETRY_SCHEDULE_S``); ``Retry-After`` is honoured; 410 disables the endpoint; an endpoint failing
for ``LEVQOR_HOOKS_DISABLE_AFTER_S`` is disabled and its partner emailed.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from levqor.settings import get_settings
from memory.db import utcnow
from memory.partner.models import PartnerEmail, PluginInstall, WebhookAttempt, WebhookDelivery
from memory.partner.repository import PartnerRepository
from tools.errors import AppError
from tools.partner_api import metrics
from tools.partner_api.signing import signature_header
from tools.shared import ssrf

log = logging.getLogger(__name__)

# Standard Webhooks' suggested schedule: the delay before attempt n+1 (seconds), with jitter.
RETRY_SCHEDULE_S: tuple[int, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
MAX_ATTEMPTS = len(RETRY_SCHEDULE_S)
MAX_RETRY_AFTER_S = 86400
MAX_REDIRECTS = 2
USER_AGENT = "Levqor-Webhooks/1.0"


@dataclass(frozen=True)
class Job:
    """A leased delivery, with what it takes to send it."""

    id: int
    uid: str
    url: str
    body: bytes
    attempts: int
    event_at: dt.datetime
    install_id: int
    secrets: tuple[str, ...]
    send_by: float = float("inf")  # time.monotonic() after which the lease may run out mid-send
    org_id: int = 0  # the customer organisation (a deliverer shares its room fairly between them)


@dataclass
class HandoffRoom:
    """What a deliverer takes now (:meth:`take`): jobs in all, and per organisation, so that one
    organisation's flood cannot hold all of it; endpoints already holding their share take none."""

    total: int
    org_left: dict[int, int]  # organisations holding jobs: how many more each may take
    org_cap: int  # how many an organisation holding none may take
    full_installs: set[int]

    def take(self, org_id: int, install_id: int) -> bool:
        """Count one job of ``org_id`` to ``install_id`` in, if there is room for it."""
        if self.total <= 0 or install_id in self.full_installs:
            return False
        left = self.org_left.get(org_id, self.org_cap)
        if left <= 0:
            return False
        self.org_left[org_id] = left - 1
        self.total -= 1
        return True


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


def claim(session: Session, now: dt.datetime, limit: int, skip_installs: list[int], lease_until: dt.datetime,
          send_by: float, skip_orgs: list[int] | None = None) -> list[Job]:
    """Lease up to ``limit`` due deliveries (none of ``skip_installs`` or ``skip_orgs``) until ``lease_until``."""
    repo = PartnerRepository(session)
    rows = repo.claim_batch(now, limit, skip_installs, lease_until, exclude_orgs=skip_orgs or ())
    secrets = repo.install_secrets(sorted({int(r.install_id) for r in rows}), now)
    return [Job(int(r.id), r.uid, r.url, r.body.encode(), int(r.attempts), r.event_at, int(r.install_id),
                secrets.get(int(r.install_id), ()), send_by, int(r.org_id)) for r in rows]


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


def send(job: Job, timeout_s: float, client: Any = None) -> Outcome:
    """Sign and POST one delivery through the SSRF guard (no DB access); ``client``: a GuardedPool."""
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


# ---- outcomes ------------------------------------------------------------------------------------

def _disable(session: Session, inst: PluginInstall, reason: str, kind: str) -> None:
    if inst.endpoint_disabled_at is not None:
        return
    repo = PartnerRepository(session)
    inst.endpoint_disabled_at, inst.disabled_reason = utcnow(), reason[:500]
    plugin = repo.plugin(inst.plugin_id)
    partner = repo.partner(plugin.partner_id) if plugin else None
    if partner is not None and plugin is not None and inst.mode != "test":  # test installs never email partners
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


def record(session: Session, out: Outcome) -> None:
    """Write one attempt's result: the log row, the delivery's next state, the endpoint's health."""
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
