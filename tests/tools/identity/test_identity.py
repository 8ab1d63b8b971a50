"""API keys, roles, sessions, CSRF and settings changes, through the HTTP API."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import event, select

from memory.db import get_engine, session_scope
from memory.identity.models import ApiKey
from memory.identity.repository import IdentityRepository
from tests.factories.orgs import OrgFixture
from tools.identity.service import sha256


def test_key_is_shown_once_and_only_hash_stored(client, org: OrgFixture) -> None:
    r = client.post("/v1/keys", json={"name": "ci", "role": "viewer", "mode": "test"}, headers=org.headers())
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["key"].startswith("lvq_test_") and body["key"].startswith(body["prefix"])
    listed = client.get("/v1/keys", headers=org.headers()).json()["items"]
    assert all("key" not in k for k in listed)
    from sqlalchemy import select

    from memory.db import session_scope
    from memory.identity.models import ApiKey

    with session_scope() as s:
        stored = s.scalar(select(ApiKey).where(ApiKey.prefix == body["prefix"]))
        assert stored is not None and body["key"] not in (stored.key_hash, stored.prefix)
    me = client.get("/v1/me", headers={"Authorization": f"Bearer {body['key']}"})
    assert me.status_code == 200 and me.json()["role"] == "viewer" and me.json()["key_mode"] == "test"


def test_revoked_and_unknown_keys_get_identical_401(client, org: OrgFixture) -> None:
    created = client.post("/v1/keys", json={"name": "tmp"}, headers=org.headers()).json()
    assert client.delete(f"/v1/keys/{created['id']}", headers=org.headers()).status_code == 200
    unknown = "lvq_live_" + "A" * 40
    from memory.db import get_engine

    counts: list[int] = []

    def run(key: str) -> dict[str, object]:
        n = [0]

        def count(*_a: object) -> None:
            n[0] += 1

        event.listen(get_engine(), "before_cursor_execute", count)
        try:
            r = client.get("/v1/me", headers={"Authorization": f"Bearer {key}"})
        finally:
            event.remove(get_engine(), "before_cursor_execute", count)
        counts.append(n[0])
        assert r.status_code == 401
        assert r.headers["content-type"].startswith("application/problem+json")
        body = r.json()
        body.pop("request_id")
        return body

    # Same answer and the same database work (one indexed lookup by hash) for both.
    assert run(created["key"]) == run(unknown)
    assert counts[0] == counts[1]


def test_missing_or_malformed_auth_is_401_problem(client) -> None:
    r = client.get("/v1/me")
    assert r.status_code == 401 and r.json()["status"] == 401
    r = client.get("/v1/me", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401 and "Bearer" in r.json()["detail"]


def test_expired_key_is_rejected(client, org: OrgFixture) -> None:
    import datetime as dt

    from sqlalchemy import update

    from memory.db import session_scope
    from memory.identity.models import ApiKey

    created = client.post("/v1/keys", json={"name": "exp", "expires_in_days": 1}, headers=org.headers()).json()
    ok = client.get("/v1/me", headers={"Authorization": f"Bearer {created['key']}"})
    assert ok.status_code == 200
    with session_scope() as s:
        s.execute(update(ApiKey).where(ApiKey.id == created["id"]).values(
            expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {created['key']}"}).status_code == 401


def test_last_used_is_recorded(client, org: OrgFixture) -> None:
    client.get("/v1/me", headers=org.headers("viewer"))
    keys = client.get("/v1/keys", headers=org.headers()).json()["items"]
    viewer = next(k for k in keys if k["name"] == "viewer key")
    assert viewer["last_used_at"] is not None


def _last_used(raw_key: str) -> dt.datetime | None:
    with session_scope(read_only=True) as s:
        return s.scalar(select(ApiKey.last_used_at).where(ApiKey.key_hash == sha256(raw_key)))


def test_last_used_is_written_once_per_window_even_under_concurrent_requests(client, org: OrgFixture,
                                                                             set_settings) -> None:
    set_settings(api_key_touch_s=3600)
    key = org.keys["viewer"]
    headers = {"Authorization": f"Bearer {key}"}
    writes: list[str] = []

    def record(_conn: object, _cur: object, statement: str, *_a: object) -> None:
        if statement.lstrip().upper().startswith("UPDATE API_KEYS"):
            writes.append(statement)

    event.listen(get_engine(), "before_cursor_execute", record)
    try:
        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(lambda _i: client.get("/v1/me", headers=headers).status_code, range(32)))
        assert statuses == [200] * 32
        assert len(writes) == 1, writes
        first = _last_used(key)
        assert first is not None
        assert client.get("/v1/jobs", headers=headers).status_code == 200
        assert _last_used(key) == first and len(writes) == 1  # still inside the window: no write at all
        set_settings(api_key_touch_s=0)  # the window has passed
        assert client.get("/v1/me", headers=headers).status_code == 200
    finally:
        event.remove(get_engine(), "before_cursor_execute", record)
    later = _last_used(key)
    assert len(writes) == 2 and later is not None and later > first


def test_last_used_write_is_conditional_on_the_stored_value_being_stale(org: OrgFixture) -> None:
    """Another process (or replica) wrote it within the window: this one's write changes nothing."""
    now = dt.datetime.now(dt.UTC)
    with session_scope() as s:
        key_id = s.scalar(select(ApiKey.id).where(ApiKey.key_hash == sha256(org.keys["auditor"])))
        assert key_id is not None
        repo = IdentityRepository(s)
        assert repo.touch_key(key_id, now, if_before=now - dt.timedelta(seconds=60))
        assert not repo.touch_key(key_id, now + dt.timedelta(seconds=30), if_before=now - dt.timedelta(seconds=30))
        assert repo.touch_key(key_id, now + dt.timedelta(seconds=90), if_before=now + dt.timedelta(seconds=30))
    assert _last_used(org.keys["auditor"]) == now + dt.timedelta(seconds=90)


def test_viewer_write_is_403_and_audited(client, org: OrgFixture) -> None:
    r = client.patch("/v1/org", json={"name": "nope"}, headers=org.headers("viewer"))
    assert r.status_code == 403
    entries = client.get("/v1/audit", params={"action": "authz.denied"}, headers=org.headers("auditor")).json()
    assert any(e["target"] == "/v1/org" and e["detail"]["permission"] == "org:write" for e in entries["items"])


def test_role_change_and_settings_change_are_audited_with_before_after(client, org: OrgFixture) -> None:
    u = client.post("/v1/users", json={"email": f"v-{org.slug}@acme-test.io", "role": "viewer"},
                    headers=org.headers())
    assert u.status_code == 201, u.text
    r = client.put(f"/v1/users/{u.json()['id']}/role", json={"role": "auditor"}, headers=org.headers())
    assert r.status_code == 200 and r.json()["role"] == "auditor"
    r = client.patch("/v1/org", json={"settings": {"timezone": "Europe/Paris"}}, headers=org.headers())
    assert r.status_code == 200
    items = client.get("/v1/audit", headers=org.headers("auditor")).json()["items"]
    role = next(e for e in items if e["action"] == "users.role_changed")
    assert role["before"] == {"role": "viewer"} and role["after"] == {"role": "auditor"}
    st = next(e for e in items if e["action"] == "org.settings_changed")
    assert st["before"]["settings"] == {} and st["after"]["settings"] == {"timezone": "Europe/Paris"}
    assert st["request_id"]


def test_cannot_demote_last_admin(client, org: OrgFixture) -> None:
    users = client.get("/v1/users", headers=org.headers()).json()["items"]
    admin = next(u for u in users if u["role"] == "admin")
    r = client.put(f"/v1/users/{admin['id']}/role", json={"role": "viewer"}, headers=org.headers())
    assert r.status_code == 409 and r.json()["field"] == "role"


def test_browser_login_session_and_csrf(client, org: OrgFixture) -> None:
    import re

    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    bad = client.post("/login", data={"email": org.admin_email, "password": "wrong", "csrf_token": token},
                      follow_redirects=False)
    assert bad.status_code == 303 and "error" in bad.headers["location"]
    r = client.post("/login", data={"email": org.admin_email, "password": org.admin_password,
                                    "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    home = client.get("/")
    assert home.status_code == 200 and "Offline mode" in home.text
    keys_page = client.get("/keys")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', keys_page.text).group(1)  # type: ignore[union-attr]
    # A form post without the CSRF token is refused; with it, the key is shown once.
    assert client.post("/keys", data={"name": "from page"}).status_code == 403
    ok = client.post("/keys", data={"name": "from page", "csrf_token": csrf})
    assert ok.status_code == 200 and "lvq_live_" in ok.text
    # JSON API with a session cookie also needs the CSRF header.
    assert client.post("/v1/keys", json={"name": "x"}).status_code == 403
    assert client.post("/v1/keys", json={"name": "x"}, headers={"x-csrf-token": csrf}).status_code == 201
    client.post("/logout", data={"csrf_token": csrf})
    assert client.get("/v1/me").status_code == 401


def test_login_form_without_csrf_is_refused(client, org: OrgFixture) -> None:
    fresh = client.__class__(client.app)
    r = fresh.post("/login", data={"email": org.admin_email, "password": org.admin_password},
                   follow_redirects=False)
    assert r.status_code == 303 and "expired" in r.headers["location"]
