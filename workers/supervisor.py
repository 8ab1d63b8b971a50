"""``levqor up``: the API, one scheduler and N workers under one supervisor that restarts what dies.

The number of workers follows the last ``workers.scale`` decision (up to ``LEVQOR_WORKERS_MAX``) and
falls back to N when it lapses.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from levqor.metrics import mark_process_dead, prepare_multiproc_dir
from levqor.settings import get_settings
from memory.db import session_scope
from tools.jobs.workers import scale_decision, supervisor_started, supervisor_stopped
from workers.process import SUPERVISOR_ENV, child_of, stop_on_signals

log = logging.getLogger("levqor.process")


@dataclass
class Child:
    role: str
    args: list[str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: list[float] = field(default_factory=list)


SCALE_CHECK_S = 2.0  # how often the supervisor reads the desired worker count


def desired_workers(base: int) -> int:
    """Worker processes a supervisor started with ``base`` should run now (``base`` if the store fails)."""
    try:
        with session_scope() as s:
            decision = scale_decision(s)
    except Exception:
        log.warning("could not read the desired worker count; keeping %s", base, exc_info=True)
        return base
    return base if decision is None else decision[0]


def _record(started: bool) -> bool:
    """Record this supervisor as running this host's processes (or as stopped cleanly); False if the
    store failed (it is tried again). A supervisor that dies without the second record (SIGKILL) is what
    the monitor's ``supervisor_dead`` rule sees."""
    try:
        with session_scope() as s:
            (supervisor_started if started else supervisor_stopped)(s, os.getpid())
        return True
    except Exception:
        log.warning("could not record the supervisor", exc_info=True)
        return False


def _rescale(children: list[Child], retiring: list[Child], base: int, start: Callable[[Child], None]) -> None:
    """Start or stop worker children to match the desired count (``workers.scale``; ``base`` otherwise)."""
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
    s = get_settings()
    n = s.workers if workers is None else workers
    mpdir = s.metrics_multiproc_dir or s.var_dir / "prometheus"
    prepare_multiproc_dir(mpdir)
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(mpdir.resolve()), SUPERVISOR_ENV: str(os.getpid())}
    exe = [sys.executable, "-m", "api.cli"]
    children = [Child("api", [*exe, "api"]), Child("scheduler", [*exe, "scheduler"])]
    children += [Child(f"worker-{i + 1}", [*exe, "worker"]) for i in range(n)]
    stop = stop_on_signals()

    def start(child: Child) -> None:
        child.proc = subprocess.Popen(child.args, env={**env, "LEVQOR_PROCESS_ROLE": child.role},
                                      preexec_fn=child_of(os.getpid()))  # the supervisor runs no threads
        log.info("started", extra={"fields": {"role": child.role, "pid": child.proc.pid}})

    for child in children:
        start(child)
    log.info("levqor up", extra={"fields": {"url": s.base_url, "workers": n}})
    retiring: list[Child] = []
    next_scale_check = 0.0
    recorded = False
    while not stop.is_set():
        if time.monotonic() >= next_scale_check:
            next_scale_check = time.monotonic() + SCALE_CHECK_S
            recorded = recorded or _record(True)
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
    _record(False)
    log.info("all processes stopped")
    return 0
