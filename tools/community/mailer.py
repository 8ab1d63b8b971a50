"""Community email: templated messages through the shared mailer, each with a working unsubscribe link and
the RFC 8058 one-click headers, each recorded in ``community_messages`` (sent or failed)."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from levqor.settings import get_settings
from memory.community.models import CommunityMessage
from memory.community.repository import CommunityRepository
from tools.community import tokens
from tools.shared import mail

log = logging.getLogger(__name__)
UNSUBSCRIBE = "unsubscribe"


def unsubscribe_url(email: str) -> str:
    """The signed link that unsubscribes ``email`` (GET shows a button; POST is RFC 8058 one-click)."""
    return f"{get_settings().base_url.rstrip('/')}/unsubscribe?token={tokens.sign(UNSUBSCRIBE, email.lower())}"


def email_of_unsubscribe_token(token: str) -> str | None:
    """The address an unsubscribe token names, or None if it is not one of ours."""
    got = tokens.unsign(UNSUBSCRIBE, token)
    return got[0] if got else None


def send(session: Session, *, kind: str, to: str, subject: str, body: str, uid: str,
         application_id: int | None = None, announcement_id: int | None = None, raise_errors: bool = False) -> bool:
    """Send one community email with unsubscribe headers and record it; True when the mailer accepted it."""
    to = to.lower()
    link = unsubscribe_url(to)
    text = f"{body.rstrip()}\n\n--\nLevqor Partner Network. Unsubscribe from community email: {link}\n"
    msg = mail.compose(to, " ".join(subject.split()), text, uid=uid)
    msg["List-Unsubscribe"] = f"<{link}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    row = CommunityMessage(uid=uid, kind=kind, to_email=to, subject=str(msg["Subject"]), body=text,
                           application_id=application_id, announcement_id=announcement_id)
    try:
        mail.deliver(msg, uid)
    except Exception as exc:  # a mail server refusing or down: recorded, the caller decides on retries
        log.warning("community email failed", extra={"fields": {"uid": uid, "error": str(exc)[:200]}})
        row.status, row.error = "failed", f"{type(exc).__name__}: {exc}"[:1000]
        existing = session.query(CommunityMessage).filter_by(uid=uid).one_or_none()
        if existing is None:
            CommunityRepository(session).add(row)
        if raise_errors:
            raise
        return False
    existing = session.query(CommunityMessage).filter_by(uid=uid).one_or_none()
    if existing is not None:  # a retry of a message that failed before
        existing.status, existing.error = "sent", ""
        session.flush()
    else:
        CommunityRepository(session).add(row)
    return True
