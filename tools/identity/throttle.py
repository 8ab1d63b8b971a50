"""Sign-in throttling: failed passwords counted per account and per IP address, with growing lockouts.

Counters are ``limits`` fixed windows in the shared database table (``tools/shared/ratelimit.py``),
so every API process sees the same counts. ``LEVQOR_LOGIN_MAX_FAILURES`` wrong passwords for one
email (known or not: the answer never tells which) or ``LEVQOR_LOGIN_MAX_FAILURES_PER_IP`` failures
from one address within ``LEVQOR_LOGIN_WINDOW_S`` lock that account or address: further attempts
are refused without checking the password until the lock ends. The first lock lasts
``LEVQOR_LOGIN_LOCKOUT_S``, and each further lock of the same account or address within a day
doubles it, up to ``LEVQOR_LOGIN_LOCKOUT_MAX_S``. A successful sign-in clears the account's
failures and lock history (not the address's: one's own account must not reset an attacker's
count). Every count is written in the caller's session, which must commit after a failure too.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.orm import Session

from levqor.settings import get_settings
from tools.shared.ratelimit import Clock, DatabaseStorage, per_seconds, rate_limiter

Scope = Literal["account", "ip"]
STRIKE_MEMORY_S = 86_400  # lockouts within this long make the next one longer
NAMESPACE = "LEVQOR_LOGIN"


@dataclass(frozen=True)
class Lockout:
    """An account or address refused sign-ins for ``retry_after`` more seconds."""

    scope: Scope
    retry_after: int
    duration_s: int = 0  # set when this lock has just started
    strike: int = 0


class LoginThrottle:
    """The sign-in limits for one request, in its session (``clock`` for tests)."""

    def __init__(self, session: Session, clock: Clock = time.time) -> None:
        self.settings = get_settings()
        self.storage = DatabaseStorage(session, clock)
        self.limiter = rate_limiter(session, clock)
        self.clock = clock

    def _ids(self, email: str, ip: str) -> tuple[tuple[Scope, str], ...]:
        return (("account", email.strip().lower()), ("ip", ip))

    def _lock_key(self, scope: Scope, ident: str) -> str:
        return f"{NAMESPACE}/lock/{scope}/{ident}"

    def _strike_key(self, scope: Scope, ident: str) -> str:
        return f"{NAMESPACE}/strikes/{scope}/{ident}"

    def _failures(self, scope: Scope) -> int:
        s = self.settings
        return s.login_max_failures if scope == "account" else s.login_max_failures_per_ip

    def locked(self, email: str, ip: str) -> Lockout | None:
        """The longest lock on this account or address now, if any."""
        longest: Lockout | None = None
        for scope, ident in self._ids(email, ip):
            key = self._lock_key(scope, ident)
            if self.storage.get(key) > 0:
                left = max(1, math.ceil(self.storage.get_expiry(key) - self.clock()))
                if longest is None or left > longest.retry_after:
                    longest = Lockout(scope, left)
        return longest

    def failed(self, email: str, ip: str) -> list[Lockout]:
        """Count a failed sign-in; the locks it starts (account, address or both)."""
        started: list[Lockout] = []
        s = self.settings
        for scope, ident in self._ids(email, ip):
            item = per_seconds(self._failures(scope), s.login_window_s, NAMESPACE)
            self.limiter.hit(item, scope, ident)
            if self.limiter.test(item, scope, ident):
                continue
            strike = self.storage.incr(self._strike_key(scope, ident), STRIKE_MEMORY_S)
            duration = int(min(s.login_lockout_max_s, s.login_lockout_s * 2 ** min(strike - 1, 30)))
            lock = self._lock_key(scope, ident)
            self.storage.clear(lock)
            self.storage.incr(lock, duration)
            self.limiter.clear(item, scope, ident)  # counting starts again when the lock ends
            started.append(Lockout(scope, duration, duration, strike))
        return started

    def succeeded(self, email: str) -> None:
        """A correct password: forget the account's failures and lock history."""
        ident = email.strip().lower()
        item = per_seconds(self.settings.login_max_failures, self.settings.login_window_s, NAMESPACE)
        self.limiter.clear(item, "account", ident)
        self.storage.clear(self._strike_key("account", ident))
