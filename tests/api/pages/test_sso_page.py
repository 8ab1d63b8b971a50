"""The SSO settings page: an admin saves SAML/OIDC settings and group mappings from the form, bad lines are
named, the SCIM token is shown once, a viewer sees the values but cannot change them."""

from __future__ import annotations

import re
from typing import Any

from tests.factories.orgs import OrgFixture, make_org


def _sign_in(client: Any, email: str, password: str) -> None:
    client.cookies.clear()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)  # type: ignore[union-attr]
    r = client.post("/login", data={"email": email, "password": password, "csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303, r.text


def _csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]


def test_admin_configures_sso_from_the_page(client, set_settings) -> None:
    set_settings(public_url="http://levqor.example.com")
    org: OrgFixture = make_org("enterprise")
    _sign_in(client, org.admin_email, org.admin_password)
    page = client.get("/settings/sso")
    assert page.status_code == 200
    assert f"http://levqor.example.com/sso/{org.slug}/saml/acs" in page.text
    form = {"csrf_token": _csrf(page.text), "oidc_enabled": "true", "oidc_issuer": "https://acme.okta.com",
            "oidc_client_id": "0oa123", "oidc_client_secret": "shh", "group_roles": "Admins = admin\nnonsense",
            "default_role": "viewer", "jit": "true"}
    bad = client.post("/settings/sso", data=form)
    assert bad.status_code == 400 and "line 2" in bad.text
    form["group_roles"] = "Levqor Admins = admin\nAuditors = auditor"
    ok = client.post("/settings/sso", data=form)
    assert ok.status_code == 200 and "Saved." in ok.text, ok.text
    cfg = client.get("/v1/sso", headers=org.headers()).json()
    assert cfg["oidc_enabled"] and cfg["oidc_client_secret_set"] and "shh" not in str(cfg)
    assert cfg["group_roles"] == {"Levqor Admins": "admin", "Auditors": "auditor"}
    token = client.post("/settings/sso/scim-token", data={"csrf_token": _csrf(ok.text)})
    shown = re.search(r'id="scim-token">(scim_[\w-]{40,})<', token.text)
    assert token.status_code == 200 and shown, token.text
    again = client.get("/settings/sso").text
    assert shown.group(1) not in again and shown.group(1)[:13] in again  # shown once, then only its prefix
    r = client.put("/v1/sso", headers=org.headers("viewer"), json={"enforce_sso": False})
    assert r.status_code == 403
    assert client.get("/v1/sso", headers=org.headers("auditor")).status_code == 403
