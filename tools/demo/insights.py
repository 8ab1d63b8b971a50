"""Insights demo for ``make run``: 34 clearly labelled demo organisations (created through the normal
org, profile and pipeline tools) with 90 days of daily activity, then a published snapshot and the first
Insights Report, so /insights shows real k-anonymous aggregates on a fresh start.

The history is written as the aggregator's own daily rows (``source="demo"``): running ~90,000 jobs
through the queue at seed time would make ``make run`` start in minutes instead of seconds."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from memory.db import utcnow
from memory.identity.repository import IdentityRepository
from memory.insights.repository import InsightsRepository
from tools.context import SYSTEM, Principal, ToolContext
from tools.data_insights.aggregator import ProfileIn, quarter_of, set_profile
from tools.data_insights.report_builder import generate
from tools.identity.service import OrgCreate, create_org
from tools.jobs.pipelines import PipelineCreate, create_pipeline

DAYS = 90
# (industry, size band) of each demo organisation: three industries reach k = 10, two small ones are
# pooled (and pull the smallest published industry into the pool with them).
PROFILES: list[tuple[str, str]] = (
    [("software", b) for b in ("1-10", "11-50", "51-200") * 3 + ("11-50", "51-200")]
    + [("retail", b) for b in ("11-50", "51-200", "1-10") * 3 + ("51-200",)]
    + [("finance", b) for b in ("51-200", "1-10", "11-50") * 3 + ("11-50",)]
    + [("healthcare", "51-200"), ("healthcare", "1-10"), ("media", "11-50")]
)
VOLUME = {"1-10": 40, "11-50": 160, "51-200": 520}
RELIABILITY = {"software": 0.972, "retail": 0.951, "finance": 0.986, "healthcare": 0.965, "media": 0.94}
PIPELINES = [
    {"name": "Lead routing (demo)", "trigger": {"type": "manual"}, "steps": [
        {"kind": "transform", "name": "score", "expression": "input"},
        {"kind": "notify", "name": "tell sales", "channel": "email", "to": "sales@example.com"}]},
    {"name": "Invoice sync (demo)", "trigger": {"type": "manual"}, "steps": [
        {"kind": "transform", "name": "map", "template": {"id": "{{ input.id }}"}},
        {"kind": "delay", "name": "settle", "seconds": 1},
        {"kind": "transform", "name": "check", "check": "prev.id"}]},
]


def seed_insights(ctx: ToolContext) -> None:
    """Create the demo organisations and their history; publish a snapshot and the first report."""
    session = ctx.session
    repo = IdentityRepository(session)
    rng = random.Random(19)
    today = utcnow().date()
    rows: list[dict[str, Any]] = []
    now = utcnow()
    for i, (industry, band) in enumerate(PROFILES, start=1):
        slug = f"demo-insights-{i:02d}"
        if repo.org_by_slug(slug) is not None:
            return
        org_id = create_org(ToolContext(session, SYSTEM),
                            OrgCreate(name=f"Demo organisation {i:02d} (demo data)", slug=slug, plan="pro")).id
        octx = ToolContext(session, Principal(kind="system", id="seed", org_id=org_id, role="admin", name="seed"))
        set_profile(octx, ProfileIn(industry=industry, size_band=band))
        org = repo.org(org_id)
        assert org is not None
        org.settings = {**dict(org.settings or {}), "insights_demo": True}
        for spec in PIPELINES[: 1 + i % 2]:
            create_pipeline(octx, PipelineCreate.model_validate(spec))
        base = VOLUME[band] * rng.uniform(0.7, 1.3)
        ok = RELIABILITY[industry]
        latency = rng.uniform(600, 2400) * (1.3 if industry == "retail" else 1.0)
        for d in range(DAYS, 0, -1):
            day = today - dt.timedelta(days=d)
            growth = 1 + 0.35 * (DAYS - d) / DAYS
            jobs = max(0, round(base * growth * (0.55 if day.weekday() >= 5 else 1.0) * rng.lognormvariate(0, 0.12)))
            succ = min(jobs, round(jobs * min(0.999, ok + rng.gauss(0, 0.008))))
            rows.append(dict(
                org_id=org_id, day=day, jobs=jobs, succeeded=succ, failed=jobs - succ,
                latency_ms_sum=latency * jobs * rng.uniform(0.9, 1.1), latency_n=jobs,
                steps={"transform": succ * 2, "notify": succ // 2, "delay": succ // 2},
                source="demo", updated_at=now))
    InsightsRepository(session).add_org_days(rows)
    generate(ToolContext(session, SYSTEM), quarter_of(today))
