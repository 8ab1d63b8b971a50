"""``certification.experts``: the opted-in certified experts, public directory fields for tenants and the
public, emails only for the platform (the announcement segment 'certified experts')."""

from __future__ import annotations

import uuid
from typing import Any

from memory.db import session_scope
from tests.api.test_certification import right_answers
from tests.factories.orgs import OrgFixture, make_org, org_ctx
from tools.community.announcements import segment_emails
from tools.context import SYSTEM, ToolContext
from tools.registry import registry


def _certify(client: Any, org: OrgFixture, email: str, *, listed: bool) -> str:
    # A name of its own: other tests on this database look for theirs on the public directory.
    a = client.post("/v1/certification/exams", headers=org.headers(),
                    json={"candidate_name": f"Expert {email}", "candidate_email": email}).json()
    cid = client.post(f"/v1/certification/exams/{a['id']}/submit", headers=org.headers(),
                      json={"answers": right_answers(a)}).json()["certificate_id"]
    assert cid
    if listed:
        r = client.post(f"/v1/certification/certificates/{cid}/listing", headers=org.headers(), json={"listed": True})
        assert r.status_code == 200 and r.json()["listed"] is True
    return str(cid)


def test_experts_tool_feeds_directory_and_segment_within_tenancy_rules(client, org: OrgFixture) -> None:
    tag = uuid.uuid4().hex[:8]
    listed, hidden, revoked = (f"{n}-{tag}@acme-test.io" for n in ("listed", "hidden", "revoked"))
    listed_id = _certify(client, org, listed, listed=True)
    _certify(client, org, hidden, listed=False)
    gone = _certify(client, org, revoked, listed=True)
    client.post(f"/v1/certification/certificates/{gone}/revoke", headers=org.headers(), json={"reason": "test"})

    other = make_org()
    with session_scope() as s:
        # Another tenant sees the public directory entry, never the email.
        tenant = registry.invoke("certification.experts", org_ctx(s, other.org_id), {}).model_dump()
        mine = [e for e in tenant["items"] if e["verify_url"].endswith(listed_id)]
        assert len(mine) == 1 and mine[0]["email"] is None and mine[0]["name"] == f"Expert {listed}"
        assert not any(e["email"] for e in tenant["items"])
        # The platform (the announcement sender) gets the emails of opted-in, valid certificates only.
        platform = registry.invoke("certification.experts", ToolContext(s, SYSTEM), {}).model_dump()
        emails = {e["email"] for e in platform["items"]}
        assert listed in emails and hidden not in emails and revoked not in emails
        segment = segment_emails(s, "certified_experts")
        assert listed in segment and hidden not in segment and revoked not in segment

    api = client.get("/v1/certification/directory").json()
    assert [e for e in api if e["verify_url"].endswith(listed_id)] and all("email" not in e for e in api)
    page = client.get("/certification/experts").text
    assert listed_id in page and f"Expert {listed}" in page and f"Expert {hidden}" not in page
    client.post(f"/v1/certification/certificates/{listed_id}/listing", headers=org.headers(), json={"listed": False})
