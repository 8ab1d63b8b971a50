"""Billing emails to an organisation's admins, through the outbox and the existing mailer
(``notification_requested``, channel ``email``: delivered at least once after the commit)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from memory.identity.repository import IdentityRepository
from tools.events.service import emit


def admins_of(session: Session, org_id: int) -> list[str]:
    """The emails of the organisation's active admins."""
    return sorted(u.email for u in IdentityRepository(session).users(org_id) if u.role == "admin" and u.active)


def email_admins(session: Session, org_id: int, subject: str, body: str) -> int:
    """Queue one email per admin in the caller's transaction; how many were queued."""
    to = admins_of(session, org_id)
    for addr in to:
        emit(session, "notification_requested", {"channel": "email", "to": addr, "subject": subject, "body": body,
                                                 "source": "billing"}, org_id=org_id)
    return len(to)
