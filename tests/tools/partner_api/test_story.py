"""The whole partner story in one test: a partner registers a plugin, Levqor staff approve it, an
org installs it from the marketplace page, a real job runs the plugin's action and completes, the
partner's receiver gets a verifiable signed event, revenue accrues and a payout run pays it through
the fake Stripe exactly once (even when run twice)."""

from __future__ import annotations

import re
from typing import Any

from standardwebhooks.webhooks import Webhook

from tests.factories import jobs as js
from tests.factories.partners import make_world, manifest, secrets_for
from tests.fakes.partner_endpoint import Receiver
from tests.fakes.stripe import FakeStripe
from tests.support import wait_for
from tests.support.processes import running_worker


def _login(client: Any, email: str, password: str) -> None:
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = client.post("/login", data={"email": email, "password": password, "csrf_token": token},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_partner_plugin_from_registration_to_payout(app, set_settings) -> None:
    from fastapi.testclient import TestClient

    from tools.partner_api.payouts import run_payouts
    from tools.partner_api.revenue import period_of
    from workers.dispatcher import dispatch_pending
    from workers.hooks import deliver_due

    with FakeStripe() as stripe_fake, Receiver() as rx, TestClient(app) as client:
        w = make_world(client, set_settings, stripe_api_key="sk_test_e2e", stripe_api_base=stripe_fake.url,
                       payout_minimum_minor=1)
        ph = w.partner.headers("partner")
        # 1. The partner registers a per-run plugin with an action (a pipeline step) and a webhook.
        slug = f"{w.partner.slug}.notify"
        m = manifest(slug, rx.url("/events"), pricing={"model": "per_run", "credits_per_run": 5},
                     revenue_share=0.7, endpoints={"webhook_url": rx.url("/events"),
                                                   "actions": [{"name": "post", "url": rx.url("/action")}]})
        assert client.post("/v1/plugins", json={"manifest": m}, headers=ph).status_code == 201
        assert client.post(f"/v1/plugins/{slug}/versions/1.0.0/submit", headers=ph).status_code == 200
        assert client.get(f"/marketplace/{slug}").status_code == 404  # not listed before review
        # 2. Levqor staff approve it; it appears on the marketplace.
        r = client.post(f"/v1/plugins/{slug}/versions/1.0.0/review", json={"decision": "approve"},
                        headers=w.staff.headers())
        assert r.json()["state"] == "listed"
        assert slug in client.get("/marketplace", params={"q": "chat channel"}).text
        acct = client.post("/v1/partners/me/stripe-onboarding", headers=w.partner.headers()).json()["account_id"]
        # 3. A customer admin logs in and installs it from the plugin page.
        _login(client, w.customer.admin_email, w.customer.admin_password)
        page = client.get(f"/marketplace/{slug}")
        assert 'id="install-button"' in page.text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        r = client.post(f"/marketplace/{slug}/install", data={"csrf_token": csrf}, follow_redirects=True)
        assert r.status_code == 200 and 'id="installed-msg"' in r.text
        client.cookies.clear()
        (inst,) = client.get("/v1/installs", headers=w.customer.headers()).json()["items"]
        # 4. A real job runs a pipeline using the plugin's action, and completes.
        js.grant(w.customer.org_id, 10)
        pid = js.pipeline(w.customer.org_id, [{"kind": "http", "method": "POST", "url": rx.url("/action"),
                                                "body": {"hello": "{{ input.who }}"}}])
        job_id = js.submit(w.customer.org_id, pid, {"who": "ada"})
        with running_worker():
            wait_for(lambda: js.job(job_id).state == "succeeded", 20, "the job to succeed")
        assert len(rx.at("/action")) == 1
        # 5. The outbox fans the job_complete event out; the receiver gets a verifiable signed event.
        wait_for(lambda: dispatch_pending() == 0 and deliver_due() >= 0 and rx.at("/events"), 10, "the webhook")
        (hit,) = rx.at("/events")
        secret = secrets_for(client, w, inst["id"])["secret"]
        event = Webhook(secret).verify(hit.body, hit.headers)
        assert event["type"] == "job_complete" and event["data"]["job_id"] == job_id
        assert event["data"]["state"] == "succeeded"
        # 6. Revenue accrued: 5 credits x 10 minor units, 70 % to the partner.
        st = client.get("/v1/payouts/statement", headers=ph).json()
        assert (st["gross_minor"], st["partner_share_minor"], st["platform_fee_minor"]) == (50, 35, 15)
        # 7. A payout run pays it through Stripe exactly once, even when repeated.
        period = period_of(js.job(job_id).finished_at)
        run_payouts(period)
        run_payouts(period)
        paid = [t for t in stripe_fake.transfers if t["destination"] == acct]
        assert len(paid) == 1 and paid[0]["amount"] == 35
        (payout,) = client.get("/v1/payouts", headers=ph).json()["items"]
        assert payout["status"] == "transferred" and payout["stripe_transfer_id"] == paid[0]["id"]
        assert client.get("/v1/payouts/statement", headers=ph).json()["paid_minor"] == 35
