"""Scheduler ticks: one row per scheduled job and time slot, so a tick runs once across leaders.

``completed_at`` is set when the tick's work finished; a tick whose leader died before that is taken
over once by the next leader (``taken_over_at``, ``taken_over_from``) and run again."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from memory.db import Base, UTCDateTime, utcnow


class SchedulerTick(Base):
    __tablename__ = "scheduler_ticks"
    __table_args__ = (UniqueConstraint("job", "slot"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job: Mapped[str] = mapped_column(String(100))
    slot: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    holder: Mapped[str] = mapped_column(String(200))
    epoch: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
    taken_over_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    taken_over_from: Mapped[str | None] = mapped_column(String(200))
