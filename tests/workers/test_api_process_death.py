"""An API process killed with SIGKILL (issue 23, api_kill9): each API process records itself while it
serves; the monitor's ``api_process_died`` rule sees one that died without stopping, and forgets it once
the incident has it and as many processes serve again (uvicorn's manager starts a replacement). The
scenario is ``levqor chaos run api_kill9``; the client's safe retries are tested in
tests/tools/dev_portal/test_sdk_example.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.cli import serve
from memory.db import session_scope, utcnow
from tests.factories.ops import clean_ops
from tools.auto_intel.findings import Finding
from tools.auto_intel.lifecycle import open_or_update
from tools.auto_intel.rules import rule_findings
from tools.jobs.workers import ApiProcess, api_process_started, api_process_stopped, api_processes

HOST = socket.gethostname()


def _dead_pid() -> int:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return gone.pid


def _died() -> list[Finding]:
    with session_scope() as s:
        return [f for f in rule_findings(s, utcnow(), []) if f.diagnosis == "api_process_died"]


def test_monitor_sees_a_killed_api_process_until_the_incident_has_it_and_a_replacement_serves() -> None:
    clean_ops()
    dead, replacement = _dead_pid(), os.getppid()
    with session_scope() as s:
        api_process_started(s, dead, 2)
        api_process_started(s, os.getpid(), 2)
    found = _died()
    assert [(f.cause, f.evidence) for f in found] == [
        (f"api-processes:{HOST}", {"pids": [dead], "serving": 1, "expected": 2})]

    with session_scope() as s:  # the incident has it, but only one of two processes serves: still seen
        open_or_update(s, found[0], utcnow())
    assert len(_died()) == 1

    with session_scope() as s:  # the replacement serves: the dead one's record is forgotten
        api_process_started(s, replacement, 2)
    assert _died() == []
    with session_scope() as s:
        assert sorted(p.pid for p in api_processes(s) if p.host == HOST) == sorted([os.getpid(), replacement])
        for pid in (os.getpid(), replacement):
            api_process_stopped(s, pid)
    clean_ops()


def test_a_replaced_api_process_is_still_seen_before_the_monitor_recorded_it() -> None:
    clean_ops()
    dead = _dead_pid()
    with session_scope() as s:  # replaced within one monitor interval: no incident yet, so it is reported
        api_process_started(s, dead, 1)
        api_process_started(s, os.getpid(), 1)
    assert [f.evidence["pids"] for f in _died()] == [[dead]]
    with session_scope() as s:  # another host's API processes are not judged from here
        api_process_stopped(s, dead)
        api_process_started(s, dead, 1, host="elsewhere")
        assert ApiProcess("elsewhere", dead, 1) in api_processes(s)
    assert _died() == []
    clean_ops()


def test_an_api_process_records_itself_while_it_serves_and_drops_gone_processes_gauges(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clean_ops()
    gone = _dead_pid()
    (tmp_path / f"gauge_livesum_{gone}.db").write_bytes(b"")
    monkeypatch.setenv(serve.SERVING_ENV, "3")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    with TestClient(serve.serving_app()):
        with session_scope() as s:
            assert ApiProcess(HOST, os.getpid(), 3) in api_processes(s)
        assert not (tmp_path / f"gauge_livesum_{gone}.db").exists()
    with session_scope() as s:  # a clean stop drops the record: nothing for the monitor to see
        assert all(p.pid != os.getpid() for p in api_processes(s))
