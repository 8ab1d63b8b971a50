"""Sign-in throttling on /login (the one password login path): per account and per IP address,
429 with Retry-After and a page message while locked (the right password too), a success resets the
account, and every failure and lockout is in the audit log."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from memory.audit.models import AuditEntry
from memory.db import session_scope
from tests.factories.orgs import OrgFixture, page_login

_ips = itertools.count(uuid.uuid4().int % 2**20)
Client = Callable[..., TestClient]


def new_ip() -> str:
    """An address no other test uses (the counters outlive a test)."""
    n = next(_ips)
    return f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"


@pytest.fixture()
def new_client(app: Any) -> Iterator[Client]:
    """``new_client(ip=None)``: a client from that address, or from a new one."""
    made: list[TestClient] = []

    def make(ip: str | None = None) -> TestClient:
        c = TestClient(app, client=(ip or new_ip(), 50000), raise_server_exceptions=False)
        made.append(c.__enter__())
        return made[-1]

    yield make
    for c in made:
        c.__exit__(None, None, None)


def assert_locked(r: Any, most_s: int) -> int:
    assert r.status_code == 429, r.text[:300]
    wait = int(r.headers["retry-after"])
    assert 1 <= wait <= most_s
    assert f"Too many attempts, try again in {wait} s" in r.text
    assert "set-cookie" not in r.headers or "levqor_session" not in r.headers["set-cookie"]
    return wait


def test_wrong_passwords_lock_the_account_even_for_the_right_password(new_client: Client, org: OrgFixture,
                                                                      set_settings) -> None:
    set_settings(login_max_failures=3, login_lockout_s=30)
    c = new_client()
    for _ in range(3):
        r = page_login(c, org.admin_email, "wrong password")
        assert r.status_code == 303 and "Wrong+email+or+password" in r.headers["location"]
    assert_locked(page_login(c, org.admin_email, org.admin_password), 30)
    # the account is locked whatever the address; the email's case does not matter
    assert_locked(page_login(new_client(), org.admin_email.upper(), org.admin_password), 30)
    assert c.get("/v1/me").status_code == 401


def test_the_ip_limit_counts_failures_across_emails(new_client: Client, org: OrgFixture, set_settings) -> None:
    set_settings(login_max_failures=100, login_max_failures_per_ip=4, login_lockout_s=60)
    ip = new_ip()
    attacker = new_client(ip)
    for i in range(4):
        assert page_login(attacker, f"nobody-{i}-{uuid.uuid4().hex[:6]}@example.com", "guess").status_code == 303
    assert_locked(page_login(attacker, org.admin_email, org.admin_password), 60)
    # the account itself is not locked: from another address the right password works
    ok = page_login(new_client(), org.admin_email, org.admin_password)
    assert ok.status_code == 303 and ok.headers["location"] == "/"
    with session_scope() as s:  # the address's lockout is in the platform log
        lock = s.scalars(select(AuditEntry).where(AuditEntry.action == "auth.lockout",
                                                  AuditEntry.target == f"ip:{ip}")).one()
        assert lock.org_id is None and lock.detail and lock.detail["scope"] == "ip" and lock.detail["seconds"] == 60


def test_a_success_resets_the_account_count(new_client: Client, org: OrgFixture, set_settings) -> None:
    set_settings(login_max_failures=3)
    c = new_client()
    for _ in range(2):
        assert page_login(c, org.admin_email, "wrong").status_code == 303
    assert page_login(c, org.admin_email, org.admin_password).headers["location"] == "/"
    for _ in range(2):  # without the reset these would be the 3rd and 4th failures: locked
        assert page_login(c, org.admin_email, "wrong").status_code == 303
    assert page_login(c, org.admin_email, org.admin_password).headers["location"] == "/"


def test_failures_and_lockouts_are_audited(client, new_client: Client, org: OrgFixture, set_settings) -> None:
    set_settings(login_max_failures=2, login_lockout_s=45)
    ip = new_ip()
    c = new_client(ip)
    for _ in range(2):
        page_login(c, org.admin_email, "wrong")
    assert_locked(page_login(c, org.admin_email, org.admin_password), 45)
    auditor = org.headers("auditor")
    failed = client.get("/v1/audit", params={"action": "auth.login_failed"}, headers=auditor).json()["items"]
    assert len(failed) == 2
    assert all(e["actor"] == f"ip:{ip}" and e["outcome"] == "failed" and e["target"].startswith("user:")
               and e["detail"]["email"] == org.admin_email and e["detail"]["reason"] == "wrong_password"
               for e in failed)
    locks = client.get("/v1/audit", params={"action": "auth.lockout"}, headers=auditor).json()["items"]
    assert len(locks) == 1 and locks[0]["detail"]["scope"] == "account" and locks[0]["detail"]["seconds"] == 45
    assert locks[0]["outcome"] == "locked" and locks[0]["target"] == failed[0]["target"]
    # an email that belongs to no user goes to the platform log (no organisation)
    stranger = f"stranger-{uuid.uuid4().hex[:8]}@example.com"
    page_login(c, stranger, "guess")
    with session_scope() as s:
        row = s.scalars(select(AuditEntry).where(AuditEntry.action == "auth.login_failed",
                                                 AuditEntry.target == f"email:{stranger}")).one()
        assert row.org_id is None and row.detail and row.detail["reason"] == "unknown_email"
    assert client.get("/v1/audit/verify", headers=auditor).json()["ok"] is True
