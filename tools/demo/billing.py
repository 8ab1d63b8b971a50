"""Demo billing history for ``make run``: ~90 days of Stripe events (a Pro subscription's monthly
invoices and the day's credit-pack purchases), signed like Stripe and applied through the webhook
handler, so the revenue ledger, the credit balance and Pulse's revenue come from the same code path
as real payments. Every object carries ``levqor_demo`` metadata: the rows are labelled demo data."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from levqor.settings import get_settings
from tools.billing import catalogue
from tools.billing.webhooks import handle_stripe_webhook
from tools.context import ToolContext

DEMO_SECRET = "whsec_levqor_demo_seed"  # signs the seeded events when no Stripe secret is configured


def _noon(day: dt.date, offset_s: int = 0) -> int:
    return int(dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC).timestamp()) + offset_s


def _packs_for(revenue_cents: int) -> list[catalogue.CreditPack]:
    """The credit packs whose prices add up to the day's revenue (to the nearest small pack below)."""
    out: list[catalogue.CreditPack] = []
    left = revenue_cents
    for pack in sorted(catalogue.CREDIT_PACKS.values(), key=lambda c: -c.price_minor):
        while left >= pack.price_minor:
            out.append(pack)
            left -= pack.price_minor
    return out


def demo_events(org_id: int, revenue_by_day: dict[dt.date, int]) -> list[dict[str, Any]]:
    """Stripe-shaped events for the demo history, oldest first (deterministic for the given days)."""
    customer = f"cus_demo{org_id}"
    md = {"levqor_org_id": str(org_id), "levqor_demo": "1"}
    pro = catalogue.plan("pro")
    events: list[dict[str, Any]] = []
    days = sorted(revenue_by_day)

    def event(kind: str, created: int, obj: dict[str, Any]) -> None:
        events.append({"id": f"evt_demo{org_id}_{len(events)}", "object": "event", "type": kind, "created": created,
                       "livemode": False, "data": {"object": obj}})

    for n, day in enumerate(days):
        if n % 30 == 0:  # the Pro subscription renews every 30 days
            start = _noon(day)
            event("invoice.paid", start, {
                "id": f"in_demo{org_id}_{n}", "object": "invoice", "customer": customer,
                "subscription": f"sub_demo{org_id}", "billing_reason": "subscription_create" if n == 0
                else "subscription_cycle", "currency": catalogue.CURRENCY, "amount_paid": pro.monthly_minor,
                "parent": {"subscription_details": {"subscription": f"sub_demo{org_id}", "metadata": md}},
                "lines": {"data": [{"id": f"il_demo{org_id}_{n}", "amount": pro.monthly_minor, "quantity": 1,
                                    "proration": False, "period": {"start": start, "end": start + 30 * 86400},
                                    "price": {"id": "price_demo_pro_month", "lookup_key": pro.lookup_key("month"),
                                              "unit_amount": pro.monthly_minor, "currency": catalogue.CURRENCY}}]}})
        for i, pack in enumerate(_packs_for(revenue_by_day[day])):
            event("checkout.session.completed", _noon(day, 60 + i), {
                "id": f"cs_demo{org_id}_{n}_{i}", "object": "checkout.session", "mode": "payment",
                "customer": customer, "payment_status": "paid", "amount_total": pack.price_minor,
                "currency": catalogue.CURRENCY, "payment_intent": f"pi_demo{org_id}_{n}_{i}",
                "metadata": {**md, "levqor_pack": pack.id}})
    return events


def seed_billing(ctx: ToolContext, revenue_by_day: dict[dt.date, int]) -> int:
    """Sign the demo events and apply them through the webhook handler; how many were applied."""
    import stripe  # kept lazy: start-up time

    secret = get_settings().stripe_webhook_secret or DEMO_SECRET
    applied = 0
    for ev in demo_events(ctx.org_id, revenue_by_day):
        payload = json.dumps(ev)
        header = stripe.WebhookSignature.generate_signature_header(payload, secret)
        out = handle_stripe_webhook(ctx.session, payload.encode(), header, secret=secret)
        applied += out.applied
    return applied
