"""The scheduler's leader lease: two schedulers never run one tick twice; a SIGKILLed leader is replaced
within the lease time, under a higher fencing epoch."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from memory.db import session_scope
from memory.leases.models import Lease
from memory.scheduler.models import SchedulerTick
from tests.support import wait_for
from tests.support.processes import Proc, levqor_env

PROBE = """
import os, sys
from levqor.logging import configure_logging
from tools.schedules import Schedule
from workers import scheduler

configure_logging("INFO", True)

def probe():
    with open(os.environ["PROBE_FILE"], "a") as fh:
        fh.write(f"{os.getpid()} {scheduler.TICK.slot} {scheduler.TICK.epoch}\\n")

scheduler.run_scheduler([Schedule("test.probe", 0.5, probe)])
"""
LEASE_S = 2
RENEW_S = 0.3


def scheduler_proc(probe_file: Path, logdir: Path, name: str) -> Proc:
    """A scheduler process running only the probe schedule, with a short lease."""
    env = levqor_env(PROBE_FILE=str(probe_file), LEVQOR_SCHEDULER_LEASE_S=str(LEASE_S),
                     LEVQOR_SCHEDULER_RENEW_S=str(RENEW_S), LEVQOR_AGENT_SCHEDULES="{}")
    return Proc([sys.executable, "-c", PROBE], env, logdir, name)


@pytest.fixture()
def schedulers(tmp_path: Path) -> Iterator[Callable[[str], Proc]]:
    started: list[Proc] = []
    with session_scope() as s:  # a previous test's lease must not delay these
        s.execute(Lease.__table__.delete().where(Lease.name == "scheduler"))
        s.execute(SchedulerTick.__table__.delete().where(SchedulerTick.job == "test.probe"))

    def start(name: str) -> Proc:
        sch = scheduler_proc(tmp_path / "probe.log", tmp_path, name)
        started.append(sch)
        return sch

    yield start
    for sch in started:
        sch.stop()


def _holder_pid() -> int | None:
    with session_scope() as s:
        lease = s.get(Lease, "scheduler")
        if lease is None or lease.expires_at.timestamp() < time.time():
            return None
        return int(lease.holder.split(":")[1])


def _ticks() -> list[tuple[int, int, int]]:
    with session_scope() as s:
        rows = s.execute(select(SchedulerTick.slot, SchedulerTick.holder, SchedulerTick.epoch)
                         .where(SchedulerTick.job == "test.probe").order_by(SchedulerTick.slot)).all()
        return [(slot, int(holder.split(":")[1]), epoch) for slot, holder, epoch in rows]


def _runs(probe: Path) -> list[tuple[int, int, int]]:
    if not probe.exists():
        return []
    return [tuple(map(int, line.split())) for line in probe.read_text().splitlines() if line.strip()]  # type: ignore[misc]


def _check_once_per_tick(probe: Path) -> list[tuple[int, int, int]]:
    runs = _runs(probe)
    slots = [slot for _pid, slot, _epoch in runs]
    assert len(slots) == len(set(slots)), f"a tick ran twice: {sorted(slots)}"
    ticks = _ticks()
    # Every run was claimed in the database by the process that ran it, and vice versa.
    assert sorted(runs) == sorted((pid, slot, epoch) for slot, pid, epoch in ticks)
    return runs


@pytest.mark.slow
def test_two_schedulers_never_run_the_same_tick_twice(schedulers: Callable[[str], Proc],
                                                      tmp_path: Path) -> None:
    a, b = schedulers("a"), schedulers("b")
    probe = tmp_path / "probe.log"
    wait_for(lambda: len(_runs(probe)) >= 8, 60, "eight probe ticks")
    leader = _holder_pid()
    assert leader in (a.pid, b.pid)
    runs = _check_once_per_tick(probe)
    # Only the lease holder ran ticks while both were alive.
    assert {pid for pid, _slot, _epoch in runs} == {leader}


@pytest.mark.slow
def test_killed_leader_is_replaced_within_the_lease_time(schedulers: Callable[[str], Proc],
                                                         tmp_path: Path) -> None:
    probe = tmp_path / "probe.log"
    a = schedulers("a")
    wait_for(lambda: _holder_pid() == a.pid and len(_runs(probe)) >= 2, 60, "scheduler a to lead and tick")
    b = schedulers("b")
    wait_for(lambda: "scheduler started" in b.stderr, 30, "scheduler b to start")
    # b is a standby: a holds a live lease and runs every tick.
    assert _holder_pid() == a.pid
    os.kill(a.pid, signal.SIGKILL)
    a.popen.wait(10)
    killed = time.monotonic()
    wait_for(lambda: _holder_pid() == b.pid, LEASE_S + 10, "scheduler b to take the lease")
    took = time.monotonic() - killed
    assert took <= LEASE_S + RENEW_S + 1.5, f"standby took {took:.1f}s to take over"
    wait_for(lambda: any(pid == b.pid for pid, _s, _e in _runs(probe)), 10, "scheduler b to run a tick")
    runs = _check_once_per_tick(probe)
    a_slots = [slot for pid, slot, _e in runs if pid == a.pid]
    b_runs = [(slot, epoch) for pid, slot, epoch in runs if pid == b.pid]
    a_epochs = {epoch for pid, _slot, epoch in runs if pid == a.pid}
    assert max(a_slots) < min(slot for slot, _e in b_runs)
    # The new leader works under a higher fencing epoch.
    assert min(e for _s, e in b_runs) > max(a_epochs)
