"""A ``levqor up`` killed with SIGKILL (issue 23, supervisor_kill9): its children's parent watch stops them
when their parent changes, and the monitor sees a supervisor that died without stopping cleanly. (The
process-level test is tests/workers/test_supervisor.py; the scenario is ``levqor chaos run supervisor_kill9``.)"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

import pytest
from sqlalchemy import delete

from memory.db import session_scope, utcnow
from memory.leases.models import Lease
from tests.factories.ops import clean_ops
from tools.auto_intel.rules import rule_findings
from tools.jobs.workers import SUPERVISOR_LEASE, supervisor_started, supervisor_stopped, supervisors
from workers import process


def test_the_parent_watch_stops_a_child_whose_supervisor_is_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    parent = os.getppid()
    monkeypatch.setenv(process.SUPERVISOR_ENV, str(parent))
    stop = threading.Event()
    assert process.watch_supervisor(stop, poll_s=0.02)
    assert not stop.wait(0.1), "stopped while its supervisor lives"
    monkeypatch.setattr(process.os, "getppid", lambda: 1)  # re-parented: the supervisor died
    assert stop.wait(10), "the child did not stop when its supervisor went"


def test_no_watch_outside_levqor_up_or_in_a_grandchild(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(process.SUPERVISOR_ENV, raising=False)
    assert not process.watch_supervisor(threading.Event())
    # a process started by a child (uvicorn's API processes) inherits the variable but has another parent
    monkeypatch.setenv(process.SUPERVISOR_ENV, str(os.getppid() + 100000))
    assert not process.watch_supervisor(threading.Event())


def _dead_pid() -> int:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return gone.pid


def _supervisor_findings() -> list[object]:
    with session_scope() as s:
        return [f for f in rule_findings(s, utcnow(), []) if f.diagnosis == "supervisor_dead"]


def test_monitor_sees_a_supervisor_that_died_uncleanly_until_another_starts() -> None:
    clean_ops()
    host = socket.gethostname()
    with session_scope() as s:
        s.execute(delete(Lease).where(Lease.name.startswith(SUPERVISOR_LEASE)))
    dead = _dead_pid()
    with session_scope() as s:
        supervisor_started(s, dead)
    found = _supervisor_findings()
    assert [(f.cause, f.severity, f.subject["pid"]) for f in found] == [(f"supervisor:{host}", "critical", dead)]

    with session_scope() as s:  # a new levqor up on this host replaces the record: nothing to see
        supervisor_started(s, os.getpid())
        assert supervisors(s) == [(host, os.getpid())]
    assert _supervisor_findings() == []

    with session_scope() as s:  # a clean stop removes it; another host's supervisor is not judged here
        supervisor_stopped(s, os.getpid())
        supervisor_started(s, dead, host="elsewhere")
        assert supervisors(s) == [("elsewhere", dead)]
    assert _supervisor_findings() == []
    with session_scope() as s:
        supervisor_stopped(s, dead, host="elsewhere")
