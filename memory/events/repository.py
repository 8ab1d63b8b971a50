"""Outbox storage: events with work due, handler deliveries, failures."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete, exists, insert, or_, select, text, update
from sqlalchemy.orm import Session

from memory.events.models import Event, EventDelivery

OPEN = ("pending", "failing")


class EventRepository:
    def __init__(self, session: Session):
        self.session = session

    @property
    def _pg(self) -> bool:
        return self.session.get_bind().dialect.name == "postgresql"

    def add(self, event: Event) -> None:
        self.session.add(event)
        self.session.flush()

    def add_many(self, rows: list[dict[str, Any]]) -> None:
        """Insert event rows (uid, name, org_id, payload, created_at, dispatched_at) in one statement,
        without ORM objects: the jobs runtime records a completion per job."""
        if rows:
            self.session.execute(insert(Event), rows)

    def claim_due(self, now: dt.datetime, limit: int) -> list[Event]:
        """Undispatched events with something to do now, oldest first.

        An event qualifies when it has no open delivery (new: deliveries are still to be created,
        or all settled: it is to be marked dispatched) or an open delivery that is due. Events whose
        open deliveries are all backed off are skipped, so they cannot crowd newer ones out of
        ``limit``. On PostgreSQL rows another dispatcher is claiming are skipped.
        """
        open_ = select(EventDelivery.id).where(EventDelivery.event_id == Event.id,
                                               EventDelivery.status.in_(OPEN))
        due = open_.where(EventDelivery.next_attempt_at <= now)
        stmt = (
            select(Event)
            .where(Event.dispatched_at.is_(None), or_(~exists(open_), exists(due)))
            .order_by(Event.id)
            .limit(limit)
            .execution_options(populate_existing=True)
        )
        if self._pg:
            stmt = stmt.with_for_update(skip_locked=True, of=Event)
        return list(self.session.scalars(stmt))

    def deliveries_of(self, event_ids: list[int]) -> dict[int, dict[str, EventDelivery]]:
        out: dict[int, dict[str, EventDelivery]] = {i: {} for i in event_ids}
        if event_ids:
            rows = self.session.scalars(
                select(EventDelivery).where(EventDelivery.event_id.in_(event_ids))
                .execution_options(populate_existing=True)
            )
            for d in rows:
                out[d.event_id][d.handler] = d
        return out

    def deliveries(self, event_id: int) -> dict[str, EventDelivery]:
        return self.deliveries_of([event_id])[event_id]

    def add_delivery(self, d: EventDelivery) -> None:
        self.session.add(d)
        self.session.flush()

    def add_done_deliveries(self, rows: list[dict[str, Any]]) -> None:
        """Insert settled delivery rows (a batch handler's) in multi-row statements.

        On PostgreSQL one statement of fixed text over arrays (parsed and planned once, whatever the
        batch size); elsewhere multi-row INSERTs.
        """
        if rows and self._pg:
            self.session.execute(text(
                "INSERT INTO event_deliveries (event_id, handler, status, attempts, next_attempt_at, updated_at) "
                "SELECT * FROM unnest(CAST(:event_id AS integer[]), CAST(:handler AS text[]), "
                "CAST(:status AS text[]), CAST(:attempts AS integer[]), CAST(:next_attempt_at AS timestamptz[]), "
                "CAST(:updated_at AS timestamptz[]))"),
                {c: [r[c] for r in rows] for c in ("event_id", "handler", "status", "attempts", "next_attempt_at",
                                                   "updated_at")})
            return
        for i in range(0, len(rows), 500):
            self.session.execute(insert(EventDelivery).values(rows[i:i + 500]))

    def mark_dispatched(self, event_ids: list[int], at: dt.datetime) -> None:
        """Set ``dispatched_at`` on many events in one statement."""
        if event_ids:
            self.session.execute(update(Event).where(Event.id.in_(event_ids)).values(dispatched_at=at)
                                 .execution_options(synchronize_session=False))

    def get(self, event_id: int) -> Event | None:
        return self.session.get(Event, event_id)

    def delivery(self, delivery_id: int) -> EventDelivery | None:
        return self.session.get(EventDelivery, delivery_id)

    def lock_delivery(self, delivery_id: int, *, skip_locked: bool) -> EventDelivery | None:
        """Lock delivery ``delivery_id`` for this transaction (None when another holds it and ``skip_locked``)."""
        stmt = (
            select(EventDelivery).where(EventDelivery.id == delivery_id)
            .with_for_update(skip_locked=skip_locked)
            .execution_options(populate_existing=True)
        )
        return self.session.scalar(stmt)

    def delete_mode(self, org_id: int, mode: str) -> int:
        """Delete the org's events of ``mode`` with their handler deliveries (test data reset)."""
        ids = select(Event.id).where(Event.org_id == org_id, Event.mode == mode)
        self.session.execute(delete(EventDelivery).where(EventDelivery.event_id.in_(ids))
                             .execution_options(synchronize_session=False))
        res = self.session.execute(delete(Event).where(Event.org_id == org_id, Event.mode == mode)
                                   .execution_options(synchronize_session=False))
        return int(getattr(res, "rowcount", 0) or 0)

    def recent(self, org_id: int | None, name: str | None, before_id: int | None, limit: int,
               mode: str | None = None) -> list[Event]:
        stmt = select(Event)
        if mode is not None:
            stmt = stmt.where(Event.mode == mode)
        if org_id is not None:
            stmt = stmt.where(Event.org_id == org_id)
        if name:
            stmt = stmt.where(Event.name == name)
        if before_id:
            stmt = stmt.where(Event.id < before_id)
        return list(self.session.scalars(stmt.order_by(Event.id.desc()).limit(limit)))

    def failures(self, org_id: int | None, limit: int, mode: str | None = None) -> list[tuple[EventDelivery, Event]]:
        stmt = (
            select(EventDelivery, Event)
            .join(Event, Event.id == EventDelivery.event_id)
            .where(EventDelivery.status.in_(("failing", "dead")))
        )
        if mode is not None:
            stmt = stmt.where(Event.mode == mode)
        if org_id is not None:
            stmt = stmt.where(Event.org_id == org_id)
        rows = self.session.execute(stmt.order_by(EventDelivery.id.desc()).limit(limit)).all()
        return [(d, e) for d, e in rows]

    def reopen(self, event: Event) -> None:
        """Make a dispatched event eligible again (a delivery of it is open once more)."""
        event.dispatched_at = None
        self.session.flush()
