"""SQL for the Pulse store, the Cost DB, planner suggestions and monthly reports."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, defer

from memory.db import utcnow
from memory.identity.models import ApiKey, Organization, User
from memory.ops.models import Incident
from memory.pulse.models import CostEntry, PlannerRun, PulseReport, PulseSnapshot, ReadinessProbe, Suggestion


class PulseRepository:
    """Reads and writes of the Pulse tables; never commits."""

    def __init__(self, session: Session):
        self.session = session

    @classmethod
    def from_session(cls, session: Session) -> PulseRepository:
        return cls(session)

    # ---- snapshots -----------------------------------------------------------------------------

    def snapshot_rows(self, org_id: int, day: dt.date) -> dict[str, PulseSnapshot]:
        rows = self.session.scalars(select(PulseSnapshot).where(PulseSnapshot.org_id == org_id,
                                                                PulseSnapshot.day == day))
        return {r.kpi: r for r in rows}

    def upsert_snapshot(self, *, org_id: int, day: dt.date, kpi: str, value: float | None, available: bool,
                        reason: str | None, source: str, now: dt.datetime | None = None) -> PulseSnapshot:
        row = self.session.scalar(select(PulseSnapshot).where(
            PulseSnapshot.org_id == org_id, PulseSnapshot.day == day, PulseSnapshot.kpi == kpi))
        row = self._fill(row, org_id, day, kpi, value, available, reason, source, now or utcnow())
        self.session.flush()
        return row

    def upsert_snapshots(self, *, org_id: int, day: dt.date,
                         values: dict[str, tuple[float | None, bool, str | None, str]],
                         now: dt.datetime | None = None) -> None:
        """Upsert one row per KPI (``kpi: (value, available, reason, source)``) of one organisation's day, with
        one read of the day's rows and one flush (the daily check writes every KPI of every organisation)."""
        rows = self.snapshot_rows(org_id, day)
        at = now or utcnow()
        for kpi, (value, available, reason, source) in values.items():
            self._fill(rows.get(kpi), org_id, day, kpi, value, available, reason, source, at)
        self.session.flush()

    def _fill(self, row: PulseSnapshot | None, org_id: int, day: dt.date, kpi: str, value: float | None,
              available: bool, reason: str | None, source: str, now: dt.datetime) -> PulseSnapshot:
        if row is None:
            row = PulseSnapshot(org_id=org_id, day=day, kpi=kpi)
            self.session.add(row)
        row.value, row.available, row.reason = value, available, (reason or None) and reason[:500]
        row.source, row.updated_at = source[:64], now
        return row

    def history(self, org_id: int, *, since: dt.date, until: dt.date,
                kpis: list[str] | None = None) -> list[PulseSnapshot]:
        stmt = select(PulseSnapshot).where(PulseSnapshot.org_id == org_id, PulseSnapshot.day >= since,
                                           PulseSnapshot.day <= until)
        if kpis:
            stmt = stmt.where(PulseSnapshot.kpi.in_(kpis))
        return list(self.session.scalars(stmt.order_by(PulseSnapshot.day, PulseSnapshot.kpi)))

    def latest_day(self, org_id: int) -> dt.date | None:
        return self.session.scalar(select(func.max(PulseSnapshot.day)).where(PulseSnapshot.org_id == org_id))

    def org_ids_stalest_first(self, since: dt.date) -> list[int]:
        """Every organisation's id, the least recently snapshotted first: those without a snapshot of a day
        since ``since`` lead (the newest organisation first among them), the rest follow by the time of their
        last snapshot. A check pass that runs long then serves a new organisation at once and starves none."""
        last = (select(PulseSnapshot.org_id, func.max(PulseSnapshot.updated_at).label("at"))
                .where(PulseSnapshot.day >= since).group_by(PulseSnapshot.org_id).subquery())
        stmt = (select(Organization.id).outerjoin(last, last.c.org_id == Organization.id)
                .order_by(last.c.at.asc().nulls_first(), Organization.id.desc()))
        return list(self.session.scalars(stmt))

    def active_org_count(self, since: dt.datetime, until: dt.datetime) -> int:
        """Organisations with a login or an API key use in ``[since, until)``."""
        by_login = select(User.org_id).where(User.last_login_at >= since, User.last_login_at < until)
        by_key = select(ApiKey.org_id).where(ApiKey.last_used_at >= since, ApiKey.last_used_at < until)
        ids = set(self.session.scalars(by_login)) | set(self.session.scalars(by_key))
        return len(ids)

    # ---- readiness probes ----------------------------------------------------------------------

    def add_probe(self, probe: ReadinessProbe) -> ReadinessProbe:
        self.session.add(probe)
        self.session.flush()
        return probe

    def probes(self, start: dt.datetime, end: dt.datetime) -> list[tuple[dt.datetime, bool]]:
        """(time, ok) of every probe in ``[start, end)``, oldest first."""
        rows = self.session.execute(select(ReadinessProbe.ts, ReadinessProbe.ok)
                                    .where(ReadinessProbe.ts >= start, ReadinessProbe.ts < end)
                                    .order_by(ReadinessProbe.ts))
        return [(ts, bool(ok)) for ts, ok in rows]

    def outages(self, start: dt.datetime, end: dt.datetime,
                diagnoses: tuple[str, ...]) -> list[tuple[dt.datetime, dt.datetime | None, dt.datetime]]:
        """(first evidence, resolved or None, last seen) of outage incidents overlapping ``[start, end)``."""
        rows = self.session.execute(
            select(Incident.detected_at, Incident.resolved_at, Incident.last_seen_at)
            .where(Incident.diagnosis.in_(diagnoses), Incident.detected_at < end,
                   or_(Incident.resolved_at.is_(None), Incident.resolved_at > start))
            .order_by(Incident.detected_at))
        return [(a, b, c) for a, b, c in rows]

    def prune_probes(self, before: dt.datetime) -> None:
        from sqlalchemy import delete

        self.session.execute(delete(ReadinessProbe).where(ReadinessProbe.ts < before))

    # ---- costs ---------------------------------------------------------------------------------

    def upsert_cost(self, entry: CostEntry) -> tuple[CostEntry, bool]:
        """Insert ``entry`` or update the one with the same ``ref``; True when it was new."""
        row = self.session.scalar(select(CostEntry).where(CostEntry.org_id == entry.org_id,
                                                          CostEntry.ref == entry.ref))
        if row is None:
            self.session.add(entry)
            self.session.flush()
            return entry, True
        row.day, row.source, row.amount_cents = entry.day, entry.source, entry.amount_cents
        row.currency, row.description = entry.currency, entry.description
        self.session.flush()
        return row, False

    def costs(self, org_id: int, since: dt.date, until: dt.date, source: str | None = None) -> list[CostEntry]:
        stmt = select(CostEntry).where(CostEntry.org_id == org_id, CostEntry.day >= since, CostEntry.day <= until)
        if source:
            stmt = stmt.where(CostEntry.source == source)
        return list(self.session.scalars(stmt.order_by(CostEntry.day, CostEntry.source, CostEntry.id)))

    def cost_totals(self, org_id: int, since: dt.date, until: dt.date) -> list[tuple[dt.date, str, int]]:
        rows = self.session.execute(
            select(CostEntry.day, CostEntry.source, func.sum(CostEntry.amount_cents))
            .where(CostEntry.org_id == org_id, CostEntry.day >= since, CostEntry.day <= until)
            .group_by(CostEntry.day, CostEntry.source).order_by(CostEntry.day, CostEntry.source))
        return [(r[0], r[1], int(r[2])) for r in rows]

    # ---- planner and suggestions ---------------------------------------------------------------

    def add_run(self, run: PlannerRun) -> PlannerRun:
        self.session.add(run)
        self.session.flush()
        return run

    def runs(self, org_id: int, limit: int = 20) -> list[PlannerRun]:
        return list(self.session.scalars(select(PlannerRun).where(PlannerRun.org_id == org_id)
                                          .order_by(PlannerRun.id.desc()).limit(limit)))

    def add_suggestion(self, s: Suggestion) -> Suggestion:
        self.session.add(s)
        self.session.flush()
        return s

    def suggestion(self, org_id: int, suggestion_id: int) -> Suggestion | None:
        return self.session.scalar(select(Suggestion).where(Suggestion.id == suggestion_id,
                                                            Suggestion.org_id == org_id))

    def suggestions(self, org_id: int, *, status: str | None = None, limit: int = 100) -> list[Suggestion]:
        stmt = select(Suggestion).where(Suggestion.org_id == org_id)
        if status:
            stmt = stmt.where(Suggestion.status == status)
        return list(self.session.scalars(stmt.order_by(Suggestion.id.desc()).limit(limit)))

    def same_suggestion(self, org_id: int, kpi: str, kind: str, title: str) -> Suggestion | None:
        """The latest suggestion of the same proposal for the KPI, whatever its status."""
        return self.session.scalar(select(Suggestion).where(
            Suggestion.org_id == org_id, Suggestion.kpi == kpi, Suggestion.kind == kind,
            Suggestion.title == title).order_by(Suggestion.id.desc()).limit(1))

    def open_suggestion(self, org_id: int, kpi: str, kind: str) -> Suggestion | None:
        return self.session.scalar(select(Suggestion).where(
            Suggestion.org_id == org_id, Suggestion.kpi == kpi, Suggestion.kind == kind,
            Suggestion.status == "proposed").limit(1))

    def suggestion_counts(self, org_id: int, start: dt.datetime, end: dt.datetime) -> dict[str, int]:
        """Suggestions made, accepted and decided in ``[start, end)``."""
        made = self.session.scalar(select(func.count(Suggestion.id)).where(
            Suggestion.org_id == org_id, Suggestion.created_at >= start, Suggestion.created_at < end)) or 0
        decided: list[Any] = list(self.session.execute(
            select(Suggestion.status, func.count(Suggestion.id)).where(
                Suggestion.org_id == org_id, Suggestion.decided_at >= start, Suggestion.decided_at < end)
            .group_by(Suggestion.status)))
        by = {str(s): int(n) for s, n in decided}
        return {"made": int(made), "accepted": by.get("accepted", 0),
                "decided": by.get("accepted", 0) + by.get("rejected", 0)}

    def decided_totals(self, org_id: int, until: dt.datetime) -> tuple[int, int]:
        """(accepted, decided) up to ``until`` (acceptance rate so far)."""
        rows = self.session.execute(select(Suggestion.status, func.count(Suggestion.id)).where(
            Suggestion.org_id == org_id, Suggestion.decided_at < until,
            or_(Suggestion.status == "accepted", Suggestion.status == "rejected")).group_by(Suggestion.status))
        by = {str(s): int(n) for s, n in rows}
        return by.get("accepted", 0), by.get("accepted", 0) + by.get("rejected", 0)

    # ---- reports -------------------------------------------------------------------------------

    def save_report(self, report: PulseReport) -> PulseReport:
        row = self.session.scalar(select(PulseReport).where(PulseReport.org_id == report.org_id,
                                                            PulseReport.month == report.month))
        if row is None:
            self.session.add(report)
            self.session.flush()
            return report
        row.pdf, row.size_bytes, row.pages = report.pdf, report.size_bytes, report.pages
        row.created_at, row.created_by = report.created_at, report.created_by
        self.session.flush()
        return row

    def reports(self, org_id: int) -> list[PulseReport]:
        return list(self.session.scalars(select(PulseReport).options(defer(PulseReport.pdf))
                                          .where(PulseReport.org_id == org_id).order_by(PulseReport.month.desc())))

    def report(self, org_id: int, month: str) -> PulseReport | None:
        return self.session.scalar(select(PulseReport).where(and_(PulseReport.org_id == org_id,
                                                                  PulseReport.month == month)))
