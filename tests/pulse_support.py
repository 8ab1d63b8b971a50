"""Helpers for the Pulse tests: an organisation with the demo history."""

from __future__ import annotations

from typing import Any

from tests.conftest import OrgFixture, make_org


def ctx_for(session: Any, org_id: int) -> Any:
    from tools.context import Principal, ToolContext

    return ToolContext(session=session, principal=Principal(kind="system", id="test", org_id=org_id, role="admin"))


def seeded_org(*, report: bool = False) -> OrgFixture:
    """A fresh organisation with ~90 days of demo KPI history and costs (no planner run, no PDF unless asked)."""
    from memory.db import session_scope, utcnow
    from memory.pulse.repository import PulseRepository
    from tools.demo.pulse import demo_series
    from tools.pulse.costs import CostIn, Source, add_entry

    org = make_org()
    today = utcnow().date()
    with session_scope() as s:
        ctx = ctx_for(s, org.org_id)
        repo = PulseRepository(s)
        for day, values in demo_series(today).items():
            costs: dict[Source, int] = {"infrastructure": 250, "payment_fees": round(values["revenue"] * 0.029 + 30),
                                        "llm": 260}
            for source, cents in costs.items():
                add_entry(ctx, CostIn(day=day, source=source, amount_cents=cents, ref=f"t:{day}:{source}"))
            for kpi, v in {**values, "spend": float(sum(costs.values()))}.items():
                repo.upsert_snapshot(org_id=org.org_id, day=day, kpi=kpi, value=float(v), available=True,
                                     reason=None, source="test", now=utcnow())
        if report:
            from tools.pulse.report import generate

            generate(ctx, today.strftime("%Y-%m"))
    return org
