"""Usage tiers: per-key and per-organisation rate limits and the monthly quota, and usage metering.

The limits of each plan are ``LEVQOR_API_TIERS`` (``levqor/settings.py``). Every request made with an
API key on ``/v1`` goes through :meth:`TierLimiter.check` (``api/tiers.py``), which answers from this
process's memory, with no database round trip on the hot path:

- **Per second** (per key, per organisation): exact fixed one-second windows counted in this process.
  With N API processes behind a balancer an organisation can get up to N x its per-second limit
  (each process enforces it alone); with one process it is exact.
- **Per day** (UTC day, per key and per organisation) and **per month** (UTC calendar month, per
  organisation, the quota): this process's own hits plus the total all processes had written when it
  last synced. Every ``LEVQOR_RATE_LIMIT_SYNC_S`` a background thread adds the process's new hits to
  the shared counters (``rate_limit_counters`` through the ``limits`` storage of
  ``tools/shared/ratelimit.py``: one atomic upsert per counter, which returns the new total) and reads
  the totals back. Hits the other processes made since their last sync are unseen, so N processes
  overshoot a day limit or the quota by at most (N - 1) x the per-second limit x the sync interval.
- **Usage** (per organisation, UTC day, key, mode, method, route template): counted in memory and
  added to ``api_usage`` rows in the same sync, one upsert per row.

A counter this process has not seen yet (a new key, a new day, a restart) is read once, with the
organisation's plan, before the first request is answered; plans are re-read at every sync.
Refused requests do not count towards the limits (they are metered as ``refused``).
"""

from __future__ import annotations

import calendar
import datetime as dt
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from levqor.db_outage import is_unavailable
from levqor.settings import ApiTier, get_settings
from memory.db import session_scope
from memory.identity.models import Organization
from memory.usage.repository import UsageDelta, UsageRepository
from tools.context import Principal
from tools.errors import RateLimited
from tools.shared.ratelimit import Clock, DatabaseStorage

__all__ = ["Decision", "Limit", "TierLimiter", "limiter", "tier_for"]

log = logging.getLogger("levqor.tiers")
DAY_S = 86400
# A shared counter outlives its window by this much, so that a late sync still finds it (then it is purged).
COUNTER_SLACK_S = 3600
# A counter this process has not used for this long is no longer refreshed at each sync: it is read again
# (one round trip) at its next use.
IDLE_S = 60.0


def tier_for(plan: str) -> ApiTier:
    """The limits of ``plan`` (an unknown plan gets the free tier)."""
    tiers = get_settings().api_tiers
    return tiers.get(plan) or tiers["free"]


class Limit(NamedTuple):
    """One limit as seen by one request: its name, size, window, what is left and when it resets."""

    name: str  # key_per_second | org_per_second | key_per_day | org_per_day | org_per_month
    limit: int
    window_s: int
    used: int  # before this request
    reset_at: float  # Unix seconds

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    def reset_in(self, now: float) -> int:
        """Whole seconds until the window ends (at least 1)."""
        return max(1, math.ceil(self.reset_at - now))


@dataclass(frozen=True)
class Decision:
    """The outcome of one check: every limit, the one the headers report, and the broken one if refused."""

    limits: tuple[Limit, ...]
    reported: Limit
    broken: Limit | None
    now: float

    def headers(self) -> dict[str, str]:
        """``RateLimit-Limit/-Remaining/-Reset`` of the limit nearest exhaustion, ``RateLimit-Policy`` of
        all (draft-ietf-httpapi-ratelimit-headers, delta-seconds); ``Retry-After`` when refused."""
        r = self.reported
        remaining = r.remaining if self.broken is not None else max(0, r.remaining - 1)
        out = {
            "RateLimit-Limit": str(r.limit),
            "RateLimit-Remaining": str(remaining),
            "RateLimit-Reset": str(r.reset_in(self.now)),
            "RateLimit-Policy": _policy(self.limits),
        }
        if self.broken is not None:
            out["Retry-After"] = str(self.broken.reset_in(self.now))
        return out

    def error(self) -> RateLimited:
        """The 429 problem for a refused request: which limit, its size, when it resets."""
        b = self.broken
        assert b is not None
        wait = b.reset_in(self.now)
        reset = dt.datetime.fromtimestamp(b.reset_at, dt.UTC).isoformat().replace("+00:00", "Z")
        what = {"key_per_second": "this API key's requests per second",
                "org_per_second": "your organisation's requests per second",
                "key_per_day": "this API key's requests per day (UTC)",
                "org_per_day": "your organisation's requests per day (UTC)",
                "org_per_month": "your organisation's monthly request quota"}[b.name]
        more = " Upgrade the plan for a larger quota." if b.name == "org_per_month" else ""
        return RateLimited(
            f"rate limit reached: {what} ({b.limit}); it resets at {reset}, retry in {wait} s.{more}",
            extra={"limit": b.name, "allowed": b.limit, "window_s": b.window_s, "reset_at": reset,
                   "retry_after_s": wait},
            headers=self.headers(),
        )


_policies: dict[tuple[tuple[int, int, str], ...], str] = {}


def _policy(limits: tuple[Limit, ...]) -> str:
    """``RateLimit-Policy``: every limit as ``limit;w=window;comment="name"`` (a few distinct values: cached)."""
    shape = tuple((lim.limit, lim.window_s, lim.name) for lim in limits)
    text = _policies.get(shape)
    if text is None:
        text = ", ".join(f'{n};w={w};comment="{name}"' for n, w, name in shape)
        if len(_policies) < 1024:
            _policies[shape] = text
    return text


class _Day(NamedTuple):
    """A UTC day's calendar facts, computed once per day and process."""

    number: int  # days since the epoch
    date: dt.date
    end: float
    month: int  # yyyymm
    month_start: float
    month_end: float


_day_cache: list[_Day] = []


def _day(now: float) -> _Day:
    number = int(now // DAY_S)
    if _day_cache and _day_cache[0].number == number:
        return _day_cache[0]
    d = dt.datetime.fromtimestamp(number * DAY_S, dt.UTC)
    start = dt.datetime(d.year, d.month, 1, tzinfo=dt.UTC).timestamp()
    days = calendar.monthrange(d.year, d.month)[1]
    out = _Day(number, d.date(), float((number + 1) * DAY_S), d.year * 100 + d.month, start, start + days * DAY_S)
    _day_cache[:] = [out]
    return out


UsageKey = tuple[int, dt.date, str, str, str, str]  # org, day, key prefix, mode, method, route


class TierLimiter:
    """The process's limiter: in-memory windows, counters synced to the database in batches.

    ``clock`` (Unix seconds) is injectable for tests; :meth:`sync` may be called at any time (tests do,
    the background thread does every ``LEVQOR_RATE_LIMIT_SYNC_S``)."""

    def __init__(self, clock: Clock = time.time) -> None:
        self.clock = clock
        self._lock = threading.Lock()  # the state below
        self._sync_lock = threading.Lock()  # one sync at a time
        self._second: dict[str, tuple[int, int]] = {}  # "k:prefix" | "o:org" -> (second, count)
        # Shared counters by their key in rate_limit_counters: total written by all processes at the last
        # sync, this process's hits not yet written, those being written now, and when the counter expires.
        self._known: dict[str, int] = {}
        self._pending: dict[str, int] = {}
        self._inflight: dict[str, int] = {}
        self._expires: dict[str, float] = {}
        self._seen_at: dict[str, float] = {}  # when this process last hit (or loaded) the counter
        self._plans: dict[int, str] = {}
        self._keys: dict[str, tuple[int, tuple[tuple[str, float], ...]]] = {}  # key prefix -> (day, counters)
        self._usage: dict[UsageKey, list[int]] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # -- the hot path ------------------------------------------------------------------------------

    def counter_keys(self, principal: Principal, now: float) -> tuple[tuple[str, float], ...]:
        """The shared counters of a request and when their windows end: key per day, organisation per
        day, organisation per month."""
        d = _day(now)
        cached = self._keys.get(principal.id)
        if cached is not None and cached[0] == d.number:
            return cached[1]
        keys = ((f"tier:k:{principal.id}:d{d.number}", d.end), (f"tier:o:{principal.org_id}:d{d.number}", d.end),
                (f"tier:o:{principal.org_id}:m{d.month}", d.month_end))
        if len(self._keys) > 100_000:
            self._keys.clear()
        self._keys[principal.id] = (d.number, keys)
        return keys

    def needs_load(self, principal: Principal, now: float) -> bool:
        """Whether :meth:`load` must run before :meth:`check` (an unseen counter or organisation)."""
        if principal.org_id not in self._plans:
            return True
        return any(k not in self._known for k, _ in self.counter_keys(principal, now))

    def load(self, session: Session, principal: Principal, now: float) -> None:
        """Read the organisation's plan and the request's shared counters (first sight in this process)."""
        org_id = principal.org_id
        assert org_id is not None
        plan = session.execute(select(Organization.plan).where(Organization.id == org_id)).scalar_one_or_none()
        storage = DatabaseStorage(session, lambda: now)
        values = {k: (storage.get(k), exp) for k, exp in self.counter_keys(principal, now)}
        with self._lock:
            self._plans[org_id] = plan or "free"
            for k, (v, exp) in values.items():
                if k not in self._known:
                    self._known[k] = v
                    self._expires[k] = exp
                    self._seen_at[k] = now
        self._start_thread()

    def check(self, principal: Principal, *, method: str, route: str) -> Decision:
        """Count the request if every limit allows it; the decision (``broken`` set when refused)."""
        now = self.clock()
        org_id = principal.org_id
        assert org_id is not None
        tier = tier_for(self._plans.get(org_id, "free"))
        second = int(now)
        day = _day(now)
        (kd, day_end), (od, _), (om, month_end) = counters = self.counter_keys(principal, now)
        sk, so = f"k:{principal.id}", f"o:{org_id}"
        with self._lock:
            ks, os_ = self._second.get(sk), self._second.get(so)
            key_sec = ks[1] if ks and ks[0] == second else 0
            org_sec = os_[1] if os_ and os_[0] == second else 0
            limits = (
                Limit("key_per_second", tier.key_per_second, 1, key_sec, second + 1),
                Limit("org_per_second", tier.org_per_second, 1, org_sec, second + 1),
                Limit("key_per_day", tier.key_per_day, DAY_S, self._total(kd), day_end),
                Limit("org_per_day", tier.org_per_day, DAY_S, self._total(od), day_end),
                Limit("org_per_month", tier.org_per_month, int(month_end - day.month_start), self._total(om),
                      month_end),
            )
            broken = None
            for lim in limits:  # the one that resets last, if several are reached
                if lim.used >= lim.limit and (broken is None or lim.reset_at > broken.reset_at):
                    broken = lim
            if broken is None:
                self._second[sk] = (second, key_sec + 1)
                self._second[so] = (second, org_sec + 1)
                for k, expires in counters:
                    self._pending[k] = self._pending.get(k, 0) + 1
                    self._expires[k] = expires
            ukey = (org_id, day.date, principal.id,
                    principal.key_mode or "live", method, route)
            counts = self._usage.get(ukey)
            if counts is None:
                counts = self._usage[ukey] = [0, 0]
            counts[0 if broken is None else 1] += 1
        reported = broken
        if reported is None:  # the limit nearest exhaustion; on a tie the shorter window (the first)
            reported = limits[0]
            for lim in limits[1:]:
                if lim.limit - lim.used < reported.limit - reported.used:
                    reported = lim
        return Decision(limits, reported, broken, now)

    def _total(self, key: str) -> int:
        return self._known.get(key, 0) + self._pending.get(key, 0) + self._inflight.get(key, 0)

    # -- the batches ----------------------------------------------------------------------------------

    def sync(self) -> None:
        """Write this process's new hits and usage to the database and read the shared totals back."""
        with self._sync_lock:
            now = self.clock()
            with self._lock:
                batch, self._pending = self._pending, {}
                for k, n in batch.items():
                    self._inflight[k] = self._inflight.get(k, 0) + n
                usage, self._usage = self._usage, {}
                for k in batch:
                    self._seen_at[k] = now
                # Counters this process used lately are refreshed (the others' hits); idle ones are
                # forgotten below and read again at their next use.
                live = [k for k, exp in self._expires.items()
                        if exp > now and k not in batch and now - self._seen_at.get(k, now) < IDLE_S]
                orgs = list(self._plans)
            try:
                totals: dict[str, int] = {}
                with session_scope() as session:
                    storage = DatabaseStorage(session, lambda: now)
                    for k, n in batch.items():
                        expiry = max(1, int(self._expires.get(k, now + DAY_S) - now) + COUNTER_SLACK_S)
                        totals[k] = storage.incr(k, expiry, n)
                    shared = storage.repo.get_many(live, now)
                    totals.update({k: shared.get(k, 0) for k in live})
                    UsageRepository.from_session(session).add(
                        UsageDelta(org_id=o, day=d, key_prefix=p, mode=m, method=me, route=r,
                                   requests=c[0], refused=c[1])
                        for (o, d, p, m, me, r), c in usage.items())
                    plans = dict(session.execute(
                        select(Organization.id, Organization.plan).where(Organization.id.in_(orgs))).tuples().all()) \
                        if orgs else {}
            except Exception as exc:
                if not is_unavailable(exc):  # an outage is logged once, by levqor.db_outage
                    log.exception("rate-limit sync failed; its counts are kept for the next one")
                with self._lock:
                    for k, n in batch.items():
                        self._inflight[k] -= n
                        self._pending[k] = self._pending.get(k, 0) + n
                    for uk, c in usage.items():
                        mine = self._usage.setdefault(uk, [0, 0])
                        mine[0] += c[0]
                        mine[1] += c[1]
                raise
            with self._lock:
                for k, n in batch.items():
                    self._inflight[k] -= n
                    if not self._inflight[k]:
                        del self._inflight[k]
                self._known.update(totals)
                self._plans.update(plans)
                self._prune(now)

    def _prune(self, now: float) -> None:
        """Forget windows that have ended (their counters expire in the table on their own) and counters
        idle here for ``IDLE_S`` (read again at their next use, so what other processes added is seen)."""
        for k in [k for k, exp in self._expires.items() if exp <= now or now - self._seen_at.get(k, now) >= IDLE_S]:
            if k not in self._pending and k not in self._inflight:
                self._expires.pop(k, None)
                self._known.pop(k, None)
                self._seen_at.pop(k, None)
        second = int(now)
        for k in [k for k, (s, _) in self._second.items() if s < second]:
            del self._second[k]

    def reset(self) -> None:
        """Forget everything this process knows and has not written (tests: a fresh process)."""
        with self._sync_lock, self._lock:
            self._second.clear()
            self._known.clear()
            self._pending.clear()
            self._inflight.clear()
            self._expires.clear()
            self._seen_at.clear()
            self._plans.clear()
            self._keys.clear()
            self._usage.clear()

    def _start_thread(self) -> None:
        if self._thread is not None or get_settings().rate_limit_sync_s <= 0:
            return
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="levqor-tiers-sync", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(max(0.05, get_settings().rate_limit_sync_s)):
            try:
                self.sync()
            except Exception:  # logged in sync; the next round retries
                pass

    def stop(self) -> None:
        """Stop the background thread, then write what is left (the app's shutdown)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)
        self._stop = threading.Event()
        try:
            self.sync()
        except Exception:
            pass


limiter = TierLimiter()
