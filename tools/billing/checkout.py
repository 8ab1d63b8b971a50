"""Checkout and self-service through the Stripe SDK: Checkout Sessions for plans and credit packs, the
Customer Portal, plan, interval and seat changes with proration, and the billing overview.

Nothing here changes a plan or a balance: Stripe's webhooks do (:mod:`tools.billing.webhooks`). Prices
are found by their catalogue lookup key and created from the catalogue when the Stripe account has none.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from levqor.settings import get_settings
from memory.billing.repository import BillingRepository
from memory.db import aware
from memory.identity.models import Organization
from memory.jobs.repository import CreditRepository
from tools.billing import catalogue
from tools.billing.notify import admins_of
from tools.context import ToolContext
from tools.enterprise import audit_log
from tools.errors import Conflict, Forbidden
from tools.identity.service import NoInput
from tools.partner_api.stripe_connect import StripeFailed, stripe_client
from tools.registry import tool


def _client() -> Any:
    return stripe_client()


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    import stripe  # kept lazy: start-up time

    try:
        return fn(*args, **kwargs)
    except stripe.StripeError as exc:
        raise StripeFailed(f"Stripe refused the request: {exc.user_message or exc}", field="stripe") from None


def _live_guard(ctx: ToolContext) -> None:
    if ctx.principal.key_mode == "test":
        raise Forbidden("a test-mode API key cannot buy or change the organisation's plan", field="plan")


def price_id(client: Any, key: str, *, unit_amount: int, name: str, interval: str | None) -> str:
    """The Stripe price with lookup key ``key``, created from the catalogue if the account lacks it.
    A price whose amount differs from the catalogue is refused (Stripe and Levqor must agree)."""
    found = _call(client.v1.prices.list, params={"lookup_keys": [key], "active": True, "limit": 1})
    data = list(found["data"])
    if data:
        price = data[0]
        if int(price["unit_amount"]) != unit_amount:
            raise Conflict(f"the Stripe price {key} is {price['unit_amount']}, the catalogue says {unit_amount}; "
                           "fix the price in Stripe before selling it", field="plan")
        return str(price["id"])
    params: dict[str, Any] = {"lookup_key": key, "unit_amount": unit_amount, "currency": catalogue.CURRENCY,
                              "product_data": {"name": f"Levqor {name}"}}
    if interval:
        params["recurring"] = {"interval": interval}
    created = _call(client.v1.prices.create, params=params,
                    options={"idempotency_key": f"levqor-price-{key}-{unit_amount}"})
    return str(created["id"])


def customer_id(ctx: ToolContext, client: Any) -> str:
    """The organisation's Stripe customer (created once; the id is stored before anyone pays)."""
    repo = BillingRepository(ctx.session)
    acct = repo.account_for_update(ctx.org_id)
    if acct.stripe_customer_id:
        return acct.stripe_customer_id
    org = ctx.session.get(Organization, ctx.org_id)
    admins = admins_of(ctx.session, ctx.org_id)
    cus = _call(client.v1.customers.create, params={
        "name": org.name if org else f"org {ctx.org_id}", "email": admins[0] if admins else None,
        "metadata": {"levqor_org_id": str(ctx.org_id)}},
        options={"idempotency_key": f"levqor-customer-{ctx.org_id}"})
    acct.stripe_customer_id = str(cus["id"])
    ctx.session.flush()
    audit_log.record(ctx, "billing.customer_created", f"org:{ctx.org_id}", after={"customer": cus["id"]})
    return acct.stripe_customer_id


class CheckoutIn(BaseModel):
    kind: Literal["subscription", "credit_pack"]
    plan: str | None = Field(None, description="Plan for a subscription: " + ", ".join(catalogue.PAID_PLANS))
    interval: catalogue.Interval = "month"
    seats: int = Field(1, ge=1, le=10_000, description="Seats (enterprise only)")
    pack: str | None = Field(None, description="Credit pack: " + ", ".join(catalogue.CREDIT_PACKS))

    @model_validator(mode="after")
    def _known(self) -> CheckoutIn:
        if self.kind == "subscription":
            if self.plan not in catalogue.PAID_PLANS:
                raise ValueError(f"plan must be one of {', '.join(catalogue.PAID_PLANS)}")
            _check_seats(catalogue.plan(self.plan), self.seats)
        elif self.pack not in catalogue.CREDIT_PACKS:
            raise ValueError(f"pack must be one of {', '.join(catalogue.CREDIT_PACKS)}")
        return self


def _check_seats(plan: catalogue.Plan, seats: int) -> None:
    if plan.per_seat and not plan.min_seats <= seats <= plan.max_seats:
        raise ValueError(f"seats must be between {plan.min_seats} and {plan.max_seats} for {plan.id}")
    if not plan.per_seat and seats != 1:
        raise ValueError(f"seats apply to per-seat plans only; {plan.id} has one")


class CheckoutOut(BaseModel):
    id: str
    url: str


@tool("billing.checkout", risk="financial")
def checkout(ctx: ToolContext, params: CheckoutIn) -> CheckoutOut:
    """Open a Stripe Checkout Session for a plan subscription or a one-off credit pack."""
    _live_guard(ctx)
    acct = BillingRepository(ctx.session).account(ctx.org_id)
    if params.kind == "subscription" and acct is not None and acct.status in ("active", "past_due"):
        raise Conflict("the organisation already has a subscription: change its plan instead", field="plan")
    client = _client()
    cust = customer_id(ctx, client)
    base = get_settings().base_url.rstrip("/")
    md = {"levqor_org_id": str(ctx.org_id), "levqor_kind": params.kind}
    if params.kind == "subscription":
        assert params.plan is not None
        plan = catalogue.plan(params.plan)
        price = price_id(client, plan.lookup_key(params.interval), unit_amount=plan.price_minor(params.interval),
                         name=f"{plan.name} ({params.interval}ly)", interval=params.interval)
        md.update(levqor_plan=plan.id, levqor_interval=params.interval, levqor_seats=str(params.seats))
        extra: dict[str, Any] = {"mode": "subscription", "subscription_data": {"metadata": md},
                                 "line_items": [{"price": price, "quantity": params.seats}]}
    else:
        assert params.pack is not None
        pack = catalogue.CREDIT_PACKS[params.pack]
        price = price_id(client, pack.lookup_key, unit_amount=pack.price_minor, name=pack.name, interval=None)
        md.update(levqor_pack=pack.id)
        extra = {"mode": "payment", "payment_intent_data": {"metadata": md},
                 "line_items": [{"price": price, "quantity": 1}]}
    cs = _call(client.v1.checkout.sessions.create, params={
        "customer": cust, "client_reference_id": str(ctx.org_id), "metadata": md,
        "success_url": f"{base}/billing?checkout=done", "cancel_url": f"{base}/billing?checkout=cancelled", **extra},
        options={"idempotency_key": f"levqor-checkout-{ctx.org_id}-{uuid.uuid4().hex}"})
    audit_log.record(ctx, "billing.checkout_started", f"org:{ctx.org_id}",
                     detail={"session": cs["id"], "kind": params.kind, "plan": params.plan, "pack": params.pack,
                             "interval": params.interval, "seats": params.seats})
    return CheckoutOut(id=str(cs["id"]), url=str(cs["url"]))


class PortalOut(BaseModel):
    url: str


@tool("billing.portal", risk="write")
def portal(ctx: ToolContext, params: NoInput) -> PortalOut:
    """Open a Stripe Customer Portal session (cards, invoices, cancellation)."""
    _live_guard(ctx)
    acct = BillingRepository(ctx.session).account(ctx.org_id)
    if acct is None or not acct.stripe_customer_id:
        raise Conflict("the organisation has no Stripe customer yet: subscribe or buy credits first", field="plan")
    client = _client()
    base = get_settings().base_url.rstrip("/")
    ps = _call(client.v1.billing_portal.sessions.create,
               params={"customer": acct.stripe_customer_id, "return_url": f"{base}/billing"})
    audit_log.record(ctx, "billing.portal_opened", f"org:{ctx.org_id}")
    return PortalOut(url=str(ps["url"]))


class PlanChange(BaseModel):
    plan: str = Field(description="New plan: " + ", ".join(catalogue.PAID_PLANS))
    interval: catalogue.Interval = "month"
    seats: int = Field(1, ge=1, le=10_000)

    @model_validator(mode="after")
    def _known(self) -> PlanChange:
        if self.plan not in catalogue.PAID_PLANS:
            raise ValueError(f"plan must be one of {', '.join(catalogue.PAID_PLANS)} (cancel to go free)")
        _check_seats(catalogue.plan(self.plan), self.seats)
        return self


class PlanChangeOut(BaseModel):
    subscription: str
    requested: PlanChange
    note: str = "Stripe prorates and invoices now; the plan changes here when its webhook arrives."


@tool("billing.change_plan", risk="financial")
def change_plan(ctx: ToolContext, params: PlanChange) -> PlanChangeOut:
    """Upgrade, downgrade, switch interval or change enterprise seats, prorated by Stripe."""
    _live_guard(ctx)
    acct = BillingRepository(ctx.session).account(ctx.org_id)
    if acct is None or acct.status not in ("active", "past_due") or not acct.stripe_subscription_id:
        raise Conflict("the organisation has no active subscription: use checkout", field="plan")
    if (acct.plan, acct.interval, acct.seats) == (params.plan, params.interval, params.seats):
        raise Conflict("that is the current plan", field="plan")
    client = _client()
    plan = catalogue.plan(params.plan)
    price = price_id(client, plan.lookup_key(params.interval), unit_amount=plan.price_minor(params.interval),
                     name=f"{plan.name} ({params.interval}ly)", interval=params.interval)
    sub = _call(client.v1.subscriptions.retrieve, acct.stripe_subscription_id)
    item = sub["items"]["data"][0]["id"]
    before = {"plan": acct.plan, "interval": acct.interval, "seats": acct.seats}
    _call(client.v1.subscriptions.update, acct.stripe_subscription_id, params={
        "items": [{"id": item, "price": price, "quantity": params.seats}], "proration_behavior": "always_invoice",
        "metadata": {"levqor_org_id": str(ctx.org_id), "levqor_plan": plan.id}},
        options={"idempotency_key": f"levqor-change-{ctx.org_id}-{acct.stripe_subscription_id}-"
                                    f"{acct.subscription_event_at}-{plan.id}-{params.interval}-{params.seats}"})
    audit_log.record(ctx, "billing.plan_change_requested", f"org:{ctx.org_id}", before=before,
                     after=params.model_dump())
    return PlanChangeOut(subscription=acct.stripe_subscription_id, requested=params)


class FlagRead(BaseModel):
    id: int
    kind: str
    stripe_object_id: str
    expected_minor: int | None
    actual_minor: int | None
    detail: str
    created_at: dt.datetime


class BillingOverview(BaseModel):
    plan: str
    plan_name: str
    interval: str
    seats: int
    status: str
    current_period_end: dt.datetime | None
    grace_until: dt.datetime | None
    credit_balance: int
    included_credits_per_period: int
    price_minor: int
    currency: str = catalogue.CURRENCY
    has_customer: bool
    demo: bool
    invoices: list[dict[str, Any]]
    page: int = Field(1, description="The page of payments shown (newest first)")
    more: bool = Field(False, description="Whether older payments follow on the next page")
    flags: list[FlagRead]


PAYMENTS_PER_PAGE = 24


class OverviewIn(BaseModel):
    page: int = Field(1, ge=1, le=100_000, description="Page of payments, newest first")


@tool("billing.overview", risk="read")
def overview(ctx: ToolContext, params: OverviewIn) -> BillingOverview:
    """Show the organisation's plan, seats, status, credit balance, payments and open flags."""
    repo = BillingRepository(ctx.session)
    acct = repo.account(ctx.org_id)
    org = ctx.session.get(Organization, ctx.org_id)
    plan_id = org.plan if org is not None and org.plan in catalogue.PLANS else "free"
    plan = catalogue.plan(plan_id)
    interval: catalogue.Interval = "year" if acct is not None and acct.interval == "year" else "month"
    seats = acct.seats if acct is not None else 1
    rows = repo.entries(org_id=ctx.org_id, limit=PAYMENTS_PER_PAGE + 1, offset=(params.page - 1) * PAYMENTS_PER_PAGE)
    more, rows = len(rows) > PAYMENTS_PER_PAGE, rows[:PAYMENTS_PER_PAGE]
    return BillingOverview(
        plan=plan.id, plan_name=plan.name, interval=interval, seats=seats,
        status=acct.status if acct is not None else "none",
        current_period_end=aware(acct.current_period_end) if acct and acct.current_period_end else None,
        grace_until=aware(acct.grace_until) if acct and acct.grace_until else None,
        credit_balance=CreditRepository(ctx.session).balance(ctx.org_id),
        included_credits_per_period=plan.credits_for_period(interval, seats),
        price_minor=plan.price_minor(interval, seats), has_customer=bool(acct and acct.stripe_customer_id),
        demo=bool(acct and acct.demo) or any(r.demo for r in rows),
        invoices=[{"stripe_id": r.stripe_object_id, "kind": r.kind, "amount_minor": r.amount_minor,
                   "currency": r.currency, "date": aware(r.occurred_at).date().isoformat(), "demo": r.demo}
                  for r in rows],
        page=params.page, more=more,
        flags=[FlagRead(id=f.id, kind=f.kind, stripe_object_id=f.stripe_object_id, expected_minor=f.expected_minor,
                        actual_minor=f.actual_minor, detail=f.detail, created_at=aware(f.created_at))
               for f in repo.flags(org_id=ctx.org_id)])


class Catalogue(BaseModel):
    currency: str
    plans: list[dict[str, Any]]
    credit_packs: list[dict[str, Any]]


@tool("billing.catalogue", risk="read")
def read_catalogue(ctx: ToolContext, params: NoInput) -> Catalogue:
    """List the plans (monthly and yearly prices, included credits, seats) and the credit packs."""
    return Catalogue(currency=catalogue.CURRENCY, plans=[
        {"id": p.id, "name": p.name, "monthly_minor": p.monthly_minor, "yearly_minor": p.yearly_minor,
         "included_credits_per_month": p.included_credits, "per_seat": p.per_seat, "min_seats": p.min_seats,
         "limits": p.limits} for p in catalogue.PLANS.values()],
        credit_packs=[{"id": c.id, "name": c.name, "credits": c.credits, "price_minor": c.price_minor}
                      for c in catalogue.CREDIT_PACKS.values()])
