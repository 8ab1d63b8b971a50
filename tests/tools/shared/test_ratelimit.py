"""The ``limits`` storage over the database: fixed windows shared by every session (so every
process), expiry from an injectable clock, clear and purge."""

from __future__ import annotations

import uuid

from limits.strategies import FixedWindowRateLimiter

from memory.db import session_scope
from tools.shared.ratelimit import DatabaseStorage, per_seconds, rate_limiter


class Clock:
    def __init__(self) -> None:
        self.now = 2_000_000_000.0

    def __call__(self) -> float:
        return self.now


def test_counters_are_fixed_windows_shared_across_sessions() -> None:
    clock, key = Clock(), f"test/{uuid.uuid4().hex}"
    item = per_seconds(3, 60)
    for expected in (True, True, True, False):
        with session_scope() as s:  # each hit in its own transaction, as separate processes would
            assert rate_limiter(s, clock).hit(item, key) is expected
    with session_scope() as s:
        limiter = rate_limiter(s, clock)
        assert isinstance(limiter, FixedWindowRateLimiter)
        assert limiter.test(item, key) is False
        stats = limiter.get_window_stats(item, key)
        assert stats.remaining == 0 and stats.reset_time == clock.now + 60
    clock.now += 60  # the window ends: counting starts again
    with session_scope() as s:
        limiter = rate_limiter(s, clock)
        assert limiter.test(item, key) is True
        assert limiter.hit(item, key) is True
        assert limiter.get_window_stats(item, key).reset_time == clock.now + 60


def test_clear_and_purge() -> None:
    clock, key = Clock(), f"test/{uuid.uuid4().hex}"
    with session_scope() as s:
        storage = DatabaseStorage(s, clock)
        assert storage.incr(key, 10) == 1 and storage.incr(key, 10, amount=4) == 5
        assert storage.get(key) == 5 and storage.get_expiry(key) == clock.now + 10
        storage.clear(key)
        assert storage.get(key) == 0 and storage.get_expiry(key) == clock.now
        storage.incr(key, 10)
        storage.incr(key + "/long", 1000)
    clock.now += 11
    with session_scope() as s:
        storage = DatabaseStorage(s, clock)
        assert storage.purge_expired() >= 1
        assert storage.get(key + "/long") == 1
