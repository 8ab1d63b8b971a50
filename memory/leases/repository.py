"""Acquire, renew and release leases with one conditional write each."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from memory.db import utcnow
from memory.leases.models import Lease


class LeaseRepository:
    def __init__(self, session: Session):
        self.session = session

    def try_acquire(self, name: str, holder: str, ttl_s: float) -> int | None:
        """Take or renew lease ``name`` for ``holder``; return its epoch, or None if someone else holds it."""
        now = utcnow()
        until = now + dt.timedelta(seconds=ttl_s)
        renewed = cast(CursorResult[Any], self.session.execute(
            update(Lease).where(Lease.name == name, Lease.holder == holder).values(expires_at=until)
        ))
        if renewed.rowcount:
            return self._epoch(name)
        taken = cast(CursorResult[Any], self.session.execute(
            update(Lease).where(Lease.name == name, Lease.expires_at < now)
            .values(holder=holder, expires_at=until, epoch=Lease.epoch + 1)
        ))
        if taken.rowcount:
            return self._epoch(name)
        if self.session.get(Lease, name) is None:
            try:
                with self.session.begin_nested():
                    self.session.add(Lease(name=name, holder=holder, expires_at=until, epoch=1))
                return 1
            except IntegrityError:
                return None
        return None

    def release(self, name: str, holder: str) -> None:
        self.session.execute(
            update(Lease).where(Lease.name == name, Lease.holder == holder).values(expires_at=utcnow())
        )

    def _epoch(self, name: str) -> int:
        return int(self.session.scalar(select(Lease.epoch).where(Lease.name == name)) or 0)

    def get(self, name: str) -> Lease | None:
        return self.session.get(Lease, name)
