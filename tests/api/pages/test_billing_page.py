"""The /billing page: an admin in headless Chromium subscribes through Checkout (the fake Stripe's
hosted page is intercepted), sees the plan and credits arrive by webhook, buys a credit pack and sees
the payments; a viewer sees the plan but no payment forms."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.factories.orgs import make_org
from tests.fakes.stripe import FakeStripe
from tests.support.browser import chromium_page

SECRET = "whsec_stripe_test"


def test_viewer_sees_the_plan_but_cannot_pay(client, set_settings) -> None:
    set_settings(stripe_webhook_secret=SECRET)
    org = make_org(plan="free")
    page = client.get("/billing", headers=org.headers("viewer"))
    assert page.status_code == 200 and 'id="plan-name">Free<' in page.text
    assert "/billing/checkout" not in page.text and "No payments yet." in page.text
    assert client.get("/billing", headers=org.headers("auditor")).status_code == 403


@pytest.mark.needs_pkg("chromium")
def test_chromium_subscribes_and_buys_credits(client, set_settings, live_server: str) -> None:
    with FakeStripe() as fake:
        set_settings(stripe_api_key="sk_test_levqor", stripe_api_base=fake.url, stripe_webhook_secret=SECRET,
                     public_url=live_server)
        org = make_org(plan="free")
        errors: list[str] = []
        with chromium_page(errors) as page:
            # Stripe's hosted Checkout page is outside this machine: answer it locally.
            page.route(re.compile(r"https://checkout\.stripe\.test/.*"),
                       lambda route: route.fulfill(status=200, content_type="text/html",
                                                   body="<title>Stripe Checkout</title><p>Pay</p>"))
            page.goto(f"{live_server}/login")
            page.get_by_label("Email").fill(org.admin_email)
            page.get_by_label("Password").fill(org.admin_password)
            page.get_by_role("button", name="Log in", exact=True).click()
            page.wait_for_url(f"{live_server}/")
            page.goto(f"{live_server}/billing")
            assert page.locator("#plan-name").inner_text() == "Free"
            page.locator('tr[data-plan="pro"]').get_by_role("button", name="Subscribe").click()
            page.wait_for_url(re.compile(r"https://checkout\.stripe\.test/c/pay/"))
            session_id = next(iter(fake.billing.sessions))
            fake.billing.complete_checkout(session_id)
            assert all(r.status_code == 200 for r in fake.deliver(client))
            page.goto(f"{live_server}/billing?checkout=done")
            assert page.locator("#plan-name").inner_text() == "Pro"
            assert page.locator("#status").inner_text() == "active"
            assert page.locator("#checkout-done").is_visible()
            balance = int(page.locator("#credit-balance").inner_text().replace(",", ""))
            page.locator('form[data-pack="small"]').get_by_role("button").click()
            page.wait_for_url(re.compile(r"https://checkout\.stripe\.test/c/pay/"))
            pack_session = [s for s in fake.billing.sessions if s != session_id][0]
            fake.billing.complete_checkout(pack_session)
            assert all(r.status_code == 200 for r in fake.deliver(client))
            page.goto(f"{live_server}/billing")
            assert int(page.locator("#credit-balance").inner_text().replace(",", "")) == balance + 1_000
            rows = page.locator("#invoices tbody tr").all_inner_texts()
            assert any("$29.00" in r and "subscription" in r for r in rows), rows
            assert any("$10.00" in r and "credit pack" in r for r in rows), rows
            # Switching plan is offered now, not a second subscription.
            assert page.locator('tr[data-plan="business"]').get_by_role("button", name="Switch").is_visible()
            csp: Any = page.evaluate("window.__csp")
        assert not errors and not csp, (errors, csp)
