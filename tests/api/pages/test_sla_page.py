"""The /sla page in headless Chromium: an enterprise admin sees last month's measured uptime, the
incident that counted, the maintenance that was excluded and the credit note, then the PDF link;
viewers are refused; the credit note is on /billing."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from memory.db import session_scope
from memory.identity.repository import IdentityRepository
from tests.factories.orgs import make_org
from tests.support.browser import chromium_page
from tests.tools.enterprise.test_sla import _month_with_outage, _platform
from tools.enterprise import sla


def test_viewer_is_refused_and_auditor_reads(client) -> None:
    org = make_org(plan="enterprise")
    assert client.get("/sla", headers=org.headers("viewer")).status_code == 403
    page = client.get("/sla", headers=org.headers("auditor"))
    assert page.status_code == 200 and "Month in progress" in page.text


@pytest.mark.needs_pkg("chromium")
def test_chromium_shows_the_missed_month_and_its_credit(client, live_server: str) -> None:
    org = make_org(plan="enterprise")
    month = _month_with_outage(org.org_id, 2020, 2, 45, uuid.uuid4().hex[:8])
    with session_scope() as s:
        o = IdentityRepository(s).org(org.org_id)
        assert o is not None
        sla.issue_credit(_platform(s), o, month)
    errors: list[str] = []
    with chromium_page(errors) as page:
        page.goto(f"{live_server}/login")
        page.get_by_label("Email").fill(org.admin_email)
        page.get_by_label("Password").fill(org.admin_password)
        page.get_by_role("button", name="Log in", exact=True).click()
        page.wait_for_url(f"{live_server}/")
        page.goto(f"{live_server}/sla?month={month}")
        assert page.locator("#sla-month").inner_text() == month
        assert page.locator("#uptime").inner_text() == "99.892 %"
        assert page.locator("#result").inner_text() == "missed"
        assert page.locator("#credit-amount").inner_text() == "$122.50"  # 25 % of 10 seats x $49
        assert page.locator("#events tbody tr[data-status=counted]").count() == 1
        assert page.locator("#in-progress").count() == 0
        page.goto(f"{live_server}/billing")
        assert month in page.locator("#credit-notes").inner_text()
        page.goto(f"{live_server}/sla")
        assert page.locator("#in-progress").is_visible()
        csp: Any = page.evaluate("window.__csp")
    assert not errors and not csp, (errors, csp)
    pdf = client.get(f"/sla/report.pdf?month={month}", headers=org.headers())
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
