"""Incident notifications: queued per incident and sent later, so that a slow receiver never holds a tick.

Email is recorded in ``ops_notifications`` and written to the log (there is no SMTP here); webhooks go
through the SSRF guard and are retried up to five times. :func:`incident_payload` is how an incident looks
to the outside: in these notifications and in the ``incident_opened``/``incident_resolved`` events.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from sqlalchemy.orm import Session

from levqor.settings import get_settings
from memory.db import session_scope, utcnow
from memory.ops.models import Incident, OpsNotification
from memory.ops.repository import IncidentRepository
from tools.shared import ssrf

log = logging.getLogger("levqor.ops")


def incident_payload(inc: Incident) -> dict[str, Any]:
    """The incident as events and notifications carry it."""
    return {"incident_id": inc.id, "cause": inc.cause, "diagnosis": inc.diagnosis, "severity": inc.severity,
            "title": inc.title, "state": inc.state, "manual": inc.manual, "flapping": inc.flapping}


def notify(session: Session, inc: Incident, what: str) -> int:
    """Queue an email per configured address and a webhook call for ``what`` (opened, resolved, escalated)."""
    s = get_settings()
    subject = f"[levqor {inc.severity}] incident {inc.id} {what}: {inc.title}"[:300]
    body = json.dumps({**incident_payload(inc), "event": what, "summary": inc.summary}, default=str)
    repo = IncidentRepository(session)
    n = 0
    for to in s.ops_notify_emails:
        repo.add_notification(OpsNotification(incident_id=inc.id, channel="email", target=to, subject=subject,
                                              body=body))
        n += 1
    if s.ops_notify_webhook:
        repo.add_notification(OpsNotification(incident_id=inc.id, channel="webhook", target=s.ops_notify_webhook,
                                              subject=subject, body=body))
        n += 1
    if n:
        repo.add_event(inc.id, "notification", f"{n} notification(s) queued: {what}", actor="system")
    return n


def send_notifications(limit: int = 50) -> int:
    """Send queued notifications: email goes to the log (no SMTP), webhooks through the SSRF guard."""
    with session_scope() as s:
        return send_in(s, limit)


def send_in(s: Session, limit: int = 50) -> int:
    """Send queued notifications in the caller's transaction; how many were sent."""
    sent = 0
    for n in IncidentRepository(s).pending_notifications(limit):
        n.attempts += 1
        if n.channel == "email":
            log.warning("incident email", extra={"fields": {"to": n.target, "subject": n.subject}})
            n.status, n.sent_at = "sent", utcnow()
            sent += 1
            continue
        try:
            resp = ssrf.request("POST", n.target, headers={"content-type": "application/json"},
                                content=n.body.encode(), timeout=10.0)
        except ssrf.SSRFBlocked as exc:
            n.status, n.error = "blocked", str(exc)[:1000]
            continue
        except Exception as exc:
            n.error = f"{type(exc).__name__}: {exc}"[:1000]
            n.status = "failed" if n.attempts >= 5 else "pending"
            continue
        if 200 <= resp.status_code < 300:
            n.status, n.sent_at = "sent", utcnow()
            sent += 1
        else:
            n.error = f"HTTP {resp.status_code}"
            n.status = "failed" if n.attempts >= 5 else "pending"
    return sent
