"""Claim scheduler ticks: the unique (job, slot) row is the claim."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

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

    def count(self, job: str) -> int:
        return int(self.session.scalar(select(func.count()).select_from(SchedulerTick)
                                       .where(SchedulerTick.job == job)) or 0)

    def ticks(self, job: str) -> list[SchedulerTick]:
        return list(self.session.scalars(select(SchedulerTick).where(SchedulerTick.job == job)
                                         .order_by(SchedulerTick.slot)))
