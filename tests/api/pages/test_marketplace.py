"""The marketplace pages: server-rendered search, categories, detail, partner profile, statement;
and a headless Chromium that logs in through /login and installs a plugin through the page."""

from __future__ import annotations

import re

import pytest

from tests.factories.partners import install, make_world, manifest, publish
from tests.support.browser import chromium_page


def test_pages_search_categories_detail_and_profile(client, set_settings) -> None:
    w = make_world(client, set_settings)
    a, b = f"{w.partner.slug}.alpha", f"{w.partner.slug}.beta"
    publish(client, w, manifest(a, None, name="Alpha Slack notifier", categories=["communication"]))
    publish(client, w, manifest(b, None, name="Beta ledger sync", categories=["finance"],
                                description="Books every job's cost in your ledger.",
                                pricing={"model": "monthly", "monthly_minor": 1250}))
    install(client, w.customer, b)
    page = client.get("/marketplace")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert a in page.text and b in page.text and '<label for="q">' in page.text
    only = client.get("/marketplace", params={"category": "finance"}).text
    assert b in only and a not in only and 'aria-current="page"' in only
    found = client.get("/marketplace", params={"q": "ledger"}).text
    assert b in found and a not in found
    detail = client.get(f"/marketplace/{b}").text
    assert "$12.50 per month" in detail and 'id="install-count">1</span>' in detail
    assert "Log in</a> as an administrator" in detail
    assert "<h1>" in detail and "jobs:read" in detail
    pid = client.get("/v1/partners/me", headers=w.partner.headers("partner")).json()["id"]
    profile = client.get(f"/marketplace/partners/{pid}").text
    assert a in profile and b in profile and "We build chat plugins." in profile
    assert client.get("/marketplace/nope.nothing").status_code == 404
    st = client.get("/partners/statement", headers=w.partner.headers("partner"))
    assert st.status_code == 200 and b in st.text and "12.50" in st.text


@pytest.mark.needs_pkg("chromium")
def test_chromium_logs_in_and_installs_a_plugin(client, set_settings, live_server: str) -> None:
    w = make_world(client, set_settings)
    slug = f"{w.partner.slug}.browser"
    publish(client, w, manifest(slug, None, name="Browser installed plugin"))
    with chromium_page() as page:
        page.goto(f"{live_server}/login")
        page.get_by_label("Email").fill(w.customer.admin_email)
        page.get_by_label("Password").fill(w.customer.admin_password)
        page.get_by_role("button", name="Log in", exact=True).click()
        page.wait_for_url(f"{live_server}/")
        page.goto(f"{live_server}/marketplace")
        page.get_by_label("Search plugins").fill("browser installed")
        page.get_by_role("button", name="Search").click()
        page.get_by_role("link", name="Browser installed plugin").click()
        page.wait_for_url(re.compile(f"/marketplace/{re.escape(slug)}$"))
        page.get_by_role("button", name="Install Browser installed plugin").click()
        page.wait_for_url(re.compile(r"\?installed=1$"))
        assert page.get_by_role("status").filter(has_text="is installed").is_visible()
        assert page.locator("#install-count").inner_text() == "1"
    items = client.get("/v1/installs", headers=w.customer.headers()).json()["items"]
    assert [i["plugin"] for i in items] == [slug]
