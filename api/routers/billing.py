"""Billing: the catalogue, the organisation's plan and payments, Checkout, the Customer Portal, plan
changes, the revenue ledger, and the one Stripe webhook endpoint (billing and Connect events)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from api.deps import SessionDep, public, require
from tools.billing import checkout as billing
from tools.billing.checkout import (
    BillingOverview,
    Catalogue,
    CheckoutIn,
    CheckoutOut,
    OverviewIn,
    PlanChange,
    PlanChangeOut,
    PortalOut,
)
from tools.billing.ledger import RevenueQuery, RevenueSummary, revenue
from tools.billing.webhooks import StripeEventResult, handle_stripe_webhook
from tools.context import ToolContext
from tools.identity.service import NoInput

router = APIRouter(prefix="/v1", tags=["billing"])


@router.get("/billing/catalogue", response_model=Catalogue, dependencies=[public()])
def get_catalogue(request: Request, session: SessionDep) -> Catalogue:
    """List the plans (monthly and yearly prices, included credits, seats) and the credit packs."""
    from tools.context import SYSTEM

    return billing.read_catalogue(ToolContext(session, SYSTEM), NoInput())


@router.get("/billing", response_model=BillingOverview)
def get_billing(ctx: Annotated[ToolContext, require("billing:read")],
                page: Annotated[int, Query(ge=1, le=100_000, description="Page of payments, newest first")] = 1,
                ) -> BillingOverview:
    """Show the organisation's plan, seats, status, credit balance, payments (24 a page) and open flags."""
    return billing.overview(ctx, OverviewIn(page=page))


@router.get("/billing/revenue", response_model=RevenueSummary)
def get_revenue(ctx: Annotated[ToolContext, require("billing:read")],
                days: Annotated[int, Query(ge=1, le=3660, description="How many days back")] = 30,
                limit: Annotated[int, Query(ge=1, le=500)] = 50) -> RevenueSummary:
    """Summarise the revenue ledger (the organisation's payments; platform-wide for Levqor staff)."""
    return revenue(ctx, RevenueQuery(days=days, limit=limit))


@router.post("/billing/checkout", response_model=CheckoutOut, status_code=201)
def create_checkout(body: CheckoutIn, ctx: Annotated[ToolContext, require("billing:write")]) -> CheckoutOut:
    """Open a Stripe Checkout Session for a plan or a credit pack; redirect the customer to its url."""
    return billing.checkout(ctx, body)


@router.post("/billing/portal", response_model=PortalOut, status_code=201)
def create_portal(ctx: Annotated[ToolContext, require("billing:write")]) -> PortalOut:
    """Open a Stripe Customer Portal session (cards, invoices, cancellation)."""
    return billing.portal(ctx, NoInput())


@router.post("/billing/subscription", response_model=PlanChangeOut)
def change_subscription(body: PlanChange, ctx: Annotated[ToolContext, require("billing:write")]) -> PlanChangeOut:
    """Upgrade, downgrade, switch interval or change seats; Stripe prorates and invoices at once."""
    return billing.change_plan(ctx, body)


@router.post("/stripe/webhook", response_model=StripeEventResult, dependencies=[public()])
async def stripe_webhook(request: Request, session: SessionDep) -> StripeEventResult:
    """Stripe events, verified with Stripe-Signature: billing (Checkout, invoices, subscriptions, refunds)
    and Connect (accounts, transfers, payouts). Forged or stale signatures are 400s and audited."""
    payload = await request.body()
    return await run_in_threadpool(handle_stripe_webhook, session, payload, request.headers.get("stripe-signature"))
