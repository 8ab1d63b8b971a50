"""Acquire, renew and release leases with one conditional write each."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select, update
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

    def put(self, name: str, holder: str, ttl_s: float) -> None:
        """Set lease ``name`` to ``holder`` whoever held it (a record of who runs, not a claim)."""
        until = utcnow() + dt.timedelta(seconds=ttl_s)
        row = self.session.get(Lease, name)
        if row is None:
            self.session.add(Lease(name=name, holder=holder, expires_at=until, epoch=1))
        else:
            row.holder, row.expires_at, row.epoch = holder, until, row.epoch + (row.holder != holder)
        self.session.flush()

    def drop(self, name: str, holder: str) -> None:
        """Delete lease ``name`` if ``holder`` still holds it."""
        self.session.execute(delete(Lease).where(Lease.name == name, Lease.holder == holder))

    def drop_named(self, name: str) -> None:
        """Delete lease ``name`` whoever holds it."""
        self.session.execute(delete(Lease).where(Lease.name == name))

    def named(self, prefix: str) -> list[Lease]:
        """The leases whose name starts with ``prefix``."""
        return list(self.session.scalars(select(Lease).where(Lease.name.startswith(prefix, autoescape=True))))

    def _epoch(self, name: str) -> int:
        return int(self.session.scalar(select(Lease.epoch).where(Lease.name == name)) or 0)

    def get(self, name: str) -> Lease | None:
        return self.session.get(Lease, name)
