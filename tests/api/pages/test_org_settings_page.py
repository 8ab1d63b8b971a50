"""/settings/organisation: an admin sets the industry and size band (and the insights opt-out) from the form,
an unknown value is refused naming the field (page and API), each change is audited, a viewer sees the
values but cannot change them, and one organisation's page never shows or changes another's."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from memory.audit.models import AuditEntry
from memory.db import session_scope
from tests.factories.orgs import make_org, page_login


def _csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]


def _sign_in(client: Any, email: str, password: str) -> None:
    client.cookies.clear()
    assert page_login(client, email, password).status_code == 303


def test_admin_sets_industry_and_size_band_from_the_page(client) -> None:
    org, other = make_org(), make_org()
    assert client.patch("/v1/insights/profile", json={"industry": "retail", "size_band": "1-10"},
                        headers=other.headers()).status_code == 200
    _sign_in(client, org.admin_email, org.admin_password)
    page = client.get("/settings/organisation")
    assert page.status_code == 200 and 'href="/settings/organisation"' in page.text
    assert '<option value="" selected>Not stated</option>' in page.text
    form = {"csrf_token": _csrf(page.text), "industry": "astrology", "size_band": "11-50"}
    bad = client.post("/settings/organisation", data=form)
    assert bad.status_code == 422 and 'data-field="industry"' in bad.text and "astrology" in bad.text
    assert re.search(r'<select id="industry"[^>]*aria-invalid="true"', bad.text)
    assert not re.search(r'<select id="size_band"[^>]*aria-invalid', bad.text)
    form = {"csrf_token": _csrf(bad.text), "industry": "finance", "size_band": "1000+"}
    ok = client.post("/settings/organisation", data=form)
    assert ok.status_code == 200 and "Saved." in ok.text
    assert '<option value="finance" selected>' in ok.text and '<option value="1000+" selected>' in ok.text
    assert client.get("/v1/insights/profile", headers=org.headers()).json() == {
        "industry": "finance", "size_band": "1000+", "opt_out": False}
    # The other organisation's profile is untouched and never shown here.
    assert client.get("/v1/insights/profile", headers=other.headers()).json()["industry"] == "retail"
    assert '<option value="retail" selected>' not in ok.text
    no_csrf = client.post("/settings/organisation", data={"industry": "media"})
    assert no_csrf.status_code == 403
    with session_scope() as s:
        entries = list(s.scalars(select(AuditEntry).where(AuditEntry.org_id == org.org_id,
                                                          AuditEntry.action == "insights.profile_changed")))
        assert len(entries) == 1 and entries[0].after["industry"] == "finance"
        assert entries[0].before["industry"] is None

    # The API answers a bad value with problem details naming the field.
    r = client.patch("/v1/insights/profile", json={"size_band": "huge"}, headers=org.headers())
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["field"] == "size_band" and "huge" in r.json()["detail"]


def test_a_viewer_sees_the_values_but_cannot_change_them(client) -> None:
    from tests.factories.orgs import org_ctx
    from tools.identity.service import UserCreate, create_user

    org = make_org()
    with session_scope() as s:
        create_user(org_ctx(s, org.org_id), UserCreate(email=f"viewer-{org.slug}@acme-test.io", role="viewer",
                                                       password="correct horse battery staple"))
    _sign_in(client, f"viewer-{org.slug}@acme-test.io", "correct horse battery staple")
    page = client.get("/settings/organisation")
    assert page.status_code == 200 and "Only admins can change these settings." in page.text
    r = client.post("/settings/organisation", data={"csrf_token": _csrf(page.text), "industry": "media"})
    assert r.status_code == 403
    assert client.get("/v1/insights/profile", headers=org.headers()).json()["industry"] is None
    client.cookies.clear()
    assert client.get("/settings/organisation", follow_redirects=False).status_code in (303, 401)
