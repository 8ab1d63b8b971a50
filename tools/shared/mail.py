"""Mail transport: build a plain-text message and send it by SMTP, or keep it as an ``.eml`` file.

With no ``LEVQOR_SMTP_URL`` each message is written under ``VAR_DIR/mail`` instead (a development
sink: nothing is lost and nothing leaves the machine). Used by the jobs area's email notifications
and by the partner API's partner emails.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from urllib.parse import unquote, urlsplit

from levqor import diskspace
from levqor.settings import get_settings

log = logging.getLogger(__name__)


def compose(to: str, subject: str, body: str, *, uid: str) -> EmailMessage:
    """A plain-text message from ``LEVQOR_SMTP_FROM``; ``uid`` goes into its Message-ID."""
    msg = EmailMessage()
    msg["From"] = get_settings().smtp_from
    msg["To"] = to
    msg["Subject"] = subject
    # A stable uid makes redelivery idempotent for receivers that de-duplicate on Message-ID.
    msg["Message-ID"] = make_msgid(idstring=uid, domain="levqor.ai")
    msg.set_content(body)
    return msg


def send(msg: EmailMessage, smtp_url: str, timeout: float = 15.0) -> None:
    """Send ``msg`` through the SMTP server named by ``smtp_url``."""
    u = urlsplit(smtp_url)
    if u.scheme not in ("smtp", "smtps", "smtp+starttls") or not u.hostname:
        raise ValueError("LEVQOR_SMTP_URL must look like smtp://host:port, smtps://… or smtp+starttls://…")
    port = u.port or (465 if u.scheme == "smtps" else 587 if u.scheme == "smtp+starttls" else 25)
    client: smtplib.SMTP
    if u.scheme == "smtps":
        client = smtplib.SMTP_SSL(u.hostname, port, timeout=timeout, context=ssl.create_default_context())
    else:
        client = smtplib.SMTP(u.hostname, port, timeout=timeout)
    with client:
        if u.scheme == "smtp+starttls":
            client.starttls(context=ssl.create_default_context())
        if u.username:
            client.login(unquote(u.username), unquote(u.password or ""))
        client.send_message(msg)


def write_eml(msg: EmailMessage, uid: str) -> Path:
    """Write ``msg`` to the mail sink. On a full disk no partial file is left behind and the error is
    raised (counted as ENOSPC at ``mail``): the event outbox retries the delivery with back-off."""
    folder = get_settings().var_dir / "mail"
    path = folder / f"{uid}.eml"
    tmp = path.with_suffix(".tmp")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(bytes(msg))
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if diskspace.is_enospc(exc):
            diskspace.note_enospc("mail")
            log.warning("mail sink full; the delivery will be retried", extra={"fields": {"uid": uid}})
        raise
    return path


def deliver(msg: EmailMessage, uid: str) -> None:
    """Send ``msg`` by SMTP when ``LEVQOR_SMTP_URL`` is set, else write it to ``VAR_DIR/mail/{uid}.eml``."""
    url = get_settings().smtp_url
    if url:
        send(msg, url)
        log.info("email sent", extra={"fields": {"to": msg["To"], "uid": uid}})
    else:
        path = write_eml(msg, uid)
        log.info("email written (no LEVQOR_SMTP_URL)", extra={"fields": {"to": msg["To"], "path": str(path)}})
