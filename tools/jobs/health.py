"""Worker health, read from the heartbeats on the worker rows: healthy, draining or stale."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from levqor.settings import get_settings
from memory.db import utcnow
from memory.jobs.models import Worker
from memory.jobs.repository import WorkerRepository


def stale_after() -> dt.timedelta:
    """How long without a heartbeat makes a worker stale: a lease period, at least three seconds."""
    return dt.timedelta(seconds=max(3.0, float(get_settings().job_lease_s)))


def health(w: Worker, now: dt.datetime) -> str:
    if now - w.heartbeat_at > stale_after():
        return "stale"
    return "draining" if w.state == "draining" else "healthy"


def worker_health(session: Session) -> dict[str, int]:
    """Registered workers counted by health."""
    now = utcnow()
    out: dict[str, int] = {}
    for w in WorkerRepository(session).all():
        h = health(w, now)
        out[h] = out.get(h, 0) + 1
    return out
