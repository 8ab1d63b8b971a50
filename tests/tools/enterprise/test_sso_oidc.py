"""OpenID Connect single sign-on against ``oidc-provider-mock`` on loopback (authorization code + PKCE,
discovery, state, nonce): an httpx-driven flow, a real browser flow in headless Chromium, and the attacks
(replayed code, mismatched state, bad nonce, ``alg: none``) refused with 4xx problems and audited."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select

from memory.audit.models import AuditEntry
from memory.db import session_scope
from tests.factories.orgs import OrgFixture, make_org
from tests.fakes.oidc_forger import Forger, running_forger
from tests.support.browser import chromium_page

os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")
GROUPS = {"okta-admins": "admin", "okta-auditors": "auditor"}


@pytest.fixture()
def provider() -> Iterator[str]:
    from oidc_provider_mock import run_server_in_thread

    with run_server_in_thread(require_nonce=True) as server:
        yield f"http://localhost:{server.server_port}"


def _oidc_org(client: Any, issuer: str, **more: Any) -> OrgFixture:
    org = make_org("enterprise")
    r = client.put("/v1/sso", headers=org.headers(), json={
        "oidc_enabled": True, "oidc_issuer": issuer, "oidc_client_id": f"levqor-{org.slug}",
        "oidc_client_secret": "s3cret", "group_roles": GROUPS, "default_role": "viewer", **more})
    assert r.status_code == 200, r.text
    return org


def audits(org_id: int, action: str) -> list[AuditEntry]:
    with session_scope() as s:
        rows = list(s.scalars(select(AuditEntry).where(AuditEntry.org_id == org_id, AuditEntry.action == action)
                              .order_by(AuditEntry.seq)))
        s.expunge_all()
        return rows


def _authorize(client: Any, org: OrgFixture, sub: str, return_to: str = "/") -> str:
    """Start at the app, sign in at the provider (its form, over HTTP); the callback path with code and state."""
    r = client.get(f"/sso/{org.slug}/oidc/login", params={"return_to": return_to}, follow_redirects=False)
    assert r.status_code == 303, r.text
    auth_url = r.headers["location"]
    q = parse_qs(urlsplit(auth_url).query)
    assert q["code_challenge_method"] == ["S256"] and q["nonce"][0] and q["state"][0]
    consent = httpx.post(auth_url, data={"sub": sub}, follow_redirects=False, timeout=10)
    assert consent.status_code == 302, consent.text
    back = urlsplit(consent.headers["location"])
    return f"{back.path}?{back.query}"


def _refused(org: OrgFixture, r: httpx.Response, reason: str, status: int = 400) -> None:
    assert r.status_code == status, (reason, r.text)
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["reason"] == reason and body["type"].endswith("/sso-" + reason.replace("_", "-")), body
    assert "levqor_session" not in r.headers.get("set-cookie", "")
    assert any(e.detail["reason"] == reason and e.detail["protocol"] == "oidc"
               for e in audits(org.org_id, "sso.login_refused")), reason


def test_code_flow_with_pkce_signs_in_maps_groups_and_refuses_replays(client, set_settings, provider: str) -> None:
    set_settings(public_url="http://testserver", allow_loopback_urls=True)
    org = _oidc_org(client, provider)
    sub = f"carol-{uuid.uuid4().hex[:8]}"
    email = f"{sub}@{org.slug}.okta.test"
    assert httpx.put(f"{provider}/users/{sub}", json={"email": email, "groups": ["okta-auditors"]}).status_code == 204
    callback = _authorize(client, org, sub, return_to="/audit")
    r = client.get(callback, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/audit", r.text
    me = client.get("/v1/me").json()
    assert me["role"] == "auditor" and me["name"] == email, me
    (login,) = audits(org.org_id, "sso.login")
    assert login.detail["protocol"] == "oidc" and login.detail["subject"] == sub

    client.cookies.clear()
    _refused(org, client.get(callback, follow_redirects=False), "replayed")  # the same callback again
    # The same code under a fresh state of ours: the provider refuses it (used, and bound to another PKCE).
    fresh = client.get(f"/sso/{org.slug}/oidc/login", follow_redirects=False).headers["location"]
    state = parse_qs(urlsplit(fresh).query)["state"][0]
    code = parse_qs(urlsplit(callback).query)["code"][0]
    _refused(org, client.get(f"/sso/{org.slug}/oidc/callback", params={"code": code, "state": state},
                             follow_redirects=False), "code_rejected")


def test_mismatched_state_is_refused(client, set_settings, provider: str) -> None:
    set_settings(public_url="http://testserver", allow_loopback_urls=True)
    org = _oidc_org(client, provider)
    callback = _authorize(client, org, f"dave-{uuid.uuid4().hex[:8]}")
    code = parse_qs(urlsplit(callback).query)["code"][0]
    for state in ("forged-state", ""):
        r = client.get(f"/sso/{org.slug}/oidc/callback", params={"code": code, "state": state},
                       follow_redirects=False)
        _refused(org, r, "state_mismatch")


@pytest.fixture()
def forger(client: Any, set_settings: Any) -> Iterator[tuple[Forger, OrgFixture]]:
    set_settings(public_url="http://testserver", allow_loopback_urls=True)
    with running_forger() as f:
        org = _oidc_org(client, f.issuer)
        f.client_id = f"levqor-{org.slug}"
        f.claims = {"email": f"mallory@{org.slug}.forger.test"}
        yield f, org


def _forged_callback(client: Any, org: OrgFixture) -> httpx.Response:
    r = client.get(f"/sso/{org.slug}/oidc/login", follow_redirects=False)
    back = httpx.get(r.headers["location"], follow_redirects=False, timeout=10)
    loc = urlsplit(back.headers["location"])
    return client.get(f"{loc.path}?{loc.query}", follow_redirects=False)


def test_an_honest_token_from_the_forger_would_pass(client, forger: tuple[Forger, OrgFixture]) -> None:
    """The control case: the attacks below fail for their forgery alone."""
    _f, org = forger
    assert _forged_callback(client, org).status_code == 303


def test_bad_nonce_is_refused(client, forger: tuple[Forger, OrgFixture]) -> None:
    f, org = forger
    f.claims["nonce"] = "a-nonce-from-another-sign-in"
    _refused(org, _forged_callback(client, org), "bad_nonce")


def test_id_token_with_alg_none_is_refused(client, forger: tuple[Forger, OrgFixture]) -> None:
    f, org = forger
    f.alg_none = True
    _refused(org, _forged_callback(client, org), "bad_id_token_alg")


def test_id_token_for_another_client_or_expired_is_refused(client, forger: tuple[Forger, OrgFixture]) -> None:
    f, org = forger
    f.claims["aud"] = "another-client"
    _refused(org, _forged_callback(client, org), "wrong_audience")
    del f.claims["aud"]
    f.claims["exp"] = 1_000_000_000
    _refused(org, _forged_callback(client, org), "expired")
    del f.claims["exp"]
    f.claims["iss"] = "https://evil.example"
    _refused(org, _forged_callback(client, org), "wrong_issuer")


@pytest.mark.needs_pkg("chromium")
def test_chromium_signs_in_through_the_login_page(client, set_settings, live_server: str, provider: str) -> None:
    set_settings(public_url=live_server, allow_loopback_urls=True)
    org = _oidc_org(client, provider)
    sub = f"erin-{uuid.uuid4().hex[:8]}"
    httpx.put(f"{provider}/users/{sub}", json={"email": f"{sub}@{org.slug}.okta.test", "groups": ["okta-admins"]})
    errors: list[str] = []
    with chromium_page(errors) as page:
        page.goto(f"{live_server}/login")
        page.fill("#sso-org", org.slug)
        page.click("text=Log in with SSO")
        page.wait_for_url(re.compile(r".*/oauth2/authorize.*"))
        page.fill("input[name=sub]", sub)
        page.click("button:has-text('Authorize')")
        page.wait_for_url(f"{live_server}/")
        assert sub in page.content()  # the dashboard names the signed-in person
        page.goto(f"{live_server}/settings/sso")
        assert page.locator("#sp-acs").inner_text().endswith(f"/sso/{org.slug}/saml/acs")
        page.screenshot(path=str(os.environ.get("LEVQOR_SCREENSHOT_DIR", "/tmp")) + "/sso_settings.png", full_page=True)
    (login,) = audits(org.org_id, "sso.login")
    assert login.detail["role"] == "admin"
