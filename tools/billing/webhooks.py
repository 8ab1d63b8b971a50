"""Stripe webhooks: the source of truth for plans, credits and revenue.

One endpoint receives every Stripe event. Each is verified with the SDK (signature, 300 s tolerance);
a forged or stale one is a 400 and an audit entry that survives the request's rollback. Billing events
are written to the ``billing_events`` inbox *in the same transaction* as their effects (plan change,
credit grant, ledger row, flag), so a process killed anywhere before the commit leaves nothing behind
and Stripe's redelivery applies the event once; a redelivery after the commit finds the id and changes
nothing. Events that arrive out of order are handled by Stripe's ``created`` timestamp (subscription
state) and by the ledger's one row per Stripe object and kind (money). Connect events (accounts,
transfers, payouts) go on to the partner area after transfers have been written to the ledger.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from sqlalchemy.orm import Session

from levqor.settings import get_settings
from memory.billing.models import BillingAccount, BillingEvent, BillingFlag, RevenueEntry
from memory.billing.repository import BillingRepository
from memory.identity.models import Organization
from memory.jobs.models import CreditLedger
from memory.jobs.repository import CreditRepository
from memory.partner.repository import PartnerRepository
from tools.billing import catalogue, ledger
from tools.billing.notify import email_admins
from tools.enterprise import audit_log
from tools.errors import BadRequest, NotFound
from tools.partner_api import stripe_connect

ACTOR = "stripe:webhook"
BILLING_EVENTS: tuple[str, ...] = (
    "checkout.session.completed", "invoice.paid", "invoice.payment_failed", "customer.subscription.created",
    "customer.subscription.updated", "customer.subscription.deleted", "charge.refunded")
LEDGER_CONNECT_EVENTS: tuple[str, ...] = ("transfer.created", "transfer.reversed")
_EVENT_ID = re.compile(r"^[A-Za-z0-9_]{1,100}$")


class StripeEventResult(BaseModel):
    id: str
    type: str
    applied: bool
    outcome: str = "applied"


def verify(session: Session, payload: bytes, signature: str | None, secret: str | None = None) -> dict[str, Any]:
    """The verified event as a dict, or a 400 naming ``Stripe-Signature`` (audited, kept on rollback).
    ``secret``: the demo seed's own signing secret; requests always use the configured one."""
    import stripe  # kept lazy: start-up time

    secret = secret or get_settings().stripe_webhook_secret
    if not secret:
        raise NotFound("Stripe webhooks are not enabled here (LEVQOR_STRIPE_WEBHOOK_SECRET is empty)")

    def refuse(reason: str, field: str) -> BadRequest:
        audit_log.append_detached(session=session, actor=ACTOR, action="billing.webhook_rejected",
                                  target="stripe:webhook", org_id=None, outcome="denied",
                                  detail={"reason": reason[:200], "bytes": len(payload)})
        return BadRequest(reason, field=field)

    if not signature:
        raise refuse("missing Stripe-Signature header", "Stripe-Signature")
    try:
        event = stripe.Webhook.construct_event(payload, signature, secret)
    except stripe.SignatureVerificationError as exc:
        raise refuse(f"invalid Stripe signature: {exc.user_message or exc}", "Stripe-Signature") from None
    except ValueError:
        raise refuse("the Stripe event is not valid JSON", "body") from None
    ev: dict[str, Any] = event.to_dict()
    if not _EVENT_ID.match(str(ev.get("id", ""))):
        raise BadRequest("the Stripe event has no valid id", field="id")
    return ev


def handle_stripe_webhook(session: Session, payload: bytes, signature: str | None, *,
                          secret: str | None = None) -> StripeEventResult:
    """Verify a Stripe webhook and apply it once (billing events here, Connect events in the partner area)."""
    ev = verify(session, payload, signature, secret)
    etype = str(ev.get("type", ""))
    if etype in BILLING_EVENTS:
        return apply_event(session, ev)
    if etype in LEDGER_CONNECT_EVENTS:
        apply_event(session, ev)
    r = stripe_connect.apply_connect_event(session, ev)
    return StripeEventResult(id=r.id, type=r.type, applied=r.applied, outcome="applied" if r.applied else "ignored")


# ---- applying one event ----------------------------------------------------------------------------

@dataclass
class _Outcome:
    outcome: str = "applied"  # applied | ignored | stale | flagged
    org_id: int | None = None
    note: str = ""


@dataclass
class _Event:
    session: Session
    id: str
    type: str
    created: int
    obj: dict[str, Any]
    demo: bool

    @property
    def repo(self) -> BillingRepository:
        return BillingRepository(self.session)

    @property
    def at(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.created, dt.UTC)


def apply_event(session: Session, ev: dict[str, Any], *, demo: bool = False) -> StripeEventResult:
    """Apply a verified billing event exactly once (the inbox row and the effects share a transaction)."""
    eid, etype = str(ev["id"]), str(ev.get("type", ""))
    created = int(ev.get("created") or 0)
    obj = (ev.get("data") or {}).get("object") or {}
    demo = demo or bool(_metadata(obj).get("levqor_demo"))  # only Levqor's demo seed sets it
    row = BillingEvent(id=eid, type=etype, created=created, outcome="applied", note="", demo=demo)
    repo = BillingRepository(session)
    if not repo.record_event(row):
        return StripeEventResult(id=eid, type=etype, applied=False, outcome="duplicate")
    handler = _HANDLERS.get(etype)
    out = handler(_Event(session, eid, etype, created, obj, demo)) if handler else _Outcome("ignored")
    row.outcome, row.org_id, row.note = out.outcome, out.org_id, out.note[:500]
    session.flush()
    return StripeEventResult(id=eid, type=etype, applied=out.outcome in ("applied", "flagged"), outcome=out.outcome)


# ---- helpers ----------------------------------------------------------------------------------------

def _metadata(obj: dict[str, Any]) -> dict[str, Any]:
    """Levqor's metadata wherever Stripe carries it on this object (session, subscription, invoice)."""
    found: dict[str, Any] = {}
    candidates: list[Any] = [
        ((obj.get("parent") or {}).get("subscription_details") or {}).get("metadata"),
        (obj.get("subscription_details") or {}).get("metadata"),
        obj.get("metadata"),
    ]
    for line in ((obj.get("lines") or {}).get("data") or [])[:1]:
        candidates.append(line.get("metadata"))
    for md in candidates:
        if isinstance(md, dict):
            found.update({k: v for k, v in md.items() if str(k).startswith("levqor_")})
    return found


def _org_id(e: _Event) -> int | None:
    """The organisation an object belongs to: by our Stripe customer, else by the metadata we set."""
    cust = e.obj.get("customer")
    if isinstance(cust, dict):
        cust = cust.get("id")
    if cust:
        acct = e.repo.account_by_customer(str(cust))
        if acct is not None:
            return acct.org_id
    raw = str(_metadata(e.obj).get("levqor_org_id", ""))
    if raw.isdigit() and e.session.get(Organization, int(raw)) is not None:
        return int(raw)
    return None


def _ts(value: Any) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(int(value), dt.UTC) if value else None


def _flag(e: _Event, org_id: int | None, kind: str, detail: str, *, object_id: str = "",
          expected: int | None = None, actual: int | None = None) -> _Outcome:
    e.repo.add_flag(BillingFlag(org_id=org_id, event_id=e.id, stripe_object_id=object_id, kind=kind,
                                expected_minor=expected, actual_minor=actual, detail=detail[:500]))
    audit_log.append(e.session, actor=ACTOR, action="billing.mismatch_flagged", target=object_id or e.id,
                     org_id=org_id, outcome="flagged",
                     detail={"event": e.id, "kind": kind, "expected_minor": expected, "actual_minor": actual,
                             "detail": detail[:200]})
    return _Outcome("flagged", org_id, detail)


def _grant(e: _Event, org_id: int, credits: int, reason: str, note: str) -> None:
    if credits <= 0:
        return
    repo = CreditRepository(e.session)
    after = repo.credit(org_id, credits)
    repo.add_entry(CreditLedger(org_id=org_id, delta=credits, balance_after=after, reason=reason, actor=ACTOR,
                                note=note[:500]))


def _set_plan(e: _Event, acct: BillingAccount, plan_id: str) -> None:
    acct.plan = plan_id
    org = e.session.get(Organization, acct.org_id)
    if org is not None and org.plan != plan_id:
        before = org.plan
        org.plan = plan_id
        audit_log.append(e.session, actor=ACTOR, action="billing.plan_changed", target=f"org:{acct.org_id}",
                         org_id=acct.org_id, before={"plan": before}, after={"plan": plan_id},
                         detail={"event": e.id})


def _price_of(item: dict[str, Any]) -> tuple[catalogue.Plan, catalogue.Interval] | None:
    price = item.get("price") or {}
    key = price.get("lookup_key") if isinstance(price, dict) else None
    return catalogue.plan_by_lookup_key(str(key)) if key else None


def _subscription_item(sub: dict[str, Any]) -> tuple[catalogue.Plan, catalogue.Interval, int] | None:
    items = ((sub.get("items") or {}).get("data")) or []
    if not items:
        return None
    found = _price_of(items[0])
    if found is None:
        return None
    return found[0], found[1], int(items[0].get("quantity") or 1)


# ---- handlers ---------------------------------------------------------------------------------------

def _checkout_completed(e: _Event) -> _Outcome:
    obj, org_id = e.obj, _org_id(e)
    if org_id is None:
        return _Outcome("ignored", None, "no Levqor organisation for this checkout session")
    acct = e.repo.account_for_update(org_id)
    if obj.get("customer") and not acct.stripe_customer_id:
        acct.stripe_customer_id = str(obj["customer"])
    acct.demo = acct.demo or e.demo
    md = _metadata(obj)
    if obj.get("mode") == "subscription":
        if obj.get("subscription") and e.created >= acct.subscription_event_at:
            acct.stripe_subscription_id = str(obj["subscription"])
        return _Outcome("applied", org_id, "subscription checkout completed; the invoice grants credits")
    pack = catalogue.CREDIT_PACKS.get(str(md.get("levqor_pack", "")))
    if obj.get("payment_status") != "paid":
        return _Outcome("ignored", org_id, f"payment status {obj.get('payment_status')!r}")
    amount, currency = int(obj.get("amount_total") or 0), str(obj.get("currency") or "").lower()
    object_id = str(obj.get("payment_intent") or obj["id"])
    fresh = ledger.append(e.session, RevenueEntry(
        org_id=org_id, kind="credit_pack", amount_minor=amount, currency=currency or catalogue.CURRENCY,
        stripe_object_id=object_id, event_id=e.id, plan=pack.id if pack else "", occurred_at=e.at, demo=e.demo))
    if not fresh:
        return _Outcome("ignored", org_id, f"{object_id} already in the ledger")
    if pack is None:
        return _flag(e, org_id, "unknown_price", f"credit pack {md.get('levqor_pack')!r} is not in the catalogue",
                     object_id=object_id, actual=amount)
    if amount != pack.price_minor or currency != catalogue.CURRENCY:
        return _flag(e, org_id, "amount_mismatch",
                     f"pack {pack.id}: Stripe charged {amount} {currency}, the catalogue says "
                     f"{pack.price_minor} {catalogue.CURRENCY}; no credits granted until resolved",
                     object_id=object_id, expected=pack.price_minor, actual=amount)
    _grant(e, org_id, pack.credits, "purchase", f"credit pack {pack.id} ({object_id})")
    audit_log.append(e.session, actor=ACTOR, action="billing.credits_bought", target=f"org:{org_id}",
                     org_id=org_id, detail={"pack": pack.id, "credits": pack.credits, "amount_minor": amount,
                                            "stripe": object_id, "demo": e.demo})
    return _Outcome("applied", org_id, f"pack {pack.id}: {pack.credits} credits")


def _invoice_paid(e: _Event) -> _Outcome:
    obj, org_id = e.obj, _org_id(e)
    if org_id is None:
        return _Outcome("ignored", None, "no Levqor organisation for this invoice")
    invoice_id = str(obj["id"])
    amount, currency = int(obj.get("amount_paid") or 0), str(obj.get("currency") or "").lower()
    kind = "proration" if obj.get("billing_reason") == "subscription_update" else "subscription"
    lines: list[dict[str, Any]] = ((obj.get("lines") or {}).get("data")) or []
    priced: list[tuple[dict[str, Any], catalogue.Plan, catalogue.Interval]] = []
    unknown = 0
    for ln in lines:
        found = _price_of(ln)
        if found is None:
            unknown += 1
        else:
            priced.append((ln, found[0], found[1]))
    # The plan paid for: the last full-period line, else (a proration) the last positive line.
    current = [x for x in priced if not x[0].get("proration")] or \
        [x for x in priced if int(x[0].get("amount") or 0) > 0] or priced
    line, plan, interval = current[-1] if current else ({}, None, None)
    seats = int(line.get("quantity") or 1)
    period = line.get("period") or {}
    sub_id = obj.get("subscription") or ((obj.get("parent") or {}).get("subscription_details") or {}).get(
        "subscription")
    acct = e.repo.account_for_update(org_id)
    acct.demo = acct.demo or e.demo
    if obj.get("customer") and not acct.stripe_customer_id:
        acct.stripe_customer_id = str(obj["customer"])
    fresh = amount > 0 and ledger.append(e.session, RevenueEntry(
        org_id=org_id, kind=kind, amount_minor=amount, currency=currency or catalogue.CURRENCY,
        stripe_object_id=invoice_id, event_id=e.id, plan=plan.id if plan else "", interval=interval or "",
        seats=seats, period_start=_ts(period.get("start")), period_end=_ts(period.get("end")), occurred_at=e.at,
        demo=e.demo))
    if amount > 0 and not fresh:
        return _Outcome("ignored", org_id, f"{invoice_id} already in the ledger")
    # What the proration credits back (the old price's line) says what was paid for before, whatever
    # order the subscription update and this invoice arrive in.
    unused = [x for x in priced if x[0].get("proration") and int(x[0].get("amount") or 0) < 0]
    previous_credits = unused[-1][1].credits_for_period(unused[-1][2], int(unused[-1][0].get("quantity") or 1)) \
        if unused else None
    if plan is not None and interval is not None and e.created >= acct.subscription_event_at:
        if sub_id:
            acct.stripe_subscription_id = str(sub_id)
        acct.interval, acct.seats, acct.status, acct.grace_until = interval, seats, "active", None
        if period.get("end"):
            acct.current_period_end = _ts(period["end"])
        acct.subscription_event_at = e.created
        _set_plan(e, acct, plan.id)
    if unknown or plan is None or interval is None:
        return _flag(e, org_id, "unknown_price", f"invoice {invoice_id} has prices that are not in the catalogue",
                     object_id=invoice_id, actual=amount)
    if currency != catalogue.CURRENCY:
        return _flag(e, org_id, "currency_mismatch", f"invoice {invoice_id} is in {currency}",
                     object_id=invoice_id, actual=amount)
    if kind == "subscription":
        expected = plan.price_minor(interval, seats)
        if amount != expected:
            return _flag(e, org_id, "amount_mismatch",
                         f"invoice {invoice_id}: Stripe charged {amount}, the catalogue says {expected} for "
                         f"{plan.id}/{interval} x{seats}; no credits granted until resolved",
                         object_id=invoice_id, expected=expected, actual=amount)
        credits = plan.credits_for_period(interval, seats)
        _grant(e, org_id, credits, "plan_credits", f"{plan.id}/{interval} x{seats} ({invoice_id})")
        return _Outcome("applied", org_id, f"{plan.id}: {credits} credits for the period")
    # A proration invoice (upgrade, downgrade, seats): the amount is Stripe's time-based arithmetic, so
    # each line is checked against the catalogue's unit price and can never exceed a full period.
    for ln, p, iv in priced:
        qty = int(ln.get("quantity") or 1)
        unit = p.price_minor(iv, 1)
        unit_amount = int(((ln.get("price") or {}).get("unit_amount")) or 0)
        if unit_amount != unit:
            return _flag(e, org_id, "amount_mismatch",
                         f"invoice {invoice_id}: unit price {unit_amount} for {p.id}/{iv} is not the catalogue's "
                         f"{unit}", object_id=invoice_id, expected=unit, actual=unit_amount)
        if abs(int(ln.get("amount") or 0)) > unit * qty:
            return _flag(e, org_id, "amount_mismatch", f"invoice {invoice_id}: a proration line exceeds a full "
                         "period", object_id=invoice_id, expected=unit * qty, actual=int(ln.get("amount") or 0))
    # An upgrade paid now tops the period's included credits up to the new plan's (once: the ledger row
    # for this invoice is new); a downgrade keeps what was granted.
    top_up = plan.credits_for_period(interval, seats) - previous_credits \
        if fresh and previous_credits is not None else 0
    _grant(e, org_id, top_up, "plan_credits", f"upgrade to {plan.id}/{interval} x{seats} ({invoice_id})")
    return _Outcome("applied", org_id, f"proration {amount} for {plan.id} x{seats}; {max(top_up, 0)} credits")


def _payment_failed(e: _Event) -> _Outcome:
    obj, org_id = e.obj, _org_id(e)
    if org_id is None:
        return _Outcome("ignored", None, "no Levqor organisation for this invoice")
    if e.repo.has_entry(str(obj["id"]), "subscription") or e.repo.has_entry(str(obj["id"]), "proration"):
        return _Outcome("stale", org_id, "the invoice has been paid since")
    acct = e.repo.account_for_update(org_id)
    if acct.status not in ("active", "past_due"):
        return _Outcome("ignored", org_id, f"no active subscription (status {acct.status})")
    if acct.status == "past_due" and acct.grace_until is not None:
        return _Outcome("applied", org_id, "already in its grace period")
    acct.status = "past_due"
    acct.grace_until = e.at + dt.timedelta(days=get_settings().billing_grace_days)
    audit_log.append(e.session, actor=ACTOR, action="billing.payment_failed", target=f"org:{org_id}",
                     org_id=org_id, detail={"invoice": obj["id"], "grace_until": acct.grace_until.isoformat()})
    email_admins(e.session, org_id, "Your Levqor payment failed",
                 f"We could not collect the payment for your {acct.plan} plan (invoice {obj['id']}).\n"
                 f"Update your card from the billing page before {acct.grace_until:%Y-%m-%d %H:%M} UTC; "
                 "after that the organisation moves to the free plan. Nothing is deleted.")
    return _Outcome("applied", org_id, f"grace period until {acct.grace_until.isoformat()}")


def _subscription_changed(e: _Event) -> _Outcome:
    obj, org_id = e.obj, _org_id(e)
    if org_id is None:
        return _Outcome("ignored", None, "no Levqor organisation for this subscription")
    acct = e.repo.account_for_update(org_id)
    if acct.stripe_subscription_id and acct.stripe_subscription_id != obj.get("id") and \
            e.type == "customer.subscription.deleted":
        return _Outcome("ignored", org_id, "not the organisation's current subscription")
    if e.created < acct.subscription_event_at:
        return _Outcome("stale", org_id, "a newer subscription event was applied already")
    acct.subscription_event_at = e.created
    acct.stripe_subscription_id = str(obj.get("id") or acct.stripe_subscription_id or "") or None
    if e.type == "customer.subscription.deleted" or obj.get("status") in ("canceled", "incomplete_expired"):
        acct.status, acct.grace_until = "canceled", None
        _set_plan(e, acct, "free")
        return _Outcome("applied", org_id, "subscription ended: free plan")
    item = _subscription_item(obj)
    if item is None:
        return _flag(e, org_id, "unknown_price", f"subscription {obj.get('id')} has a price not in the catalogue",
                     object_id=str(obj.get("id") or ""))
    plan, interval, seats = item
    acct.interval, acct.seats = interval, seats
    if obj.get("current_period_end"):
        acct.current_period_end = _ts(obj["current_period_end"])
    status = str(obj.get("status") or "active")
    if status in ("active", "trialing"):
        acct.status, acct.grace_until = "active", None
    elif status in ("past_due", "unpaid") and acct.status != "past_due":
        acct.status = "past_due"
    if acct.status != "canceled":
        _set_plan(e, acct, plan.id)
    return _Outcome("applied", org_id, f"{plan.id}/{interval} x{seats}, {status}")


def _charge_refunded(e: _Event) -> _Outcome:
    obj, org_id = e.obj, _org_id(e)
    refunds = ((obj.get("refunds") or {}).get("data")) or []
    if not refunds and obj.get("amount_refunded"):
        # Without the refund list, the cumulative amount is the fact: record what is new since last time.
        already = -sum(r.amount_minor for r in e.repo.entries(kinds=("refund",)) if
                       r.stripe_object_id.startswith(f"{obj['id']}:"))
        new = int(obj["amount_refunded"]) - already
        refunds = [{"id": f"{obj['id']}:{obj['amount_refunded']}", "amount": new}] if new > 0 else []
    pack_row = _pack_row(e, str(obj.get("payment_intent") or ""))
    added = 0
    for rf in refunds:
        amount = int(rf.get("amount") or 0)
        if amount <= 0:
            continue
        if ledger.append(e.session, RevenueEntry(
                org_id=org_id, kind="refund", amount_minor=-amount,
                currency=str(rf.get("currency") or obj.get("currency") or catalogue.CURRENCY).lower(),
                stripe_object_id=str(rf["id"]), event_id=e.id, occurred_at=_ts(rf.get("created")) or e.at,
                demo=e.demo)):
            added += amount
            if pack_row is not None and org_id is not None:
                _take_back_pack_credits(e, org_id, pack_row, amount, str(rf["id"]))
    if not added:
        return _Outcome("ignored", org_id, "no new refund")
    audit_log.append(e.session, actor=ACTOR, action="billing.refunded", target=f"charge:{obj['id']}",
                     org_id=org_id, detail={"amount_minor": added, "charge": obj["id"]})
    return _Outcome("applied", org_id, f"refunded {added}")


def _pack_row(e: _Event, payment_intent: str) -> RevenueEntry | None:
    """The credit-pack ledger row a charge paid for, if it paid for one (keyed by its payment intent)."""
    if not payment_intent:
        return None
    rows = [r for r in e.repo.entries(kinds=("credit_pack",)) if r.stripe_object_id == payment_intent]
    return rows[0] if rows and rows[0].plan in catalogue.CREDIT_PACKS and rows[0].amount_minor > 0 else None


def _take_back_pack_credits(e: _Event, org_id: int, pack_row: RevenueEntry, refunded: int, refund_id: str) -> None:
    """Take back the refunded share of a pack's credits (proportional to the amount refunded, rounded
    down), at most what is left unspent: the balance never goes below zero. Runs once per refund id,
    since it only runs when the refund's ledger row is new."""
    pack = catalogue.CREDIT_PACKS[pack_row.plan]
    share = pack.credits * min(refunded, pack_row.amount_minor) // pack_row.amount_minor
    repo = CreditRepository(e.session)
    take = min(share, max(repo.account(org_id).balance, 0))
    if take <= 0:
        return
    after = repo.credit(org_id, -take)
    note = f"refund {refund_id} of credit pack {pack.id} ({pack_row.stripe_object_id})"
    repo.add_entry(CreditLedger(org_id=org_id, delta=-take, balance_after=after, reason="pack_refund", actor=ACTOR,
                                note=note[:500]))


def _transfer(e: _Event) -> _Outcome:
    obj = e.obj
    prepo = PartnerRepository(e.session)
    partner = prepo.partner_by_account(str(obj.get("destination") or ""))
    payout = prepo.payout_by_transfer(str(obj.get("id") or ""))
    if partner is None and payout is not None:
        partner = prepo.partner(payout.partner_id)
    org_id = partner.org_id if partner is not None else None
    if e.type == "transfer.created":
        fresh = ledger.append(e.session, RevenueEntry(
            org_id=org_id, kind="partner_payout", amount_minor=-int(obj.get("amount") or 0),
            currency=str(obj.get("currency") or catalogue.CURRENCY).lower(), stripe_object_id=str(obj["id"]),
            event_id=e.id, occurred_at=_ts(obj.get("created")) or e.at, demo=e.demo))
    else:
        # A full reversal when Stripe does not say how much: the payout's whole amount comes back.
        reversed_ = int(obj.get("amount_reversed") or (payout.amount_minor if payout is not None else 0))
        if reversed_ <= 0:
            return _Outcome("ignored", org_id, "nothing reversed")
        fresh = ledger.append(e.session, RevenueEntry(
            org_id=org_id, kind="partner_payout_reversal", amount_minor=reversed_,
            currency=str(obj.get("currency") or catalogue.CURRENCY).lower(), stripe_object_id=str(obj["id"]),
            event_id=e.id, occurred_at=e.at, demo=e.demo))
    return _Outcome("applied" if fresh else "ignored", org_id)


_HANDLERS: dict[str, Callable[[_Event], _Outcome]] = {
    "checkout.session.completed": _checkout_completed,
    "invoice.paid": _invoice_paid,
    "invoice.payment_failed": _payment_failed,
    "customer.subscription.created": _subscription_changed,
    "customer.subscription.updated": _subscription_changed,
    "customer.subscription.deleted": _subscription_changed,
    "charge.refunded": _charge_refunded,
    "transfer.created": _transfer,
    "transfer.reversed": _transfer,
}

