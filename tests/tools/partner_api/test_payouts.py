"""Revenue ledger, shares and fees, payout runs through the real Stripe SDK against a local fake
(exactly once, even after a crash), holds, minimum threshold, Stripe webhooks, statements."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.factories.partners import emit_event, install, make_world, manifest, publish
from tests.fakes.stripe import FakeStripe


@pytest.fixture()
def stripe_fake(set_settings) -> Any:  # noqa: F811
    with FakeStripe() as fake:
        yield fake


def _world(client: Any, set_settings: Any, fake: FakeStripe, **settings: Any) -> Any:
    return make_world(client, set_settings, stripe_api_key="sk_test_levqor", stripe_api_base=fake.url,
                      stripe_webhook_secret="whsec_stripe_test", **settings)


def _onboard(client: Any, w: Any) -> str:
    # Onboarding sets where the money goes: the partner organisation's admins, not its partner-role keys.
    assert client.post("/v1/partners/me/stripe-onboarding", headers=w.partner.headers("partner")).status_code == 403
    r = client.post("/v1/partners/me/stripe-onboarding", headers=w.partner.headers())
    assert r.status_code == 200, r.text
    assert r.json()["url"].startswith("https://connect.stripe.test/setup/")
    return str(r.json()["account_id"])


def _prepare(period: str) -> Any:
    from memory.db import session_scope
    from tools.context import SYSTEM, ToolContext
    from tools.registry import registry

    with session_scope() as s:
        return registry.invoke("payouts.prepare", ToolContext(s, SYSTEM), {"period": period})


def _period() -> str:
    from memory.db import utcnow
    from tools.partner_api.revenue import period_of

    return period_of(utcnow())


def _stripe_post(client: Any, event: dict[str, Any], secret: str = "whsec_stripe_test",
                 timestamp: int | None = None) -> Any:
    import stripe

    payload = json.dumps(event)
    ts = int(time.time()) if timestamp is None else timestamp
    sig = stripe.WebhookSignature._compute_signature(f"{ts}.{payload}", secret)
    return client.post("/v1/stripe/webhook", content=payload,
                       headers={"Stripe-Signature": f"t={ts},v1={sig}", "content-type": "application/json"})


def test_subscription_and_per_run_revenue_shares_and_fees(client, set_settings, stripe_fake) -> None:
    w = _world(client, set_settings, stripe_fake, payout_minimum_minor=100)
    sub, run = f"{w.partner.slug}.sub", f"{w.partner.slug}.run"
    publish(client, w, manifest(sub, None, pricing={"model": "monthly", "monthly_minor": 1999}, revenue_share=0.7))
    publish(client, w, manifest(run, None, pricing={"model": "per_run", "credits_per_run": 3}, revenue_share=0.8))
    install(client, w.customer, sub)
    install(client, w.customer, run)
    for i in range(4):  # per-run usage from job_complete events naming the plugin
        emit_event("job_complete", {"job_id": i, "plugins": [run]}, w.customer.org_id)
    emit_event("job_complete", {"job_id": 9, "plugins": []}, w.customer.org_id)  # did not use it
    # Re-accruing the month is idempotent.
    r = client.post("/v1/payouts/accrue", json={"period": _period()}, headers=w.staff.headers())
    assert r.json()["created"] == 0
    st = client.get("/v1/payouts/statement", headers=w.partner.headers("partner")).json()
    lines = {(ln["plugin"], ln["kind"]): ln for ln in st["lines"]}
    assert lines[(sub, "subscription")]["gross_minor"] == 1999
    assert lines[(sub, "subscription")]["partner_share_minor"] == 1399  # floor(1999 * 0.7)
    assert lines[(run, "per_run")]["quantity"] == 4
    assert lines[(run, "per_run")]["gross_minor"] == 120 and lines[(run, "per_run")]["partner_share_minor"] == 96
    assert st["gross_minor"] == 2119 and st["platform_fee_minor"] == 2119 - 1495
    csv_r = client.get("/v1/payouts/statement", params={"format": "csv"}, headers=w.partner.headers("partner"))
    assert csv_r.headers["content-type"].startswith("text/csv")
    rows = csv_r.text.strip().splitlines()
    assert rows[0].startswith("period,plugin,kind") and rows[-1].startswith("total,,,,2119,624,1495")
    kpis = client.get("/v1/partners/kpis", headers=w.partner.headers("partner")).json()
    assert kpis["revenue_minor"] == 2119 and kpis["partner_revenue_minor"] == 1495
    assert kpis["partner_share_of_revenue"] == round(1495 / 2119, 4)


def test_payout_run_after_crash_never_pays_twice(client, set_settings, stripe_fake, monkeypatch) -> None:
    from tools.partner_api import payouts

    w = _world(client, set_settings, stripe_fake, payout_minimum_minor=500)
    acct = _onboard(client, w)
    slug = f"{w.partner.slug}.paid"
    publish(client, w, manifest(slug, None, pricing={"model": "monthly", "monthly_minor": 5000}))
    install(client, w.customer, slug)
    prepared = _prepare(_period())
    mine = [p for p in prepared.payouts if p.partner_id == _partner_id(client, w)]
    assert len(mine) == 1 and mine[0].amount_minor == 3500 and mine[0].platform_fee_minor == 1500

    real = payouts._record_transfer

    def crash(payout_id: int, transfer: Any) -> None:
        raise RuntimeError("worker killed between the Stripe call and the record")

    monkeypatch.setattr(payouts, "_record_transfer", crash)
    with pytest.raises(RuntimeError):
        payouts.transfer_pending()
    assert len([t for t in stripe_fake.transfers if t["destination"] == acct]) == 1
    monkeypatch.setattr(payouts, "_record_transfer", real)
    assert mine[0].id in payouts.transfer_pending()  # the re-run resends the same idempotency key
    assert payouts.transfer_pending() == []  # and a third run has nothing to do
    mine_tr = [t for t in stripe_fake.transfers if t["destination"] == acct]
    assert len(mine_tr) == 1 and mine_tr[0]["amount"] == 3500 and mine_tr[0]["currency"] == "usd"
    keys = [k for path, _, k in stripe_fake.requests if path == "/v1/transfers" and k == f"levqor-payout-{mine[0].id}"]
    assert len(keys) == 2
    listed = client.get("/v1/payouts", headers=w.partner.headers("partner")).json()["items"]
    assert listed[0]["status"] == "transferred" and listed[0]["stripe_transfer_id"] == mine_tr[0]["id"]
    # Preparing the same period again creates nothing new.
    again = _prepare(_period())
    assert not [p for p in again.payouts if p.partner_id == listed[0]["partner_id"]]


def _partner_id(client: Any, w: Any) -> int:
    return int(client.get("/v1/partners/me", headers=w.partner.headers("partner")).json()["id"])


def test_minimum_threshold_and_suspended_partner_hold(client, set_settings, stripe_fake) -> None:
    from tools.partner_api import payouts

    w = _world(client, set_settings, stripe_fake, payout_minimum_minor=10_000)
    _onboard(client, w)
    pid = _partner_id(client, w)
    slug = f"{w.partner.slug}.small"
    publish(client, w, manifest(slug, None, pricing={"model": "monthly", "monthly_minor": 5000}))
    install(client, w.customer, slug)
    held = {h.partner_id: h for h in _prepare(_period()).held}
    assert held[pid].reason == "below_minimum" and held[pid].amount_minor == 3500
    set_settings(payout_minimum_minor=100)
    r = client.post(f"/v1/partners/{pid}/status", json={"status": "suspended"}, headers=w.staff.headers())
    assert r.status_code == 200
    held = {h.partner_id: h for h in _prepare(_period()).held}
    assert held[pid].reason == "partner_suspended"
    before = len(stripe_fake.transfers)
    payouts.transfer_pending()
    assert len(stripe_fake.transfers) == before
    client.post(f"/v1/partners/{pid}/status", json={"status": "active"}, headers=w.staff.headers())
    r = client.post("/v1/payouts/runs", json={"period": _period()}, headers=w.staff.headers())
    assert r.status_code == 202 and [p["amount_minor"] for p in r.json()["payouts"] if p["partner_id"] == pid] == [3500]
    # The transfer ran as a background task after the answer.
    assert [t["amount"] for t in stripe_fake.transfers[before:]] == [3500]
    # Only Levqor staff run payouts.
    denied = client.post("/v1/payouts/runs", json={"period": _period()}, headers=w.customer.headers())
    assert denied.status_code == 403


def test_stripe_webhooks_verified_and_applied_once(client, set_settings, stripe_fake) -> None:
    from tools.partner_api import payouts

    w = _world(client, set_settings, stripe_fake, payout_minimum_minor=100)
    acct = _onboard(client, w)
    ev = {"id": "evt_acct_1", "object": "event", "type": "account.updated", "api_version": "2025-01-01",
          "data": {"object": {"id": acct, "object": "account", "payouts_enabled": True, "details_submitted": True}}}
    # Forged (wrong secret), stale (10 minutes old), or unsigned: all rejected, nothing applied.
    assert _stripe_post(client, ev, secret="whsec_wrong").status_code == 400
    stale = _stripe_post(client, ev, timestamp=int(time.time()) - 600)
    assert stale.status_code == 400 and "Stripe-Signature" == stale.json()["field"]
    assert client.post("/v1/stripe/webhook", content=json.dumps(ev)).status_code == 400
    assert client.get("/v1/partners/me", headers=w.partner.headers("partner")).json()["payouts_enabled"] is False
    r = _stripe_post(client, ev)
    assert r.status_code == 200 and r.json()["applied"] is True
    assert client.get("/v1/partners/me", headers=w.partner.headers("partner")).json()["payouts_enabled"] is True
    assert _stripe_post(client, ev).json()["applied"] is False  # redelivery: applied once
    slug = f"{w.partner.slug}.wh"
    publish(client, w, manifest(slug, None, pricing={"model": "monthly", "monthly_minor": 1000}))
    install(client, w.customer, slug)
    _prepare(_period())
    payouts.transfer_pending()
    p = client.get("/v1/payouts", headers=w.partner.headers("partner")).json()["items"][0]
    paid = {"id": "evt_po_1", "object": "event", "type": "payout.paid", "account": acct,
            "data": {"object": {"id": "po_1", "object": "payout", "status": "paid"}}}
    assert _stripe_post(client, paid).json()["applied"] is True
    assert client.get("/v1/payouts", headers=w.partner.headers("partner")).json()["items"][0]["status"] == "paid"
    rev = {"id": "evt_tr_rev", "object": "event", "type": "transfer.reversed",
           "data": {"object": {"id": p["stripe_transfer_id"], "object": "transfer"}}}
    assert _stripe_post(client, rev).json()["applied"] is True
    assert client.get("/v1/payouts", headers=w.partner.headers("partner")).json()["items"][0]["status"] == "reversed"


def test_payout_transfer_lands_in_revenue_ledger_once_and_reversal_reverses(client, set_settings, stripe_fake) -> None:
    from tools.partner_api import payouts

    w = _world(client, set_settings, stripe_fake, payout_minimum_minor=100)
    acct = _onboard(client, w)
    slug = f"{w.partner.slug}.ledger"
    publish(client, w, manifest(slug, None, pricing={"model": "monthly", "monthly_minor": 5000}))
    install(client, w.customer, slug)
    _prepare(_period())
    payouts.transfer_pending()
    tr = [t for t in stripe_fake.transfers if t["destination"] == acct]
    assert len(tr) == 1 and tr[0]["amount"] == 3500

    def mine() -> list[dict[str, Any]]:
        rows = client.get("/v1/billing/revenue", params={"limit": 500}, headers=w.staff.headers()).json()["rows"]
        return [r for r in rows if r["stripe_object_id"] == tr[0]["id"]]

    # The payout itself wrote the ledger row, without any webhook.
    assert [(r["kind"], r["amount_minor"]) for r in mine()] == [("partner_payout", -3500)]
    summary = client.get("/v1/billing/revenue", headers=w.staff.headers()).json()
    assert summary["partner_payouts_minor"] >= 3500
    before = summary["partner_payouts_minor"]
    # Stripe's transfer.created webhook for the same transfer adds nothing (idempotent by transfer id).
    created = {"id": "evt_tr_created_1", "object": "event", "type": "transfer.created", "created": int(time.time()),
               "data": {"object": {**tr[0], "object": "transfer"}}}
    assert _stripe_post(client, created).status_code == 200
    assert len(mine()) == 1
    assert client.get("/v1/billing/revenue", headers=w.staff.headers()).json()["partner_payouts_minor"] == before
    # A reversal (Stripe's event without amount_reversed: a full one) writes the reversing row, once.
    rev = {"id": "evt_tr_rev_ledger", "object": "event", "type": "transfer.reversed", "created": int(time.time()),
           "data": {"object": {"id": tr[0]["id"], "object": "transfer"}}}
    assert _stripe_post(client, rev).status_code == 200
    assert _stripe_post(client, {**rev, "id": "evt_tr_rev_ledger2"}).status_code == 200
    assert sorted((r["kind"], r["amount_minor"]) for r in mine()) == [
        ("partner_payout", -3500), ("partner_payout_reversal", 3500)]
    assert client.get("/v1/billing/revenue", headers=w.staff.headers()).json()["partner_payouts_minor"] == before - 3500
    from memory.db import utcnow

    day = utcnow().date().isoformat()
    from memory.db import session_scope
    from tools.context import SYSTEM, ToolContext
    from tools.registry import registry

    with session_scope() as s:
        k = registry.invoke("billing.kpis", ToolContext(s, SYSTEM), {"day": day})
    assert k.partner_payouts_cents == before - 3500
