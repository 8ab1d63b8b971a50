"""SQL for the insights aggregator: the job watermark, daily rollups, snapshots and the report archive."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from memory.db import utcnow
from memory.identity.models import Organization
from memory.insights.models import InsightsOrgDay, InsightsReport, InsightsSnapshot, InsightsWatermark
from memory.jobs.models import Job, JobStep, Pipeline
from memory.partner.models import PluginInstall, PluginVersion

WATERMARK = "jobs"


class InsightsRepository:
    def __init__(self, session: Session):
        self.session = session

    @classmethod
    def from_session(cls, session: Session) -> InsightsRepository:
        return cls(session)

    # ---- incremental rollup ----------------------------------------------------------------
    def watermark(self) -> InsightsWatermark:
        w = self.session.get(InsightsWatermark, WATERMARK, with_for_update=True)
        if w is None:
            w = InsightsWatermark(name=WATERMARK, finished_at=None, job_id=0, updated_at=utcnow())
            self.session.add(w)
            self.session.flush()
        return w

    def finished_jobs_after(self, after: dt.datetime | None, after_id: int, until: dt.datetime,
                            limit: int) -> list[Any]:
        """Live terminal jobs finished in ``((after, after_id), until]``, in watermark order."""
        q = select(Job.id, Job.org_id, Job.state, Job.started_at, Job.finished_at).where(
            Job.mode == "live", Job.finished_at.is_not(None), Job.finished_at <= until,
            Job.state.in_(("succeeded", "failed", "dead")))
        if after is not None:
            q = q.where(or_(Job.finished_at > after, and_(Job.finished_at == after, Job.id > after_id)))
        return list(self.session.execute(q.order_by(Job.finished_at, Job.id).limit(limit)).all())

    def succeeded_steps(self, job_ids: Sequence[int]) -> list[Any]:
        """``(job_id, kind, count)`` of succeeded step runs of the given jobs."""
        if not job_ids:
            return []
        q = (select(JobStep.job_id, JobStep.kind, func.count()).where(JobStep.job_id.in_(job_ids),
                                                                        JobStep.status == "succeeded")
             .group_by(JobStep.job_id, JobStep.kind))
        return list(self.session.execute(q).all())

    def org_day(self, org_id: int, day: dt.date) -> InsightsOrgDay:
        row = self.session.scalar(select(InsightsOrgDay).where(InsightsOrgDay.org_id == org_id,
                                                               InsightsOrgDay.day == day))
        if row is None:
            row = InsightsOrgDay(org_id=org_id, day=day, jobs=0, succeeded=0, failed=0, latency_ms_sum=0.0,
                                 latency_n=0, steps={}, source="jobs", updated_at=utcnow())
            self.session.add(row)
            self.session.flush()
        return row

    def org_days(self, since: dt.date, until: dt.date) -> list[InsightsOrgDay]:
        return list(self.session.scalars(select(InsightsOrgDay).where(InsightsOrgDay.day >= since,
                                                                      InsightsOrgDay.day <= until)))

    # ---- organisations and their current setup ----------------------------------------------
    def orgs(self) -> list[Organization]:
        return list(self.session.scalars(select(Organization)))

    def live_pipeline_steps(self) -> list[tuple[int, list[dict[str, Any]]]]:
        rows = self.session.execute(select(Pipeline.org_id, Pipeline.steps).where(Pipeline.mode == "live"))
        return [(r[0], list(r[1] or [])) for r in rows]

    def active_installs(self) -> list[tuple[int, dict[str, Any]]]:
        """``(org_id, manifest)`` of every active live plugin install."""
        q = (select(PluginInstall.org_id, PluginVersion.manifest)
             .join(PluginVersion, PluginVersion.id == PluginInstall.version_id)
             .where(PluginInstall.status == "active", PluginInstall.mode == "live"))
        return [(r[0], dict(r[1] or {})) for r in self.session.execute(q)]

    # ---- snapshots and reports --------------------------------------------------------------
    def add_snapshot(self, snap: InsightsSnapshot) -> InsightsSnapshot:
        self.session.add(snap)
        self.session.flush()
        return snap

    def latest_snapshot(self) -> InsightsSnapshot | None:
        return self.session.scalar(select(InsightsSnapshot).order_by(InsightsSnapshot.id.desc()).limit(1))

    def snapshot(self, snapshot_id: int) -> InsightsSnapshot | None:
        return self.session.get(InsightsSnapshot, snapshot_id)

    def add_report(self, r: InsightsReport) -> InsightsReport:
        self.session.add(r)
        self.session.flush()
        return r

    def reports(self, limit: int = 100) -> list[InsightsReport]:
        return list(self.session.scalars(select(InsightsReport).order_by(InsightsReport.id.desc()).limit(limit)))

    def first_report(self) -> InsightsReport | None:
        return self.session.scalar(select(InsightsReport).order_by(InsightsReport.id).limit(1))

    def report(self, report_id: int) -> InsightsReport | None:
        return self.session.get(InsightsReport, report_id)

    def report_for(self, period: str) -> InsightsReport | None:
        return self.session.scalar(select(InsightsReport).where(InsightsReport.period == period)
                                   .order_by(InsightsReport.id.desc()).limit(1))
