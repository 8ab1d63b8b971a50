"""``levqor scheduler``: lead while holding the scheduler lease, and run each tick once across leaders.

The schedules come from the features (``workers.wiring.schedules``). Each tick ``(job, slot)`` is
claimed in the database together with a renewal of the lease, so a tick runs once even when two
schedulers overlap; the lease's epoch is the fencing token of the tick (``TICK.epoch``). A scheduled
function that decides an agent should run returns :class:`RunRequest` decisions, and they are started
here, after its own work has committed.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from agents.runtime import start_run
from levqor.metrics import start_process
from levqor.settings import get_settings
from memory.db import session_scope
from tools.schedules import RunRequest, Schedule, claim_tick, lead, step_down
from workers import wiring
from workers.process import stop_on_signals

log = logging.getLogger("levqor.process")

# The tick being run in this thread: ``TICK.slot`` and ``TICK.epoch`` (the lease's fencing token).
TICK = threading.local()
_SLOT_BASE = 946684800.0  # 2000-01-01 UTC: interval ticks fire at BASE + k * interval, slot k


def _trigger(every: float | str) -> Any:
    from apscheduler.triggers.cron import CronTrigger  # kept lazy: only the scheduler needs APScheduler
    from apscheduler.triggers.interval import IntervalTrigger

    if isinstance(every, str):
        return CronTrigger.from_crontab(every.removeprefix("cron:").strip(), timezone="UTC")
    start = dt.datetime.fromtimestamp(_SLOT_BASE, dt.UTC)
    return IntervalTrigger(seconds=every, start_date=start, timezone="UTC")


def _slot(every: float | str) -> int:
    seconds = 60.0 if isinstance(every, str) else every
    return int((time.time() - _SLOT_BASE + seconds / 4) // seconds)


def _claim_tick(name: str, slot: int, holder: str, ttl: float) -> int | None:
    with session_scope() as session:
        return claim_tick(session, name, slot, holder, ttl)


def start_requested(requests: Iterable[RunRequest]) -> list[int]:
    """Start the agent runs a scheduled job asked for, each on its own; their run ids."""
    ids = []
    for req in requests:
        try:
            ids.append(start_run(req.agent, req.org_id, req.trigger, input=dict(req.input),
                                 requested_by=req.requested_by))
        except Exception:
            log.exception("requested agent run failed", extra={"fields": {"agent": req.agent, "org_id": req.org_id}})
    return ids


def run_scheduled(schedule: Schedule) -> None:
    """Run one scheduled job, then start the agent runs it asked for."""
    start_requested(schedule.run() or ())


def run_scheduler(schedules: list[Schedule] | None = None) -> None:
    """Lead when holding the ``scheduler`` lease; run scheduled work only while leading."""
    from apscheduler.schedulers.background import BackgroundScheduler  # kept lazy (start-up time)

    s = get_settings()
    stop = stop_on_signals()
    start_process("scheduler")
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    leading = threading.Event()
    jobs = schedules if schedules is not None else wiring.schedules()
    sched = BackgroundScheduler(timezone="UTC")
    ttl = s.scheduler_lease_s

    def guarded(job: Schedule) -> Callable[[], None]:
        def run() -> None:
            if not leading.is_set():
                return
            slot = _slot(job.every)
            try:
                epoch = _claim_tick(job.name, slot, holder, ttl)
            except Exception:
                log.exception("could not claim a scheduler tick", extra={"fields": {"job": job.name}})
                return
            if epoch is None:  # not leading any more, or this tick already ran elsewhere
                return
            TICK.slot, TICK.epoch = slot, epoch
            try:
                run_scheduled(job)
            except Exception:
                log.exception("scheduled job failed", extra={"fields": {"job": job.name}})
        return run

    seen: set[str] = set()
    for job in jobs:
        if job.name in seen:
            continue
        seen.add(job.name)
        sched.add_job(guarded(job), _trigger(job.every), id=job.name, max_instances=1, coalesce=True)
    sched.start()
    log.info("scheduler started", extra={"fields": {"holder": holder}})
    while not stop.is_set():
        try:
            with session_scope() as session:
                epoch = lead(session, holder, ttl)
        except Exception:
            log.exception("scheduler lease check failed")
            epoch = None
        if epoch is not None and not leading.is_set():
            log.info("scheduler leading", extra={"fields": {"holder": holder, "epoch": epoch}})
            leading.set()
        elif epoch is None and leading.is_set():
            log.warning("scheduler lost the lease; standing by")
            leading.clear()
        stop.wait(s.scheduler_renew_s or ttl / 3)
    sched.shutdown(wait=True)
    if leading.is_set():
        with session_scope() as session:
            step_down(session, holder)
    log.info("scheduler stopped")
