"""Audit log storage: serial appends under the head-row lock, ordered reads, checkpoints."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from memory.audit.models import AuditCheckpoint, AuditEntry, AuditHead

GENESIS = "0" * 64


class AuditRepository:
    def __init__(self, session: Session):
        self.session = session

    @classmethod
    def from_session(cls, session: Session) -> AuditRepository:
        return cls(session)

    def lock_head(self) -> AuditHead:
        """Lock and return the head row (creating it on an empty database)."""
        head = self.session.scalar(select(AuditHead).where(AuditHead.id == 1).with_for_update())
        if head is None:
            head = AuditHead(id=1, seq=0, hash=GENESIS)
            self.session.add(head)
            self.session.flush()
        return head

    def head(self) -> AuditHead | None:
        return self.session.get(AuditHead, 1)

    def add(self, entry: AuditEntry, head: AuditHead) -> None:
        self.session.add(entry)
        head.seq = entry.seq
        head.hash = entry.hash
        self.session.flush()

    def iter_all(self, batch: int = 1000) -> Iterator[AuditEntry]:
        last = 0
        while True:
            rows = list(self.session.scalars(
                select(AuditEntry).where(AuditEntry.seq > last).order_by(AuditEntry.seq).limit(batch)
            ))
            if not rows:
                return
            yield from rows
            last = rows[-1].seq

    def max_seq(self) -> int:
        return int(self.session.scalar(select(func.max(AuditEntry.seq))) or 0)

    def get(self, seq: int) -> AuditEntry | None:
        return self.session.get(AuditEntry, seq)

    def search(
        self, *, org_id: int | None, actor: str | None = None, action: str | None = None,
        target: str | None = None, since: dt.datetime | None = None, until: dt.datetime | None = None,
        before_seq: int | None = None, limit: int = 50,
    ) -> list[AuditEntry]:
        stmt = select(AuditEntry)
        conds: list[Any] = []
        if org_id is not None:
            conds.append(AuditEntry.org_id == org_id)
        if actor:
            conds.append(AuditEntry.actor == actor)
        if action:
            conds.append(AuditEntry.action.like(action.replace("*", "%")))
        if target:
            conds.append(AuditEntry.target == target)
        if since:
            conds.append(AuditEntry.ts >= since)
        if until:
            conds.append(AuditEntry.ts < until)
        if before_seq:
            conds.append(AuditEntry.seq < before_seq)
        return list(self.session.scalars(stmt.where(*conds).order_by(AuditEntry.seq.desc()).limit(limit)))

    def add_checkpoint(self, cp: AuditCheckpoint) -> None:
        self.session.add(cp)
        self.session.flush()

    def checkpoints(self) -> list[AuditCheckpoint]:
        return list(self.session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq)))

    def last_checkpoint(self) -> AuditCheckpoint | None:
        return self.session.scalar(select(AuditCheckpoint).order_by(AuditCheckpoint.seq.desc()).limit(1))
