"""The developer portal in a headless Chromium: a new developer signs up at /developer, verifies the email
from the mail sink, creates a test key, registers a local receiver as a test webhook endpoint on
/developer/webhooks, runs the SDK example's first job with the test key (test credits, a signed notify that
the SDK example verifies), and resets the test data; and /docs renders every operation from local files with
every request outside this server refused."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.factories import jobs as js
from tests.factories.portal import link, mails_to, new_developer
from tests.fakes.partner_endpoint import Receiver
from tests.support.browser import chromium_page
from tests.support.processes import running_worker
from tests.tools.dev_portal.test_sdk_example import first_job, load_sdk


def _create_key(page: Any, name: str, mode: str) -> str:
    """Fill the create-key form on /developer/keys; the key shown once."""
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Mode").select_option(mode)
    page.get_by_label("Role").select_option("admin")
    page.get_by_role("button", name="Create key").click()
    page.locator("#new-key").wait_for()
    return str(page.locator("#new-key").inner_text()).strip()


@pytest.mark.needs_pkg("chromium")
def test_a_new_developer_signs_up_verifies_creates_a_test_key_and_runs_a_first_job(
        live_server: str, set_settings: Any) -> None:
    from playwright.sync_api import expect

    set_settings(public_url=live_server, signup_max_per_ip=1000, allow_loopback_urls="true")
    dev = new_developer()
    errors: list[str] = []
    with chromium_page(errors) as page, Receiver() as rx:
        page.goto(f"{live_server}/developer")
        page.get_by_label("Email").fill(dev.email)
        page.get_by_label("Password (12 characters or more)").fill(dev.password)
        page.get_by_label("Organisation name").fill(dev.org_name)
        page.get_by_role("button", name="Sign up").click()
        expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
        (msg,) = mails_to(dev.email)
        verify = link(msg, "/developer/verify")
        assert live_server in msg.get_content()  # the link points at this server (LEVQOR_PUBLIC_URL)
        page.goto(f"{live_server}{verify}")
        page.wait_for_url(f"{live_server}/developer/keys?verified=1")
        expect(page.get_by_role("status").filter(has_text="Email verified")).to_be_visible()
        key = _create_key(page, "quick start", "test")
        assert re.fullmatch(r"lvq_test_[A-Za-z0-9]{40}", key), key
        assert page.evaluate("window.__csp") == []

        sdk = load_sdk()
        with sdk.Levqor(key, live_server) as api:
            me = api.request("GET", "/v1/me")
            assert me["key_mode"] == "test" and me["role"] == "admin"
            assert api.request("GET", "/v1/credits")["balance"] == 1000  # test credits, no payment needed

        # Register the receiver as a TEST webhook endpoint on the portal; its signing secret is shown.
        page.get_by_role("link", name="Webhooks & test data").click()
        page.wait_for_url(f"{live_server}/developer/webhooks")
        hook = rx.url("/levqor-webhooks")
        page.get_by_label("URL", exact=True).fill(hook)
        page.get_by_label("Mode").select_option("test")
        page.get_by_role("button", name="Add endpoint").click()
        page.locator("#endpoint-secret").wait_for()
        secret = str(page.locator("#endpoint-secret").inner_text()).strip()
        assert secret.startswith("whsec_")
        assert page.get_by_role("row").filter(has_text=hook).locator("td").nth(1).inner_text() == "test"

        # The SDK example's first job, with the test key, ending with a notify to the registered endpoint.
        with running_worker():
            _jid, output = first_job(sdk, live_server, key, notify_url=hook)
        assert isinstance(output, dict) and output["status"] == 200, output
        (got,) = rx.at("/levqor-webhooks")
        sdk.verify_webhook(secret, got.headers, got.body)  # signed, and the example's verifier accepts it
        message = json.loads(got.body)
        assert message["body"] == "Hello, Ada!" and message["livemode"] is False
        with pytest.raises(sdk.WebhookVerificationError):
            sdk.verify_webhook(secret, got.headers, got.body + b" ")
        assert js.balance(me["org_id"]) == 0  # the live balance was never touched
        with sdk.Levqor(key, live_server) as api:
            credits = api.request("GET", "/v1/credits")
            assert credits["balance"] == 1000 - credits["cost_per_run"]  # one run (charged once)
            assert len(api.request("GET", "/v1/pipelines")["items"]) == 1

        # Reset the test data from the page: test pipelines and jobs gone, test credits back.
        page.get_by_role("button", name="Reset test data").click()
        expect(page.get_by_role("status").filter(has_text="Test data deleted (1 pipelines, 1 jobs")).to_be_visible()
        expect(page.locator("#test-balance")).to_have_text("1000")
        with sdk.Levqor(key, live_server) as api:
            assert api.request("GET", "/v1/pipelines")["items"] == []

        page.goto(f"{live_server}/developer/keys")  # the key row now shows its last use, never the key again
        row = page.get_by_role("row").filter(has_text=key[:17])
        assert key not in page.content() and secret not in page.content()
        assert "never" not in row.locator("td").nth(6).inner_text()
        assert page.evaluate("window.__csp") == []
    assert errors == [], errors


@pytest.mark.needs_pkg("chromium")
def test_swagger_ui_renders_every_operation_with_no_internet(app: Any, live_server: str) -> None:
    operations = sum(len(ops) for ops in app.openapi()["paths"].values())
    outside: list[str] = []
    errors: list[str] = []
    with chromium_page(errors) as page:

        def only_here(route: Any) -> None:
            if urlsplit(route.request.url).netloc == urlsplit(live_server).netloc:
                route.continue_()
            else:  # as with no internet: nothing outside this server is reachable
                outside.append(route.request.url)
                route.abort()

        page.route("**/*", only_here)
        # Swagger UI renders a long document's operations only as they scroll into view: a window tall
        # enough for every operation shows whether each one renders
        page.set_viewport_size({"width": 1280, "height": 80 * operations + 2000})
        page.goto(f"{live_server}/docs")
        expect(page.locator(".opblock")).to_have_count(operations, timeout=30_000)
        paths = page.locator(".opblock-summary-path").all_inner_texts()
        assert any("/v1/keys/{key_id}/rotate" in t.replace("\u200b", "") for t in paths)
        assert page.locator(".info .title").inner_text().startswith("Levqor API")
        assert page.evaluate("window.__csp") == []
    assert outside == [] and errors == [], (outside, errors)
