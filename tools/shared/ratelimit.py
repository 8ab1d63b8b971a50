"""Rate limiting shared by every API process: the ``limits`` library over a database table.

``limits`` ships storages for Redis, Memcached, MongoDB and memory only; Levqor's production
defaults have none of them and run several API processes (``levqor up``, replicas), so the counters
live in ``rate_limit_counters`` (``memory/ratelimit``) and :class:`DatabaseStorage` is a ``limits``
storage over it. It works in the caller's session: a count is written in the caller's transaction
(one upsert per hit, serialised on the row), so the caller must commit even when it refuses the
request. Use it with ``limits``' fixed-window strategy::

    limiter = rate_limiter(session)
    if not limiter.hit(RateLimitItemPerMinute(60), "api", key_prefix): ...

Sign-in throttling (``tools/identity/throttle.py``) builds on it; API rate limits can too.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.storage import Storage
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from memory.db import session_scope
from memory.ratelimit.repository import RateLimitRepository
from tools.schedules import Schedule

__all__ = ["SCHEDULES", "DatabaseStorage", "RateLimitItem", "RateLimitItemPerSecond", "per_seconds",
           "purge_expired", "rate_limiter"]

Clock = Callable[[], float]


class DatabaseStorage(Storage):
    """A ``limits`` storage over ``rate_limit_counters``, in the given session (time from ``clock``)."""

    STORAGE_SCHEME = ["levqor+db"]

    def __init__(self, session: Session, clock: Clock = time.time) -> None:
        super().__init__(wrap_exceptions=False)
        self.repo = RateLimitRepository(session)
        self.clock = clock

    @property
    def base_exceptions(self) -> type[Exception]:
        return SQLAlchemyError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        return self.repo.incr(key, self.clock(), float(expiry), amount)

    def get(self, key: str) -> int:
        live = self.repo.get(key, self.clock())
        return live[0] if live else 0

    def get_expiry(self, key: str) -> float:
        now = self.clock()
        live = self.repo.get(key, now)
        return live[1] if live else now

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        return self.repo.purge()

    def clear(self, key: str) -> None:
        self.repo.clear(key)

    def purge_expired(self) -> int:
        """Delete counters whose window has ended (they are ignored anyway; this keeps the table small)."""
        return self.repo.purge(before=self.clock())


def rate_limiter(session: Session, clock: Clock = time.time) -> FixedWindowRateLimiter:
    """A fixed-window rate limiter whose counters every process shares."""
    return FixedWindowRateLimiter(DatabaseStorage(session, clock))


def per_seconds(amount: int, seconds: int, namespace: str = "LEVQOR") -> RateLimitItem:
    """``amount`` hits per window of ``seconds``."""
    return RateLimitItemPerSecond(amount, multiples=max(1, seconds), namespace=namespace)


def purge_expired() -> None:
    """Delete the counters whose window has ended (ignored anyway; this keeps the table small)."""
    with session_scope() as session:
        DatabaseStorage(session).purge_expired()


SCHEDULES = [Schedule("ratelimit.purge", 3600.0, purge_expired)]
