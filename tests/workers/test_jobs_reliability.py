"""Reliability with real processes: kill -9 a worker mid-job, kill -9 the API mid-submissions,
1,000 concurrent submissions against a balance of 500 runs."""

from __future__ import annotations

import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.factories import jobs as js
from tests.factories.jobs import job_steps
from tests.factories.orgs import OrgFixture
from tests.support import wait_for
from tests.support.processes import api_server, spawn, stop_process


def _worker_of(job_id: int) -> str | None:
    j = js.job(job_id)
    return j.lease_owner if j.state == "running" else None


def test_kill_9_worker_mid_job_reruns_after_lease_and_completes_once(org: OrgFixture) -> None:
    js.grant(org.org_id, 10)
    before = js.balance(org.org_id)
    pid = js.pipeline(org.org_id, [{"kind": "transform", "expression": "input"}, {"kind": "delay", "seconds": 3},
                                   {"kind": "transform", "template": {"done": "{{ prev.n }}"}}], max_attempts=3)
    first = spawn(["worker", "--concurrency", "1"], LEVQOR_JOB_LEASE_S="2")
    second = None
    try:
        wait_for(lambda: first.poll() is None, what="worker up")
        jid = js.submit(org.org_id, pid, {"n": 7})
        owner = wait_for(lambda: _worker_of(jid), timeout=30, what="first worker running the job")
        assert f":{first.pid}:" in owner
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        second = spawn(["worker", "--concurrency", "1"], LEVQOR_JOB_LEASE_S="2")
        wait_for(lambda: js.job(jid).state == "succeeded", timeout=60, interval=0.2, what="job re-run to success")
        j = js.job(jid)
        assert j.attempts == 2 and j.fence == 2 and j.output == {"done": 7}

        assert {(s.run, s.status) for s in job_steps(jid)} == {(2, "succeeded")}  # the killed run recorded nothing
        assert len(js.events_for("job_complete", jid)) == 1
        assert js.ledger_rows(jid) == [("job_run", -1)]
        assert js.balance(org.org_id) == before - 1
    finally:
        for p in (first, second):
            if p is not None:
                stop_process(p, signal.SIGKILL)


def test_kill_9_api_during_100_concurrent_submissions_loses_no_acknowledged_job(org: OrgFixture) -> None:
    import httpx
    from sqlalchemy import func, select

    from memory.db import session_scope
    from memory.jobs.models import CreditLedger, Job

    js.grant(org.org_id, 1000)
    pid = js.pipeline(org.org_id, [{"kind": "transform", "expression": "input"}])
    js.invoke(org.org_id, "queues.pause", {})  # keep the jobs queued; only persistence is under test
    acked: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()
    with api_server() as (url, proc):
        started = threading.Event()

        def one(i: int) -> None:
            started.set()
            try:
                r = httpx.post(f"{url}/v1/jobs", json={"pipeline_id": pid, "input": {"i": i}},
                               headers={**org.headers(), "Idempotency-Key": f"kill-api-{i}"}, timeout=10)
                if 200 <= r.status_code < 300:
                    with lock:
                        acked.append(r.json()["id"])
            except httpx.HTTPError as exc:
                with lock:
                    errors.append(type(exc).__name__)

        with ThreadPoolExecutor(20) as pool:
            futures = [pool.submit(one, i) for i in range(100)]
            wait_for(lambda: len(acked) >= 25, timeout=30, interval=0.005, what="some acknowledged submissions")
            proc.send_signal(signal.SIGKILL)
            for f in futures:
                f.result()
    assert 25 <= len(acked) < 100 and errors, (len(acked), len(errors))
    with session_scope() as s:
        found = set(s.scalars(select(Job.id).where(Job.id.in_(acked))))
        assert found == set(acked)
        # Every job that exists (acknowledged or not) was charged exactly once, and nothing else was.
        n_jobs = s.scalar(select(func.count()).select_from(Job).where(Job.pipeline_id == pid))
        n_charges = s.scalar(select(func.count()).select_from(CreditLedger).where(
            CreditLedger.org_id == org.org_id, CreditLedger.reason == "job_run"))
    assert n_jobs == n_charges and js.balance(org.org_id) == 1000 - n_jobs
    js.invoke(org.org_id, "queues.resume", {})


def test_1000_concurrent_submissions_against_500_runs_accept_exactly_500(org: OrgFixture) -> None:
    import httpx
    from sqlalchemy import func, select

    from memory.db import session_scope
    from memory.jobs.models import CreditLedger, Job

    js.grant(org.org_id, 500)  # pro plan: 1 credit per run
    pid = js.pipeline(org.org_id, [{"kind": "transform", "expression": "input"}])
    js.invoke(org.org_id, "queues.pause", {})
    statuses: list[int] = []
    problems: list[dict[str, Any]] = []
    lock = threading.Lock()
    with api_server() as (url, _proc):
        client = httpx.Client(timeout=60, limits=httpx.Limits(max_connections=16))

        def one(i: int) -> None:
            r = client.post(f"{url}/v1/jobs", json={"pipeline_id": pid, "input": {"i": i}}, headers=org.headers())
            with lock:
                statuses.append(r.status_code)
                if r.status_code == 402 and len(problems) < 3:
                    problems.append(r.json())

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(one, range(1000)))
        client.close()
    assert statuses.count(201) == 500 and statuses.count(402) == 500, {s: statuses.count(s) for s in set(statuses)}
    assert problems[0]["status"] == 402 and problems[0]["type"].endswith("/payment-required")
    assert problems[0]["balance"] == 0 and problems[0]["cost"] == 1
    assert js.balance(org.org_id) == 0
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Job).where(Job.pipeline_id == pid)) == 500
        assert s.scalar(select(func.count()).select_from(CreditLedger).where(
            CreditLedger.org_id == org.org_id, CreditLedger.reason == "job_run")) == 500
    js.invoke(org.org_id, "queues.resume", {})


def test_sigterm_gives_a_long_job_back_and_restart_command_restarts(org: OrgFixture) -> None:
    from memory.db import session_scope
    from memory.jobs.repository import WorkerRepository

    js.grant(org.org_id, 5)
    pid = js.pipeline(org.org_id, [{"kind": "delay", "seconds": 120}])
    worker = spawn(["worker", "--concurrency", "1"], LEVQOR_JOB_LEASE_S="3")
    other = None
    try:
        jid = js.submit(org.org_id, pid)
        wait_for(lambda: _worker_of(jid), timeout=40, what="job running")
        assert stop_process(worker, signal.SIGTERM, timeout=40) == 0
        j = js.job(jid)
        # Returned untouched (the interrupted attempt does not count), not left to a lease expiry.
        assert j.state == "queued" and j.attempts == 0 and j.lease_owner is None
        js.invoke(org.org_id, "jobs.cancel", {"job_id": jid})
        other = spawn(["worker", "--concurrency", "1"], LEVQOR_JOB_LEASE_S="3")

        def registered() -> str | None:
            with session_scope() as s:
                rows = [w.id for w in WorkerRepository(s).all() if f":{other.pid}:" in w.id]  # type: ignore[union-attr]
            return rows[0] if rows else None

        wid = wait_for(registered, timeout=40, what="worker registered")
        out = js.invoke_platform("workers.restart", {"worker_id": wid})  # workers are the platform's
        assert out.command == "restart" and out.delivery == "heartbeat"
        other.wait(timeout=30)  # it leaves on its own; a supervisor starts a fresh one
        assert other.returncode == 0 and registered() is None
    finally:
        for p in (worker, other):
            if p is not None:
                stop_process(p, signal.SIGKILL)
