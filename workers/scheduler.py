"""``levqor scheduler``: lead while holding the scheduler lease, and run each tick once across leaders.

The schedules come from the features (``workers.wiring.schedules``). Each tick ``(job, slot)`` is
claimed in the database together with a renewal of the lease, so a tick runs once even when two
schedulers overlap; the lease's epoch is the fencing token of the tick (``TICK.epoch``). A tick is
marked complete when its work finished; a leader that takes the lease over re-runs, once, each tick its
predecessor claimed and never completed (killed mid-tick), under that tick's slot (``TICK.slot``, and
``tools.schedules.current_tick`` for effects that must happen once per tick). A scheduled
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
from levqor.db_outage import is_unavailable
from levqor.metrics import start_process
from levqor.settings import get_settings
from memory.db import session_scope
from tools.schedules import TICK, RunRequest, Schedule, claim_tick, complete_tick, lead, step_down, unfinished_ticks
from workers import wiring
from workers.process import stop_on_signals

log = logging.getLogger("levqor.process")

__all__ = ["TICK", "run_scheduler", "run_scheduled", "start_requested"]
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


def _claim_tick(name: str, slot: int, holder: str, ttl: float, *, take_over: bool = False) -> int | None:
    with session_scope() as session:
        return claim_tick(session, name, slot, holder, ttl, take_over=take_over)


def _complete_tick(name: str, slot: int, holder: str, epoch: int) -> None:
    try:
        with session_scope() as session:
            complete_tick(session, name, slot, holder, epoch)
    except Exception as exc:  # the tick stays unfinished: a later leader runs it again (its effects are keyed)
        if is_unavailable(exc):
            return
        log.exception("could not record a finished scheduler tick", extra={"fields": {"job": name, "slot": slot}})


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

    def tick(job: Schedule, slot: int, *, take_over: bool = False) -> None:
        """Claim tick ``(job, slot)`` (or take it over), run it, record it finished."""
        try:
            epoch = _claim_tick(job.name, slot, holder, ttl, take_over=take_over)
        except Exception as exc:
            if not is_unavailable(exc):  # an outage is logged once, by levqor.db_outage
                log.exception("could not claim a scheduler tick", extra={"fields": {"job": job.name}})
            return
        if epoch is None:  # not leading any more, or this tick already ran elsewhere
            return
        if take_over:
            log.warning("re-running a tick its leader left unfinished",
                        extra={"fields": {"job": job.name, "slot": slot, "epoch": epoch}})
        TICK.job, TICK.slot, TICK.epoch = job.name, slot, epoch
        try:
            run_scheduled(job)
        except Exception as exc:
            if not is_unavailable(exc):
                log.exception("scheduled job failed", extra={"fields": {"job": job.name}})
        finally:
            TICK.job = TICK.slot = TICK.epoch = None
        if job.name in s.chaos_tick_pause:
            stop.wait(s.chaos_tick_pause[job.name])
        _complete_tick(job.name, slot, holder, epoch)

    def guarded(job: Schedule) -> Callable[[], None]:
        def run() -> None:
            if leading.is_set():
                tick(job, _slot(job.every))
        return run

    def recover(epoch: int) -> None:
        """Re-run (once, on the scheduler's threads) each tick a dead leader left unfinished."""
        try:
            with session_scope() as session:
                left = unfinished_ticks(session, epoch, ttl, list(by_name))
        except Exception:
            log.exception("could not read unfinished scheduler ticks")
            return
        for name, slot in left:
            sched.add_job(tick, args=(by_name[name], slot), kwargs={"take_over": True},
                          id=f"recover:{name}:{slot}", replace_existing=True)

    by_name: dict[str, Schedule] = {}
    for job in jobs:
        if job.name in by_name:
            continue
        by_name[job.name] = job
        sched.add_job(guarded(job), _trigger(job.every), id=job.name, max_instances=1, coalesce=True)
    sched.start()
    log.info("scheduler started", extra={"fields": {"holder": holder}})
    while not stop.is_set():
        try:
            with session_scope() as session:
                epoch = lead(session, holder, ttl)
        except Exception as exc:
            if not is_unavailable(exc):  # in an outage it stands by (below) until the database answers
                log.exception("scheduler lease check failed")
            epoch = None
        if epoch is not None and not leading.is_set():
            log.info("scheduler leading", extra={"fields": {"holder": holder, "epoch": epoch}})
            leading.set()
            recover(epoch)
        elif epoch is None and leading.is_set():
            log.warning("scheduler lost the lease; standing by")
            leading.clear()
        stop.wait(s.scheduler_renew_s or ttl / 3)
    sched.shutdown(wait=True)
    if leading.is_set():
        with session_scope() as session:
            step_down(session, holder)
    log.info("scheduler stopped")
