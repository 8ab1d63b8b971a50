"""SAML single sign-on against a pysaml2 IdP on loopback: the SP-initiated flow over real HTTP (httpx to
the IdP, the app's ACS through the test client), just-in-time users, roles from groups, RelayState, and
every attack refused with a 4xx problem body and an ``sso.login_refused`` audit entry."""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from memory.audit.models import AuditEntry
from memory.db import session_scope
from memory.identity.models import User
from tests.factories.orgs import OrgFixture, make_org
from tests.fakes.saml_idp import (
    DS,
    SAML,
    FakeIdP,
    assertion,
    dump,
    form_fields,
    keypair,
    parse,
    resign,
    running_idp,
    saml_time,
)

GROUPS = {"Levqor Admins": "admin", "Engineering": "viewer", "Compliance": "auditor"}


@dataclass
class Saml:
    org: OrgFixture
    idp: FakeIdP
    client: Any

    @property
    def acs(self) -> str:
        return f"http://testserver/sso/{self.org.slug}/saml/acs"

    @property
    def audience(self) -> str:
        return f"http://testserver/sso/{self.org.slug}/saml/metadata"

    def start(self, return_to: str = "/") -> str:
        """Start a sign-in at the SP; the AuthnRequest id it is waiting for."""
        r = self.client.get(f"/sso/{self.org.slug}/saml/login", params={"return_to": return_to},
                            follow_redirects=False)
        assert r.status_code == 303, r.text
        page = httpx.get(r.headers["location"], timeout=10)  # the IdP, over real HTTP on loopback
        assert page.status_code == 200, page.text
        self.last_form = form_fields(page.text)
        self.last_action = re.search(r'action="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        return str(parse(self.last_form["SAMLResponse"]).get("InResponseTo"))

    def post(self, saml_response: str, relay: str = "/") -> httpx.Response:
        self.client.cookies.clear()
        return self.client.post(self.acs, data={"SAMLResponse": saml_response, "RelayState": relay},
                                follow_redirects=False)

    def fresh(self, user: dict[str, Any] | None = None) -> str:
        """A valid signed response to a sign-in started just now."""
        rid = self.start()
        return self.idp.response(in_response_to=rid, acs_url=self.acs, audience=self.audience, user=user)


@pytest.fixture()
def saml(client: Any, set_settings: Any) -> Iterator[Saml]:
    set_settings(public_url="http://testserver", allow_loopback_urls=True)
    org = make_org("enterprise")
    meta = client.get(f"/sso/{org.slug}/saml/metadata")
    assert meta.status_code == 200 and "AssertionConsumerService" in meta.text, meta.text
    with running_idp(meta.text) as idp:
        idp.user = {"email": f"bob@{org.slug}.idp.test", "groups": ["Engineering"]}
        r = client.put("/v1/sso", headers=org.headers(), json={
            "saml_enabled": True, "saml_metadata_xml": idp.metadata_xml(), "group_roles": GROUPS,
            "default_role": "viewer"})
        assert r.status_code == 200, r.text
        assert r.json()["saml_idp_entity_id"] == idp.entity_id and r.json()["saml_idp_cert_sha256"]
        yield Saml(org, idp, client)


def audits(org_id: int, action: str) -> list[AuditEntry]:
    with session_scope() as s:
        rows = list(s.scalars(select(AuditEntry).where(AuditEntry.org_id == org_id, AuditEntry.action == action)
                              .order_by(AuditEntry.seq)))
        s.expunge_all()
        return rows


def test_sp_initiated_login_creates_the_user_maps_groups_and_returns_to_relay_state(saml: Saml) -> None:
    email = f"alice@{saml.org.slug}.idp.test"
    saml.idp.user = {"email": email.title(), "groups": ["Engineering", "Levqor Admins"], "name": "Alice Liddell"}
    saml.start(return_to="/audit?action=sso.login")
    r = saml.client.post(saml.last_action, data=saml.last_form, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/audit?action=sso.login"
    cookie = r.headers["set-cookie"]
    assert "levqor_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    me = saml.client.get("/v1/me")
    assert me.status_code == 200 and me.json()["role"] == "admin" and me.json()["kind"] == "user", me.text
    with session_scope() as s:
        user = s.scalar(select(User).where(User.email == email))
        assert user is not None and user.org_id == saml.org.org_id and user.password_hash is None
        assert user.name == "Alice Liddell"
    (login,) = audits(saml.org.org_id, "sso.login")
    assert login.detail["protocol"] == "saml" and login.detail["role"] == "admin"
    assert audits(saml.org.org_id, "sso.user_provisioned")
    (session_audit,) = audits(saml.org.org_id, "auth.login")  # the same session record as a password login
    assert session_audit.detail == {"via": "saml"}

    # Roles follow groups: next sign-in without the admin group makes Alice a viewer again.
    saml.idp.user = {"email": email, "groups": ["Engineering"]}
    saml.start()
    r = saml.client.post(saml.last_action, data=saml.last_form, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert saml.client.get("/v1/me").json()["role"] == "viewer"
    (synced,) = audits(saml.org.org_id, "sso.role_synced")
    assert synced.before == {"role": "admin"} and synced.after == {"role": "viewer"}


def _refused(saml: Saml, r: httpx.Response, reason: str, status: int = 400) -> dict[str, Any]:
    assert r.status_code == status, (reason, r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json"), r.text
    body = r.json()
    assert body["reason"] == reason, (reason, body)
    assert body["type"].endswith("/sso-" + reason.replace("_", "-")) and body["title"] == "Single sign-on refused"
    assert "levqor_session" not in r.headers.get("set-cookie", "")
    entries = [e for e in audits(saml.org.org_id, "sso.login_refused") if e.detail["reason"] == reason]
    assert entries and entries[-1].outcome == "refused" and entries[-1].detail["protocol"] == "saml"
    return body


def test_nameid_edited_after_signing_is_refused(saml: Saml) -> None:
    doc = parse(saml.fresh())
    doc.find(f".//{{{SAML}}}NameID").text = "admin@victim.test"
    _refused(saml, saml.post(dump(doc)), "bad_signature")


def test_signature_wrapping_with_a_second_assertion_is_refused(saml: Saml) -> None:
    """XSW: an evil copy (other id, admin NameID, no signature) before the genuine signed assertion."""
    doc = parse(saml.fresh())
    evil = copy.deepcopy(assertion(doc))
    evil.remove(evil.find(f"{{{DS}}}Signature"))
    evil.set("ID", "_evil1")
    evil.find(f".//{{{SAML}}}NameID").text = "admin@victim.test"
    doc.insert(list(doc).index(assertion(doc)), evil)
    _refused(saml, saml.post(dump(doc)), "signature_wrapping")


def test_signature_wrapping_with_the_signed_assertion_hidden_inside_the_evil_one_is_refused(saml: Saml) -> None:
    """XSW: the evil assertion carries the genuine one's signature, the genuine assertion tucked inside it."""
    doc = parse(saml.fresh())
    genuine = assertion(doc)
    evil = copy.deepcopy(genuine)
    evil.find(f".//{{{SAML}}}NameID").text = "admin@victim.test"
    evil_sig = evil.find(f"{{{DS}}}Signature")
    hidden = copy.deepcopy(genuine)
    hidden.remove(hidden.find(f"{{{DS}}}Signature"))
    obj = evil_sig.makeelement(f"{{{DS}}}Object", {})
    obj.append(hidden)
    evil_sig.append(obj)
    doc.replace(genuine, evil)
    _refused(saml, saml.post(dump(doc)), "signature_wrapping")


def test_assertion_signed_by_a_foreign_key_is_refused(saml: Saml) -> None:
    forged = resign(saml.fresh(), keypair("Mallory"), lambda d: None)
    _refused(saml, saml.post(forged), "bad_signature")


def test_unsigned_assertion_is_refused(saml: Saml) -> None:
    doc = parse(saml.fresh())
    a = assertion(doc)
    a.remove(a.find(f"{{{DS}}}Signature"))
    _refused(saml, saml.post(dump(doc)), "unsigned")


def _times(not_before: dt.datetime, not_after: dt.datetime) -> Any:
    def edit(doc: Any) -> None:
        for el in doc.iter(f"{{{SAML}}}Conditions"):
            el.set("NotBefore", saml_time(not_before))
            el.set("NotOnOrAfter", saml_time(not_after))
        for el in doc.iter(f"{{{SAML}}}SubjectConfirmationData"):
            el.set("NotOnOrAfter", saml_time(not_after))
    return edit


def test_expired_assertion_is_refused(saml: Saml) -> None:
    now = dt.datetime.now(dt.UTC)
    old = resign(saml.fresh(), saml.idp.keys, _times(now - dt.timedelta(hours=2), now - dt.timedelta(hours=1)))
    _refused(saml, saml.post(old), "expired")


def test_not_yet_valid_assertion_is_refused(saml: Saml) -> None:
    now = dt.datetime.now(dt.UTC)
    early = resign(saml.fresh(), saml.idp.keys, _times(now + dt.timedelta(hours=1), now + dt.timedelta(hours=2)))
    _refused(saml, saml.post(early), "not_yet_valid")


def test_wrong_audience_is_refused(saml: Saml) -> None:
    def edit(doc: Any) -> None:
        for el in doc.iter(f"{{{SAML}}}Audience"):
            el.text = "https://another-sp.example/metadata"
    _refused(saml, saml.post(resign(saml.fresh(), saml.idp.keys, edit)), "wrong_audience")


def test_unsolicited_response_is_refused_unless_enabled(saml: Saml) -> None:
    unsolicited = saml.idp.response(in_response_to=None, acs_url=saml.acs, audience=saml.audience)
    _refused(saml, saml.post(unsolicited), "unsolicited")
    made_up = saml.idp.response(in_response_to="_never_asked", acs_url=saml.acs, audience=saml.audience)
    _refused(saml, saml.post(made_up), "unsolicited")


def test_replayed_response_is_refused(saml: Saml) -> None:
    good = saml.fresh()
    assert saml.post(good).status_code == 303
    _refused(saml, saml.post(good), "replayed")


def test_idp_initiated_replay_is_caught_by_the_assertion_id_cache(saml: Saml) -> None:
    r = saml.client.put("/v1/sso", headers=saml.org.headers(), json={"saml_allow_unsolicited": True})
    assert r.status_code == 200, r.text
    unsolicited = saml.idp.response(in_response_to=None, acs_url=saml.acs, audience=saml.audience)
    first = saml.post(unsolicited, relay="/keys")
    assert first.status_code == 303 and first.headers["location"] == "/keys", first.text
    _refused(saml, saml.post(unsolicited), "replayed")


def test_garbage_is_a_4xx_not_a_500(saml: Saml) -> None:
    for junk in ("not base64 at all!", "PGZvbz4=", dump(parse(saml.fresh()))[:200]):
        r = saml.post(junk)
        assert 400 <= r.status_code < 500, r.text
    assert saml.client.post(saml.acs, data={}).status_code == 422
    assert saml.client.get("/sso/no-such-org/saml/login").status_code == 404
