"""Outbox storage: pending events, handler deliveries, failures."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from memory.events.models import Event, EventDelivery


class EventRepository:
    def __init__(self, session: Session):
        self.session = session

    def add(self, event: Event) -> None:
        self.session.add(event)
        self.session.flush()

    def claim_undispatched(self, limit: int) -> list[Event]:
        stmt = select(Event).where(Event.dispatched_at.is_(None)).order_by(Event.id).limit(limit)
        if self.session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        return list(self.session.scalars(stmt))

    def deliveries(self, event_id: int) -> dict[str, EventDelivery]:
        rows = self.session.scalars(select(EventDelivery).where(EventDelivery.event_id == event_id))
        return {d.handler: d for d in rows}

    def add_delivery(self, d: EventDelivery) -> None:
        self.session.add(d)
        self.session.flush()

    def get(self, event_id: int) -> Event | None:
        return self.session.get(Event, event_id)

    def delivery(self, delivery_id: int) -> EventDelivery | None:
        return self.session.get(EventDelivery, delivery_id)

    def recent(self, org_id: int | None, name: str | None, before_id: int | None, limit: int) -> list[Event]:
        stmt = select(Event)
        if org_id is not None:
            stmt = stmt.where(Event.org_id == org_id)
        if name:
            stmt = stmt.where(Event.name == name)
        if before_id:
            stmt = stmt.where(Event.id < before_id)
        return list(self.session.scalars(stmt.order_by(Event.id.desc()).limit(limit)))

    def failures(self, org_id: int | None, limit: int) -> list[tuple[EventDelivery, Event]]:
        stmt = (
            select(EventDelivery, Event)
            .join(Event, Event.id == EventDelivery.event_id)
            .where(EventDelivery.status.in_(("failing", "dead")))
        )
        if org_id is not None:
            stmt = stmt.where(Event.org_id == org_id)
        rows = self.session.execute(stmt.order_by(EventDelivery.id.desc()).limit(limit)).all()
        return [(d, e) for d, e in rows]

    def reopen(self, event: Event, now: dt.datetime) -> None:
        event.dispatched_at = None
        self.session.flush()
