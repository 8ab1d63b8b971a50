"""Partner emails go out through the shared mail transport: a real SMTP server on loopback, or the .eml sink."""

from __future__ import annotations

import email
from typing import Any

import pytest

from levqor.settings import get_settings
from tests.factories.partners import World, emit_event, install, make_world, manifest, publish
from tests.fakes.partner_endpoint import Behaviour, Receiver
from tests.fakes.smtp import Inbox
from tests.support import free_port


@pytest.fixture(autouse=True)
def default_sender() -> None:
    from tools.partner_api.emails import set_email_sender

    set_email_sender(None)


def _queue_email(w: World, subject: str) -> int:
    from memory.db import session_scope
    from memory.partner.models import PartnerEmail
    from memory.partner.repository import PartnerRepository

    with session_scope() as s:
        repo = PartnerRepository(s)
        partner = repo.partner_for_org(w.partner.org_id)
        assert partner is not None
        mail = PartnerEmail(partner_id=partner.id, to=partner.contact_email, subject=subject, body="Hello partner.")
        repo.add_email(mail)
        s.flush()
        return mail.id


def _sent_at(mail_id: int) -> Any:
    from memory.db import session_scope
    from memory.partner.models import PartnerEmail

    with session_scope() as s:
        row = s.get(PartnerEmail, mail_id)
        assert row is not None
        return row.sent_at


def test_disabled_endpoint_email_reaches_the_partner_by_smtp(client, set_settings, smtp_server: Inbox) -> None:
    from workers.hooks import deliver_due

    with Receiver() as rx:
        rx.behaviour["/gone"] = Behaviour(410)
        w = make_world(client, set_settings)
        slug = f"{w.partner.slug}.gone"
        publish(client, w, manifest(slug, rx.url("/gone")))
        inst = install(client, w.customer, slug)
        emit_event("job_complete", {"job_id": 1}, w.customer.org_id)
        deliver_due()  # the 410 disables the endpoint and sends the queued email
    to = f"dev@{w.partner.slug}.example"
    (msg,) = [m for m in smtp_server.messages if m["To"] == to]
    assert msg["Subject"] == f"Levqor disabled a webhook endpoint of Plugin {slug}"
    assert msg["From"] == get_settings().smtp_from and msg["Message-ID"]
    assert f"install {inst['id']}" in msg.get_payload() and "410 Gone" in msg.get_payload()


def test_unreachable_smtp_keeps_the_email_queued_until_it_is_up(client, set_settings, smtp_server: Inbox) -> None:
    from workers.hooks import send_pending_emails

    up = get_settings().smtp_url
    w = make_world(client, set_settings)
    first, second = _queue_email(w, "Statement ready"), _queue_email(w, "Payout sent")
    set_settings(smtp_url=f"smtp://127.0.0.1:{free_port()}")
    assert send_pending_emails() == 0
    assert _sent_at(first) is None and _sent_at(second) is None
    set_settings(smtp_url=up)
    assert send_pending_emails() >= 2
    assert _sent_at(first) is not None and _sent_at(second) is not None
    subjects = [m["Subject"] for m in smtp_server.messages if m["To"] == f"dev@{w.partner.slug}.example"]
    assert subjects == ["Statement ready", "Payout sent"]


def test_without_smtp_the_partner_email_is_kept_as_eml(client, set_settings) -> None:
    from workers.hooks import send_pending_emails

    w = make_world(client, set_settings, smtp_url="")
    folder = get_settings().var_dir / "mail"
    before = set(folder.glob("partner-*.eml")) if folder.exists() else set()
    mail_id = _queue_email(w, "Your plugin was approved")
    assert send_pending_emails() >= 1 and _sent_at(mail_id) is not None
    mine = [email.message_from_bytes(p.read_bytes()) for p in set(folder.glob("partner-*.eml")) - before]
    mine = [m for m in mine if m["To"] == f"dev@{w.partner.slug}.example"]
    assert len(mine) == 1 and mine[0]["Subject"] == "Your plugin was approved"
    assert "Hello partner." in mine[0].get_payload()
