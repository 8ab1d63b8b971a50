"""Claim scheduler ticks: the unique (job, slot) row is the claim; an unfinished one of a dead leader is
taken over once."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from memory.db import utcnow
from memory.scheduler.models import SchedulerTick


class TickRepository:
    def __init__(self, session: Session):
        self.session = session

    def claim(self, job: str, slot: int, holder: str, epoch: int) -> bool:
        """Record that ``holder`` runs ``job`` for ``slot``; False when that tick was already claimed."""
        try:
            with self.session.begin_nested():
                self.session.add(SchedulerTick(job=job, slot=slot, holder=holder, epoch=epoch))
            return True
        except IntegrityError:
            return False

    def take_over(self, job: str, slot: int, holder: str, epoch: int) -> bool:
        """Take tick ``(job, slot)`` over from a leader of an older epoch that never completed it; False
        when it completed, or a leader of this epoch or later holds it (one conditional write)."""
        old = self.session.scalar(select(SchedulerTick.holder).where(
            SchedulerTick.job == job, SchedulerTick.slot == slot))
        done = cast(CursorResult[Any], self.session.execute(
            update(SchedulerTick).where(SchedulerTick.job == job, SchedulerTick.slot == slot,
                                        SchedulerTick.completed_at.is_(None), SchedulerTick.epoch < epoch)
            .values(holder=holder, epoch=epoch, taken_over_at=utcnow(), taken_over_from=old)))
        return bool(done.rowcount)

    def complete(self, job: str, slot: int, holder: str, epoch: int) -> bool:
        """Mark the tick finished, if ``holder`` (at ``epoch``) still holds it."""
        done = cast(CursorResult[Any], self.session.execute(
            update(SchedulerTick).where(SchedulerTick.job == job, SchedulerTick.slot == slot,
                                        SchedulerTick.holder == holder, SchedulerTick.epoch == epoch,
                                        SchedulerTick.completed_at.is_(None))
            .values(completed_at=utcnow())))
        return bool(done.rowcount)

    def unfinished(self, before_epoch: int, started_before: dt.datetime, since: dt.datetime,
                   jobs: list[str] | None = None) -> list[SchedulerTick]:
        """Ticks claimed under an epoch older than ``before_epoch``, started between ``since`` and
        ``started_before``, never completed: their leader died mid-tick."""
        stmt = select(SchedulerTick).where(SchedulerTick.completed_at.is_(None), SchedulerTick.epoch < before_epoch,
                                           SchedulerTick.started_at < started_before,
                                           SchedulerTick.started_at >= since)
        if jobs is not None:
            stmt = stmt.where(SchedulerTick.job.in_(jobs))
        return list(self.session.scalars(stmt.order_by(SchedulerTick.started_at)))

    def taken_over_since(self, since: dt.datetime) -> list[SchedulerTick]:
        """Ticks a later leader took over since ``since``."""
        return list(self.session.scalars(select(SchedulerTick).where(SchedulerTick.taken_over_at >= since)
                                         .order_by(SchedulerTick.taken_over_at)))

    def count(self, job: str) -> int:
        return int(self.session.scalar(select(func.count()).select_from(SchedulerTick)
                                       .where(SchedulerTick.job == job)) or 0)

    def ticks(self, job: str) -> list[SchedulerTick]:
        return list(self.session.scalars(select(SchedulerTick).where(SchedulerTick.job == job)
                                         .order_by(SchedulerTick.slot)))
