"""The sign-in throttle with a clock the test moves: lockouts double per strike up to the cap, a
success forgets the account's strikes, and the address is counted apart from the account."""

from __future__ import annotations

import uuid

from memory.db import session_scope
from tools.identity.throttle import LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


def _fail(clock: Clock, email: str, ip: str, times: int) -> list[tuple[str, int]]:
    started = []
    for _ in range(times):
        with session_scope() as s:
            started += [(lock.scope, lock.duration_s) for lock in LoginThrottle(s, clock).failed(email, ip)]
    return started


def _locked(clock: Clock, email: str, ip: str) -> int | None:
    with session_scope() as s:
        lock = LoginThrottle(s, clock).locked(email, ip)
        return lock.retry_after if lock else None


def test_lockouts_double_up_to_the_cap_and_a_success_forgets_them(set_settings) -> None:
    set_settings(login_max_failures=3, login_max_failures_per_ip=1000, login_lockout_s=30,
                 login_lockout_max_s=100, login_window_s=600)
    clock, email = Clock(), f"u-{uuid.uuid4().hex[:8]}@example.com"
    ip = f"192.0.2.{uuid.uuid4().int % 250}"
    assert _fail(clock, email, ip, 2) == [] and _locked(clock, email, ip) is None
    assert _fail(clock, email, ip, 1) == [("account", 30)]
    assert _locked(clock, email, ip) == 30
    clock.now += 29.5
    assert _locked(clock, email, ip) == 1
    for expected in (60, 100, 100):  # doubled, then capped
        clock.now += 101  # past any lock
        assert _locked(clock, email.upper(), ip) is None
        assert _fail(clock, email, ip, 3) == [("account", expected)]
    clock.now += 101
    with session_scope() as s:
        LoginThrottle(s, clock).succeeded(email)
    assert _fail(clock, email, ip, 3) == [("account", 30)]  # back to the first lockout


def test_failures_outside_the_window_do_not_add_up(set_settings) -> None:
    set_settings(login_max_failures=3, login_max_failures_per_ip=1000, login_window_s=60, login_lockout_s=30)
    clock, email, ip = Clock(), f"w-{uuid.uuid4().hex[:8]}@example.com", "198.51.100.7"
    assert _fail(clock, email, ip, 2) == []
    clock.now += 61
    assert _fail(clock, email, ip, 2) == []
    assert _fail(clock, email, ip, 1) == [("account", 30)]


def test_the_address_is_locked_apart_from_the_accounts(set_settings) -> None:
    set_settings(login_max_failures=50, login_max_failures_per_ip=3, login_lockout_s=20)
    clock, ip = Clock(), f"203.0.113.{uuid.uuid4().int % 250}"
    emails = [f"s{i}-{uuid.uuid4().hex[:6]}@example.com" for i in range(3)]
    started = [lock for e in emails for lock in _fail(clock, e, ip, 1)]
    assert started == [("ip", 20)]
    fresh = f"f-{uuid.uuid4().hex[:6]}@example.com"
    assert _locked(clock, fresh, ip) == 20
    assert _locked(clock, fresh, "203.0.113.251") is None
