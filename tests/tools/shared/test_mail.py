"""Email notifications from pipelines reach a real SMTP server (aiosmtpd on loopback), or the .eml sink."""

from __future__ import annotations

import email

import pytest

from levqor.settings import get_settings
from memory.db import session_scope
from tests.fakes.smtp import Inbox
from tests.support import free_port
from tools.events.service import emit
from tools.registry import registry
from workers.dispatcher import dispatch_pending


def _request_email(org_id: int, to: str) -> str:
    registry.load()
    with session_scope() as s:
        ev = emit(s, "notification_requested", {"channel": "email", "to": to, "subject": "Order 42 failed",
                                                "body": "The warehouse sync failed twice."}, org_id=org_id)
        return ev.uid


def _drain() -> None:
    for _ in range(1000):  # until nothing is due (events other tests left may fill the first claims)
        if dispatch_pending() == 0:
            return


def test_email_notification_is_sent_by_smtp(org, smtp_server: Inbox) -> None:
    uid = _request_email(org.org_id, "ops@acme-test.io")
    _drain()
    mine = [m for m in smtp_server.messages if uid in (m["Message-ID"] or "")]
    assert len(mine) == 1
    assert mine[0]["To"] == "ops@acme-test.io" and mine[0]["Subject"] == "Order 42 failed"
    assert "warehouse sync failed" in mine[0].get_payload()


def test_without_smtp_the_message_is_kept_as_eml(org, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEVQOR_SMTP_URL", "")
    get_settings.cache_clear()
    uid = _request_email(org.org_id, "ops@acme-test.io")
    _drain()
    path = get_settings().var_dir / "mail" / f"{uid}.eml"
    assert path.exists()
    msg = email.message_from_bytes(path.read_bytes())
    assert msg["To"] == "ops@acme-test.io" and msg["Subject"] == "Order 42 failed"


def test_unreachable_smtp_server_is_retried_and_visible(org, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import select

    from memory.events.models import Event, EventDelivery

    monkeypatch.setenv("LEVQOR_SMTP_URL", f"smtp://127.0.0.1:{free_port()}")
    get_settings.cache_clear()
    try:
        uid = _request_email(org.org_id, "ops@acme-test.io")
        _drain()
        with session_scope() as s:
            d = s.scalar(select(EventDelivery).join(Event, Event.id == EventDelivery.event_id).where(
                Event.uid == uid, EventDelivery.handler == "jobs.email_notification"))
            assert d is not None and d.status == "failing" and d.attempts == 1
            assert "Connection refused" in (d.last_error or "") or "ConnectionRefused" in (d.last_error or "")
    finally:
        get_settings.cache_clear()
