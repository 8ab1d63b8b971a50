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


def run_worker(concurrency: int | None = None) -> None:
    """Run the outbox dispatcher and every registered worker loop until SIGTERM."""
    from tools.events.service import run_dispatcher
    from tools.registry import registry

    registry.load()
    stop = _stop_on_signals()
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


# Scheduled callables run by the leading scheduler: (name, seconds between runs, function).
SCHEDULED: list[tuple[str, float, Callable[[], None]]] = []


def _audit_checkpoint() -> None:
    from memory.db import session_scope
    from tools.enterprise.audit_log import write_checkpoint

    with session_scope() as session:
        write_checkpoint(session)


def run_scheduler() -> None:
    """Lead when holding the ``scheduler`` lease; run scheduled work only while leading."""
    from apscheduler.schedulers.background import BackgroundScheduler

    from memory.db import session_scope
    from memory.leases.repository import LeaseRepository

    s = get_settings()
    stop = _stop_on_signals()
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    leading = threading.Event()
    jobs = [("audit.checkpoint", float(s.audit_checkpoint_interval_s), _audit_checkpoint), *SCHEDULED]
    sched = BackgroundScheduler(timezone="UTC")

    def guarded(name: str, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            if not leading.is_set():
                return
            try:
                fn()
            except Exception:
                log.exception("scheduled job failed", extra={"fields": {"job": name}})
        return run

    for name, seconds, fn in jobs:
        sched.add_job(guarded(name, fn), "interval", seconds=seconds, id=name, max_instances=1, coalesce=True)
    sched.start()
    log.info("scheduler started", extra={"fields": {"holder": holder}})
    ttl = s.scheduler_lease_s
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
        stop.wait(ttl / 3)
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


def supervise(workers: int | None = None) -> int:
    """Start API, scheduler and N workers; restart any that dies; stop all on Ctrl-C or SIGTERM."""
    from levqor.metrics import prepare_multiproc_dir

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
    while not stop.is_set():
        for child in children:
            if child.proc is not None and child.proc.poll() is not None and not stop.is_set():
                now = time.monotonic()
                child.restarts = [t for t in child.restarts if now - t < 60] + [now]
                delay = min(30.0, 0.5 * 2 ** (len(child.restarts) - 1))
                log.warning("child exited; restarting", extra={"fields": {
                    "role": child.role, "code": child.proc.returncode, "in_s": delay}})
                if stop.wait(delay):
                    break
                start(child)
        stop.wait(0.5)
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
