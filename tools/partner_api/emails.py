"""Partner emails: queued in ``partner_emails`` by the partner API, sent by a pluggable sender.

The default sender is the shared mail transport (``LEVQOR_SMTP_URL``, else an .eml file in
``VAR_DIR/mail``); tests set their own with :func:`set_email_sender`.
"""

from __future__ import annotations

import logging
import uuid
from typing import Protocol

from sqlalchemy.orm import Session

from memory.db import utcnow
from memory.partner.repository import PartnerRepository
from tools.shared import mail

log = logging.getLogger(__name__)


class EmailSender(Protocol):
    def __call__(self, to: str, subject: str, body: str) -> None: ...


def mail_sender(to: str, subject: str, body: str) -> None:
    """The default sender: the shared mail transport (``LEVQOR_SMTP_URL``, else ``VAR_DIR/mail``)."""
    uid = f"partner-{uuid.uuid4().hex}"
    mail.deliver(mail.compose(to, subject, body, uid=uid), uid)


_sender: EmailSender = mail_sender


def set_email_sender(sender: EmailSender | None) -> None:
    """Send partner emails with ``sender(to, subject, body)`` (None: back to the mailer, :func:`mail_sender`)."""
    global _sender
    _sender = sender or mail_sender


def send_pending(session: Session) -> int:
    """Send queued partner emails with the configured sender, marking each sent; return how many were sent.

    The first failure ends the round (the mail server is likely down, and a hanging one must not
    hold the caller once per email); unsent emails stay queued for the next round.
    """
    sent = 0
    for item in PartnerRepository(session).unsent_emails():
        try:
            _sender(item.to, item.subject, item.body)
        except Exception:
            log.exception("partner email failed", extra={"fields": {"email": item.id}})
            break
        item.sent_at = utcnow()
        sent += 1
    return sent
