"""Process roles: worker, scheduler, and the ``levqor up`` supervisor."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from levqor.settings import get_settings

log = logging.getLogger("levqor.process")


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handle(signum: int, _frame: object) -> None:
        log.info("stopping", extra={"fields": {"signal": signum}})
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop


# Extra loops a worker runs beside the outbox dispatcher (the jobs runtime adds its own).
WORKER_LOOPS: list[Callable[[threading.Event, int | None], None]] = []


def _jobs_loop(stop: threading.Event, concurrency: int | None) -> None:
    from tools.jobs.workers import run_jobs

    run_jobs(stop, concurrency)


WORKER_LOOPS.append(_jobs_loop)


def _hooks_loop(stop: threading.Event, concurrency: int | None) -> None:
    from tools.partner_api.hooks import run_hooks

    run_hooks(stop)


WORKER_LOOPS.append(_hooks_loop)


def run_worker(concurrency: int | None = None) -> None:
    """Run the outbox dispatcher and every registered worker loop until SIGTERM."""
    from levqor.metrics import start_process
    from tools.events.service import run_dispatcher
    from tools.registry import registry

    registry.load()
    from agents.runtime import install_event_triggers

    install_event_triggers()  # agents started by platform events (LEVQOR_AGENT_EVENT_TRIGGERS)
    stop = _stop_on_signals()
    start_process("worker")
    s = get_settings()
    threads = [threading.Thread(target=run_dispatcher, args=(stop, s.events_poll_s), name="outbox", daemon=True)]
    for loop in WORKER_LOOPS:
        threads.append(threading.Thread(target=loop, args=(stop, concurrency), name=loop.__name__, daemon=True))
    for t in threads:
        t.start()
    log.info("worker started", extra={"fields": {"pid": os.getpid()}})
    while not stop.is_set():
        stop.wait(1.0)
    for t in threads:
        t.join(timeout=30)
    log.info("worker stopped")


# Scheduled callables run by the leading scheduler: (name, seconds between runs or "cron:<crontab>",
# function). Each tick (job, time slot) is claimed in the database, so it runs once across leaders.
SCHEDULED: list[tuple[str, float | str, Callable[[], None]]] = []
# The tick being run in this thread: ``TICK.slot`` and ``TICK.epoch`` (the lease's fencing token).
TICK = threading.local()
_SLOT_BASE = 946684800.0  # 2000-01-01 UTC: interval ticks fire at BASE + k * interval, slot k


def _trigger(every: float | str) -> Any:
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    if isinstance(every, str):
        return CronTrigger.from_crontab(every.removeprefix("cron:").strip(), timezone="UTC")
    import datetime as dt

    start = dt.datetime.fromtimestamp(_SLOT_BASE, dt.UTC)
    return IntervalTrigger(seconds=every, start_date=start, timezone="UTC")


def _slot(every: float | str) -> int:
    seconds = 60.0 if isinstance(every, str) else every
    return int((time.time() - _SLOT_BASE + seconds / 4) // seconds)


def _claim_tick(name: str, slot: int, holder: str, ttl: float) -> int | None:
    """Renew our lease and claim tick ``(name, slot)`` in one transaction; the epoch, or None."""
    from memory.db import session_scope
    from memory.leases.repository import LeaseRepository
    from memory.scheduler.repository import TickRepository

    with session_scope() as session:
        epoch = LeaseRepository(session).try_acquire("scheduler", holder, ttl)
        if epoch is None or not TickRepository(session).claim(name, slot, holder, epoch):
            return None
        return epoch


def _jobs_schedule() -> None:
    from tools.jobs.triggers import schedule_tick

    schedule_tick()


def _jobs_demo_trickle() -> None:
    from tools.jobs.demo import trickle

    trickle()


SCHEDULED.append(("jobs.schedule", 10.0, _jobs_schedule))
SCHEDULED.append(("jobs.demo_trickle", 4.0, _jobs_demo_trickle))


def _partner_payouts() -> None:
    """Monthly: charge subscriptions for the new month, then pay the previous month's shares."""
    import datetime as dt

    from memory.db import session_scope, utcnow
    from tools.context import SYSTEM, ToolContext
    from tools.partner_api.payouts import period_of, run_payouts
    from tools.registry import registry

    now = utcnow()
    with session_scope() as s:
        registry.invoke("payouts.accrue_subscriptions", ToolContext(s, SYSTEM), {"period": period_of(now)})
    if get_settings().stripe_api_key:
        last = now.replace(day=1) - dt.timedelta(days=1)
        run_payouts(period_of(last))


SCHEDULED.append(("partners.payouts", "cron:0 6 1 * *", _partner_payouts))


def _pulse_probe() -> None:
    from tools.pulse.store import run_probe

    run_probe()


def _pulse_checks() -> None:
    """Daily snapshot, weekly planner, monthly PDF on the 1st: each idempotent, so checked often."""
    from tools.pulse.store import run_checks

    run_checks()


SCHEDULED.append(("pulse.probe", float(get_settings().pulse_probe_interval_s), _pulse_probe))
SCHEDULED.append(("pulse.checks", float(get_settings().pulse_check_interval_s), _pulse_checks))


def _ops_monitor() -> None:
    """The monitor graph: sample and detect, one healing step per open incident, notifications."""
    from agents.monitor.graph import run_monitor

    run_monitor()


SCHEDULED.append(("ops.monitor", float(get_settings().ops_sample_interval_s), _ops_monitor))


def _audit_checkpoint() -> None:
    from memory.db import session_scope
    from tools.enterprise.audit_log import write_checkpoint

    with session_scope() as session:
        write_checkpoint(session)


def run_scheduler() -> None:
    """Lead when holding the ``scheduler`` lease; run scheduled work only while leading."""
    from apscheduler.schedulers.background import BackgroundScheduler

    from levqor.metrics import start_process
    from memory.db import session_scope
    from memory.leases.repository import LeaseRepository

    s = get_settings()
    stop = _stop_on_signals()
    start_process("scheduler")
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    leading = threading.Event()
    from agents.runtime import register_schedules

    register_schedules()  # agent graphs on LEVQOR_AGENT_SCHEDULES
    jobs = [("audit.checkpoint", float(s.audit_checkpoint_interval_s), _audit_checkpoint), *SCHEDULED]
    sched = BackgroundScheduler(timezone="UTC")
    ttl = s.scheduler_lease_s

    def guarded(name: str, every: float | str, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            if not leading.is_set():
                return
            slot = _slot(every)
            try:
                epoch = _claim_tick(name, slot, holder, ttl)
            except Exception:
                log.exception("could not claim a scheduler tick", extra={"fields": {"job": name}})
                return
            if epoch is None:  # not leading any more, or this tick already ran elsewhere
                return
            TICK.slot, TICK.epoch = slot, epoch
            try:
                fn()
            except Exception:
                log.exception("scheduled job failed", extra={"fields": {"job": name}})
        return run

    for name, every, fn in jobs:
        sched.add_job(guarded(name, every, fn), _trigger(every), id=name, max_instances=1, coalesce=True)
    sched.start()
    log.info("scheduler started", extra={"fields": {"holder": holder}})
    while not stop.is_set():
        try:
            with session_scope() as session:
                epoch = LeaseRepository(session).try_acquire("scheduler", holder, ttl)
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
            LeaseRepository(session).release("scheduler", holder)
    log.info("scheduler stopped")


@dataclass
class Child:
    role: str
    args: list[str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: list[float] = field(default_factory=list)


SCALE_CHECK_S = 2.0  # how often the supervisor reads the desired worker count


def _rescale(children: list[Child], retiring: list[Child], base: int, start: Callable[[Child], None]) -> None:
    """Start or stop worker children to match the desired count (``workers.scale``; ``base`` otherwise)."""
    from tools.jobs.workers import desired_workers

    want = desired_workers(base)
    workers = [c for c in children if c.role.startswith("worker-")]
    if want > len(workers):
        used = {c.role for c in workers}
        for _ in range(want - len(workers)):
            k = next(i for i in range(1, 10_000) if f"worker-{i}" not in used)
            used.add(f"worker-{k}")
            child = Child(f"worker-{k}", list(workers[0].args) if workers else
                          [sys.executable, "-m", "api.cli", "worker"])
            children.append(child)
            start(child)
        log.info("workers scaled up", extra={"fields": {"from": len(workers), "to": want}})
    elif want < len(workers):
        for child in workers[want:]:  # the newest go first; each returns its jobs as it stops
            children.remove(child)
            if child.proc is not None and child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
                retiring.append(child)
        log.info("workers scaled down", extra={"fields": {"from": len(workers), "to": want}})


def supervise(workers: int | None = None) -> int:
    """Start API, scheduler and N workers; restart any that dies; stop all on Ctrl-C or SIGTERM."""
    from levqor.metrics import mark_process_dead, prepare_multiproc_dir

    s = get_settings()
    n = s.workers if workers is None else workers
    mpdir = s.metrics_multiproc_dir or s.var_dir / "prometheus"
    prepare_multiproc_dir(mpdir)
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(mpdir.resolve())}
    exe = [sys.executable, "-m", "api.cli"]
    children = [Child("api", [*exe, "api"]), Child("scheduler", [*exe, "scheduler"])]
    children += [Child(f"worker-{i + 1}", [*exe, "worker"]) for i in range(n)]
    stop = _stop_on_signals()

    def start(child: Child) -> None:
        child.proc = subprocess.Popen(child.args, env={**env, "LEVQOR_PROCESS_ROLE": child.role})
        log.info("started", extra={"fields": {"role": child.role, "pid": child.proc.pid}})

    for child in children:
        start(child)
    log.info("levqor up", extra={"fields": {"url": s.base_url, "workers": n}})
    retiring: list[Child] = []
    next_scale_check = 0.0
    while not stop.is_set():
        if time.monotonic() >= next_scale_check:
            next_scale_check = time.monotonic() + SCALE_CHECK_S
            _rescale(children, retiring, n, start)
        retiring = [c for c in retiring if c.proc is not None and c.proc.poll() is None]
        for child in children:
            if child.proc is not None and child.proc.poll() is not None and not stop.is_set():
                mark_process_dead(child.proc.pid, mpdir)
                now = time.monotonic()
                child.restarts = [t for t in child.restarts if now - t < 60] + [now]
                delay = min(30.0, 0.5 * 2 ** (len(child.restarts) - 1))
                log.warning("child exited; restarting", extra={"fields": {
                    "role": child.role, "code": child.proc.returncode, "in_s": delay}})
                if stop.wait(delay):
                    break
                start(child)
        stop.wait(0.5)
    children += retiring
    for child in children:
        if child.proc and child.proc.poll() is None:
            child.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 20
    for child in children:
        if child.proc is None:
            continue
        try:
            child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("child did not stop; killing", extra={"fields": {"role": child.role}})
            child.proc.kill()
            child.proc.wait()
    log.info("all processes stopped")
    return 0
