"""Event outbox: rows written in the business transaction and dispatched after commit."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from memory.db import Base, UTCDateTime, utcnow


class Event(Base):
    __tablename__ = "events"
    # Only undispatched events (migration 0700): dispatched ones never slow the dispatcher's claim.
    __table_args__ = (Index("ix_events_undispatched", "id", postgresql_where=text("dispatched_at IS NULL"),
                            sqlite_where=text("dispatched_at IS NULL")),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(100), index=True)
    org_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    # live | test: events of test objects (payload ``livemode: false``) reach only test subscribers
    mode: Mapped[str] = mapped_column(String(8), default="live", server_default="live")
    payload: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # Set once every handler registered at dispatch time has succeeded or is dead.
    dispatched_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class EventDelivery(Base):
    """One in-process handler's progress on one event (attempts, last error, next try)."""

    __tablename__ = "event_deliveries"
    __table_args__ = (UniqueConstraint("event_id", "handler"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    handler: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
