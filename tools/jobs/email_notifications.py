"""Email notifications: the ``notification_requested`` handler sends mail (:mod:`tools.shared.mail`).

A pipeline's ``notify`` step (channel ``email``) emits ``notification_requested`` when its run's
success is recorded; the outbox delivers it here at least once, with retries. With no
``LEVQOR_SMTP_URL`` each message is written as an ``.eml`` file under ``VAR_DIR/mail`` instead.
"""

from __future__ import annotations

from email.message import EmailMessage

from sqlalchemy.orm import Session

from tools.events.service import EventRecord, Reaction
from tools.shared import mail


def build_message(event: EventRecord) -> EmailMessage:
    p = event.payload
    return mail.compose(str(p["to"]), str(p.get("subject") or "Levqor notification"), str(p.get("body") or ""),
                        uid=event.uid)


def deliver_email(session: Session, event: EventRecord) -> None:
    """Send an email notification (SMTP when configured, else an .eml file in VAR_DIR/mail)."""
    if event.payload.get("channel") != "email":
        return
    mail.deliver(build_message(event), event.uid)


REACTIONS = (Reaction("notification_requested", "jobs.email_notification", handle=deliver_email),)
