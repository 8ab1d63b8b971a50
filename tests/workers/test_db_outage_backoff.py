"""A worker through a database outage: its job loop backs off (no busy loop, nothing logged per attempt)
and resumes by itself; a run that finished while the database was unavailable is recorded once it answers
(not left to its lease and run again); registration waits for the database; the lease sweep waits for
holders to renew after an outage."""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import threading
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from levqor.db_outage import tracker
from tests.factories import jobs as js
from tests.factories.orgs import OrgFixture
from tests.support import wait_for

NOOP = [{"kind": "transform", "name": "echo", "expression": "input"}]


def _locked() -> OperationalError:
    """What SQLAlchemy raises when SQLite's lock outlasts the busy timeout (a real driver error inside)."""
    return OperationalError("BEGIN IMMEDIATE", {}, sqlite3.OperationalError("database is locked"))


@pytest.fixture()
def quiet_tracker() -> Any:
    yield tracker
    tracker.since = tracker.ended = tracker.var_dir = None


def _flaky(monkeypatch: pytest.MonkeyPatch, target: str, failures: int, error: Any = _locked) -> dict[str, int]:
    """Make ``target`` (module.attr) raise ``error()`` on its first ``failures`` calls; the call count."""
    import importlib

    mod_name, attr = target.rsplit(".", 1)
    mod = importlib.import_module(mod_name)
    real = getattr(mod, attr)
    calls = {"n": 0}

    def fn(*a: Any, **k: Any) -> Any:
        calls["n"] += 1
        if calls["n"] <= failures:
            raise error()
        return real(*a, **k)

    monkeypatch.setattr(mod, attr, fn)
    return calls


def _record_backoff(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Replace the workers' backoff with a tiny wait; the attempt numbers it was asked for."""
    asked: list[int] = []

    def backoff(attempt: int, **_kw: Any) -> float:
        asked.append(attempt)
        return 0.01

    monkeypatch.setattr("workers.jobs.backoff_s", backoff)
    return asked


def test_the_job_loop_backs_off_while_the_database_is_unavailable_then_runs_the_job_once(
        org: OrgFixture, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        quiet_tracker: Any) -> None:
    from tests.support.processes import running_worker

    js.grant(org.org_id, 5)
    job_id = js.submit(org.org_id, js.pipeline(org.org_id, NOOP))
    claims = _flaky(monkeypatch, "tools.jobs.leases.claim_batch", 6)
    records = _flaky(monkeypatch, "workers.jobs.record_runs", 5)  # more than RECORD_TRIES
    asked = _record_backoff(monkeypatch)
    caplog.set_level(logging.INFO, logger="workers.jobs")
    with running_worker(concurrency=1):
        wait_for(lambda: js.job(job_id).state == "succeeded", timeout=30, what="the job recorded")
    assert claims["n"] > 6 and records["n"] >= 6
    # each failed claim waited longer than the one before (1, 2, ... 6), reset after a success; the
    # recorder's five unavailable tries were waits too, not counted against RECORD_TRIES
    assert asked[:6] == [1, 2, 3, 4, 5, 6] and sorted(asked[6:]) == [1, 2, 3, 4, 5], asked
    assert js.job(job_id).attempts == 1  # ran once: its outcome was kept through the outage
    noisy = [r.getMessage() for r in caplog.records
             if r.getMessage() in ("claim failed", "recording job outcomes failed", "job outcome not recorded; "
                                   "its lease will expire")]
    assert noisy == []


def test_other_recording_failures_still_give_up_after_record_tries(monkeypatch: pytest.MonkeyPatch) -> None:
    from workers import jobs as worker_jobs

    calls = _flaky(monkeypatch, "workers.jobs.record_runs", 99, error=lambda: ValueError("not storable"))
    w = worker_jobs.JobWorker(1)
    assert w._try_record([]) is None
    assert calls["n"] == worker_jobs.RECORD_TRIES


def test_registration_waits_for_the_database(monkeypatch: pytest.MonkeyPatch, quiet_tracker: Any) -> None:
    from memory.db import session_scope
    from memory.jobs.repository import WorkerRepository
    from workers.jobs import JobWorker

    calls = _flaky(monkeypatch, "tools.jobs.leases.register_worker", 3)
    asked = _record_backoff(monkeypatch)
    w = JobWorker(1)
    assert w._register(threading.Event()) is True
    assert calls["n"] == 4 and asked == [1, 2, 3]
    with session_scope() as s:
        assert any(x.id == w.id for x in WorkerRepository(s).all())
    stopped = threading.Event()
    stopped.set()
    assert JobWorker(1)._register(stopped) is False  # stopping: it gives up instead of waiting on


def test_the_lease_sweep_waits_while_holders_renew_after_an_outage(monkeypatch: pytest.MonkeyPatch,
                                                                    quiet_tracker: Any) -> None:
    from workers.jobs import JobWorker

    swept: list[int] = []
    monkeypatch.setattr("tools.jobs.leases.sweep_expired", lambda _s: (swept.append(1), ([], []))[1])
    w = JobWorker(1, lease_s=3)
    w._register(threading.Event())
    tracker.ended = dt.datetime.now(dt.UTC)  # an outage just ended
    w.beat()
    assert swept == []
    tracker.ended = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=7)  # two leases later
    w.beat()
    assert swept == [1]
