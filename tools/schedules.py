"""What runs on a clock: schedule declarations, agent-run requests, and the scheduler's lease and ticks.

Features declare their schedules in their own module (``SCHEDULES``, or ``schedules()`` when the
interval is a setting); the loops edge (``workers.wiring``) collects them and the leading scheduler
runs each tick once across the platform. A scheduled function never starts an agent itself: it returns
:class:`RunRequest` decisions, and the edge starts those runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from memory.leases.repository import LeaseRepository
from memory.scheduler.repository import TickRepository

SCHEDULER_LEASE = "scheduler"


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


def claim_tick(session: Session, name: str, slot: int, holder: str, ttl_s: float) -> int | None:
    """Renew our lease and claim tick ``(name, slot)`` in one transaction; the epoch, or None when not
    leading or when the tick already ran elsewhere."""
    epoch = lead(session, holder, ttl_s)
    if epoch is None or not TickRepository(session).claim(name, slot, holder, epoch):
        return None
    return epoch
