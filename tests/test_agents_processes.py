"""Across processes: an approval round trip (pause in one process, approve and resume in another),
and the scheduler lease (two schedulers never run one tick twice; a SIGKILLed leader is replaced)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import select

from memory.agents.models import AgentApproval, AgentRun
from memory.db import session_scope
from memory.leases.models import Lease
from memory.scheduler.models import SchedulerTick
from tests import agents_fakes as fj
from tests.conftest import _TMP, TEST_DB_URL, OrgFixture

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEVQOR_", "OPENAI_"))}
    env.update({"LEVQOR_VAR_DIR": str(_TMP), "LEVQOR_DATABASE_URL": TEST_DB_URL, "LEVQOR_LOG_JSON": "true",
                "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def _wait(check: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tests.fake_jobs_cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_approval_round_trip_across_two_processes(tmp_path: Path, org: OrgFixture) -> None:
    store = tmp_path / "jobs.json"
    env = _env(LEVQOR_FAKE_JOBS=str(store))
    os.environ["LEVQOR_FAKE_JOBS"] = str(store)
    try:
        fj.reset()
        fj.clear_agent_decisions()
        ids = [fj.add_job(org.org_id) for _ in range(7)]
        # Process 1 runs the janitor: over the threshold, it pauses on one approval and exits.
        first = _cli("agents", "run", "janitor", "--org", org.slug, "--json", env=env)
        assert first.returncode == 0, first.stderr[-3000:]
        out = json.loads(first.stdout)
        run_id, approval = out["run"]["id"], out["approvals"][0]
        assert out["run"]["status"] == "waiting_approval" and approval["tool"] == "jobs.retry_failed"
        assert all(fj.job(i)["state"] == "failed" for i in ids)
        listed = _cli("approvals", "list", "--org", org.slug, "--json", env=env)
        assert approval["id"] in [a["id"] for a in json.loads(listed.stdout)["items"]]
        # A second process approves as a person and resumes the run from the checkpoint.
        second = _cli("approvals", "approve", str(approval["id"]), "--by", org.admin_email, "--org", org.slug,
                      env=env)
        assert second.returncode == 0, second.stderr[-3000:]
        assert "approved" in second.stdout and "succeeded" in second.stdout
    finally:
        os.environ.pop("LEVQOR_FAKE_JOBS", None)
    with session_scope() as s:
        run = s.get(AgentRun, run_id)
        ap = s.get(AgentApproval, approval["id"])
        assert run is not None and ap is not None
        assert run.status == "succeeded" and run.steps >= 3
        assert ap.status == "approved" and ap.decided_by is not None and ap.decided_by.startswith("user:")
    os.environ["LEVQOR_FAKE_JOBS"] = str(store)
    try:
        assert {fj.job(i)["state"] for i in ids} == {"queued"}
        assert {fj.job(i)["retried_by"] for i in ids} == {f"system:approval-{approval['id']}"}
    finally:
        os.environ.pop("LEVQOR_FAKE_JOBS", None)


def test_cli_refuses_an_unknown_approver(org: OrgFixture, tmp_path: Path) -> None:
    env = _env(LEVQOR_FAKE_JOBS=str(tmp_path / "jobs.json"))
    r = _cli("approvals", "approve", "1", "--by", "nobody@acme-test.io", "--org", org.slug, env=env)
    assert r.returncode == 1 and "no active user" in r.stderr


# ---- scheduler leader lease ---------------------------------------------------------------------

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


class Scheduler:
    def __init__(self, probe_file: Path, logdir: Path, name: str):
        env = _env(PROBE_FILE=str(probe_file), LEVQOR_SCHEDULER_LEASE_S=str(LEASE_S),
                   LEVQOR_SCHEDULER_RENEW_S=str(RENEW_S), LEVQOR_AGENT_SCHEDULES="{}")
        self.err = (logdir / f"{name}.err").open("wb")
        self.proc = subprocess.Popen([sys.executable, "-c", PROBE], env=env, cwd=ROOT,
                                     stdout=subprocess.DEVNULL, stderr=self.err)
        self.pid = self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.err.close()


@pytest.fixture()
def schedulers(tmp_path: Path) -> Iterator[Callable[[str], Scheduler]]:
    started: list[Scheduler] = []
    with session_scope() as s:  # a previous test's lease must not delay these
        s.execute(Lease.__table__.delete().where(Lease.name == "scheduler"))
        s.execute(SchedulerTick.__table__.delete().where(SchedulerTick.job == "test.probe"))

    def start(name: str) -> Scheduler:
        sch = Scheduler(tmp_path / "probe.log", tmp_path, name)
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
def test_two_schedulers_never_run_the_same_tick_twice(schedulers: Callable[[str], Scheduler],
                                                      tmp_path: Path) -> None:
    a, b = schedulers("a"), schedulers("b")
    probe = tmp_path / "probe.log"
    _wait(lambda: len(_runs(probe)) >= 8, 60, "eight probe ticks")
    leader = _holder_pid()
    assert leader in (a.pid, b.pid)
    runs = _check_once_per_tick(probe)
    # Only the lease holder ran ticks while both were alive.
    assert {pid for pid, _slot, _epoch in runs} == {leader}


@pytest.mark.slow
def test_killed_leader_is_replaced_within_the_lease_time(schedulers: Callable[[str], Scheduler],
                                                         tmp_path: Path) -> None:
    probe = tmp_path / "probe.log"
    a = schedulers("a")
    _wait(lambda: _holder_pid() == a.pid and len(_runs(probe)) >= 2, 60, "scheduler a to lead and tick")
    b = schedulers("b")
    _wait(lambda: "scheduler started" in Path(b.err.name).read_text(), 30, "scheduler b to start")
    # b is a standby: a holds a live lease and runs every tick.
    assert _holder_pid() == a.pid
    os.kill(a.pid, signal.SIGKILL)
    a.proc.wait(10)
    killed = time.monotonic()
    _wait(lambda: _holder_pid() == b.pid, LEASE_S + 10, "scheduler b to take the lease")
    took = time.monotonic() - killed
    assert took <= LEASE_S + RENEW_S + 1.5, f"standby took {took:.1f}s to take over"
    _wait(lambda: any(pid == b.pid for pid, _s, _e in _runs(probe)), 10, "scheduler b to run a tick")
    runs = _check_once_per_tick(probe)
    a_slots = [slot for pid, slot, _e in runs if pid == a.pid]
    b_runs = [(slot, epoch) for pid, slot, epoch in runs if pid == b.pid]
    a_epochs = {epoch for pid, _slot, epoch in runs if pid == a.pid}
    assert max(a_slots) < min(slot for slot, _e in b_runs)
    # The new leader works under a higher fencing epoch.
    assert min(e for _s, e in b_runs) > max(a_epochs)
