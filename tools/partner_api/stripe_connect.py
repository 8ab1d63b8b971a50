"""Stripe Connect: the client, partners' Express accounts, and Stripe's webhooks.

Stripe webhooks (``transfer.*``, ``payout.*``, ``account.updated``) are verified with the SDK and
applied once per event id.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from sqlalchemy.orm import Session

from levqor.settings import get_settings
from memory.db import utcnow
from memory.partner.models import Partner, PartnerEmail
from memory.partner.repository import PartnerRepository
from tools.context import ToolContext
from tools.enterprise import audit_log
from tools.errors import AppError, BadRequest, NotFound
from tools.identity.service import NoInput
from tools.partner_api import metrics
from tools.partner_api.access import own_partner
from tools.registry import tool


class StripeUnavailable(AppError):
    """Stripe is not configured on this deployment (a state, not a server fault)."""

    status_code = 409
    title = "Payments not configured"
    type_slug = "payments-not-configured"


class StripeFailed(AppError):
    status_code = 502
    title = "Payment provider error"
    type_slug = "payment-provider-error"


def stripe_client() -> Any:
    """The official Stripe SDK client (``LEVQOR_STRIPE_API_BASE`` points it at a test server)."""
    import stripe  # kept lazy: start-up time

    s = get_settings()
    if not s.stripe_api_key:
        raise StripeUnavailable("Stripe is not configured (LEVQOR_STRIPE_API_KEY)", field="stripe")
    kwargs: dict[str, Any] = {"max_network_retries": 2}
    if s.stripe_api_base:
        kwargs["base_addresses"] = {"api": s.stripe_api_base.rstrip("/")}
    return stripe.StripeClient(s.stripe_api_key, **kwargs)


# ---- onboarding ----------------------------------------------------------------------------------

class OnboardingLink(BaseModel):
    account_id: str
    url: str
    expires_at: int


@tool("partners.stripe_onboard", risk="financial")
def stripe_onboard(ctx: ToolContext, params: NoInput) -> OnboardingLink:
    """Create the partner's Stripe Express account if needed and return an onboarding link."""
    import stripe  # kept lazy: start-up time

    partner = own_partner(ctx)
    client = stripe_client()
    try:
        return _onboard(ctx, partner, client)
    except stripe.StripeError as exc:
        raise StripeFailed(f"Stripe refused the request: {exc.user_message or exc}", field="stripe") from None


def _onboard(ctx: ToolContext, partner: Partner, client: Any) -> OnboardingLink:
    if not partner.stripe_account_id:
        acct = client.v1.accounts.create(params={
            "type": "express", "email": partner.contact_email,
            "capabilities": {"transfers": {"requested": True}},
            "metadata": {"levqor_partner_id": str(partner.id)}},
            options={"idempotency_key": f"levqor-partner-account-{partner.id}"})
        partner.stripe_account_id = acct["id"]
        ctx.session.flush()
        audit_log.record(ctx, "partners.stripe_account_created", f"partner:{partner.id}",
                         after={"account": acct["id"]})
    base = get_settings().base_url
    link = client.v1.account_links.create(params={
        "account": partner.stripe_account_id, "type": "account_onboarding",
        "refresh_url": f"{base}/partners/payouts?onboarding=refresh",
        "return_url": f"{base}/partners/payouts?onboarding=done"})
    return OnboardingLink(account_id=partner.stripe_account_id, url=link["url"], expires_at=int(link["expires_at"]))


# ---- Stripe webhooks -----------------------------------------------------------------------------

class StripeWebhookResult(BaseModel):
    id: str
    type: str
    applied: bool


def handle_stripe_webhook(session: Session, payload: bytes, signature: str | None) -> StripeWebhookResult:
    """Verify a Stripe webhook with the SDK (signature and 300 s tolerance), then apply it once."""
    import stripe  # kept lazy: start-up time

    secret = get_settings().stripe_webhook_secret
    if not secret:
        raise NotFound("Stripe webhooks are not enabled here (LEVQOR_STRIPE_WEBHOOK_SECRET is empty)")
    if not signature:
        raise BadRequest("missing Stripe-Signature header", field="Stripe-Signature")
    try:
        event = stripe.Webhook.construct_event(payload, signature, secret)
    except stripe.SignatureVerificationError as exc:
        raise BadRequest(f"invalid Stripe signature: {exc.user_message or exc}", field="Stripe-Signature") from None
    except ValueError:
        raise BadRequest("the Stripe event is not valid JSON", field="body") from None
    return apply_connect_event(session, event.to_dict())


def apply_connect_event(session: Session, ev: dict[str, Any]) -> StripeWebhookResult:
    """Apply a verified Stripe Connect event (accounts, transfers, payouts) once per event id."""
    repo = PartnerRepository(session)
    etype, eid = str(ev.get("type", "")), str(ev.get("id", ""))
    if not re.match(r"^[A-Za-z0-9_]{1,100}$", eid):
        raise BadRequest("the Stripe event has no valid id", field="id")
    if repo.stripe_event_seen(eid, etype):
        return StripeWebhookResult(id=eid, type=etype, applied=False)
    obj = (ev.get("data") or {}).get("object") or {}
    applied = True
    if etype == "account.updated":
        partner = repo.partner_by_account(str(obj.get("id", "")))
        if partner is not None:
            partner.payouts_enabled = bool(obj.get("payouts_enabled"))
            partner.details_submitted = bool(obj.get("details_submitted"))
        applied = partner is not None
    elif etype.startswith("transfer."):
        payout = repo.payout_by_transfer(str(obj.get("id", "")))
        if payout is not None and etype == "transfer.reversed":
            payout.status, payout.error = "reversed", "transfer reversed in Stripe"
            metrics.PAYOUTS.labels(outcome="reversed").inc()
        applied = payout is not None
    elif etype.startswith("payout."):
        partner = repo.partner_by_account(str(ev.get("account") or ""))
        if partner is not None and etype == "payout.paid":
            for p in repo.payouts(partner_id=partner.id, statuses=("transferred",)):
                p.status, p.updated_at = "paid", utcnow()
            metrics.PAYOUTS.labels(outcome="paid").inc()
        elif partner is not None and etype == "payout.failed":
            repo.add_email(PartnerEmail(partner_id=partner.id, to=partner.contact_email,
                                        subject="Your Stripe payout failed",
                                        body=f"Stripe reports payout {obj.get('id')} failed: "
                                             f"{obj.get('failure_message') or obj.get('failure_code')}. "
                                             "Check your bank details in the Stripe dashboard."))
        applied = partner is not None
    else:
        applied = False
    session.flush()
    return StripeWebhookResult(id=eid, type=etype, applied=applied)
