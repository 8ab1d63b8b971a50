"""The billing page: plan, seats, status, credit balance, payments, flags; subscribe, change plan,
buy credits and open the Stripe Customer Portal (each form redirects to Stripe)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.deps import require
from api.pages.router import form_csrf, render
from tools.billing import catalogue
from tools.billing import checkout as billing
from tools.billing.checkout import CheckoutIn, OverviewIn, PlanChange
from tools.billing.ledger import CreditNotesQuery, credit_notes
from tools.context import ToolContext
from tools.enterprise.rbac import allowed
from tools.identity.service import NoInput

router = APIRouter(tags=["pages"], include_in_schema=False)


def _to_stripe(request: Request, ctx: ToolContext, url: str) -> HTMLResponse:
    """A page that moves on to Stripe's hosted page (a meta refresh and a link: the pages' CSP allows
    forms to post only to Levqor, and a redirect answering a form post counts as the form's target)."""
    return render(request, "billing_redirect.html", ctx, url=url)


def money(minor: int | None) -> str:
    if minor is None:
        return "-"
    sign = "-" if minor < 0 else ""
    return f"{sign}${abs(minor) // 100:,}.{abs(minor) % 100:02d}"


@router.get("/billing")
def billing_page(request: Request, ctx: Annotated[ToolContext, require("billing:read")],
                 checkout: str | None = None, page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> HTMLResponse:
    """Show the organisation's plan, seats, invoices, credit balance and ways to pay."""
    view = billing.overview(ctx, OverviewIn(page=page))
    return render(request, "billing.html", ctx, view=view, credits=credit_notes(ctx, CreditNotesQuery()),
                  plans=list(catalogue.PLANS.values()),
                  packs=list(catalogue.CREDIT_PACKS.values()), money=money, checkout=checkout,
                  can_pay=allowed(ctx.principal.role, "billing:write"))


@router.post("/billing/checkout", dependencies=[Depends(form_csrf)])
def page_checkout(request: Request, ctx: Annotated[ToolContext, require("billing:write")],
                  kind: Annotated[str, Form(pattern="^(subscription|credit_pack)$")],
                  plan: Annotated[str | None, Form(max_length=32)] = None,
                  interval: Annotated[str, Form(pattern="^(month|year)$")] = "month",
                  seats: Annotated[int, Form(ge=1, le=10_000)] = 1,
                  pack: Annotated[str | None, Form(max_length=32)] = None) -> Response:
    """Start Checkout from the page and send the browser to Stripe."""
    body = CheckoutIn.model_validate({"kind": kind, "plan": plan, "interval": interval, "seats": seats,
                                      "pack": pack})
    return _to_stripe(request, ctx, billing.checkout(ctx, body).url)


@router.post("/billing/plan", dependencies=[Depends(form_csrf)])
def page_change_plan(ctx: Annotated[ToolContext, require("billing:write")],
                     plan: Annotated[str, Form(max_length=32)],
                     interval: Annotated[str, Form(pattern="^(month|year)$")] = "month",
                     seats: Annotated[int, Form(ge=1, le=10_000)] = 1) -> Response:
    """Change plan, interval or seats from the page (Stripe prorates)."""
    billing.change_plan(ctx, PlanChange.model_validate({"plan": plan, "interval": interval, "seats": seats}))
    return RedirectResponse("/billing?checkout=changed", status_code=303)


@router.post("/billing/portal", dependencies=[Depends(form_csrf)])
def page_portal(request: Request, ctx: Annotated[ToolContext, require("billing:write")]) -> Response:
    """Open the Stripe Customer Portal."""
    return _to_stripe(request, ctx, billing.portal(ctx, NoInput()).url)
