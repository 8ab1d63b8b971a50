"""What runs on a clock: schedule declarations, agent-run requests, and the scheduler's lease and ticks.

Features declare their schedules in their own module (``SCHEDULES``, or ``schedules()`` when the
interval is a setting); the loops edge (``workers.wiring``) collects them and the leading scheduler
runs each tick once across the platform. A scheduled function never starts an agent itself: it returns
:class:`RunRequest` decisions, and the edge starts those runs.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from memory.db import aware, utcnow
from memory.leases.repository import LeaseRepository
from memory.scheduler.repository import TickRepository

SCHEDULER_LEASE = "scheduler"
RECOVER_WITHIN = dt.timedelta(days=1)  # an unfinished tick older than this is not run again

# The tick being run in this thread: ``TICK.job``, ``TICK.slot`` and ``TICK.epoch`` (the lease's fencing
# token), set by the scheduler edge around each scheduled function.
TICK = threading.local()


def current_tick() -> str | None:
    """``"<job>:<slot>"`` of the scheduler tick this thread runs, or None (not on the scheduler): a key
    that makes a tick's effects happen once even when a successor re-runs a tick its leader left unfinished."""
    job, slot = getattr(TICK, "job", None), getattr(TICK, "slot", None)
    return f"{job}:{slot}" if job is not None and slot is not None else None


@dataclass(frozen=True)
class RunRequest:
    """A decision that agent ``agent`` should run now for ``org_id``; the edge starts it."""

    agent: str
    org_id: int
    trigger: str = "schedule"
    input: dict[str, Any] = field(default_factory=dict)
    requested_by: str | None = None


@dataclass(frozen=True)
class Schedule:
    """``run`` every ``every`` seconds, or on ``"cron:<crontab>"`` (UTC), on the leading scheduler only."""

    name: str
    every: float | str
    run: Callable[[], Sequence[RunRequest] | None]


def lead(session: Session, holder: str, ttl_s: float) -> int | None:
    """Take or renew the scheduler lease for ``holder``; its epoch (fencing token), or None."""
    return LeaseRepository(session).try_acquire(SCHEDULER_LEASE, holder, ttl_s)


def step_down(session: Session, holder: str) -> None:
    """Release the scheduler lease (a clean stop hands over at once)."""
    LeaseRepository(session).release(SCHEDULER_LEASE, holder)


def claim_tick(session: Session, name: str, slot: int, holder: str, ttl_s: float, *,
               take_over: bool = False) -> int | None:
    """Renew our lease and claim tick ``(name, slot)`` in one transaction; the epoch, or None when not
    leading or when the tick already ran elsewhere. With ``take_over``, claim instead a tick an earlier
    leader claimed and never completed (it died mid-tick): only one successor gets it."""
    epoch = lead(session, holder, ttl_s)
    if epoch is None:
        return None
    repo = TickRepository(session)
    claimed = repo.take_over(name, slot, holder, epoch) if take_over else repo.claim(name, slot, holder, epoch)
    return epoch if claimed else None


def complete_tick(session: Session, name: str, slot: int, holder: str, epoch: int) -> bool:
    """Record that tick ``(name, slot)`` finished (if ``holder`` still holds it at ``epoch``)."""
    return TickRepository(session).complete(name, slot, holder, epoch)


def unfinished_ticks(session: Session, epoch: int, ttl_s: float, names: list[str]) -> list[tuple[str, int]]:
    """``(job, slot)`` of the ticks of ``names`` that a leader before ``epoch`` claimed and never finished
    (it died mid-tick: its lease, renewed at the claim, expired since), in the order they started."""
    now = utcnow()
    return [(t.job, t.slot) for t in TickRepository(session).unfinished(
        epoch, now - dt.timedelta(seconds=ttl_s), now - RECOVER_WITHIN, names)]


@dataclass(frozen=True)
class Failover:
    """Ticks a dead leader left: still unfinished (``left``) or re-run by its successor lately (``taken``),
    as ``job:slot``, and when the earliest of them started."""

    left: list[str]
    taken: list[str]
    since: dt.datetime | None


def failover(session: Session, ttl_s: float, window_s: float) -> Failover:
    """What the monitor sees of a scheduler leader that died mid-tick: its unfinished ticks (claimed by
    a holder that no longer holds the lease, over ``ttl_s`` ago) and the ticks taken over in the last
    ``window_s`` seconds."""
    now = utcnow()
    lease = LeaseRepository(session).get(SCHEDULER_LEASE)
    live = lease.holder if lease is not None and aware(lease.expires_at) > now else None
    repo = TickRepository(session)
    left = [t for t in repo.unfinished(2**31 - 1, now - dt.timedelta(seconds=ttl_s), now - RECOVER_WITHIN)
            if t.holder != live]
    taken = repo.taken_over_since(now - dt.timedelta(seconds=window_s))
    starts = [aware(t.started_at) for t in left + taken]
    return Failover([f"{t.job}:{t.slot}" for t in left], [f"{t.job}:{t.slot}" for t in taken],
                    min(starts) if starts else None)
