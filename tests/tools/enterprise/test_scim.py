"""SCIM 2.0 as Okta and Entra ID drive it, enforcement of SSO with a break-glass admin, and tenancy of
the SCIM token."""

from __future__ import annotations

import time
import uuid
from typing import Any

from sqlalchemy import select

from memory.audit.models import AuditEntry
from memory.db import session_scope
from tests.factories.orgs import OrgFixture, make_org

SCIM = "application/scim+json"


def _scim_org(client: Any) -> tuple[OrgFixture, dict[str, str]]:
    org = make_org("enterprise")
    r = client.put("/v1/sso", headers=org.headers(), json={"group_roles": {"Levqor Admins": "admin",
                                                                            "Auditors": "auditor"}})
    assert r.status_code == 200, r.text
    r = client.post("/v1/sso/scim-token", headers=org.headers())
    assert r.status_code == 201 and r.json()["token"].startswith("scim_"), r.text
    return org, {"Authorization": f"Bearer {r.json()['token']}", "Content-Type": SCIM}


def actions(org_id: int) -> list[str]:
    with session_scope() as s:
        return list(s.scalars(select(AuditEntry.action).where(AuditEntry.org_id == org_id).order_by(AuditEntry.seq)))


def _user(client: Any, h: dict[str, str], email: str) -> dict[str, Any]:
    r = client.post("/scim/v2/Users", headers=h, json={
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": email, "externalId": "00u" + email[:6],
        "name": {"givenName": "Grace", "familyName": "Hopper"}, "emails": [{"value": email, "primary": True}],
        "active": True})
    assert r.status_code == 201 and r.headers["content-type"].startswith(SCIM), r.text
    return dict(r.json())


def test_users_and_groups_lifecycle_and_deactivation_locks_out_at_once(client) -> None:
    org, h = _scim_org(client)
    email = f"grace-{uuid.uuid4().hex[:6]}@{org.slug}.test"
    user = _user(client, h, email)
    assert user["active"] is True and user["userName"] == email and user["displayName"] == "Grace Hopper"
    assert client.post("/scim/v2/Users", headers=h, json={"userName": email}).status_code == 409
    found = client.get("/scim/v2/Users", headers=h, params={"filter": f'userName eq "{email}"'}).json()
    assert found["totalResults"] == 1 and found["Resources"][0]["id"] == user["id"]
    assert client.get("/scim/v2/Users", headers=h, params={"filter": "name co x"}).status_code == 400

    # A group mapped to admin makes the member an admin; removing them takes it back.
    g = client.post("/scim/v2/Groups", headers=h, json={"displayName": "Levqor Admins",
                                                         "members": [{"value": user["id"]}]})
    assert g.status_code == 201, g.text
    assert client.get(f"/scim/v2/Users/{user['id']}", headers=h).status_code == 200
    users = client.get("/v1/users", headers=org.headers()).json()["items"]
    assert next(u for u in users if u["email"] == email)["role"] == "admin"
    r = client.patch(f"/scim/v2/Groups/{g.json()['id']}", headers=h, json={
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "remove", "path": f'members[value eq "{user["id"]}"]'}]})
    assert r.status_code == 200 and r.json()["members"] == [], r.text
    users = client.get("/v1/users", headers=org.headers()).json()["items"]
    assert next(u for u in users if u["email"] == email)["role"] == "viewer"

    # The person has a browser session (opened as any sign-in does) and an API key of their own.
    from memory.identity.models import User
    from tests.factories.orgs import org_ctx
    from tools.identity.service import ApiKeyCreate, issue_key, open_session

    with session_scope() as s:
        u = s.get(User, int(user["id"]))
        token, _bs = open_session(s, u, 1, how="saml")
        key = issue_key(org_ctx(s, org.org_id), org.org_id, ApiKeyCreate(name="grace"), u.id).key
    cookies = {"levqor_session": token}
    assert client.get("/v1/me", cookies=cookies).status_code == 200
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {key}"}).status_code == 200

    # Entra ID deactivates with a PATCH whose value is the string "False".
    t0 = time.monotonic()
    r = client.patch(f"/scim/v2/Users/{user['id']}", headers=h, json={
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Replace", "path": "active", "value": "False"}]})
    assert r.status_code == 200 and r.json()["active"] is False, r.text
    assert client.get("/v1/me", cookies=cookies).status_code == 401
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    assert time.monotonic() - t0 < 1.0
    assert "scim.user_deactivated" in actions(org.org_id)
    # Okta's PUT with active: true brings the account back (sessions and keys stay revoked).
    put = client.put(f"/scim/v2/Users/{user['id']}", headers=h, json={**user, "active": True})
    assert put.status_code == 200 and put.json()["active"] is True, put.text
    assert client.get("/v1/me", cookies=cookies).status_code == 401
    assert client.delete(f"/scim/v2/Users/{user['id']}", headers=h).status_code == 204
    acts = actions(org.org_id)
    for a in ("scim.user_created", "scim.group_created", "scim.role_synced", "scim.group_updated",
              "scim.user_reactivated", "scim.user_deleted"):
        assert a in acts, a


def test_scim_token_is_per_organisation_and_bad_input_is_a_4xx(client) -> None:
    a, ha = _scim_org(client)
    b, hb = _scim_org(client)
    victim = _user(client, ha, f"victim-{uuid.uuid4().hex[:6]}@{a.slug}.test")
    for method, path in (("GET", f"/scim/v2/Users/{victim['id']}"), ("PATCH", f"/scim/v2/Users/{victim['id']}"),
                         ("DELETE", f"/scim/v2/Users/{victim['id']}"), ("PUT", f"/scim/v2/Users/{victim['id']}")):
        body = {"Operations": [{"op": "replace", "path": "active", "value": False}]} if method == "PATCH" else \
            {"userName": "x@evil.test"} if method == "PUT" else None
        r = client.request(method, path, headers=hb, json=body)
        assert r.status_code == 404, (method, r.text)
    assert client.get("/scim/v2/Users", headers=hb).json()["totalResults"] == 0
    g = client.post("/scim/v2/Groups", headers=hb, json={"displayName": "x", "members": [{"value": victim["id"]}]})
    assert g.status_code == 400 and g.json()["scimType"] == "invalidValue"
    for h in ({}, {"Authorization": "Bearer scim_wrong"}, a.headers()):
        assert client.get("/scim/v2/Users", headers=h).status_code == 401
    assert client.post("/scim/v2/Users", headers=ha, content=b"{not json").status_code == 400
    assert client.post("/scim/v2/Users", headers=ha, json={"userName": 5}).status_code == 422
    assert client.patch(f"/scim/v2/Users/{victim['id']}", headers=ha,
                        json={"Operations": [{"op": "replace", "path": "active", "value": "maybe"}]}).status_code == 400
    with session_scope() as s:
        from memory.identity.models import User

        assert s.get(User, int(victim["id"])).active is True


def test_enforced_sso_refuses_passwords_except_the_break_glass_admin(client, set_settings) -> None:
    set_settings(public_url="http://testserver", allow_loopback_urls=True)
    org = make_org("enterprise")
    r = client.put("/v1/sso", headers=org.headers(), json={"enforce_sso": True})
    assert r.status_code == 400 and r.json()["field"] == "enforce_sso"  # no IdP yet: would lock everyone out
    r = client.put("/v1/sso", headers=org.headers(), json={
        "oidc_enabled": True, "oidc_issuer": "https://idp.example.com", "oidc_client_id": "c", "enforce_sso": True})
    assert r.status_code == 200, r.text
    other = f"viewer-{uuid.uuid4().hex[:6]}-{org.slug}@acme-test.io"
    assert client.post("/v1/users", headers=org.headers(), json={
        "email": other, "role": "admin", "password": "another long password"}).status_code == 201

    def login(email: str, password: str) -> Any:
        client.cookies.clear()
        page = client.get("/login")
        csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
        return client.post("/login", data={"email": email, "password": password, "csrf_token": csrf},
                           follow_redirects=False)

    r = login(other, "another long password")
    assert r.status_code == 403 and "single sign-on" in r.text
    assert "auth.sso_required" in actions(org.org_id)
    r = login(org.admin_email, org.admin_password)  # not yet a break-glass admin
    assert r.status_code == 403
    assert client.put("/v1/sso", headers=org.headers(), json={"break_glass": [org.admin_email]}).status_code == 200
    r = login(org.admin_email, org.admin_password)
    assert r.status_code == 303 and "levqor_session=" in r.headers["set-cookie"], r.text
    assert "auth.break_glass_login" in actions(org.org_id)
