"""Plugin revenue, partner shares and Stripe Connect payouts.

Revenue is a ledger in integer minor units (``plugin_revenue``): subscription charges (one per
install per month, ``sub:{plugin}:{org}:{period}``) and per-run usage (``run:{event}:{install}``,
``credits_per_run`` x ``CREDIT_MINOR``), each with the partner share in basis points frozen at
accrual. A payout run for a period (1) prepares, in one transaction, one ``partner_payouts`` row
per partner with the unpaid revenue up to that period (partner share = sum of
``floor(amount * bps / 10000)``; platform fee = the rest), skipping suspended partners (held)
and shares under ``LEVQOR_PAYOUT_MINIMUM_MINOR`` (they roll over); then (2) for each payout,
marks it ``transferring`` and commits, calls Stripe ``transfers.create`` with the idempotency key
``levqor-payout-{id}`` derived from the row, and records the transfer. A run repeated after a
crash between the Stripe call and the record sends the same key, so Stripe returns the same
transfer: a partner is never paid twice. Stripe webhooks (``transfer.*``, ``payout.*``,
``account.updated``) are verified with the SDK and applied once per event id.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import re
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from levqor.settings import get_settings
from memory.db import session_scope, utcnow
from memory.partner.models import Partner, Payout, Plugin, PluginInstall, PluginVersion, RevenueEntry
from memory.partner.repository import PartnerRepository
from tools.context import ToolContext
from tools.enterprise import audit_log
from tools.errors import AppError, BadRequest, NotFound
from tools.partner_api import metrics
from tools.partner_api.registry import NoInput, is_staff, own_partner, require_staff, share_bps
from tools.registry import tool
from tools.schedules import Schedule

log = logging.getLogger(__name__)
CREDIT_MINOR = 10  # one credit is USD 0.10 of plugin revenue
_PERIOD = r"^\d{4}-(0[1-9]|1[0-2])$"


def period_of(when: dt.datetime) -> str:
    return f"{when.year:04d}-{when.month:02d}"


def partner_share(amount_minor: int, bps: int) -> int:
    return amount_minor * bps // 10000


# ---- accrual -------------------------------------------------------------------------------------

def _accrue(session: Session, *, ref: str, plugin: Plugin, org_id: int, kind: str, amount: int, quantity: int,
            version: PluginVersion, when: dt.datetime) -> RevenueEntry | None:
    repo = PartnerRepository(session)
    if amount <= 0 or repo.revenue_exists(ref):
        return None
    entry = RevenueEntry(source_ref=ref, plugin_id=plugin.id, partner_id=plugin.partner_id, org_id=org_id, kind=kind,
                         period=period_of(when), amount_minor=amount, currency="usd",
                         share_bps=share_bps(version.manifest), quantity=quantity)
    repo.add(entry)
    return entry


def accrue_install(session: Session, inst: PluginInstall, plugin: Plugin, version: PluginVersion,
                   when: dt.datetime | None = None) -> RevenueEntry | None:
    """Charge a monthly plugin's subscription for ``when``'s month (once per plugin, org and month)."""
    pricing = version.manifest.get("pricing", {})
    if pricing.get("model") != "monthly" or inst.status != "active":
        return None
    when = when or utcnow()
    return _accrue(session, ref=f"sub:{plugin.id}:{inst.org_id}:{period_of(when)}", plugin=plugin,
                   org_id=inst.org_id, kind="subscription", amount=int(pricing["monthly_minor"]), quantity=1,
                   version=version, when=when)


def accrue_runs(session: Session, ev: Any, installs: list[tuple[PluginInstall, Plugin, PluginVersion]]) -> int:
    """Record per-run usage of the plugins a completed job used.

    A job uses a plugin when the event names it (``plugins``) or when its pipeline has an ``http``
    step calling one of the plugin's actions, by name or by URL (the jobs runtime's step, signed to
    the partner: :mod:`tools.partner_api.actions`).
    """
    from tools.partner_api.actions import endpoint_matches

    repo = PartnerRepository(session)
    named = ev.payload.get("plugins")
    step_urls: list[str] = []
    if not isinstance(named, list):
        named = []
        pid = ev.payload.get("pipeline_id")
        if isinstance(pid, int):
            http_steps = [st for st in repo.pipeline_steps(pid) if st.get("kind") == "http"]
            named = [st["plugin"] for st in http_steps if st.get("plugin")]
            step_urls = [str(st["url"]) for st in http_steps if st.get("url")]
    n = 0
    for inst, plugin, version in installs:
        pricing = version.manifest.get("pricing", {})
        if pricing.get("model") != "per_run":
            continue
        actions = [a["url"] for a in (version.manifest.get("endpoints") or {}).get("actions", [])]
        if plugin.slug not in named and not any(endpoint_matches(u, a) for u in step_urls for a in actions):
            continue
        credits = int(pricing["credits_per_run"])
        if _accrue(session, ref=f"run:{ev.uid}:{inst.id}", plugin=plugin, org_id=inst.org_id, kind="per_run",
                   amount=credits * CREDIT_MINOR, quantity=1, version=version, when=ev.created_at):
            n += 1
    return n


class PeriodIn(BaseModel):
    period: str = Field(pattern=_PERIOD, description="Month, YYYY-MM")


class AccrueResult(BaseModel):
    created: int


@tool("payouts.accrue_subscriptions", risk="financial")
def accrue_subscriptions(ctx: ToolContext, params: PeriodIn) -> AccrueResult:
    """Charge every active monthly-plugin install for a month (idempotent; Levqor staff)."""
    require_staff(ctx, "accrue subscriptions")
    repo = PartnerRepository(ctx.session)
    year, month = map(int, params.period.split("-"))
    when = dt.datetime(year, month, 1, tzinfo=dt.UTC)
    n = 0
    for inst in repo.active_installs():
        plugin, version = repo.plugin(inst.plugin_id), repo.version(inst.version_id)
        if plugin and version and plugin.state == "listed" and accrue_install(ctx.session, inst, plugin, version, when):
            n += 1
    audit_log.record(ctx, "payouts.subscriptions_accrued", f"period:{params.period}", detail={"created": n})
    return AccrueResult(created=n)


# ---- Stripe --------------------------------------------------------------------------------------

class StripeUnavailable(AppError):
    """Stripe is not configured on this deployment (a state, not a server fault)."""

    status_code = 409
    title = "Payments not configured"
    type_slug = "payments-not-configured"


def stripe_client() -> Any:
    """The official Stripe SDK client (``LEVQOR_STRIPE_API_BASE`` points it at a test server)."""
    import stripe

    from levqor.settings import get_settings

    s = get_settings()
    if not s.stripe_api_key:
        raise StripeUnavailable("Stripe is not configured (LEVQOR_STRIPE_API_KEY)", field="stripe")
    kwargs: dict[str, Any] = {"max_network_retries": 2}
    if s.stripe_api_base:
        kwargs["base_addresses"] = {"api": s.stripe_api_base.rstrip("/")}
    return stripe.StripeClient(s.stripe_api_key, **kwargs)


class OnboardingLink(BaseModel):
    account_id: str
    url: str
    expires_at: int


@tool("partners.stripe_onboard", risk="financial")
def stripe_onboard(ctx: ToolContext, params: NoInput) -> OnboardingLink:
    """Create the partner's Stripe Express account if needed and return an onboarding link."""
    import stripe

    partner = own_partner(ctx)
    client = stripe_client()
    try:
        return _onboard(ctx, partner, client)
    except stripe.StripeError as exc:
        raise StripeFailed(f"Stripe refused the request: {exc.user_message or exc}", field="stripe") from None


class StripeFailed(AppError):
    status_code = 502
    title = "Payment provider error"
    type_slug = "payment-provider-error"


def _onboard(ctx: ToolContext, partner: Partner, client: Any) -> OnboardingLink:
    from levqor.settings import get_settings

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


# ---- payout runs ---------------------------------------------------------------------------------

class PayoutRead(BaseModel):
    id: int
    partner_id: int
    period: str
    currency: str
    gross_minor: int
    platform_fee_minor: int
    amount_minor: int
    status: str
    stripe_transfer_id: str | None
    error: str | None
    created_at: dt.datetime

    @classmethod
    def of(cls, p: Payout) -> PayoutRead:
        return cls(id=p.id, partner_id=p.partner_id, period=p.period, currency=p.currency, gross_minor=p.gross_minor,
                   platform_fee_minor=p.platform_fee_minor, amount_minor=p.amount_minor, status=p.status,
                   stripe_transfer_id=p.stripe_transfer_id, error=p.error, created_at=p.created_at)


class HeldShare(BaseModel):
    partner_id: int
    amount_minor: int
    reason: Literal["partner_suspended", "below_minimum", "no_stripe_account"]


class PrepareResult(BaseModel):
    period: str
    payouts: list[PayoutRead]
    held: list[HeldShare]


@tool("payouts.prepare", risk="financial")
def prepare_payouts(ctx: ToolContext, params: PeriodIn) -> PrepareResult:
    """Compute each partner's share of unpaid revenue up to a month and create its payout (Levqor staff)."""
    from levqor.settings import get_settings

    require_staff(ctx, "run payouts")
    minimum = get_settings().payout_minimum_minor
    repo = PartnerRepository(ctx.session)
    created: list[PayoutRead] = []
    held: list[HeldShare] = []
    for partner in repo.partners():
        entries = repo.unpaid_revenue(partner.id, params.period)
        if not entries:
            continue
        gross = sum(e.amount_minor for e in entries)
        share = sum(partner_share(e.amount_minor, e.share_bps) for e in entries)
        if partner.status != "active":
            held.append(HeldShare(partner_id=partner.id, amount_minor=share, reason="partner_suspended"))
            continue
        if share < minimum:
            held.append(HeldShare(partner_id=partner.id, amount_minor=share, reason="below_minimum"))
            continue
        if repo.payout_for(partner.id, params.period, "usd") is not None:
            continue  # this period is paid; newer revenue rolls into the next run
        if not partner.stripe_account_id:
            held.append(HeldShare(partner_id=partner.id, amount_minor=share, reason="no_stripe_account"))
        payout = Payout(partner_id=partner.id, period=params.period, currency="usd", gross_minor=gross,
                        platform_fee_minor=gross - share, amount_minor=share, status="pending",
                        idempotency_key=f"pending-{partner.id}-{params.period}")
        repo.add(payout)
        payout.idempotency_key = f"levqor-payout-{payout.id}"
        repo.attach_revenue([e.id for e in entries], payout.id)
        ctx.session.flush()
        created.append(PayoutRead.of(payout))
    audit_log.record(ctx, "payouts.prepared", f"period:{params.period}",
                     detail={"payouts": [p.id for p in created], "held": [h.model_dump() for h in held]})
    return PrepareResult(period=params.period, payouts=created, held=held)


def _record_transfer(payout_id: int, transfer: Any) -> None:
    """Store a Stripe transfer on its payout (separate so tests can crash right before it)."""
    with session_scope() as s:
        p = s.get(Payout, payout_id)
        assert p is not None
        p.stripe_transfer_id, p.status, p.error, p.updated_at = transfer["id"], "transferred", None, utcnow()
    metrics.PAYOUTS.labels(outcome="transferred").inc()
    metrics.PAYOUT_AMOUNT.labels(currency=str(transfer["currency"])).inc(int(transfer["amount"]))


def transfer_pending(client: Any | None = None) -> list[int]:
    """Send every pending (or interrupted) payout to Stripe once; return the payout ids transferred.

    Each payout is marked ``transferring`` and committed before the call, and the call carries
    the payout's idempotency key, so a run after a crash re-sends the same request and Stripe
    answers with the transfer it already made.
    """
    import stripe

    done: list[int] = []
    with session_scope() as s:
        todo = [p.id for p in PartnerRepository(s).payouts(statuses=("pending", "transferring"))]
    for payout_id in todo:
        with session_scope() as s:
            repo = PartnerRepository(s)
            p = repo.payout(payout_id)
            partner = repo.partner(p.partner_id) if p else None
            if p is None or partner is None or p.status not in ("pending", "transferring"):
                continue
            if partner.status != "active" or not partner.stripe_account_id:
                continue  # held until reinstated or onboarded
            p.status, p.updated_at = "transferring", utcnow()
            req = {"amount": p.amount_minor, "currency": p.currency, "destination": partner.stripe_account_id,
                   "transfer_group": f"levqor-{p.period}",
                   "description": f"Levqor plugin revenue share {p.period}",
                   "metadata": {"levqor_payout_id": str(p.id), "partner_id": str(partner.id), "period": p.period}}
            key = p.idempotency_key
        client = client or stripe_client()
        try:
            transfer = client.v1.transfers.create(params=req, options={"idempotency_key": key})
        except (stripe.InvalidRequestError, stripe.PermissionError, stripe.CardError) as exc:
            with session_scope() as s:
                p = s.get(Payout, payout_id)
                if p is not None:
                    p.status, p.error, p.updated_at = "failed", str(exc.user_message or exc)[:1000], utcnow()
            metrics.PAYOUTS.labels(outcome="failed").inc()
            log.error("payout failed", extra={"fields": {"payout": payout_id, "error": str(exc)}})
            continue
        except stripe.StripeError as exc:  # network or server trouble: stays transferring, retried
            log.warning("payout transfer interrupted", extra={"fields": {"payout": payout_id, "error": str(exc)}})
            continue
        _record_transfer(payout_id, transfer)
        done.append(payout_id)
    return done


def run_payouts(period: str) -> tuple[PrepareResult, list[int]]:
    """Prepare the period's payouts (committed) then transfer them: the CLI and scheduled entry point."""
    from tools.context import SYSTEM
    from tools.registry import registry

    with session_scope() as s:
        prepared = registry.invoke("payouts.prepare", ToolContext(s, SYSTEM), {"period": period})
    return prepared, transfer_pending()  # type: ignore[return-value]


def monthly() -> None:
    """Scheduled on the 1st: charge subscriptions for the new month, then pay the previous month's shares."""
    from tools.context import SYSTEM

    now = utcnow()
    with session_scope() as s:
        accrue_subscriptions(ToolContext(s, SYSTEM), PeriodIn(period=period_of(now)))
    if get_settings().stripe_api_key:
        last = now.replace(day=1) - dt.timedelta(days=1)
        run_payouts(period_of(last))


SCHEDULES = (Schedule("partners.payouts", "cron:0 6 1 * *", monthly),)


class PayoutQuery(BaseModel):
    status: str | None = Field(None, max_length=16)


class PayoutList(BaseModel):
    items: list[PayoutRead]


@tool("payouts.list", risk="read")
def list_payouts(ctx: ToolContext, params: PayoutQuery) -> PayoutList:
    """List payouts: the partner's own, or every partner's for Levqor staff."""
    repo = PartnerRepository(ctx.session)
    statuses = [params.status] if params.status else None
    if is_staff(ctx):
        rows = repo.payouts(statuses=statuses)
    else:
        partner = repo.partner_for_org(ctx.org_id)
        rows = repo.payouts(partner_id=partner.id, statuses=statuses) if partner else []
    return PayoutList(items=[PayoutRead.of(p) for p in rows])


# ---- statements ----------------------------------------------------------------------------------

class StatementLine(BaseModel):
    period: str
    plugin: str
    kind: str
    quantity: int
    gross_minor: int
    platform_fee_minor: int
    partner_share_minor: int
    payout_id: int | None
    payout_status: str


class Statement(BaseModel):
    partner_id: int
    partner: str
    period: str | None
    currency: str
    lines: list[StatementLine]
    gross_minor: int
    platform_fee_minor: int
    partner_share_minor: int
    paid_minor: int


class StatementQuery(BaseModel):
    period: str | None = Field(None, pattern=_PERIOD)


@tool("payouts.statement", risk="read")
def statement(ctx: ToolContext, params: StatementQuery) -> Statement:
    """The partner's revenue statement: per plugin and kind, gross, platform fee, share and payout."""
    partner = own_partner(ctx)
    return build_statement(ctx.session, partner, params.period)


def build_statement(session: Session, partner: Partner, period: str | None) -> Statement:
    repo = PartnerRepository(session)
    plugins = {p.id: p.slug for p in repo.plugins(partner_id=partner.id)}
    payouts = {p.id: p for p in repo.payouts(partner_id=partner.id)}
    groups: dict[tuple[str, str, str, int | None], list[RevenueEntry]] = {}
    for e in repo.revenue(partner_id=partner.id, period=period):
        groups.setdefault((e.period, plugins.get(e.plugin_id, str(e.plugin_id)), e.kind, e.payout_id), []).append(e)
    lines = []
    for (per, slug, kind, payout_id), rows in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        gross = sum(r.amount_minor for r in rows)
        share = sum(partner_share(r.amount_minor, r.share_bps) for r in rows)
        status = payouts[payout_id].status if payout_id in payouts else "unpaid"
        lines.append(StatementLine(period=per, plugin=slug, kind=kind, quantity=sum(r.quantity for r in rows),
                                   gross_minor=gross, platform_fee_minor=gross - share, partner_share_minor=share,
                                   payout_id=payout_id, payout_status=status))
    paid = sum(p.amount_minor for p in payouts.values() if p.status in ("transferred", "paid")
               and (period is None or p.period == period))
    return Statement(partner_id=partner.id, partner=partner.display_name, period=period, currency="usd", lines=lines,
                     gross_minor=sum(ln.gross_minor for ln in lines),
                     platform_fee_minor=sum(ln.platform_fee_minor for ln in lines),
                     partner_share_minor=sum(ln.partner_share_minor for ln in lines), paid_minor=paid)


def statement_csv(st: Statement) -> str:
    """The statement as CSV (amounts in minor units)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["period", "plugin", "kind", "quantity", "gross_minor", "platform_fee_minor", "partner_share_minor",
                "currency", "payout_id", "payout_status"])
    for ln in st.lines:
        w.writerow([ln.period, ln.plugin, ln.kind, ln.quantity, ln.gross_minor, ln.platform_fee_minor,
                    ln.partner_share_minor, st.currency, ln.payout_id or "", ln.payout_status])
    w.writerow(["total", "", "", "", st.gross_minor, st.platform_fee_minor, st.partner_share_minor, st.currency, "",
                ""])
    return buf.getvalue()


# ---- Stripe webhooks -----------------------------------------------------------------------------

class StripeWebhookResult(BaseModel):
    id: str
    type: str
    applied: bool


def handle_stripe_webhook(session: Session, payload: bytes, signature: str | None) -> StripeWebhookResult:
    """Verify a Stripe webhook with the SDK (signature and 300 s tolerance), then apply it once."""
    import stripe

    from levqor.settings import get_settings

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
    ev = event.to_dict()
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
            from memory.partner.models import PartnerEmail

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

