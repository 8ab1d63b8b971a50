"""Insights demo for ``make run``: 34 clearly labelled demo organisations (created through the normal
org, profile, pipeline and credit tools) with a history of real jobs from the first day of the previous
quarter to yesterday, so /insights shows real k-anonymous aggregates on a fresh start.

The history is replayed: each job is submitted (credits charged), claimed and run by the normal queue
and runner, its pipeline's check deciding whether it succeeds, and only then are its timestamps (and its
steps') moved to the past day it stands for. The insights rollup then folds those jobs like any others:
no aggregate is invented. Afterwards (a second seeder, once the demo partners' plugins are listed) the
demo organisations install free demo plugins through ``plugins.install`` and the first Insights Report is
built, so the archive and the "first Insights Report" announcement point at a real report."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update

from memory.community.repository import CommunityRepository
from memory.db import utcnow
from memory.identity.models import Organization
from memory.identity.repository import IdentityRepository
from memory.jobs.models import Job, JobStep, Pipeline
from memory.jobs.repository import JobRepository
from tools.context import SYSTEM, Principal, ToolContext
from tools.data_insights.aggregator import ProfileIn, previous_quarter, quarter_bounds, quarter_of, set_profile
from tools.data_insights.report_builder import generate
from tools.identity.service import OrgCreate, create_org
from tools.jobs.credits import CreditGrant, grant_credits, run_cost
from tools.jobs.leases import claim_batch
from tools.jobs.pipelines import PipelineCreate, create_pipeline
from tools.jobs.queue import submit_job
from tools.jobs.runner import RunControl, record_runs, run_steps
from tools.partner_api.installs import InstallCreate, install_plugin

DEMO_FLAG = "insights_demo"
SLUG = "demo-insights-{:02d}"
# (industry, size band) of each demo organisation: three industries reach k = 10, two small ones are
# pooled (and pull the smallest published industry into the pool with them).
PROFILES: list[tuple[str, str]] = (
    [("software", b) for b in ("1-10", "11-50", "51-200") * 3 + ("11-50", "51-200")]
    + [("retail", b) for b in ("11-50", "51-200", "1-10") * 3 + ("51-200",)]
    + [("finance", b) for b in ("51-200", "1-10", "11-50") * 3 + ("11-50",)]
    + [("healthcare", "51-200"), ("healthcare", "1-10"), ("media", "11-50")]
)
# Jobs a demo organisation runs on a working day (a quarter of a day's worth at weekends).
VOLUME = {"1-10": 0.4, "11-50": 0.7, "51-200": 1.1}
# Share of records that pass the pipeline's check (the rest fail it: real failed jobs).
RELIABILITY = {"software": 0.972, "retail": 0.951, "finance": 0.986, "healthcare": 0.965, "media": 0.94}
# Free demo plugins (tools/demo/community.py) and the share of demo organisations installing each.
FREE_PLUGINS = (("northwind.slack-alerts", 0.45), ("dataforge.csv-cleaner", 0.35))
LIMIT = 10_000
_JOBS, _STEPS = cast(Table, Job.__table__), cast(Table, JobStep.__table__)
HISTORY = "Record check (demo)"
PIPELINES: list[dict[str, Any]] = [
    {"name": HISTORY, "trigger": {"type": "manual"}, "max_attempts": 1, "steps": [
        {"kind": "transform", "name": "screen", "check": f"input.amount < `{LIMIT}`",
         "message": "amount over the review limit"},
        {"kind": "transform", "name": "map", "template": {"id": "{{ input.id }}", "amount": "{{ input.amount }}"}}]},
    {"name": "Lead routing (demo)", "trigger": {"type": "manual"}, "steps": [
        {"kind": "transform", "name": "score", "expression": "input"},
        {"kind": "notify", "name": "tell sales", "channel": "email", "to": "sales@example.com"}]},
    {"name": "Invoice sync (demo)", "trigger": {"type": "manual"}, "steps": [
        {"kind": "transform", "name": "map", "template": {"id": "{{ input.id }}"}},
        {"kind": "delay", "name": "settle", "seconds": 1},
        {"kind": "transform", "name": "check", "check": "prev.id"}]},
]


def history_start(today: dt.date) -> dt.date:
    """The first day of the quarter before ``today``'s: a full previous quarter beside the current one."""
    return quarter_bounds(previous_quarter(quarter_of(today)))[0]


def seed_insights(ctx: ToolContext, *, start: dt.date | None = None, volume: float = 1.0) -> None:
    """Create the demo organisations and replay their job history (``start`` to yesterday)."""
    session = ctx.session
    repo = IdentityRepository(session)
    if repo.org_by_slug(SLUG.format(1)) is not None:
        return
    rng = random.Random(19)
    today = utcnow().date()
    first = start or history_start(today)
    days = [first + dt.timedelta(days=d) for d in range((today - first).days)]
    orgs: list[tuple[int, Pipeline, float, float]] = []
    for i, (industry, band) in enumerate(PROFILES, start=1):
        org_id = create_org(ToolContext(session, SYSTEM), OrgCreate(
            name=f"Demo organisation {i:02d} (demo data)", slug=SLUG.format(i), plan="pro")).id
        octx = ToolContext(session, Principal(kind="system", id="seed", org_id=org_id, role="admin", name="seed"))
        set_profile(octx, ProfileIn(industry=industry, size_band=band))
        org = repo.org(org_id)
        assert org is not None
        org.settings = {**dict(org.settings or {}), DEMO_FLAG: True}
        for spec in PIPELINES[: 2 + i % 2]:
            create_pipeline(octx, PipelineCreate.model_validate(spec))
        pipe = session.scalar(select(Pipeline).where(Pipeline.org_id == org_id, Pipeline.name == HISTORY))
        assert pipe is not None
        per_day = VOLUME[band] * volume * rng.uniform(0.7, 1.3)
        grant_credits(octx, CreditGrant(amount=max(1, round(per_day * 1.5 * len(days) + 50)) * run_cost("pro"),
                                        note="demo data: credits for the replayed history"))
        orgs.append((org_id, pipe, per_day, RELIABILITY[industry]))
    dated: dict[int, dt.datetime] = {}
    for n, day in enumerate(days):
        growth = 1 + 0.35 * n / max(1, len(days))
        for org_id, pipe, per_day, ok in orgs:
            expect = per_day * growth * (0.25 if day.weekday() >= 5 else 1.0)
            count = int(expect) + (rng.random() < expect - int(expect))
            for _ in range(count):
                amount = rng.randrange(LIMIT) if rng.random() < ok else LIMIT + rng.randrange(LIMIT)
                job, _ = submit_job(session, org_id=org_id, pipeline=pipe, trigger="manual", actor="system:seed",
                                    input={"id": f"rec-{rng.randrange(10**6):06d}", "amount": amount})
                at = dt.datetime.combine(day, dt.time(7), tzinfo=dt.UTC) + dt.timedelta(seconds=rng.randrange(39600))
                dated[job.id] = at
    _run(session, dated)
    _backdate(session, dated)


def _run(session: Any, dated: dict[int, dt.datetime]) -> None:
    """Claim and run the replayed jobs with the normal queue and runner (recorded in this transaction).

    Each job is due at the moment it stands for, so the queue (oldest due first) hands them out before
    anything queued today; a job of someone else's claimed all the same is given back untouched."""
    session.flush()
    session.connection().execute(update(_JOBS).where(_JOBS.c.id == bindparam("b_id")).values(
        run_at=bindparam("b_at")), [{"b_id": i, "b_at": at} for i, at in dated.items()])
    remaining, others = set(dated), set[int]()
    while remaining:
        batch = claim_batch(session, "seed:insights-history", min(500, len(remaining)) + len(others), 600.0,
                            busy=True)
        mine = [c for c in batch.jobs if c.job.id in remaining]
        for c in batch.jobs:
            if c.job.id not in remaining:
                others.add(c.job.id)
                JobRepository(session).unclaim(c.job.id, c.job.fence)
        if not mine:
            raise RuntimeError("the demo history's jobs could not be claimed")
        record_runs(session, [run_steps(c.job, RunControl(), c.pipeline) for c in mine])
        remaining -= {c.job.id for c in mine}


def _backdate(session: Any, dated: dict[int, dt.datetime]) -> None:
    """Move each replayed job (and its steps) to the past moment it stands for, keeping its durations."""
    session.flush()
    shift: dict[int, dt.timedelta] = {}
    rows = []
    for j in session.execute(select(Job.id, Job.created_at, Job.started_at, Job.finished_at)
                             .where(Job.id.in_(list(dated)))).all():
        d = shift[j.id] = dated[j.id] - j.created_at.replace(tzinfo=dt.UTC)
        rows.append({"b_id": j.id, "b_at": dated[j.id], "b_started": j.started_at.replace(tzinfo=dt.UTC) + d,
                     "b_finished": j.finished_at.replace(tzinfo=dt.UTC) + d})
    if rows:
        session.connection().execute(
            update(_JOBS).where(_JOBS.c.id == bindparam("b_id")).values(
                created_at=bindparam("b_at"), enqueued_at=bindparam("b_at"), run_at=bindparam("b_at"),
                started_at=bindparam("b_started"), finished_at=bindparam("b_finished")), rows)
    steps = [{"b_id": s.id, "b_started": s.started_at.replace(tzinfo=dt.UTC) + shift[s.job_id],
              "b_finished": s.finished_at.replace(tzinfo=dt.UTC) + shift[s.job_id]}
             for s in session.execute(select(JobStep.id, JobStep.job_id, JobStep.started_at, JobStep.finished_at)
                                      .where(JobStep.job_id.in_(list(dated)))).all()]
    if steps:
        session.connection().execute(
            update(_STEPS).where(_STEPS.c.id == bindparam("b_id")).values(
                started_at=bindparam("b_started"), finished_at=bindparam("b_finished")), steps)
    session.expire_all()


def seed_insights_report(ctx: ToolContext) -> None:
    """Install free demo plugins in the demo organisations, then build the first Insights Report (this
    quarter so far, compared per day with the previous one) and point the draft "first Insights Report"
    announcement at it."""
    session = ctx.session
    rng = random.Random(20)
    demo = [o for o in session.scalars(select(Organization).where(Organization.slug.like("demo-insights-%")))
            if (o.settings or {}).get(DEMO_FLAG)]
    if not demo:
        return
    for o in demo:
        octx = ToolContext(session, Principal(kind="system", id="seed", org_id=o.id, role="admin", name="seed"))
        for slug, share in FREE_PLUGINS:
            if rng.random() < share:
                install_plugin(octx, InstallCreate(plugin=slug))
    report = generate(ToolContext(session, SYSTEM), quarter_of(utcnow().date()))
    ann = CommunityRepository(session).announcement_by_slug("first-insights-report")
    if ann is not None and ann.published_at is None:
        ann.link_path = report.url
        session.flush()
