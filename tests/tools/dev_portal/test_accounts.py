"""The Get API Key flow: sign up, verify the email from the mail sink, keys (create, see once, rotate with a
grace period, revoke, last use), invitations; throttling of sign-ups and sign-ins; bad input is a 4xx
naming the field; every step is in the audit log."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.factories.orgs import OrgFixture
from tests.factories.portal import (
    PASSWORD,
    create_key,
    csrf,
    link,
    mails_to,
    new_developer,
    sign_up,
    verified_developer,
)


@pytest.fixture()
def web(app: Any, set_settings: Any) -> Iterator[TestClient]:
    """A browser-like client from an address of its own (sign-ups are counted per address)."""
    set_settings(signup_max_per_ip=1000)
    import secrets

    with TestClient(app, raise_server_exceptions=False, client=(f"198.51.100.{secrets.randbelow(250) + 1}",
                                                                  40000)) as c:
        yield c


def _audit(client: Any, key: str, action: str) -> list[dict[str, Any]]:
    r = client.get("/v1/audit", params={"action": action}, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def test_sign_up_verify_and_create_a_test_key_that_works(web: TestClient) -> None:
    dev = new_developer()
    r = sign_up(web, dev)
    assert r.status_code == 200 and "Check your email" in r.text and dev.email in r.text
    (msg,) = mails_to(dev.email)
    assert msg["Subject"] == "Verify your email for Levqor"
    # before verifying, the person can sign in but not create keys
    login = web.post("/developer/login", data={"email": dev.email, "password": dev.password,
                                               "csrf_token": csrf(web.get("/developer/login").text)},
                     follow_redirects=False)
    assert login.status_code == 303
    page = web.get("/developer/keys")
    assert "Verify your email" in page.text and "Create a key" not in page.text
    r = web.post("/developer/keys", data={"name": "early", "mode": "test", "csrf_token": csrf(page.text)})
    assert r.status_code == 403 and r.json()["field"] == "email"
    # nor through the other doors: the main /keys page and the API with the browser session
    r = web.post("/keys", data={"name": "early", "mode": "test", "csrf_token": csrf(page.text)})
    assert r.status_code == 403 and r.json()["field"] == "email"
    r = web.post("/v1/keys", json={"name": "early"}, headers={"x-csrf-token": csrf(page.text)})
    assert r.status_code == 403 and r.json()["field"] == "email"
    for p in ("/developer/keys", "/developer/team"):  # the portal's signed-in pages: CSP, no inline script
        r = web.get(p)
        assert r.status_code == 200 and "script-src 'self';" in r.headers["content-security-policy"]
        assert "<script" not in r.text and " style=" not in r.text
    # the link verifies and signs in
    r = web.get(link(msg, "/developer/verify"), follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/developer/keys?verified=1"
    page = web.get("/developer/keys?verified=1")
    assert "Email verified" in page.text and "Create a key" in page.text
    key = create_key(web, name="first", mode="test", role="admin", expires_in_days="30")
    assert key.startswith("lvq_test_") and len(key) == len("lvq_test_") + 40
    me = web.get("/v1/me", headers={"Authorization": f"Bearer {key}"}).json()
    assert me["key_mode"] == "test" and me["role"] == "admin"
    listed = web.get("/v1/keys", headers={"Authorization": f"Bearer {key}"}).json()["items"]
    assert len(listed) == 1 and listed[0]["expires_at"] is not None and "key" not in listed[0]
    # the key is never shown again; its last use is
    again = web.get("/developer/keys").text
    assert key not in again and key[:17] in again and "never" not in again.split(key[:17])[1].split("</tr>")[0]
    # the organisation has exactly this admin; the steps are audited
    users = web.get("/v1/users", headers={"Authorization": f"Bearer {key}"}).json()["items"]
    assert [(u["email"], u["role"]) for u in users] == [(dev.email, "admin")]
    for action in ("devportal.signup", "devportal.email_verified", "org.created", "users.created", "keys.created",
                   "auth.login"):
        assert _audit(web, key, action), action
    # a second click on the link (or a mail scanner's) is harmless and signs nobody in
    with TestClient(web.app, raise_server_exceptions=False) as stranger:
        again = stranger.get(link(msg, "/developer/verify"), follow_redirects=False)
        assert again.status_code == 200 and "already verified" in again.text
        assert "levqor_session" not in again.headers.get("set-cookie", "")
        assert stranger.get("/developer/keys", headers={"accept": "text/html"},
                            follow_redirects=False).headers["location"] == "/developer/login"


def test_an_existing_email_creates_nothing_and_is_told_by_email_only(web: TestClient, org: OrgFixture) -> None:
    dev = new_developer()
    dev.email = org.admin_email
    r = sign_up(web, dev)
    assert r.status_code == 200 and "Check your email" in r.text  # the same answer as a new sign-up
    (msg,) = mails_to(org.admin_email)
    assert "already has one" in msg.get_content()
    users = web.get("/v1/users", headers=org.headers()).json()["items"]
    assert len(users) == 1


def test_bad_sign_up_input_is_refused_naming_the_field(web: TestClient) -> None:
    dev = new_developer()
    r = sign_up(web, dev, password="short")
    assert r.status_code == 422 and "password" in r.text and 'role="alert"' in r.text
    r = sign_up(web, dev, email="not-an-email")
    assert r.status_code == 422 and "email" in r.text
    r = sign_up(web, dev, org_name="")
    assert r.status_code == 422 and "org_name" in r.text
    r = sign_up(web, dev, csrf_token="forged")
    assert r.status_code == 400 and "expired" in r.text
    assert mails_to(dev.email) == []
    assert web.get("/developer/verify?token=nope").status_code == 400
    assert web.get("/developer/verify").status_code == 400


def test_sign_ups_are_throttled_per_address(app: Any, set_settings: Any) -> None:
    set_settings(signup_max_per_ip=2, signup_window_s=600)
    with TestClient(app, raise_server_exceptions=False, client=("203.0.113.77", 1)) as c:
        for _ in range(2):
            assert sign_up(c, new_developer()).status_code == 200
        dev = new_developer()
        r = sign_up(c, dev)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1 and "too many sign-ups" in r.text
        assert mails_to(dev.email) == []
    with TestClient(app, raise_server_exceptions=False, client=("203.0.113.78", 1)) as other:
        assert sign_up(other, new_developer()).status_code == 200  # another address is not affected


def test_portal_sign_in_uses_the_login_throttle(web: TestClient, set_settings: Any) -> None:
    dev = verified_developer(web)
    set_settings(login_max_failures=2)
    fresh = TestClient(web.app, raise_server_exceptions=False, client=("192.0.2.9", 1))
    for _ in range(2):
        r = fresh.post("/developer/login", data={"email": dev.email, "password": "wrong password!!",
                                                 "csrf_token": csrf(fresh.get("/developer/login").text)})
        assert r.status_code == 401 and "Wrong email or password" in r.text
    r = fresh.post("/developer/login", data={"email": dev.email, "password": dev.password,
                                             "csrf_token": csrf(fresh.get("/developer/login").text)})
    assert r.status_code == 429 and "Too many attempts" in r.text and int(r.headers["retry-after"]) > 0


def test_rotate_keeps_the_old_key_for_the_grace_period_then_revoke(web: TestClient, set_settings: Any) -> None:
    verified_developer(web)
    adm = create_key(web, name="adm")
    old = create_key(web, name="ci", mode="live", role="viewer")

    def key_id(full: str) -> int:
        items = web.get("/v1/keys", headers={"Authorization": f"Bearer {adm}"}).json()["items"]
        return int(next(k["id"] for k in items if full.startswith(k["prefix"])))

    kid = key_id(old)
    page = web.get("/developer/keys")
    r = web.post(f"/developer/keys/{kid}/rotate", data={"csrf_token": csrf(page.text)})
    assert r.status_code == 200 and "now expires at" in r.text
    new = r.text.split('id="new-key">')[1].split("<")[0]
    assert new != old and new.startswith("lvq_live_")
    for k in (old, new):  # both work during the grace period
        me = web.get("/v1/me", headers={"Authorization": f"Bearer {k}"})
        assert me.status_code == 200 and me.json()["role"] == "viewer"
    # with no grace period the rotated key stops at once (API route this time)
    set_settings(key_rotation_grace_s=0)
    new_id = key_id(new)
    newer = web.post(f"/v1/keys/{new_id}/rotate", headers={"Authorization": f"Bearer {adm}"})
    assert newer.status_code == 201, newer.text
    assert newer.json()["replaces"]["prefix"] == new[:17] and newer.json()["name"] == "ci"
    assert web.get("/v1/me", headers={"Authorization": f"Bearer {new}"}).status_code == 401
    assert web.get("/v1/me", headers={"Authorization": f"Bearer {newer.json()['key']}"}).status_code == 200
    # a revoked or expired key cannot be rotated (409 naming key_id); an unknown one is 404
    r = web.post(f"/v1/keys/{new_id}/rotate", headers={"Authorization": f"Bearer {adm}"})
    assert r.status_code == 409 and r.json()["field"] == "key_id"
    assert web.post("/v1/keys/999999/rotate", headers={"Authorization": f"Bearer {adm}"}).status_code == 404
    # revoke from the page
    page = web.get("/developer/keys")
    newest_id = newer.json()["id"]
    r = web.post(f"/developer/keys/{newest_id}/revoke", data={"csrf_token": csrf(page.text)})
    assert r.status_code == 200 and "is revoked" in r.text
    assert web.get("/v1/me", headers={"Authorization": f"Bearer {newer.json()['key']}"}).status_code == 401
    rotated = _audit(web, adm, "keys.rotated")
    assert len(rotated) == 2 and rotated[0]["actor"].startswith("api_key:")
    assert _audit(web, adm, "keys.revoked")


def test_bad_key_input_is_a_4xx_naming_the_field(web: TestClient) -> None:
    verified_developer(web)
    token = csrf(web.get("/developer/keys").text)
    for data, field in (({"name": "x", "expires_in_days": "0"}, "expires_in_days"),
                        ({"name": "x", "expires_in_days": "soon"}, "expires_in_days"),
                        ({"name": "x", "mode": "prod"}, "mode"), ({"name": "", "mode": "test"}, "name"),
                        ({"name": "x", "role": "partner"}, "role")):
        r = web.post("/developer/keys", data={**data, "csrf_token": token})
        assert 400 <= r.status_code < 500 and r.json()["field"] == field, (data, r.text)
    assert web.post("/developer/keys", data={"name": "x", "csrf_token": "forged"}).status_code == 403


def test_invite_a_teammate_who_accepts_and_signs_in(web: TestClient, app: Any) -> None:
    owner = verified_developer(web)
    admin_key = create_key(web)
    page = web.get("/developer/team")
    mate = new_developer().email
    r = web.post("/developer/team/invites", data={"email": mate, "role": "auditor", "csrf_token": csrf(page.text)})
    assert r.status_code == 201 and f"Invitation sent to {mate}" in r.text and "auditor" in r.text
    (msg,) = mails_to(mate)
    assert "auditor" in msg.get_content()
    # inviting an email that has an account is a conflict naming the email
    r = web.post("/v1/invites", json={"email": owner.email}, headers={"Authorization": f"Bearer {admin_key}"})
    assert r.status_code == 409 and r.json()["field"] == "email"
    r = web.post("/v1/invites", json={"email": "x@example.com", "role": "owner"},
                 headers={"Authorization": f"Bearer {admin_key}"})
    assert r.status_code == 422 and r.json()["field"] == "role"
    with TestClient(app, raise_server_exceptions=False, client=("198.51.100.250", 2)) as teammate:
        path = link(msg, "/developer/invite")
        form = teammate.get(path)
        assert form.status_code == 200 and mate in form.text
        token = path.split("token=")[1]
        r = teammate.post("/developer/invite", data={"token": token, "password": "short",
                                                     "csrf_token": csrf(form.text)})
        assert r.status_code == 422 and "password" in r.text
        r = teammate.post("/developer/invite", data={"token": token, "password": PASSWORD, "name": "Mate",
                                                     "csrf_token": csrf(r.text)}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/developer/keys"
        assert teammate.get("/developer/team").status_code == 200  # signed in, auditors read users
        assert teammate.get(path).status_code == 400  # the link works once
    users = web.get("/v1/users", headers={"Authorization": f"Bearer {admin_key}"}).json()["items"]
    assert (mate, "auditor") in [(u["email"], u["role"]) for u in users]
    assert web.get("/v1/invites", headers={"Authorization": f"Bearer {admin_key}"}).json()["items"] == []
    assert _audit(web, admin_key, "users.invited") and _audit(web, admin_key, "users.invite_accepted")


def test_a_cancelled_invitation_link_stops_working(web: TestClient, org: OrgFixture) -> None:
    mate = new_developer().email
    r = web.post("/v1/invites", json={"email": mate, "role": "viewer"}, headers=org.headers())
    assert r.status_code == 201
    pending = web.get("/v1/invites", headers=org.headers("viewer")).json()["items"]
    assert [i["email"] for i in pending] == [mate]
    assert web.delete(f"/v1/invites/{r.json()['id']}", headers=org.headers()).status_code == 200
    (msg,) = mails_to(mate)
    assert web.get(link(msg, "/developer/invite")).status_code == 400
    assert web.delete("/v1/invites/999999", headers=org.headers()).status_code == 404


def test_another_organisation_cannot_rotate_or_revoke_through_the_pages(web: TestClient, org: OrgFixture) -> None:
    """The /developer pages are not in the OpenAPI document the tenancy test walks: the same rule, here."""
    verified_developer(web)
    victim = web.get("/v1/keys", headers=org.headers()).json()["items"][0]
    token = csrf(web.get("/developer/keys").text)
    for action in ("rotate", "revoke"):
        r = web.post(f"/developer/keys/{victim['id']}/{action}", data={"csrf_token": token})
        assert r.status_code == 404 and r.json()["field"] == "key_id", r.text
    after = web.get("/v1/keys", headers=org.headers()).json()["items"][0]
    assert after == {**victim, "last_used_at": after["last_used_at"]}
    assert web.get("/v1/me", headers=org.headers()).status_code == 200


def test_a_line_break_in_an_organisation_name_does_not_break_the_invitation_email(web: TestClient) -> None:
    dev = new_developer()
    r = sign_up(web, dev, org_name="Evil\r\nBcc: victim@example.com")
    assert r.status_code == 200
    (msg,) = mails_to(dev.email)
    web.get(link(msg, "/developer/verify"))
    key = create_key(web)
    mate = new_developer().email
    r = web.post("/v1/invites", json={"email": mate}, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 201, r.text
    (invite,) = mails_to(mate)
    assert invite["Bcc"] is None and "Evil Bcc: victim@example.com" in invite["Subject"]
