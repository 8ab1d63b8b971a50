"""Out-of-order delivery: events applied newest first reach the same state, a late older subscription
event is recognised as stale, and a cancellation from the Customer Portal moves the plan to free."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.factories.orgs import make_org
from tests.fakes.stripe import FakeStripe, post_event

SECRET = "whsec_stripe_test"
DAY = 86400


@pytest.fixture()
def stripe_fake(set_settings) -> Any:
    with FakeStripe() as fake:
        set_settings(stripe_api_key="sk_test_levqor", stripe_api_base=fake.url, stripe_webhook_secret=SECRET)
        yield fake


def _view(client: Any, org: Any) -> dict[str, Any]:
    return dict(client.get("/v1/billing", headers=org.headers()).json())


def test_reversed_stale_and_portal_cancellation(client, stripe_fake) -> None:
    fake = stripe_fake
    org = make_org(plan="free")
    start = _view(client, org)["credit_balance"]
    r = client.post("/v1/billing/checkout", json={"kind": "subscription", "plan": "pro"}, headers=org.headers())
    fake.billing.complete_checkout(r.json()["id"])
    first = list(fake.events)
    for ev in reversed(first):  # newest first
        assert post_event(client, ev).status_code == 200
    fake.billing.delivered = len(fake.events)
    view = _view(client, org)
    assert (view["plan"], view["status"], view["credit_balance"]) == ("pro", "active", start + 5_000)

    fake.billing.now += 5 * DAY
    assert client.post("/v1/billing/subscription", json={"plan": "business"}, headers=org.headers()).status_code == 200
    upgrade = fake.events[fake.billing.delivered:]
    ordered = sorted(upgrade, key=lambda e: e["type"] != "invoice.paid")  # the newer invoice before the update
    assert [e["type"] for e in ordered] == ["invoice.paid", "customer.subscription.updated"]
    # The invoice already carries the new plan; the older update it superseded is recognised as stale.
    assert [post_event(client, ev).json()["outcome"] for ev in ordered] == ["applied", "stale"]
    fake.billing.delivered = len(fake.events)
    assert _view(client, org)["plan"] == "business"

    # A subscription update from before the upgrade, delivered late under its own id: stale, no change.
    late = copy.deepcopy(next(e for e in first if e["type"] == "customer.subscription.created"))
    late["id"], late["type"] = late["id"] + "late", "customer.subscription.updated"
    assert post_event(client, late).json()["outcome"] == "stale"
    assert _view(client, org)["plan"] == "business"

    # The customer cancels in the Customer Portal: Stripe ends the subscription and says so.
    portal = client.post("/v1/billing/portal", headers=org.headers())
    assert portal.status_code == 201
    fake.cancel(next(iter(fake.subscriptions)))
    assert [r.json()["outcome"] for r in fake.deliver(client)] == ["applied"]
    view = _view(client, org)
    assert (view["plan"], view["status"]) == ("free", "canceled")
    assert view["credit_balance"] == start + 25_000  # what was paid for stays
    assert client.post("/v1/billing/subscription", json={"plan": "pro"}, headers=org.headers()).status_code == 409
