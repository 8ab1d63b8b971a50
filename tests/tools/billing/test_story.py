"""Billing end to end with the real Stripe SDK against the local fake Stripe: subscribe, upgrade with
proration, buy a credit pack, refund, fail a payment through dunning, replay every webhook twice (and
once more in reverse order); the ledger, the credit balance and Pulse's revenue agree to the cent."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import pytest
from sqlalchemy import select

from memory.db import session_scope, utcnow
from tests.factories.orgs import make_org, org_ctx
from tests.fakes.stripe import FakeStripe, post_event

DAY = 86400
SECRET = "whsec_stripe_test"


@pytest.fixture()
def stripe_fake() -> Any:
    with FakeStripe() as fake:
        yield fake


def _configure(set_settings: Any, fake: FakeStripe, **extra: Any) -> None:
    set_settings(stripe_api_key="sk_test_levqor", stripe_api_base=fake.url, stripe_webhook_secret=SECRET, **extra)


def _billing(client: Any, org: Any) -> dict[str, Any]:
    r = client.get("/v1/billing", headers=org.headers())
    assert r.status_code == 200, r.text
    return dict(r.json())


def _deliver_twice(client: Any, fake: FakeStripe) -> list[dict[str, Any]]:
    """Deliver the new events, then every one of them again: the replay changes nothing."""
    new = fake.events[fake.billing.delivered:]
    first = fake.deliver(client)
    assert all(r.status_code == 200 for r in first), [r.text for r in first]
    again = fake.deliver(client, new)
    assert [r.json()["outcome"] for r in again] == ["duplicate"] * len(new)
    return [r.json() for r in first]


def _ledger(org_id: int) -> list[tuple[str, int, str]]:
    from memory.billing.models import RevenueEntry

    with session_scope() as s:
        rows = s.execute(select(RevenueEntry).where(RevenueEntry.org_id == org_id).order_by(RevenueEntry.id))
        return [(r.kind, r.amount_minor, r.stripe_object_id) for r in rows.scalars()]


def _emails(org_id: int) -> list[dict[str, Any]]:
    from memory.events.models import Event

    with session_scope() as s:
        rows = s.execute(select(Event).where(Event.org_id == org_id, Event.name == "notification_requested")
                         .order_by(Event.id))
        return [dict(e.payload) for e in rows.scalars()]


def _balance(org_id: int) -> int:
    from memory.jobs.repository import CreditRepository

    with session_scope() as s:
        return CreditRepository(s).balance(org_id)


def test_subscribe_upgrade_pack_refund_dunning_replay_agree(client, set_settings, stripe_fake) -> None:
    from tools.billing.dunning import downgrade_overdue
    from tools.partner_api.stripe_connect import stripe_client
    from tools.pulse.kpis import providers

    fake = stripe_fake
    _configure(set_settings, fake, billing_grace_days=3)
    org = make_org(plan="free")
    start_balance = _balance(org.org_id)
    t0 = int(time.time()) - 40 * DAY  # the story happened over the last 40 days
    fake.billing.now = t0

    # Subscribe to Pro, monthly: Checkout, the customer pays, Stripe's events arrive (twice).
    r = client.post("/v1/billing/checkout", json={"kind": "subscription", "plan": "pro"}, headers=org.headers())
    assert r.status_code == 201, r.text
    assert r.json()["url"].startswith("https://checkout.stripe.test/")
    assert _billing(client, org)["plan"] == "free"  # nothing changes before Stripe says it was paid
    fake.billing.complete_checkout(r.json()["id"])
    results = _deliver_twice(client, fake)
    assert {x["type"] for x in results} >= {"checkout.session.completed", "invoice.paid"}
    view = _billing(client, org)
    assert (view["plan"], view["status"], view["interval"]) == ("pro", "active", "month")
    assert view["credit_balance"] == start_balance + 5_000
    # A second subscription is refused; the change goes through the plan change route instead.
    again = client.post("/v1/billing/checkout", json={"kind": "subscription", "plan": "business"},
                        headers=org.headers())
    assert again.status_code == 409 and again.json()["field"] == "plan"

    # Upgrade to Business ten days into the 30-day period: Stripe prorates the remaining 20 days.
    sub_id = next(iter(fake.subscriptions))
    fake.billing.now = t0 + 10 * DAY
    r = client.post("/v1/billing/subscription", json={"plan": "business"}, headers=org.headers())
    assert r.status_code == 200, r.text
    _deliver_twice(client, fake)
    proration = 9900 * 20 * DAY // (30 * DAY) - 2900 * 20 * DAY // (30 * DAY)
    view = _billing(client, org)
    assert view["plan"] == "business"
    assert view["credit_balance"] == start_balance + 25_000  # topped up to Business for this period
    assert ("proration", proration, next(i for i in fake.billing.invoices.values()
                                         if i["billing_reason"] == "subscription_update")["id"]) in _ledger(org.org_id)

    # Buy the medium credit pack.
    fake.billing.now = t0 + 12 * DAY
    r = client.post("/v1/billing/checkout", json={"kind": "credit_pack", "pack": "medium"}, headers=org.headers())
    assert r.status_code == 201, r.text
    paid = fake.billing.complete_checkout(r.json()["id"])
    _deliver_twice(client, fake)
    assert _balance(org.org_id) == start_balance + 25_000 + 5_000

    # Refund part of the pack's charge.
    fake.billing.now = t0 + 13 * DAY
    charge = next(c for c in fake.billing.charges.values() if c.get("payment_intent") == paid["payment_intent"])
    fake.billing.refund(charge["id"], 1_500)
    _deliver_twice(client, fake)
    # A third of the pack's price refunded takes back a third of its credits (rounded down), once.
    assert _balance(org.org_id) == start_balance + 25_000 + 5_000 - 5_000 * 1_500 // 4_500

    # The renewal fails: a grace period opens and the admin is emailed once, however often Stripe retries.
    fake.billing.fail_payments = True
    fake.billing.renew(sub_id)
    _deliver_twice(client, fake)
    view = _billing(client, org)
    assert view["status"] == "past_due" and view["plan"] == "business" and view["grace_until"]
    grace = dt.datetime.fromisoformat(view["grace_until"])
    assert grace == dt.datetime.fromtimestamp(t0 + 30 * DAY, dt.UTC) + dt.timedelta(days=3) or \
        abs((grace - dt.datetime.fromtimestamp(t0 + 30 * DAY, dt.UTC)).total_seconds() - 3 * DAY) < 5
    mails = _emails(org.org_id)
    assert len(mails) == 1 and mails[0]["to"] == org.admin_email and "payment failed" in mails[0]["subject"]

    # The grace period ends unpaid: the scheduled dunning check moves the organisation to free, cancels
    # the subscription in Stripe and emails again. Nothing is deleted: the credits stay.
    with session_scope() as s:
        before_grace = downgrade_overdue(s, grace - dt.timedelta(seconds=1), stripe=stripe_client())
    assert before_grace.downgraded == []
    with session_scope() as s:
        out = downgrade_overdue(s, utcnow(), stripe=stripe_client())
    assert out.downgraded == [org.org_id]
    assert fake.subscriptions[sub_id]["status"] == "canceled"
    _deliver_twice(client, fake)  # customer.subscription.deleted: already free, nothing else changes
    view = _billing(client, org)
    assert (view["plan"], view["status"]) == ("free", "canceled")
    assert len(_emails(org.org_id)) == 2 and "free plan" in _emails(org.org_id)[1]["subject"]
    assert _balance(org.org_id) == start_balance + 30_000 - 1_666

    # Every event once more, newest first (out of order): nothing changes.
    ledger_before = _ledger(org.org_id)
    for ev in reversed(fake.events):
        assert post_event(client, ev).json()["outcome"] == "duplicate"
    assert _ledger(org.org_id) == ledger_before and _balance(org.org_id) == start_balance + 30_000 - 1_666

    # Ledger = what Stripe collected less refunds; Pulse's revenue, day by day, sums to the same cent.
    collected = sum(i["amount_paid"] for i in fake.billing.invoices.values()) + paid["amount_total"]
    expected = collected - 1_500
    assert expected == 2900 + proration + 4500 - 1500
    assert sum(amount for _k, amount, _id in ledger_before) == expected
    assert sorted(k for k, _a, _i in ledger_before) == ["credit_pack", "proration", "refund", "subscription"]
    with session_scope() as s:
        ctx = org_ctx(s, org.org_id)
        revenue = providers()["revenue"]
        today = utcnow().date()
        days = [today - dt.timedelta(days=i) for i in range(45)]
        readings = [revenue(ctx, d) for d in days]
        assert all(x.available for x in readings)
        assert round(sum(x.value or 0 for x in readings)) == expected
        from tools.registry import registry

        mid = registry.invoke("billing.kpis", ctx, {"day": dt.date.fromtimestamp(t0 + 20 * DAY).isoformat()})
        assert mid.model_dump()["mrr_cents"] == 9900  # Business after the upgrade
        assert registry.invoke("billing.kpis", ctx, {"day": today.isoformat()}).model_dump()["mrr_cents"] == 0
    summary = client.get("/v1/billing/revenue?days=60", headers=org.headers()).json()
    assert summary["net_minor"] == expected and summary["refunds_minor"] == 1500


def test_forged_stale_and_unsigned_webhooks_are_400_and_audited(client, set_settings, stripe_fake) -> None:
    from memory.audit.models import AuditEntry

    _configure(set_settings, stripe_fake)
    org = make_org(plan="free")
    ev = {"id": "evt_forged_" + org.slug.replace("-", "_"), "object": "event", "type": "invoice.paid",
          "created": int(time.time()), "data": {"object": {
              "id": "in_forged", "object": "invoice", "customer": None, "amount_paid": 990000, "currency": "usd",
              "billing_reason": "subscription_create", "metadata": {"levqor_org_id": str(org.org_id)},
              "lines": {"data": []}}}}
    with session_scope() as s:
        before = s.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1)) or 0
    forged = post_event(client, ev, secret="whsec_wrong")
    stale = post_event(client, ev, timestamp=int(time.time()) - 600)
    unsigned = client.post("/v1/stripe/webhook", content=json.dumps(ev))
    for r in (forged, stale, unsigned):
        assert r.status_code == 400 and r.json()["field"] == "Stripe-Signature", r.text
        assert r.headers["content-type"].startswith("application/problem+json")
    with session_scope() as s:
        rejected = s.execute(select(AuditEntry).where(AuditEntry.seq > before,
                                                      AuditEntry.action == "billing.webhook_rejected")).scalars()
        assert len(list(rejected)) == 3
    assert _ledger(org.org_id) == [] and _billing(client, org)["plan"] == "free"


def test_amount_mismatch_is_flagged_not_granted(client, set_settings, stripe_fake) -> None:
    from memory.audit.models import AuditEntry

    fake = stripe_fake
    _configure(set_settings, fake)
    org = make_org(plan="free")
    start = _balance(org.org_id)
    r = client.post("/v1/billing/checkout", json={"kind": "subscription", "plan": "pro", "interval": "year"},
                    headers=org.headers())
    assert r.status_code == 201, r.text
    # Someone edits the price in the Stripe dashboard before the customer pays.
    price = next(p for p in fake.prices.values() if p["lookup_key"] == "levqor_pro_year")
    price["unit_amount"] = 19_000
    fake.billing.complete_checkout(r.json()["id"])
    _deliver_twice(client, fake)
    view = _billing(client, org)
    assert view["credit_balance"] == start  # not granted
    assert [(f["kind"], f["expected_minor"], f["actual_minor"]) for f in view["flags"]] == \
        [("amount_mismatch", 29_000, 19_000)]
    assert _ledger(org.org_id)[0][:2] == ("subscription", 19_000)  # the money that came in is recorded
    with session_scope() as s:
        assert s.execute(select(AuditEntry).where(AuditEntry.org_id == org.org_id,
                                                  AuditEntry.action == "billing.mismatch_flagged")).first()
    # And the checkout refuses to sell a price that disagrees with the catalogue.
    r = client.post("/v1/billing/checkout", json={"kind": "subscription", "plan": "pro", "interval": "year"},
                    headers=make_org(plan="free").headers())
    assert r.status_code == 409 and r.json()["field"] == "plan"


def test_enterprise_seats_and_bad_input(client, set_settings, stripe_fake) -> None:
    fake = stripe_fake
    _configure(set_settings, fake)
    org = make_org(plan="free")
    start = _balance(org.org_id)
    for body, field in (({"kind": "subscription", "plan": "starter"}, "plan"),
                        ({"kind": "subscription", "plan": "enterprise", "seats": 2}, "seats"),
                        ({"kind": "credit_pack", "pack": "huge"}, "pack"),
                        ({"kind": "subscription", "plan": "pro", "interval": "week"}, "interval")):
        r = client.post("/v1/billing/checkout", json=body, headers=org.headers())
        assert r.status_code == 422, r.text
        assert field in json.dumps(r.json()), r.text
    assert client.post("/v1/billing/checkout", json={"kind": "credit_pack", "pack": "small"},
                       headers=org.headers("viewer")).status_code == 403
    r = client.post("/v1/billing/checkout", json={"kind": "subscription", "plan": "enterprise", "seats": 6},
                    headers=org.headers())
    assert r.status_code == 201, r.text
    fake.billing.complete_checkout(r.json()["id"])
    _deliver_twice(client, fake)
    view = _billing(client, org)
    assert (view["plan"], view["seats"], view["price_minor"]) == ("enterprise", 6, 6 * 4900)
    assert view["credit_balance"] == start + 6 * 4_000
    fake.billing.now += 15 * DAY
    r = client.post("/v1/billing/subscription", json={"plan": "enterprise", "seats": 8}, headers=org.headers())
    assert r.status_code == 200, r.text
    _deliver_twice(client, fake)
    view = _billing(client, org)
    assert view["seats"] == 8 and view["credit_balance"] == start + 8 * 4_000
    inv = next(i for i in fake.billing.invoices.values() if i["billing_reason"] == "subscription_update")
    assert ("proration", inv["amount_paid"], inv["id"]) in _ledger(org.org_id)
    assert inv["amount_paid"] == 8 * 4900 * 15 // 30 - 6 * 4900 * 15 // 30
    r = client.post("/v1/billing/portal", headers=org.headers())
    assert r.status_code == 201 and r.json()["url"].startswith("https://billing.stripe.test/")


def test_refunded_pack_takes_back_only_unspent_credits(client, set_settings, stripe_fake) -> None:
    """A full refund of a pack whose credits were mostly spent takes back what is left, never below zero."""
    from memory.db import session_scope
    from memory.jobs.repository import CreditRepository

    fake = stripe_fake
    _configure(set_settings, fake)
    org = make_org(plan="free")
    r = client.post("/v1/billing/checkout", json={"kind": "credit_pack", "pack": "medium"}, headers=org.headers())
    paid = fake.billing.complete_checkout(r.json()["id"])
    _deliver_twice(client, fake)
    start = _balance(org.org_id)
    with session_scope() as s:  # spend all but 700 credits
        CreditRepository(s).credit(org.org_id, -(start - 700))
    charge = next(c for c in fake.billing.charges.values() if c.get("payment_intent") == paid["payment_intent"])
    fake.billing.refund(charge["id"])
    _deliver_twice(client, fake)
    assert _balance(org.org_id) == 0
