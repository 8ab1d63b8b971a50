"""SQL for operations: reading the platform's own tables for signals, samples, incidents, notifications."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import case, delete, func, or_, select, update
from sqlalchemy.orm import Session

from memory.db import utcnow
from memory.jobs.models import CreditLedger, Job, Pipeline, Worker
from memory.ops.models import Incident, IncidentEvent, OpsDetectorState, OpsNotification, OpsSample
from memory.partner.models import PluginInstall, WebhookAttempt, WebhookDelivery


class SignalSourceRepository:
    """Read-only queries over the jobs, workers, credits and partner-delivery tables."""

    def __init__(self, session: Session):
        self.session = session

    @classmethod
    def from_session(cls, session: Session) -> SignalSourceRepository:
        return cls(session)

    def finished_by_pipeline(self, since: dt.datetime) -> dict[int, tuple[int, int]]:
        """pipeline_id -> (finished, failed or dead) for jobs finished since ``since``."""
        bad = func.sum(case((Job.state.in_(("failed", "dead")), 1), else_=0))
        stmt = (select(Job.pipeline_id, func.count(), bad)
                .where(Job.finished_at >= since, Job.state.in_(("succeeded", "failed", "dead")))
                .group_by(Job.pipeline_id))
        return {int(p): (int(n), int(b or 0)) for p, n, b in self.session.execute(stmt)}

    def start_latencies(self, since: dt.datetime, limit: int = 5000) -> list[float]:
        """Seconds from enqueue to start of jobs started since ``since``."""
        stmt = (select(Job.enqueued_at, Job.started_at).where(Job.started_at >= since)
                .order_by(Job.started_at.desc()).limit(limit))
        out = []
        for enq, started in self.session.execute(stmt):
            if enq is not None and started is not None:
                enq = enq if enq.tzinfo else enq.replace(tzinfo=dt.UTC)
                started = started if started.tzinfo else started.replace(tzinfo=dt.UTC)
                out.append(max(0.0, (started - enq).total_seconds()))
        return out

    def run_seconds(self, since: dt.datetime, limit: int = 500) -> list[float]:
        """Seconds from start to finish of the latest jobs that succeeded since ``since``."""
        stmt = (select(Job.started_at, Job.finished_at).where(Job.state == "succeeded", Job.finished_at >= since)
                .order_by(Job.finished_at.desc()).limit(limit))
        out = []
        for started, finished in self.session.execute(stmt):
            if started is not None and finished is not None:
                out.append(max(0.0, (finished - started).total_seconds()))
        return out

    def enqueue_times(self, since: dt.datetime, limit: int = 100_000) -> list[dt.datetime]:
        """When the jobs submitted since ``since`` were enqueued (arrivals, for the load forecast)."""
        stmt = select(Job.enqueued_at).where(Job.enqueued_at >= since).order_by(Job.enqueued_at).limit(limit)
        return [t if t.tzinfo else t.replace(tzinfo=dt.UTC) for t in self.session.scalars(stmt)]

    def queue(self, now: dt.datetime) -> tuple[int, dt.datetime | None]:
        row = self.session.execute(select(func.count(), func.min(Job.enqueued_at))
                                   .where(Job.state == "queued", Job.run_at <= now)).one()
        return int(row[0]), row[1]

    def expired_leases(self, now: dt.datetime) -> list[Job]:
        return list(self.session.scalars(select(Job).where(Job.state == "running", Job.lease_until < now)
                                          .order_by(Job.id).limit(500)))

    def suspected_poison(self, since: dt.datetime) -> list[Job]:
        """Jobs that lost their worker on two attempts in a row (the last error says a lease expired on
        attempt 2 or later, and the job is still live): likely poison, crashing whoever runs it."""
        import re

        stmt = (select(Job).where(Job.state.in_(("queued", "running")), Job.attempts >= 2,
                                  Job.last_error.like("lease expired on attempt %"), Job.enqueued_at >= since)
                .order_by(Job.id).limit(200))
        out = []
        for job in self.session.scalars(stmt):
            m = re.match(r"lease expired on attempt (\d+)", job.last_error or "")
            if m and int(m.group(1)) >= 2:
                out.append(job)
        return out[:50]

    def retryable_failed(self, pipeline_id: int) -> int:
        return int(self.session.scalar(select(func.count()).select_from(Job).where(
            Job.pipeline_id == pipeline_id, Job.state == "failed", Job.retryable.is_(True))) or 0)

    def pipeline_org(self, pipeline_id: int) -> int | None:
        return self.session.scalar(select(Pipeline.org_id).where(Pipeline.id == pipeline_id))

    def workers(self) -> list[Worker]:
        return list(self.session.scalars(select(Worker).order_by(Worker.id)))

    def credits_spent(self, since: dt.datetime) -> int:
        total = self.session.scalar(select(func.coalesce(func.sum(-CreditLedger.delta), 0))
                                    .where(CreditLedger.reason == "job_run", CreditLedger.created_at >= since))
        return int(total or 0)

    def partner_attempts(self, since: dt.datetime) -> dict[int, tuple[int, int]]:
        """install_id -> (attempts, errors: no response or a status >= 500 or 4xx other than 410)."""
        err = func.sum(case((or_(WebhookAttempt.status_code.is_(None), WebhookAttempt.status_code >= 400), 1),
                            else_=0))
        stmt = (select(WebhookDelivery.install_id, func.count(), err)
                .join(WebhookDelivery, WebhookDelivery.id == WebhookAttempt.delivery_id)
                .where(WebhookAttempt.started_at >= since).group_by(WebhookDelivery.install_id))
        return {int(i): (int(n), int(e or 0)) for i, n, e in self.session.execute(stmt)}


    def owned_by(self, org_id: int, pipeline_ids: Iterable[int],
                 install_ids: Iterable[int]) -> tuple[set[int], set[int]]:
        """Which of ``pipeline_ids`` and ``install_ids`` belong to organisation ``org_id``."""
        pipes, installs = list(set(pipeline_ids)), list(set(install_ids))
        own_p = set(self.session.scalars(select(Pipeline.id).where(Pipeline.id.in_(pipes),
                                                                   Pipeline.org_id == org_id))) if pipes else set()
        own_i = set(self.session.scalars(select(PluginInstall.id).where(
            PluginInstall.id.in_(installs), PluginInstall.org_id == org_id))) if installs else set()
        return own_p, own_i


class SignalRepository:
    """Samples, rollups and detector state."""

    def __init__(self, session: Session):
        self.session = session

    @classmethod
    def from_session(cls, session: Session) -> SignalRepository:
        return cls(session)

    def add_samples(self, ts: dt.datetime, points: Iterable[tuple[str, float, float | None]]) -> int:
        rows = [OpsSample(series=s[:200], resolution="raw", ts=ts, value=v, n=1, score=sc) for s, v, sc in points]
        self.session.add_all(rows)
        self.session.flush()
        return len(rows)

    def series_names(self, prefix: str = "", since: dt.datetime | None = None) -> list[str]:
        stmt = select(OpsSample.series).distinct()
        if prefix:
            stmt = stmt.where(OpsSample.series.startswith(prefix, autoescape=True))
        if since is not None:
            stmt = stmt.where(OpsSample.ts >= since)
        return sorted(self.session.scalars(stmt))

    def points(self, series: str, since: dt.datetime, until: dt.datetime, resolution: str,
               limit: int = 20000) -> list[OpsSample]:
        stmt = (select(OpsSample).where(OpsSample.series == series, OpsSample.resolution == resolution,
                                        OpsSample.ts >= since, OpsSample.ts < until)
                .order_by(OpsSample.ts).limit(limit))
        return list(self.session.scalars(stmt))

    def recent(self, series: str, n: int) -> list[OpsSample]:
        stmt = (select(OpsSample).where(OpsSample.series == series, OpsSample.resolution == "raw")
                .order_by(OpsSample.ts.desc()).limit(n))
        return list(reversed(list(self.session.scalars(stmt))))

    def last_rollup(self) -> dt.datetime | None:
        return self.session.scalar(select(func.max(OpsSample.ts)).where(OpsSample.resolution == "5m"))

    def first_raw(self) -> dt.datetime | None:
        return self.session.scalar(select(func.min(OpsSample.ts)).where(OpsSample.resolution == "raw"))

    def raw_between(self, start: dt.datetime, end: dt.datetime) -> list[tuple[str, dt.datetime, float, float | None]]:
        stmt = (select(OpsSample.series, OpsSample.ts, OpsSample.value, OpsSample.score)
                .where(OpsSample.resolution == "raw", OpsSample.ts >= start, OpsSample.ts < end))
        return [(s, t, float(v), sc) for s, t, v, sc in self.session.execute(stmt)]

    def add_rollups(self, rows: Sequence[OpsSample]) -> None:
        self.session.add_all(rows)
        self.session.flush()

    def drop_before(self, resolution: str, before: dt.datetime) -> int:
        res = self.session.execute(delete(OpsSample).where(OpsSample.resolution == resolution,
                                                           OpsSample.ts < before))
        return int(getattr(res, "rowcount", 0) or 0)

    def detector(self, series: str) -> OpsDetectorState | None:
        return self.session.get(OpsDetectorState, series)

    def save_detector(self, series: str, state: dict[str, Any], points: int) -> None:
        row = self.session.get(OpsDetectorState, series)
        if row is None:
            self.session.add(OpsDetectorState(series=series, state=state, points=points, updated_at=utcnow()))
        else:
            row.state, row.points, row.updated_at = state, points, utcnow()
        self.session.flush()


class IncidentRepository:
    def __init__(self, session: Session):
        self.session = session

    @classmethod
    def from_session(cls, session: Session) -> IncidentRepository:
        return cls(session)

    def add(self, inc: Incident) -> Incident:
        self.session.add(inc)
        self.session.flush()
        return inc

    def get(self, incident_id: int, *, lock: bool = False) -> Incident | None:
        stmt = select(Incident).where(Incident.id == incident_id)
        if lock and self.session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        return self.session.scalar(stmt)

    def open_for_cause(self, cause: str) -> Incident | None:
        return self.session.scalar(select(Incident).where(Incident.cause == cause, Incident.state != "resolved"))

    def recently_resolved(self, cause: str, since: dt.datetime) -> Incident | None:
        return self.session.scalar(select(Incident).where(Incident.cause == cause, Incident.state == "resolved",
                                                          Incident.resolved_at >= since)
                                   .order_by(Incident.resolved_at.desc()).limit(1))

    def unresolved(self) -> list[Incident]:
        return list(self.session.scalars(select(Incident).where(Incident.state != "resolved").order_by(Incident.id)))

    def search(self, org_id: int | None, *, states: Sequence[str] | None, before_id: int | None,
               limit: int) -> list[Incident]:
        stmt = select(Incident)
        if org_id is not None:
            stmt = stmt.where(or_(Incident.org_id == org_id, Incident.org_id.is_(None)))
        if states:
            stmt = stmt.where(Incident.state.in_(list(states)))
        if before_id is not None:
            stmt = stmt.where(Incident.id < before_id)
        return list(self.session.scalars(stmt.order_by(Incident.id.desc()).limit(limit)))

    def counts_by_state(self) -> dict[str, int]:
        stmt = select(Incident.state, func.count()).group_by(Incident.state)
        return {s: int(n) for s, n in self.session.execute(stmt)}

    def manual_since(self, since: dt.datetime) -> int:
        return int(self.session.scalar(select(func.count()).select_from(Incident).where(
            Incident.manual.is_(True), Incident.opened_at >= since)) or 0)

    def add_event(self, incident_id: int, kind: str, message: str, *, actor: str = "",
                  data: dict[str, Any] | None = None, at: dt.datetime | None = None) -> IncidentEvent:
        ev = IncidentEvent(incident_id=incident_id, kind=kind, message=message[:1000], actor=actor,
                           data=data or {}, at=at or utcnow())
        self.session.add(ev)
        self.session.flush()
        return ev

    def events(self, incident_id: int, limit: int = 500) -> list[IncidentEvent]:
        return list(self.session.scalars(select(IncidentEvent).where(IncidentEvent.incident_id == incident_id)
                                         .order_by(IncidentEvent.id).limit(limit)))

    def actions_on(self, action: str, target_key: str, target: str, since: dt.datetime) -> int:
        """Healer actions of one kind on one target (e.g. restarts of one worker) since ``since``."""
        rows = self.session.scalars(select(IncidentEvent.data).where(
            IncidentEvent.kind == "action", IncidentEvent.at >= since,
            IncidentEvent.message.startswith(action, autoescape=True)))
        return sum(1 for d in rows if isinstance(d, dict) and str(d.get(target_key)) == target)

    def add_notification(self, n: OpsNotification) -> None:
        self.session.add(n)
        self.session.flush()

    def pending_notifications(self, limit: int = 50) -> list[OpsNotification]:
        stmt = select(OpsNotification).where(OpsNotification.status == "pending").order_by(OpsNotification.id)
        if self.session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        return list(self.session.scalars(stmt.limit(limit)))

    def notifications(self, incident_id: int) -> list[OpsNotification]:
        return list(self.session.scalars(select(OpsNotification).where(OpsNotification.incident_id == incident_id)
                                         .order_by(OpsNotification.id)))

    def claim_heal(self, incident_id: int, now: dt.datetime, until: dt.datetime) -> bool:
        """Take the right to act on an incident (a compare-and-set on ``next_heal_at``)."""
        res = self.session.execute(update(Incident).where(
            Incident.id == incident_id, Incident.state.in_(("open", "acknowledged", "mitigated")),
            or_(Incident.next_heal_at.is_(None), Incident.next_heal_at <= now)).values(next_heal_at=until))
        return bool(getattr(res, "rowcount", 0))


