"""Demo data for ``make run``: three realistic pipelines, credits, and a trickle of jobs (some failing).

Nothing here needs the internet: the steps are transforms, delays and an email notification
through the outbox. Failures are deterministic: every 7th order is over the review limit (fails
at once), every 5th stock sync finds the warehouse "down" (transient: retried, then dead).

So that a fresh ``make run`` shows the ops loop at work, the warehouse also has an *outage*: for
``OUTAGE_S`` seconds, starting ``OUTAGE_START_S`` into every ``OUTAGE_CYCLE_S`` since the demo was
seeded, every stock sync fails. The monitor sees the pipeline's failure rate pass its limit and opens
an incident; the healer, finding nothing transient to retry, pauses the pipeline and verifies it. The
demo then plays the warehouse team: once the outage and the failure-rate window are over it resumes
the pipeline (``queues.resume`` as ``system:demo``, audited). While the sync is paused the trickle
submits orders only.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from levqor.settings import get_settings
from memory.db import session_scope, utcnow
from memory.identity.models import Organization
from memory.jobs.repository import CreditRepository, JobRepository, PipelineRepository
from tools.context import Principal, ToolContext
from tools.jobs.credits import CreditGrant, grant_credits
from tools.jobs.pipelines import PipelineCreate, create_pipeline
from tools.jobs.queue import QueueSwitch, resume, submit_job
from tools.schedules import Schedule

log = logging.getLogger(__name__)
DEMO_FLAG = "demo_trickle"
ORDERS = "Order enrichment"
STOCK = "Warehouse stock sync"
EXPORT = "Nightly CRM export"

PIPELINES: list[dict[str, Any]] = [
    {
        "name": ORDERS,
        "description": "Normalise incoming shop orders, screen large ones, tell the ops mailbox.",
        "trigger": {"type": "manual"},
        "max_attempts": 3,
        "steps": [
            {"kind": "transform", "name": "normalise order", "template": {
                "order_id": "{{ input.order_id }}", "customer": "{{ input.customer }}",
                "total_cents": "{{ sum(input.items[*].price_cents) }}", "lines": "{{ length(input.items) }}"}},
            {"kind": "transform", "name": "review limit", "check": "prev.total_cents < `90000`",
             "message": "order total is over the manual-review limit (900.00)"},
            {"kind": "delay", "name": "settle", "seconds": 0.5},
            {"kind": "notify", "name": "tell ops", "channel": "email", "to": "ops@demo.levqor.ai",
             "subject": "Order {{ prev.order_id }} enriched", "body": "{{ prev }}"},
        ],
    },
    {
        "name": STOCK,
        "description": "Webhook from the warehouse: check it is reachable, keep the SKU counts.",
        "trigger": {"type": "webhook"},
        "max_attempts": 3,
        "retry_backoff_s": 2.0,
        "steps": [
            {"kind": "transform", "name": "warehouse reachable", "check": "input.warehouse_online",
             "message": "warehouse API unavailable (503)", "retryable": True},
            {"kind": "transform", "name": "stock levels", "expression": "input.skus[*].{sku: sku, qty: qty}"},
        ],
    },
    {
        "name": EXPORT,
        "description": "Every five minutes: export changed contacts to the CRM.",
        "trigger": {"type": "schedule", "cron": "*/5 * * * *"},
        "steps": [
            {"kind": "transform", "name": "batch", "template": {"exported_at": "{{ input.scheduled_for }}",
                                                             "source": "levqor"}},
            {"kind": "delay", "name": "upload", "seconds": 1},
        ],
    },
]


def seed_jobs_demo(ctx: ToolContext) -> None:
    """Create the demo pipelines, grant credits and switch on the job trickle."""
    for spec in PIPELINES:
        create_pipeline(ctx, PipelineCreate.model_validate(spec))
    grant_credits(ctx, CreditGrant(amount=5000, note="demo starting balance"))
    org = ctx.session.get(Organization, ctx.org_id)
    assert org is not None
    org.settings = {**dict(org.settings or {}), DEMO_FLAG: True}
    ctx.session.flush()


OUTAGE_CYCLE_S = 900.0
OUTAGE_START_S = 120.0
OUTAGE_S = 180.0


def outage_phase(seconds_since_seed: float) -> str:
    """``outage`` during the warehouse outage, ``recovering`` until the failure-rate window has passed
    after it (the sync stays paused), else ``normal``."""
    t = seconds_since_seed % OUTAGE_CYCLE_S
    if OUTAGE_START_S <= t < OUTAGE_START_S + OUTAGE_S:
        return "outage"
    if OUTAGE_START_S + OUTAGE_S <= t < OUTAGE_START_S + OUTAGE_S + get_settings().ops_window_s:
        return "recovering"
    return "normal"


def _order(n: int) -> dict[str, Any]:
    big = n % 7 == 0
    items = [{"sku": f"SKU-{100 + (n * 3 + i) % 40}", "price_cents": (90_000 if big else 1_250 + 310 * i)}
             for i in range(1 + n % 3)]
    return {"order_id": f"ORD-{10_000 + n}", "customer": f"cust-{n % 23:03d}", "items": items}


def _stock(n: int, outage: bool = False) -> dict[str, Any]:
    return {"warehouse_online": not outage and n % 5 != 0,
            "skus": [{"sku": f"SKU-{100 + (n + i) % 40}", "qty": (n * 7 + i * 13) % 90} for i in range(3)]}


def trickle() -> None:
    """Submit one demo job (orders and stock syncs alternate); top the demo credits up when low."""
    with session_scope() as s:
        org = s.scalar(select(Organization).where(Organization.slug == "demo"))
        if org is None or not (org.settings or {}).get(DEMO_FLAG):
            return
        pipes = PipelineRepository(s)
        ctx = ToolContext(s, Principal(kind="system", id="demo", org_id=org.id, role="admin", name="demo"))
        phase = outage_phase((utcnow() - org.created_at).total_seconds())
        stock = pipes.by_name(org.id, STOCK)
        if stock is not None and stock.paused and phase == "normal":
            # The warehouse team has fixed it: resume the sync the healer paused.
            resume(ctx, QueueSwitch(pipeline_id=stock.id))
        n = JobRepository(s).count(org.id)
        name = ORDERS if n % 2 == 0 or stock is None or stock.paused else STOCK
        p = pipes.by_name(org.id, name)
        if p is None or p.paused:
            return
        if CreditRepository(s).balance(org.id) < 100:
            grant_credits(ctx, CreditGrant(amount=1000, note="demo top-up"))
        data = _order(n // 2) if name == ORDERS else _stock(n // 2, outage=phase == "outage")
        submit_job(s, org_id=org.id, pipeline=p, input=data, trigger="manual" if name == ORDERS else "webhook",
                   actor="system:demo", idempotency_key=f"demo:{n}")


SCHEDULES = (Schedule("jobs.demo_trickle", 4.0, trickle),)
