"""Counters with one atomic upsert per hit (``INSERT .. ON CONFLICT DO UPDATE .. RETURNING``)."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, case, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from memory.ratelimit.models import RateLimitCounter

KEY_LENGTH = 400


class RateLimitRepository:
    def __init__(self, session: Session):
        self.session = session

    def incr(self, key: str, now: float, expiry_s: float, amount: int = 1) -> int:
        """Add ``amount`` to ``key``'s counter; an absent or expired counter restarts at ``amount`` for
        ``expiry_s`` seconds. Returns the new count. Concurrent callers serialise on the row."""
        key = key[:KEY_LENGTH]
        dialect = self.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        c = RateLimitCounter
        expired = c.expires_at <= now
        stmt = insert(c).values(key=key, count=amount, expires_at=now + expiry_s).on_conflict_do_update(
            index_elements=[c.key], set_={
                "count": case((expired, amount), else_=c.count + amount),
                "expires_at": case((expired, now + expiry_s), else_=c.expires_at),
            }).returning(c.count)
        return int(self.session.execute(stmt).scalar_one())

    def get(self, key: str, now: float) -> tuple[int, float] | None:
        """``(count, expires_at)`` of a live counter, or None."""
        row = self.session.execute(
            select(RateLimitCounter.count, RateLimitCounter.expires_at)
            .where(RateLimitCounter.key == key[:KEY_LENGTH], RateLimitCounter.expires_at > now)
        ).first()
        return (int(row[0]), float(row[1])) if row else None

    def get_many(self, keys: list[str], now: float) -> dict[str, int]:
        """The counts of the live counters among ``keys`` (absent or expired ones are left out), in
        statements of at most 500 keys."""
        out: dict[str, int] = {}
        for i in range(0, len(keys), 500):
            chunk = [k[:KEY_LENGTH] for k in keys[i:i + 500]]
            rows = self.session.execute(
                select(RateLimitCounter.key, RateLimitCounter.count)
                .where(RateLimitCounter.key.in_(chunk), RateLimitCounter.expires_at > now))
            out.update({str(k): int(c) for k, c in rows.tuples()})
        return out

    def clear(self, key: str) -> None:
        self.session.execute(delete(RateLimitCounter).where(RateLimitCounter.key == key[:KEY_LENGTH]))

    def purge(self, before: float | None = None) -> int:
        """Delete every counter (or those expired at ``before``); returns how many."""
        stmt = delete(RateLimitCounter)
        if before is not None:
            stmt = stmt.where(RateLimitCounter.expires_at <= before)
        return int(cast(CursorResult[Any], self.session.execute(stmt)).rowcount or 0)
