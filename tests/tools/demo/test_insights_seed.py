"""The insights demo of ``make run``: demo organisations with a history of real jobs (run by the queue and
the runner, dated to past days), folded by the normal rollup; free demo plugins installed through
``plugins.install`` before the first report, which the archive and the launch announcement point at;
and the community demo beside it (listed demo plugins, the Partner Network page, one announcement).

It runs in a scratch SQLite database: the seed expects a fresh installation (its jobs are the only queued
ones, its history lies before the rollup's watermark), and its 34 organisations would join other tests'
insights."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select

from memory.community.repository import CommunityRepository
from memory.db import session_scope, utcnow
from memory.identity.models import Organization
from memory.insights.models import InsightsOrgDay
from memory.insights.repository import InsightsRepository
from memory.jobs.models import CreditLedger, Job, JobStep
from memory.partner.models import Plugin, PluginInstall
from tests.factories.jobs import make_job, make_pipeline
from tests.factories.orgs import make_org
from tests.factories.settings import scratch_sqlite
from tools.context import SYSTEM, ToolContext
from tools.data_insights.aggregator import quarter_of
from tools.demo.community import seed_community
from tools.demo.insights import PROFILES, history_start, seed_insights, seed_insights_report
from tools.demo.seed import SEEDERS


def test_history_starts_with_the_previous_quarter() -> None:
    assert history_start(dt.date(2026, 12, 6)) == dt.date(2026, 7, 1)
    assert history_start(dt.date(2027, 1, 1)) == dt.date(2026, 10, 1)
    # make run installs the plugins and builds the report after the partners' plugins are listed
    assert SEEDERS.index(seed_insights) < SEEDERS.index(seed_community) < SEEDERS.index(seed_insights_report)


def test_demo_orgs_run_real_jobs_install_free_plugins_and_get_the_first_report(client, tmp_path: Path) -> None:
    today = utcnow().date()
    start = today - dt.timedelta(days=15)
    with scratch_sqlite(tmp_path):
        # Someone else's queued job, due long before the history: the seed gives it back as it was.
        other = make_org()
        foreign = make_job(other.org_id, make_pipeline(other.org_id), "queued",
                           run_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
        with session_scope() as s:
            ctx = ToolContext(s, SYSTEM)
            seed_insights(ctx, start=start, volume=0.6)
            seed_community(ctx)
            seed_insights_report(ctx)
        with session_scope() as s:
            left = s.get(Job, foreign)
            assert left is not None and (left.state, left.attempts, left.lease_owner) == ("queued", 0, None)
            orgs = {o.id: o for o in s.scalars(select(Organization).where(Organization.slug.like("demo-insights-%")))}
            assert len(orgs) == len(PROFILES) >= 10
            assert all(o.name.endswith("(demo data)") and o.settings["insights_demo"] and o.industry
                       for o in orgs.values())
            jobs = list(s.scalars(select(Job).where(Job.org_id.in_(orgs))))
            assert len(jobs) > 100
            assert {j.state for j in jobs} == {"succeeded", "failed"} and {j.mode for j in jobs} == {"live"}
            days = Counter(j.finished_at.date() for j in jobs)
            assert min(days) >= start and max(days) < today and len(days) >= 10  # spread over past days
            for j in jobs:
                assert j.created_at <= j.started_at <= j.finished_at and j.attempts == 1
            ids = [j.id for j in jobs]
            steps = Counter(st.job_id for st in s.scalars(select(JobStep).where(JobStep.job_id.in_(ids))))
            assert all(steps[j.id] >= 1 for j in jobs)  # the runner recorded each job's steps
            charged = s.scalar(select(func.count()).select_from(CreditLedger).where(
                CreditLedger.job_id.in_(ids), CreditLedger.reason == "job_run"))
            assert charged == len(jobs)  # submitted through the queue: each run charged once

            # The rollup folded those jobs: the daily rows add up to them, nothing was written beside them.
            rows = list(s.scalars(select(InsightsOrgDay).where(InsightsOrgDay.org_id.in_(orgs))))
            assert {r.source for r in rows} == {"jobs"}
            assert sum(r.jobs for r in rows) == len(jobs)
            assert sum(r.failed for r in rows) == sum(j.state == "failed" for j in jobs)

            free = {p.id for p in s.scalars(select(Plugin).where(Plugin.slug.in_(
                ["northwind.slack-alerts", "dataforge.csv-cleaner"])))}
            installs = list(s.scalars(select(PluginInstall).where(PluginInstall.org_id.in_(orgs))))
            assert installs and {i.plugin_id for i in installs} <= free and {i.status for i in installs} == {"active"}

            reports = InsightsRepository(s).reports()
            assert len(reports) == 1 and reports[0].period == quarter_of(today) and reports[0].demo
            data = InsightsRepository(s).latest_snapshot().data  # type: ignore[union-attr]
            in_quarter = sum(1 for j in jobs if quarter_of(j.finished_at.date()) == quarter_of(today))
            assert data["overall"]["jobs"] == in_quarter and data["overall"]["plugin_adoption_pct"] > 0
            ann = CommunityRepository(s).announcement_by_slug("first-insights-report")
            assert ann is not None and ann.link_path == f"/insights/reports/{reports[0].id}.pdf"

            # Issue 20's demo: a populated marketplace of labelled demo partners, the Partner Network page
            # listing them, and one published announcement (the other launch ones are drafts for staff).
            listed = s.scalars(select(Plugin).where(Plugin.state == "listed")).all()
            assert len(listed) == 5
        market = client.get("/marketplace").text
        assert market.count("[Demo plugin]") == 5 and "0 plugins" not in market
        network = client.get("/partner-network").text
        for name in ("Northwind Integrations (demo)", "Ledgerly (demo)", "DataForge Labs (demo)"):
            assert name in network and name in market
        news = client.get("/news").text
        assert news.count("<article") == 1 and "The Levqor marketplace is open" in news and "demo</span>" in news
        page = client.get("/insights").text
        assert "Partial quarter" in page or "so far" not in page
        assert f'href="/insights/reports/{reports[0].id}.pdf"' in page
