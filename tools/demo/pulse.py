"""Pulse demo history for ``make run``: ~90 days of KPI snapshots and costs, a planner run and a Pulse PDF."""

from __future__ import annotations

import datetime as dt
import random

from memory.db import utcnow
from memory.pulse.repository import PulseRepository
from tools.context import ToolContext
from tools.decision_engine.planner import run_planner
from tools.demo.billing import seed_billing
from tools.pulse.costs import CostIn, Source, add_entry
from tools.pulse.kpis import providers
from tools.pulse.measure import DEMO_SOURCE
from tools.pulse.report import generate

DAYS = 90
DEMO_LEDGER_NOTE = "demo data: seeded payments applied through the Stripe webhook handler into the revenue ledger"


def demo_series(today: dt.date, days: int = DAYS, seed: int = 42) -> dict[dt.date, dict[str, float]]:
    """Plausible daily KPIs for a small, growing platform (deterministic for a given ``today``)."""
    rng = random.Random(seed)
    out: dict[dt.date, dict[str, float]] = {}
    month_start = today.replace(day=1)
    for i in range(days, 0, -1):
        day = today - dt.timedelta(days=i)
        t = (days - i) / days  # 0 -> 1 over the window
        weekday = 0.8 if day.weekday() >= 5 else 1.0
        price = 5.0 if i > 45 else 6.0  # credit pack price per credit (cents) went up 45 days ago
        demand = (2300 + 900 * t) * weekday * (price / 5.0) ** -0.8 * rng.lognormvariate(0, 0.05)
        credits_sold = round(demand)
        revenue = round(credits_sold * price)
        partner_share = 0.15 + 0.035 * t + rng.gauss(0, 0.006)
        partner_revenue = round(revenue * partner_share)
        jobs = round((1700 + 800 * t) * weekday * rng.lognormvariate(0, 0.06))
        rng.gauss(0.33, 0.3)  # keeps the generator's sequence (and so every other series) as it was
        uptime = 100.0
        if rng.random() < 0.05:
            uptime = round(100 - rng.uniform(0.005, 0.03), 4)
        if day >= month_start:  # this month: two incidents eat most of the error budget
            uptime = {12: 99.55, 20: 99.95}.get(day.day, 100.0)
        anomalies = rng.choice([0, 0, 1, 1, 2, 3])
        out[day] = {
            "active_orgs": round(38 + 20 * t + rng.gauss(0, 0.8)),
            "jobs_run": jobs,
            "job_success_rate": round(min(99.9, 98.2 + 1.0 * t + rng.gauss(0, 0.35)), 2),
            "credits_sold": credits_sold,
            "credits_spent": round(credits_sold * rng.uniform(0.82, 0.95)),
            "revenue": revenue,
            "partner_revenue": partner_revenue,
            "partner_revenue_share": round(100.0 * partner_revenue / revenue, 2),
            "plugin_installs": round((18 + 22 * t) * weekday * rng.lognormvariate(0, 0.15)),
            "anomalies_detected": anomalies,
            "self_heals": min(anomalies, rng.choice([0, 1, 1, 2])),
            "manual_incidents": 1 if i == 70 else 0,
            "uptime": uptime,
        }
    return out


def seed_pulse(ctx: ToolContext) -> None:
    """Write the demo history, run the planner, decide two suggestions and archive last month's PDF."""
    repo = PulseRepository(ctx.session)
    today = utcnow().date()
    rng = random.Random(7)
    now = utcnow()
    series = demo_series(today)
    # Revenue is not written here: the day's payments go through the Stripe webhook handler into the
    # revenue ledger (labelled demo), and the snapshot reads the ledger like any other day's.
    seed_billing(ctx, {day: int(v["revenue"]) for day, v in series.items()})
    revenue_of = providers()["revenue"]
    for day, values in series.items():
        revenue = float(revenue_of(ctx, day).value or 0.0)
        share = values["partner_revenue"] / values["revenue"] if values["revenue"] else 0.0
        values = {**values, "revenue": revenue, "partner_revenue": round(revenue * share),
                  "partner_revenue_share": round(100.0 * share, 2)}
        t = 1 - (today - day).days / DAYS
        costs: dict[Source, int] = {"infrastructure": 250, "payment_fees": round(revenue * 0.029 + 30),
                                    "llm": round((150 + 120 * t) * rng.lognormvariate(0, 0.12))}
        for source, cents in costs.items():
            add_entry(ctx, CostIn(day=day, source=source, amount_cents=cents,
                                  description={"infrastructure": "Hetzner + backups (daily share of monthly bill)",
                                               "payment_fees": "Stripe fees",
                                               "llm": "LLM tokens (agent runs)"}[source],
                                  ref=f"seed:{day.isoformat()}:{source}"))
        values = {**values, "spend": float(sum(costs.values())), "ai_suggestions_made": 0.0,
                  "ai_suggestions_accepted": 0.0}
        certified = providers()["certified_users"](ctx, day)  # real certificates (tools/demo/certification)
        repo.upsert_snapshot(org_id=ctx.org_id, day=day, kpi="certified_users", value=certified.value,
                             available=certified.available, reason=certified.reason, source=certified.source,
                             now=now)
        for kpi, v in values.items():
            from_ledger = kpi == "revenue"
            repo.upsert_snapshot(org_id=ctx.org_id, day=day, kpi=kpi, value=float(v), available=True,
                                 reason=DEMO_LEDGER_NOTE if from_ledger else None,
                                 source=DEMO_SOURCE, now=now)
        repo.upsert_snapshot(org_id=ctx.org_id, day=day, kpi="suggestion_acceptance_rate", value=None,
                             available=False, reason="no suggestion had been decided yet", source=DEMO_SOURCE,
                             now=now)
    run = run_planner(ctx, trigger="seed")
    for s, decision in zip(run.suggestions[:2], ("accepted", "rejected"), strict=False):
        row = repo.suggestion(ctx.org_id, s.id)
        if row is not None:
            row.status, row.decided_at, row.decided_by = decision, utcnow(), "user:demo-admin"
            row.note = "seeded decision"
    decided = run.suggestions[:2]
    made: dict[str, float | None] = {
        "ai_suggestions_made": float(len(run.suggestions)), "ai_suggestions_accepted": 1.0 if decided else 0.0,
        "suggestion_acceptance_rate": 100.0 / len(decided) if decided else None}
    for kpi, figure in made.items():  # today's figures are the planner run above, not the generated history
        repo.upsert_snapshot(org_id=ctx.org_id, day=today, kpi=kpi, value=figure, available=figure is not None,
                             reason=None if figure is not None else "no suggestion had been decided yet",
                             source="pulse_suggestions", now=now)
    last_month = (today.replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")
    generate(ctx, last_month)
    generate(ctx, today.strftime("%Y-%m"))  # month to date, with this month's planner suggestions
