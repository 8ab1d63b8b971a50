"""The demo enterprise organisation for ``make run`` (labelled demo): created through the identity tools,
put on the Enterprise plan by signed Stripe invoices applied through the webhook handler, with a
realistic /readyz probe history (one probe a minute since the first day of the month two months ago),
``api_down`` outage incidents, an announced maintenance window and the SLA credit note its missed month
earned, issued by the same code as the monthly run. Every seeded row is labelled demo."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from typing import Any

from sqlalchemy.orm import Session

from levqor.settings import get_settings
from memory.db import utcnow
from memory.identity.repository import IdentityRepository
from memory.ops.models import Incident
from memory.ops.repository import IncidentRepository
from memory.sla.repository import DEMO_PROBE, SlaRepository
from tools.billing import catalogue
from tools.billing.webhooks import handle_stripe_webhook
from tools.context import SYSTEM, Principal, ToolContext
from tools.demo.billing import DEMO_SECRET
from tools.enterprise import sla
from tools.identity.service import OrgCreate, UserCreate, create_org, create_user

ENTERPRISE_SLUG = "globex-demo"
ENTERPRISE_NAME = "Globex Corporation (demo)"
ENTERPRISE_EMAIL = "admin@globex-demo.levqor.ai"
SEATS = 25


def _month_start(d: dt.date, back: int) -> dt.datetime:
    y, m = d.year, d.month - back
    while m < 1:
        y, m = y - 1, m + 12
    return dt.datetime(y, m, 1, tzinfo=dt.UTC)


def _invoices(org_id: int, months: list[dt.datetime]) -> list[dict[str, Any]]:
    plan = catalogue.plan("enterprise")
    md = {"levqor_org_id": str(org_id), "levqor_demo": "1"}
    amount = plan.price_minor("month", SEATS)
    out = []
    for n, start in enumerate(months):
        end = _month_start((start + dt.timedelta(days=40)).date(), 0)
        t0, t1 = int(start.timestamp()), int(end.timestamp())
        out.append({"id": f"evt_demo_ent{org_id}_{n}", "object": "event", "type": "invoice.paid", "created": t0 + 600,
                    "livemode": False, "data": {"object": {
                        "id": f"in_demo_ent{org_id}_{n}", "object": "invoice", "customer": f"cus_demo_ent{org_id}",
                        "subscription": f"sub_demo_ent{org_id}",
                        "billing_reason": "subscription_create" if n == 0 else "subscription_cycle",
                        "currency": catalogue.CURRENCY, "amount_paid": amount,
                        "parent": {"subscription_details": {"subscription": f"sub_demo_ent{org_id}", "metadata": md}},
                        "lines": {"data": [{"id": f"il_demo_ent{org_id}_{n}", "amount": amount, "quantity": SEATS,
                                            "proration": False, "period": {"start": t0, "end": t1},
                                            "price": {"id": "price_demo_enterprise_month",
                                                      "lookup_key": plan.lookup_key("month"),
                                                      "unit_amount": plan.monthly_minor,
                                                      "currency": catalogue.CURRENCY}}]}}}})
    return out


def _outages(months: list[dt.datetime]) -> list[tuple[dt.datetime, dt.datetime, str]]:
    """(start, end, title) of the seeded outages: a short blip in the first month (met), a 47-minute
    database failover in the second (missed: a credit), and one spanning the turn of the month."""
    first, second, this = months
    return [
        (first + dt.timedelta(days=13, hours=9, minutes=30), first + dt.timedelta(days=13, hours=9, minutes=33),
         "API outage: readiness failed after a bad deploy (rolled back)"),
        (second + dt.timedelta(days=8, hours=14, minutes=2), second + dt.timedelta(days=8, hours=14, minutes=49),
         "API outage: primary database failover"),
        (this - dt.timedelta(minutes=10), this + dt.timedelta(minutes=20),
         "API outage: TLS certificate rotation stalled the load balancer"),
    ]


def seed_enterprise(session: Session) -> dict[str, Any]:
    """Create the demo enterprise organisation and its SLA history when missing (the caller commits)."""
    ids = IdentityRepository(session)
    out: dict[str, Any] = {"enterprise_org": ENTERPRISE_SLUG, "enterprise_email": ENTERPRISE_EMAIL}
    if ids.org_by_slug(ENTERPRISE_SLUG) is not None:
        return out
    create_org(ToolContext(session, SYSTEM), OrgCreate(name=ENTERPRISE_NAME, slug=ENTERPRISE_SLUG, plan="free"))
    org = ids.org_by_slug(ENTERPRISE_SLUG)
    assert org is not None
    ctx = ToolContext(session, Principal(kind="system", id="seed", org_id=org.id, role="admin", name="seed"))
    password = secrets.token_urlsafe(12)
    create_user(ctx, UserCreate(email=ENTERPRISE_EMAIL, name="Globex Admin (demo)", role="admin", password=password))
    out["enterprise_password"] = password
    now = utcnow()
    months = [_month_start(now.date(), 2), _month_start(now.date(), 1), _month_start(now.date(), 0)]

    import stripe  # kept lazy: start-up time

    secret = get_settings().stripe_webhook_secret or DEMO_SECRET
    for ev in _invoices(org.id, months):
        payload = json.dumps(ev)
        handle_stripe_webhook(session, payload.encode(), stripe.WebhookSignature.generate_signature_header(
            payload, secret), secret=secret)

    outages = _outages(months)
    interval = float(get_settings().pulse_probe_interval_s)
    # Announced three days ahead; probes failed during it (the upgrade), excluded from downtime.
    m_start = months[1] + dt.timedelta(days=19, hours=2)
    window = sla.announce(ToolContext(session, SYSTEM), sla.MaintenanceIn(
        starts_at=m_start, ends_at=m_start + dt.timedelta(minutes=45), title="PostgreSQL major version upgrade",
        description="Planned upgrade of the primary database; the API may answer 503 during the window."),
        demo=True, now=m_start - dt.timedelta(days=3))
    failing = [(a, b) for a, b, _ in outages if a < now] + [(window.starts_at, window.starts_at
                                                             + dt.timedelta(minutes=12))]
    repo = SlaRepository(session)
    batch: list[dict[str, object]] = []
    t = months[0]
    step = dt.timedelta(seconds=interval)
    while t < now - step:
        down = any(a <= t < b for a, b in failing)
        batch.append({"ts": t, "ok": not down, "status_code": 503 if down else 200,
                      "latency_ms": 900.0 if down else 12.0 + (t.minute % 7), "detail": DEMO_PROBE})
        if len(batch) >= 5000:
            repo.add_probes(batch)
            batch = []
        t += step
    repo.add_probes(batch)
    ops = IncidentRepository(session)
    for start, end, title in outages:
        if start >= now:
            continue
        resolved = min(end, now)
        ops.add(Incident(org_id=None, cause=f"api:demo:{int(start.timestamp())}", fingerprint="rule:api_down",
                         kind="rule", diagnosis="api_down", title=title, severity="critical", state="resolved",
                         subject={"demo": True}, summary="demo: seeded outage for the SLA report",
                         detected_at=start, opened_at=start + dt.timedelta(seconds=2 * interval),
                         last_seen_at=resolved - step, resolved_at=resolved, resolved_by="demo seed"))
    # The finished months' credits, by the monthly run's own code (the missed one gets its note).
    platform = ToolContext(session, Principal(kind="system", id="sla", org_id=None, role="admin", name="seed"))
    for start in months[:2]:
        sla.issue_credit(platform, org, start.strftime("%Y-%m"), demo=True)
    return out
