"""Early access through the API: validation as problem details, the honeypot, the minimum fill time, the
per-IP limit, double opt-in, staff-only review, approval creating the partner account, recorded messages."""

from __future__ import annotations

import time
import uuid
from typing import Any

from memory.community.models import CommunityMessage, EarlyAccessApplication
from memory.db import session_scope
from memory.partner.models import Partner
from tests.factories.orgs import make_org
from tests.factories.portal import link, mails_to
from tools.community import early_access as ea

USE_CASE = "Plugins that sync invoices into accounting tools."


def _body(email: str, **over: Any) -> dict[str, Any]:
    return {"email": email, "name": "Grace", "company": "Hopper Labs", "use_case": USE_CASE,
            "form_token": ea.form_token(now=time.time() - 60 if over.pop("old", True) else None), **over}


def _email() -> str:
    return f"grace-{uuid.uuid4().hex[:8]}@example.com"


def _apply_and_confirm(client: Any, email: str) -> int:
    r = client.post("/v1/early-access", json=_body(email))
    assert r.status_code == 202, r.text
    confirm = link(mails_to(email)[-1], "/early-access/confirm").split("token=")[1]
    r = client.post("/v1/early-access/confirm", json={"token": confirm})
    assert r.status_code == 200 and r.json()["status"] == "pending", r.text
    return int(r.json()["id"])


def test_bad_input_is_a_problem_naming_the_field(client, set_settings) -> None:
    set_settings(early_access_max_per_ip=1000)
    r = client.post("/v1/early-access", json=_body("not-an-email"))
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    assert "email" in r.text
    r = client.post("/v1/early-access", json=_body(_email(), use_case="short"))
    assert r.status_code == 422 and "use_case" in r.text


def test_spam_protection_honeypot_fill_time_and_rate_limit(client, set_settings) -> None:
    set_settings(early_access_max_per_ip=3, early_access_min_fill_s=3)
    bot = _email()
    r = client.post("/v1/early-access", json=_body(bot, homepage="https://spam.example"))
    assert r.status_code == 202  # answered like a success...
    assert mails_to(bot) == []  # ...but nothing stored or sent
    with session_scope() as s:
        assert s.query(EarlyAccessApplication).filter_by(email=bot).count() == 0
    fast = client.post("/v1/early-access", json=_body(_email(), old=False))  # stamped just now
    assert fast.status_code == 422 and fast.json()["field"] == "form_token"
    forged = client.post("/v1/early-access", json=_body(_email(), form_token="x" * 40))
    assert forged.status_code == 422 and forged.json()["field"] == "form_token"
    r = client.post("/v1/early-access", json=_body(_email()))
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1  # the fifth from this address


def test_double_opt_in_then_staff_review_creates_the_partner_account(client, set_settings) -> None:
    staff = make_org()
    set_settings(staff_orgs=[staff.slug], early_access_max_per_ip=1000)
    email = _email()
    r = client.post("/v1/early-access", json=_body(email))
    assert r.status_code == 202
    with session_scope() as s:
        row = s.query(EarlyAccessApplication).filter_by(email=email).one()
        assert row.status == "unconfirmed"
        app_id = row.id
    # Not confirmed: staff cannot decide it yet; another organisation cannot see the queue at all.
    r = client.post(f"/v1/early-access/applications/{app_id}/decision", json={"decision": "approve"},
                    headers=staff.headers())
    assert r.status_code == 409
    other = make_org()
    assert client.get("/v1/early-access/applications", headers=other.headers()).status_code == 403
    assert client.post(f"/v1/early-access/applications/{app_id}/decision", json={"decision": "approve"},
                       headers=other.headers()).status_code == 403
    assert _apply_and_confirm(client, email) == app_id  # applying again re-sends the link; confirming works
    assert client.post("/v1/early-access/confirm", json={"token": "forged" * 10}).status_code == 400
    queue = client.get("/v1/early-access/applications", params={"status": "pending"}, headers=staff.headers())
    assert app_id in [a["id"] for a in queue.json()["items"]]
    r = client.post(f"/v1/early-access/applications/{app_id}/decision", json={"decision": "waitlist"},
                    headers=staff.headers())
    assert r.status_code == 200 and r.json()["status"] == "waitlisted"
    r = client.post(f"/v1/early-access/applications/{app_id}/decision",
                    json={"decision": "approve", "note": "Round two"}, headers=staff.headers())
    assert r.status_code == 200 and r.json()["status"] == "approved", r.text
    org_id, partner_id = r.json()["org_id"], r.json()["partner_id"]
    with session_scope() as s:
        partner = s.get(Partner, partner_id)
        assert partner is not None and partner.org_id == org_id and partner.contact_email == email
        kinds = [m.kind for m in s.query(CommunityMessage).filter_by(to_email=email).order_by(CommunityMessage.id)]
    assert kinds == ["early_access_confirm", "early_access_confirm", "early_access_waitlisted",
                     "early_access_approved"]
    subjects = [m["Subject"] for m in mails_to(email)]
    assert "Welcome to the Levqor Partner Network" in subjects
    assert any("invited" in str(s) for s in subjects)  # the organisation's admin invitation
    for m in mails_to(email):
        if str(m["Subject"]).startswith(("Confirm", "Welcome", "You are on")):
            assert m["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    r = client.post(f"/v1/early-access/applications/{app_id}/decision", json={"decision": "reject"},
                    headers=staff.headers())
    assert r.status_code == 409


def test_the_page_shows_friendly_errors_and_keeps_the_input(client, set_settings) -> None:
    set_settings(early_access_max_per_ip=1000, early_access_min_fill_s=0)
    r = client.post("/early-access", data={"email": "nope", "name": "G", "company": "C", "use_case": USE_CASE,
                                           "form_token": ea.form_token()})
    assert r.status_code == 422 and "Enter a valid email address." in r.text and 'value="nope"' in r.text
