"""SLA SQL: maintenance windows, and the uptime evidence (readiness probes, outage incidents) of a period."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import insert, or_, select
from sqlalchemy.orm import Session

from memory.ops.models import Incident
from memory.pulse.models import ReadinessProbe
from memory.sla.models import MaintenanceWindow

# A seeded probe carries this in ``detail`` (the demo's history is labelled, never mistaken for real).
DEMO_PROBE = "demo: seeded probe history"


@dataclass(frozen=True)
class OutageRow:
    id: int
    org_id: int | None
    title: str
    severity: str
    detected_at: dt.datetime
    resolved_at: dt.datetime | None
    last_seen_at: dt.datetime
    demo: bool


class SlaRepository:
    def __init__(self, session: Session):
        self.session = session

    @classmethod
    def from_session(cls, session: Session) -> SlaRepository:
        return cls(session)

    # ---- maintenance windows ----
    def add_window(self, window: MaintenanceWindow) -> MaintenanceWindow:
        self.session.add(window)
        self.session.flush()
        return window

    def window(self, window_id: int) -> MaintenanceWindow | None:
        return self.session.get(MaintenanceWindow, window_id)

    def windows(self, *, org_id: int | None, start: dt.datetime, end: dt.datetime,
                include_cancelled: bool = False, every_org: bool = False) -> list[MaintenanceWindow]:
        """Windows overlapping ``[start, end)`` that apply to ``org_id`` (its own and the platform's), or
        every window when ``every_org``; oldest first."""
        q = select(MaintenanceWindow).where(MaintenanceWindow.starts_at < end, MaintenanceWindow.ends_at > start)
        if not every_org:
            q = q.where(or_(MaintenanceWindow.org_id.is_(None), MaintenanceWindow.org_id == org_id))
        if not include_cancelled:
            q = q.where(MaintenanceWindow.cancelled_at.is_(None))
        return list(self.session.execute(q.order_by(MaintenanceWindow.starts_at, MaintenanceWindow.id)).scalars())

    # ---- evidence ----
    def probes(self, start: dt.datetime, end: dt.datetime) -> list[tuple[dt.datetime, bool, bool]]:
        """(time, ok, demo) of every /readyz probe in ``[start, end)``, oldest first."""
        rows = self.session.execute(select(ReadinessProbe.ts, ReadinessProbe.ok, ReadinessProbe.detail)
                                    .where(ReadinessProbe.ts >= start, ReadinessProbe.ts < end)
                                    .order_by(ReadinessProbe.ts, ReadinessProbe.id))
        return [(ts, bool(ok), detail == DEMO_PROBE) for ts, ok, detail in rows]

    def add_probes(self, rows: list[dict[str, object]]) -> None:
        """Bulk-insert probe rows (the demo seed's history)."""
        if rows:
            self.session.execute(insert(ReadinessProbe), rows)

    def outages(self, *, org_id: int, start: dt.datetime, end: dt.datetime,
                diagnoses: tuple[str, ...]) -> list[OutageRow]:
        """Outage incidents (platform-wide or this organisation's) overlapping ``[start, end)``."""
        rows = self.session.execute(
            select(Incident).where(Incident.diagnosis.in_(diagnoses), Incident.detected_at < end,
                                   or_(Incident.resolved_at.is_(None), Incident.resolved_at > start),
                                   or_(Incident.org_id.is_(None), Incident.org_id == org_id))
            .order_by(Incident.detected_at, Incident.id)).scalars()
        return [OutageRow(i.id, i.org_id, i.title, i.severity, i.detected_at, i.resolved_at, i.last_seen_at,
                          bool((i.subject or {}).get("demo"))) for i in rows]

    def orgs_on_plans(self, plans: tuple[str, ...]) -> list[tuple[int, str, str]]:
        """(id, slug, plan) of the organisations on one of ``plans``."""
        from memory.identity.models import Organization

        rows = self.session.execute(select(Organization.id, Organization.slug, Organization.plan)
                                    .where(Organization.plan.in_(plans)).order_by(Organization.id))
        return [(int(i), str(s), str(p)) for i, s, p in rows]
