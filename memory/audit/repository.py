"""Audit log storage: serial appends under the head-row lock, ordered reads, checkpoints."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session

from memory.audit.models import AuditCheckpoint, AuditEntry, AuditHead

GENESIS = "0" * 64


def _like_pattern(value: str) -> str:
    """Turn a ``*`` wildcard into a LIKE pattern; every other character matches itself."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


class AuditRepository:
    def __init__(self, session: Session):
        self.session = session

    @classmethod
    def from_session(cls, session: Session) -> AuditRepository:
        return cls(session)

    def lock_head(self) -> AuditHead:
        """Lock and return the head row (creating it on an empty database).

        ``populate_existing`` makes the locked read win over a copy loaded earlier in the session.
        """
        head = self.session.scalar(
            select(AuditHead).where(AuditHead.id == 1).with_for_update()
            .execution_options(populate_existing=True)
        )
        if head is None:
            head = AuditHead(id=1, seq=0, hash=GENESIS)
            self.session.add(head)
            self.session.flush()
        return head

    def head(self) -> AuditHead | None:
        return self.session.scalar(
            select(AuditHead).where(AuditHead.id == 1).execution_options(populate_existing=True)
        )

    def add(self, entry: AuditEntry, head: AuditHead) -> None:
        self.session.add(entry)
        head.seq = entry.seq
        head.hash = entry.hash
        self.session.flush()

    def iter_rows(self, batch: int = 2000) -> Iterator[Row[Any]]:
        """Every entry as a plain row in seq order, read from the database (never the identity map)."""
        table = AuditEntry.__table__
        last: int | None = None
        while True:
            stmt = select(*table.c).order_by(table.c.seq).limit(batch)
            if last is not None:
                stmt = stmt.where(table.c.seq > last)
            rows = list(self.session.execute(stmt))
            if not rows:
                return
            yield from rows
            last = rows[-1].seq

    def org_summary(self, org_id: int) -> tuple[int, int]:
        """(entries, last seq) of one organisation's log."""
        n, last = self.session.execute(select(func.count(), func.max(AuditEntry.seq))
                                       .where(AuditEntry.org_id == org_id)).one()
        return int(n or 0), int(last or 0)

    def org_of(self, seq: int) -> int | None:
        """The organisation of entry ``seq`` (None: the platform's, or no such entry)."""
        return self.session.scalar(select(AuditEntry.org_id).where(AuditEntry.seq == seq))

    def max_seq(self) -> int:
        return int(self.session.scalar(select(func.max(AuditEntry.seq))) or 0)

    def get(self, seq: int) -> AuditEntry | None:
        return self.session.get(AuditEntry, seq)

    def _filters(
        self, *, org_id: int | None, actor: str | None, action: str | None, target: str | None,
        since: dt.datetime | None, until: dt.datetime | None, platform: bool = False,
    ) -> list[Any]:
        conds: list[Any] = []
        if platform:
            conds.append(AuditEntry.org_id.is_(None))
        elif org_id is not None:
            conds.append(AuditEntry.org_id == org_id)
        if actor:
            conds.append(AuditEntry.actor == actor)
        if action:
            if "*" in action:
                conds.append(AuditEntry.action.like(_like_pattern(action), escape="\\"))
            else:
                conds.append(AuditEntry.action == action)
        if target:
            conds.append(AuditEntry.target == target)
        if since:
            conds.append(AuditEntry.ts >= since)
        if until:
            conds.append(AuditEntry.ts < until)
        return conds

    def search(
        self, *, org_id: int | None, actor: str | None = None, action: str | None = None,
        target: str | None = None, since: dt.datetime | None = None, until: dt.datetime | None = None,
        before_seq: int | None = None, limit: int = 50, platform: bool = False,
    ) -> list[AuditEntry]:
        """Matching entries, newest first, older than ``before_seq`` when given (``platform``: only the
        entries of no organisation; else ``org_id=None`` means every entry)."""
        conds = self._filters(org_id=org_id, actor=actor, action=action, target=target, since=since, until=until,
                              platform=platform)
        if before_seq:
            conds.append(AuditEntry.seq < before_seq)
        return list(self.session.scalars(
            select(AuditEntry).where(*conds).order_by(AuditEntry.seq.desc()).limit(limit)
        ))

    def iter_matching(
        self, *, org_id: int | None, actor: str | None = None, action: str | None = None,
        target: str | None = None, since: dt.datetime | None = None, until: dt.datetime | None = None,
        batch: int = 1000, platform: bool = False,
    ) -> Iterator[AuditEntry]:
        """Matching entries, oldest first, read in keyset batches (exports of any size)."""
        conds = self._filters(org_id=org_id, actor=actor, action=action, target=target, since=since, until=until,
                              platform=platform)
        last = 0
        while True:
            rows = list(self.session.scalars(
                select(AuditEntry).where(*conds, AuditEntry.seq > last).order_by(AuditEntry.seq).limit(batch)
            ))
            if not rows:
                return
            yield from rows
            last = rows[-1].seq
            for row in rows:
                self.session.expunge(row)

    def add_checkpoint(self, cp: AuditCheckpoint) -> None:
        self.session.add(cp)
        self.session.flush()

    def checkpoints(self) -> list[AuditCheckpoint]:
        return list(self.session.scalars(
            select(AuditCheckpoint).order_by(AuditCheckpoint.seq, AuditCheckpoint.id)
            .execution_options(populate_existing=True)
        ))

    def last_checkpoint(self) -> AuditCheckpoint | None:
        return self.session.scalar(select(AuditCheckpoint).order_by(AuditCheckpoint.seq.desc()).limit(1))
