"""Dunning: a failed payment opens a grace period (``LEVQOR_BILLING_GRACE_DAYS``, set by the
``invoice.payment_failed`` webhook, which also emails the admins); when it ends unpaid, this scheduled
check moves the organisation to the free plan, cancels the Stripe subscription and emails the admins
again. Nothing is deleted: jobs, keys, history and credits stay; only the plan changes."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from pydantic import BaseModel
from sqlalchemy.orm import Session

from levqor.settings import get_settings
from memory.billing.repository import BillingRepository
from memory.db import session_scope, utcnow
from memory.identity.models import Organization
from tools.billing.notify import email_admins
from tools.enterprise import audit_log
from tools.schedules import Schedule

log = logging.getLogger(__name__)


class DunningResult(BaseModel):
    downgraded: list[int]
    cancel_failed: list[int] = []


def downgrade_overdue(session: Session, now: dt.datetime | None = None, *, stripe: Any = None) -> DunningResult:
    """Move every organisation whose grace period has ended to the free plan (in the caller's transaction)."""
    now = now or utcnow()
    repo = BillingRepository(session)
    out = DunningResult(downgraded=[])
    for acct in repo.accounts_past_grace(now):
        org = session.get(Organization, acct.org_id)
        before = org.plan if org is not None else acct.plan
        if acct.stripe_subscription_id and stripe is not None:
            import stripe as sdk  # kept lazy: start-up time

            try:
                stripe.v1.subscriptions.cancel(acct.stripe_subscription_id)
            except sdk.StripeError as exc:
                # The plan still moves to free; Stripe's own dunning ends the subscription, and the
                # ``customer.subscription.deleted`` webhook is then a no-op here.
                log.warning("could not cancel %s: %s", acct.stripe_subscription_id, exc)
                out.cancel_failed.append(acct.org_id)
        acct.plan, acct.status, acct.grace_until, acct.downgraded_at = "free", "canceled", None, now
        if org is not None:
            org.plan = "free"
        audit_log.append(session, actor="system:billing", action="billing.downgraded", target=f"org:{acct.org_id}",
                         org_id=acct.org_id, before={"plan": before}, after={"plan": "free"},
                         detail={"reason": "payment failed and the grace period ended"})
        email_admins(session, acct.org_id, "Your Levqor organisation is now on the free plan",
                     f"The payment for your {before} plan was not made within the grace period, so the "
                     "organisation has moved to the free plan. Nothing was deleted: subscribe again from "
                     "the billing page at any time.")
        out.downgraded.append(acct.org_id)
    session.flush()
    return out


def run_dunning() -> None:
    """The scheduled check (on the leading scheduler only)."""
    from tools.partner_api.stripe_connect import StripeUnavailable, stripe_client

    try:
        client: Any = stripe_client()
    except StripeUnavailable:
        client = None
    with session_scope() as s:
        downgrade_overdue(s, stripe=client)


def schedules() -> list[Schedule]:
    return [Schedule("billing.dunning", float(get_settings().billing_dunning_interval_s), run_dunning)]
