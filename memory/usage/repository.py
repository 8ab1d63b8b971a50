"""Usage rows: batched additive upserts, and scoped reads."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from memory.usage.models import ApiUsage


@dataclass(frozen=True)
class UsageDelta:
    """Counts to add to one usage row."""

    org_id: int
    day: dt.date
    key_prefix: str
    mode: str
    method: str
    route: str
    requests: int
    refused: int


class UsageRepository:
    def __init__(self, session: Session):
        self.session = session

    @classmethod
    def from_session(cls, session: Session) -> UsageRepository:
        return cls(session)

    def add(self, deltas: Iterable[UsageDelta]) -> int:
        """Add each delta to its row (created at the first count), one upsert per row; how many rows."""
        dialect = self.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        u = ApiUsage
        n = 0
        for d in deltas:
            stmt = insert(u).values(
                org_id=d.org_id, day=d.day, key_prefix=d.key_prefix[:32], mode=d.mode[:8], method=d.method[:10],
                route=d.route[:200], requests=d.requests, refused=d.refused,
            )
            stmt = stmt.on_conflict_do_update(
                index_elements=[u.org_id, u.day, u.key_prefix, u.mode, u.method, u.route],
                set_={"requests": u.requests + stmt.excluded.requests, "refused": u.refused + stmt.excluded.refused},
            )
            self.session.execute(stmt)
            n += 1
        return n

    def rows(self, org_id: int, *, start: dt.date, end: dt.date, key_prefix: str | None = None,
             limit: int = 10_000) -> Sequence[ApiUsage]:
        """The organisation's rows from ``start`` to ``end`` (inclusive), by day, key, route."""
        q = select(ApiUsage).where(ApiUsage.org_id == org_id, ApiUsage.day >= start, ApiUsage.day <= end)
        if key_prefix is not None:
            q = q.where(ApiUsage.key_prefix == key_prefix)
        q = q.order_by(ApiUsage.day, ApiUsage.key_prefix, ApiUsage.mode, ApiUsage.method, ApiUsage.route)
        return self.session.execute(q.limit(limit)).scalars().all()
