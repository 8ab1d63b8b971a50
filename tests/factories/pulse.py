"""An organisation with the demo's ~90 days of KPI history and costs."""

from __future__ import annotations

from memory.db import session_scope, utcnow
from memory.pulse.repository import PulseRepository
from tests.factories.orgs import OrgFixture, make_org, org_ctx
from tools.demo.pulse import demo_series
from tools.pulse.costs import CostIn, Source, add_entry
from tools.pulse.report import generate


def seeded_org(*, report: bool = False) -> OrgFixture:
    """A fresh organisation with ~90 days of demo KPI history and costs (no planner run, no PDF unless asked)."""
    org = make_org()
    today = utcnow().date()
    with session_scope() as s:
        ctx = org_ctx(s, org.org_id)
        repo = PulseRepository(s)
        certified = 41.0  # a test history of certified users (the demo seed counts real certificates instead)
        for day, values in demo_series(today).items():
            certified += 0.33
            values = {**values, "certified_users": float(int(certified))}
            costs: dict[Source, int] = {"infrastructure": 250, "payment_fees": round(values["revenue"] * 0.029 + 30),
                                        "llm": 260}
            for source, cents in costs.items():
                add_entry(ctx, CostIn(day=day, source=source, amount_cents=cents, ref=f"t:{day}:{source}"))
            for kpi, v in {**values, "spend": float(sum(costs.values()))}.items():
                repo.upsert_snapshot(org_id=org.org_id, day=day, kpi=kpi, value=float(v), available=True,
                                     reason=None, source="test", now=utcnow())
        if report:
            generate(ctx, today.strftime("%Y-%m"))
    return org
