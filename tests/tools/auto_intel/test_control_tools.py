"""The control tools the healer gained for the chaos suite, each in-process on the test database:
stopping a hung worker (SIGCONT, SIGTERM, SIGKILL after a grace), disabling a failing partner endpoint,
scaling workers (read by the supervisor), the capacity and slow-API rules and their playbooks."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.factories.jobs import ago, make_job, make_pipeline
from tests.factories.ops import clean_ops, incident, jobs_out_of_the_windows
from tests.factories.orgs import OrgFixture, make_org
from tests.factories.settings import override_settings
from tests.support import wait_for


def _healer_ctx(s: Any) -> Any:
    from tools.auto_intel.self_heal import HEALER
    from tools.context import ToolContext

    return ToolContext(s, HEALER)


def _open(finding: Any) -> int:
    from memory.db import session_scope, utcnow
    from tools.auto_intel.lifecycle import open_or_update

    with session_scope() as s:
        inc, _ = open_or_update(s, finding, utcnow())
        return inc.id


# ---- hung worker -------------------------------------------------------------------------------------

def _fake_worker(ignore_term: bool) -> subprocess.Popen[bytes]:
    """A process whose command line names it a worker; it says ``term`` on SIGTERM and then exits, or,
    deaf to it as a wedged process, sleeps on (only SIGKILL ends it)."""
    code = ("import signal, sys, time\n"
            "def on_term(*_):\n"
            "    print('term', flush=True)\n"
            f"    if not {ignore_term}: sys.exit(0)\n"
            "signal.signal(signal.SIGTERM, on_term)\n"
            "print('ready', flush=True)\n"
            "while True: time.sleep(0.1)\n")
    p = subprocess.Popen([sys.executable, "-c", code, "worker"], stdout=subprocess.PIPE)
    assert p.stdout is not None and p.stdout.readline().strip() == b"ready"
    return p


def _ended_after_term(p: subprocess.Popen[bytes]) -> None:
    """The process got SIGTERM (so it was continued first) and is gone. The returncode proves nothing
    here: the killer thread's psutil wait may reap our child first."""
    wait_for(lambda: p.poll() is not None, 20, "the process to end")
    assert p.stdout is not None and p.stdout.read().split() == [b"term"]


@pytest.mark.parametrize("ignore_term", [False, True])
def test_a_stopped_worker_is_continued_terminated_and_killed_after_the_grace(ignore_term: bool,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from tools.jobs import workers

    monkeypatch.setattr(workers, "HUNG_KILL_GRACE_S", 1.0)
    p = _fake_worker(ignore_term)
    try:
        os.kill(p.pid, signal.SIGSTOP)
        assert workers._stop_hung(p.pid, told_before=False) == "signal"
        _ended_after_term(p)  # the deaf one sleeps forever after 'term': only the SIGKILL ended it
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_a_worker_told_before_is_killed_at_once_and_a_non_worker_pid_is_left_alone() -> None:
    from tools.jobs import workers

    p = _fake_worker(ignore_term=True)
    try:
        assert workers._stop_hung(p.pid, told_before=True) == "killed"
        assert p.wait(timeout=20) == -signal.SIGKILL
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        os.kill(other.pid, signal.SIGSTOP)
        assert workers._stop_hung(other.pid, told_before=True) == "heartbeat"
        os.kill(other.pid, signal.SIGCONT)
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()
    assert workers._stop_hung(p.pid, told_before=False) == "gone"


def test_restarting_a_stale_worker_row_stops_its_process_through_the_healer_policy(org: OrgFixture) -> None:
    import socket

    from memory.db import session_scope
    from memory.jobs.models import Worker
    from tools.registry import registry

    p = _fake_worker(ignore_term=False)
    wid = f"{socket.gethostname()}:{p.pid}:hung"
    try:
        os.kill(p.pid, signal.SIGSTOP)
        with session_scope() as s:
            s.add(Worker(id=wid, host=socket.gethostname(), pid=p.pid, concurrency=1, state="running",
                         current_jobs=[], jobs_done=0, started_at=ago(120), heartbeat_at=ago(100)))
        with session_scope() as s:
            out = registry.invoke("workers.restart", _healer_ctx(s), {"worker_id": wid})
        assert out.delivery == "signal" and out.command == "restart"  # type: ignore[attr-defined]
        _ended_after_term(p)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        with session_scope() as s:
            w = s.get(Worker, wid)
            if w is not None:
                s.delete(w)


# ---- partner endpoint --------------------------------------------------------------------------------

def test_the_healer_disables_a_failing_partner_endpoint_and_the_partner_is_emailed(org: OrgFixture) -> None:
    from sqlalchemy import select

    from bench.chaos.scenarios import partner_installs
    from memory.audit.models import AuditEntry
    from memory.db import session_scope, utcnow
    from memory.partner.models import PartnerEmail, PluginInstall
    from tools.auto_intel.findings import Finding
    from tools.auto_intel.self_heal import heal
    from tools.context import Principal, ToolContext
    from tools.errors import Conflict, NotFound
    from tools.registry import registry

    clean_ops()
    with override_settings(allow_loopback_urls=True):
        installs = partner_installs(org.org_id, "http://127.0.0.1:9")
    bad, good = installs["fail"], installs["ok"]
    iid = _open(Finding(f"partner:{bad}", f"rule:partner_errors:{bad}", "rule", "partner_errors",
                        f"Partner endpoint of install {bad}: 100% of 8 deliveries failed", "medium",
                        subject={"install_id": bad}, evidence={"error_rate": 1.0}, symptom_at=utcnow()))
    assert heal(iid).outcome == "acted"
    assert heal(iid).outcome == "healed"
    assert incident(iid).state == "resolved" and not incident(iid).manual
    with session_scope() as s:
        assert s.get(PluginInstall, bad).endpoint_disabled_at is not None  # type: ignore[union-attr]
        assert s.get(PluginInstall, good).endpoint_disabled_at is None  # type: ignore[union-attr]
        mail = s.scalars(select(PartnerEmail).where(PartnerEmail.body.like(f"%to install {bad} %"))).all()
        assert len(mail) == 1 and "by agent:healer" in mail[0].body
        assert s.scalar(select(AuditEntry.actor).where(AuditEntry.action == "plugins.endpoint_disabled",
                                                       AuditEntry.target == f"install:{bad}")) == "agent:healer"
    with session_scope() as s:  # once only
        with pytest.raises(Conflict):
            registry.invoke("plugins.disable_endpoint", _healer_ctx(s), {"install_id": bad, "reason": "again"})

    stranger = make_org()  # an organisation that neither installed nor publishes it cannot see it
    with session_scope() as s:
        ctx = ToolContext(s, Principal(kind="user", id="1", org_id=stranger.org_id, role="admin"))
        with pytest.raises(NotFound):
            registry.invoke("plugins.disable_endpoint", ctx, {"install_id": good, "reason": "not mine"})
    # the rule no longer reports a disabled endpoint (its failures stay in the window)
    from tools.auto_intel.rules import rule_findings

    with session_scope() as s, override_settings(ops_failure_min_jobs=1):
        found = rule_findings(s, utcnow(), [(f"partner.error_rate{{install={bad}}}", 1.0),
                                            (f"partner.attempts{{install={bad}}}", 8.0),
                                            (f"partner.error_rate{{install={good}}}", 1.0),
                                            (f"partner.attempts{{install={good}}}", 8.0)])
    causes = {f.cause for f in found}
    assert f"partner:{good}" in causes and f"partner:{bad}" not in causes



# ---- scaling -----------------------------------------------------------------------------------------

def _reset_scale() -> None:
    from memory.db import session_scope
    from tools.context import SYSTEM, ToolContext
    from tools.registry import registry

    with session_scope() as s:
        registry.invoke("workers.scale", ToolContext(s, SYSTEM), {"desired": 2, "for_s": 10, "reason": "reset"})


def test_workers_scale_is_limited_staff_only_and_read_by_the_supervisor(org: OrgFixture) -> None:
    from memory.db import session_scope
    from tools.context import Principal, ToolContext
    from tools.errors import Forbidden, Unprocessable
    from tools.jobs.workers import scale_decision
    from tools.registry import registry
    from workers.supervisor import desired_workers

    with override_settings(workers_max=5):
        with session_scope() as s:
            with pytest.raises(Unprocessable):
                registry.invoke("workers.scale", _healer_ctx(s), {"desired": 6})
        with session_scope() as s:
            tenant = ToolContext(s, Principal(kind="user", id="1", org_id=org.org_id, role="admin"))
            with pytest.raises(Forbidden):
                registry.invoke("workers.scale", tenant, {"desired": 3})
        with session_scope() as s:
            out = registry.invoke("workers.scale", _healer_ctx(s), {"desired": 4, "reason": "test"})
        assert out.desired == 4 and out.limit == 5  # type: ignore[attr-defined]
        assert desired_workers(2) == 4
        with session_scope() as s:
            registry.invoke("workers.scale", _healer_ctx(s), {"desired": 3, "for_s": 10})
            decision = scale_decision(s)
            assert decision is not None and decision[0] == 3 and decision[1] is not None
            # lapsed: back to the supervisor's own count
            assert scale_decision(s, decision[1] + dt.timedelta(seconds=1)) is None
    with override_settings(workers_max=2):
        assert desired_workers(1) == 2  # never above the limit in force
    _reset_scale()


def test_the_supervisor_starts_and_retires_workers_to_match_the_desired_count() -> None:
    from memory.db import session_scope
    from tools.context import SYSTEM, ToolContext
    from tools.registry import registry
    from workers.supervisor import Child, _rescale

    started: list[Child] = []

    def start(child: Child) -> None:
        child.proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        started.append(child)

    children = [Child("api", ["api"]), Child("worker-1", ["w"]), Child("worker-2", ["w"])]
    retiring: list[Child] = []
    try:
        with override_settings(workers_max=4), session_scope() as s:
            registry.invoke("workers.scale", ToolContext(s, SYSTEM), {"desired": 4})
        with override_settings(workers_max=4):
            _rescale(children, retiring, 2, start)
        assert [c.role for c in children] == ["api", "worker-1", "worker-2", "worker-3", "worker-4"]
        with override_settings(workers_max=4), session_scope() as s:
            registry.invoke("workers.scale", ToolContext(s, SYSTEM), {"desired": 3})
        with override_settings(workers_max=4):
            _rescale(children, retiring, 2, start)
        assert [c.role for c in children] == ["api", "worker-1", "worker-2", "worker-3"]
        assert [c.role for c in retiring] == ["worker-4"]
        assert retiring[0].proc is not None and retiring[0].proc.wait(timeout=20) == -signal.SIGTERM
    finally:
        for c in started:
            if c.proc is not None and c.proc.poll() is None:
                c.proc.kill()
                c.proc.wait()
        _reset_scale()


def test_a_backlog_the_workers_cannot_clear_opens_capacity_and_the_healer_adds_workers(org: OrgFixture) -> None:
    import socket

    from memory.db import session_scope, utcnow
    from memory.jobs.models import Job, Worker
    from tools.auto_intel.rules import rule_findings
    from tools.auto_intel.self_heal import heal
    from workers.supervisor import desired_workers

    clean_ops()
    jobs_out_of_the_windows()
    pid = make_pipeline(org.org_id)
    for _ in range(5):  # measured: 1 s a job
        make_job(org.org_id, pid, "succeeded", started_at=ago(2), finished_at=ago(1))
    queued = [make_job(org.org_id, pid, "queued") for _ in range(40)]
    host = socket.gethostname()
    ids = [f"{host}:{os.getpid()}:cap{i}" for i in range(25)]

    def add_workers(names: list[str]) -> None:
        with session_scope() as s:
            for wid in names:
                s.add(Worker(id=wid, host=host, pid=os.getpid(), concurrency=2, state="running", current_jobs=[],
                             jobs_done=0, started_at=ago(60), heartbeat_at=utcnow()))

    add_workers(ids[:1])
    try:
        # only this test's runs are recent enough to measure throughput (2 slots / 1 s = 2 jobs/s)
        with override_settings(ops_capacity_horizon_s=10, workers_max=6, ops_heal_verify_s=1, ops_window_s=30):
            with session_scope() as s:
                found = [f for f in rule_findings(s, utcnow(), [("jobs.queue.depth", 40.0)])
                         if f.diagnosis == "capacity"]
            # 40 queued need ~20 s > 10 s; 2 workers (3 with rounding up) would clear them in time
            assert found and found[0].subject["desired"] in (2, 3), found
            iid = _open(found[0])
            step = heal(iid)
            assert step.outcome == "acted" and step.action == "add_workers", step
            assert desired_workers(1) == found[0].subject["desired"]
            assert heal(iid).outcome == "waiting"  # no new worker yet: verification goes on
            add_workers(ids[1:])  # the supervisor's new workers come up and heartbeat
            assert heal(iid).outcome == "healed"
            assert incident(iid).state == "resolved" and not incident(iid).manual
            with session_scope() as s:  # they die again: the shortage comes back, the incident reopens
                s.query(Worker).filter(Worker.id.in_(ids[1:])).delete()
                again = [f for f in rule_findings(s, utcnow(), [("jobs.queue.depth", 40.0)])
                         if f.diagnosis == "capacity"]
            assert again
            assert _open(again[0]) == iid and incident(iid).reopens == 1
            step = heal(iid)
            assert step.outcome == "acted", step  # one more worker than last time
            assert desired_workers(1) == found[0].subject["desired"] + 1
    finally:
        with session_scope() as s:
            s.query(Worker).filter(Worker.id.in_(ids)).delete()
            s.query(Job).filter(Job.id.in_(queued)).update({"state": "cancelled"})
        _reset_scale()


def test_a_slow_api_route_is_a_rule_breach_the_healer_only_watches_until_it_is_gone() -> None:
    from tools.auto_intel.monitor import monitor_tick
    from tools.auto_intel.self_heal import heal

    def metrics(n: int, slow: int) -> str:
        lines = ["# TYPE levqor_http_request_duration_seconds histogram"]
        for le, c in (("0.1", n - slow), ("0.5", n - slow), ("1.0", n), ("+Inf", n)):
            lines.append(f'levqor_http_request_duration_seconds_bucket{{le="{le}",method="GET",route="/v1/x"}} {c}')
        lines += ["# TYPE levqor_http_requests_total counter",
                  f'levqor_http_requests_total{{method="GET",route="/v1/x",status="200"}} {n}']
        return "\n".join(lines) + "\n"

    clean_ops()
    with override_settings(ops_api_p95_max_s=0.3, ops_resolve_quiet_s=1):
        t = ago(10)
        monitor_tick(t, api_text=metrics(100, 0))
        res = monitor_tick(t + dt.timedelta(seconds=1), api_text=metrics(110, 0))  # fast
        assert not [f for f in res.findings if f.diagnosis == "api_slow"]
        res = monitor_tick(t + dt.timedelta(seconds=2), api_text=metrics(120, 10))  # all 10 new ones slow
        slow = [f for f in res.findings if f.diagnosis == "api_slow"]
        assert slow and slow[0].cause == "api:/v1/x", res.findings
        from memory.db import session_scope
        from memory.ops.repository import IncidentRepository

        with session_scope() as s:
            inc = IncidentRepository(s).open_for_cause("api:/v1/x")
            assert inc is not None and inc.diagnosis == "api_slow"
            iid = inc.id
        assert heal(iid).outcome == "observed"
        monitor_tick(t + dt.timedelta(seconds=3), api_text=metrics(130, 10))  # fast again
        monitor_tick(t + dt.timedelta(seconds=5), api_text=metrics(140, 10))
        inc = incident(iid)
        assert inc.state == "resolved" and inc.resolved_by == "agent:monitor" and not inc.manual


def test_latency_injected_into_the_real_api_is_detected_watched_and_resolved_once_lifted(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The api_slowdown scenario in process: LEVQOR_CHAOS_API_DELAY_FILE slows the app's middleware, the
    monitor reads the app's own latency histogram, the healer only watches, the monitor resolves it."""
    from fastapi.testclient import TestClient

    import api.observe
    from api.app import create_app
    from memory.db import session_scope, utcnow
    from memory.ops.repository import IncidentRepository
    from tools.auto_intel.monitor import monitor_tick
    from tools.auto_intel.self_heal import heal

    monkeypatch.setattr(api.observe, "CHAOS_DELAY_REREAD_S", 0.0)
    delay = tmp_path / "delay"
    delay.write_text("0")
    clean_ops()
    with override_settings(chaos_api_delay_file=str(delay), ops_api_p95_max_s=0.3, ops_resolve_quiet_s=1):
        client = TestClient(create_app())

        def traffic(n: int) -> None:
            for _ in range(n):
                assert client.get("/healthz").status_code == 200

        monitor_tick()  # baseline of the counters
        traffic(6)
        res = monitor_tick()
        assert not [f for f in res.findings if f.cause == "api:/healthz"], res.findings
        delay.write_text("0.4")
        started = time.monotonic()
        traffic(4)
        assert time.monotonic() - started >= 1.6  # the middleware did sleep
        t_slow = utcnow()
        res = monitor_tick(t_slow)
        assert [f.diagnosis for f in res.findings if f.cause == "api:/healthz"] == ["api_slow"], res.findings
        with session_scope() as s:
            inc = IncidentRepository(s).open_for_cause("api:/healthz")
            assert inc is not None
            iid = inc.id
        assert heal(iid).outcome == "observed"  # no action speeds an API up
        delay.write_text("0")  # the injection is lifted
        traffic(6)
        monitor_tick(t_slow + dt.timedelta(seconds=2))
    inc = incident(iid)
    assert inc.state == "resolved" and inc.resolved_by == "agent:monitor" and not inc.manual


def test_the_predictor_warns_of_arrivals_outgrowing_the_workers_before_any_backlog(org: OrgFixture) -> None:
    import socket

    from memory.db import session_scope, utcnow
    from memory.jobs.models import Worker
    from memory.ops.repository import SignalRepository
    from tools.auto_intel.capacity import HISTORY_BUCKETS, measure

    clean_ops()
    jobs_out_of_the_windows()
    pid = make_pipeline(org.org_id)
    now = utcnow()
    wid = f"{socket.gethostname()}:{os.getpid()}:fc"
    with override_settings(ops_capacity_horizon_s=10, ops_window_s=30):  # buckets of 2 s
        bucket = 10 / 5
        with session_scope() as s:  # the monitor has watched the queue for the whole history
            SignalRepository(s).add_samples(now - dt.timedelta(seconds=bucket * HISTORY_BUCKETS - 1),
                                            [("jobs.queue.depth", 0.0, None)])
            s.add(Worker(id=wid, host=socket.gethostname(), pid=os.getpid(), concurrency=1, state="running",
                         current_jobs=[], jobs_done=0, started_at=ago(600), heartbeat_at=utcnow()))
        def arrivals(per_bucket: Any) -> None:  # every job done in 1 s by the one 1-slot worker
            for i in range(HISTORY_BUCKETS):
                at = now - dt.timedelta(seconds=bucket * (HISTORY_BUCKETS - i) - 0.5)
                for _ in range(per_bucket(i)):
                    make_job(org.org_id, pid, "succeeded", enqueued_at=at, started_at=at,
                             finished_at=at + dt.timedelta(seconds=1))

        try:
            arrivals(lambda i: 1)  # steady: 1 job per 2 s, the worker clears 2
            # measured at the `now` the history was written for: inserting it may take a while under load
            with session_scope() as s:
                quiet = measure(s, now, depth=0)
            assert quiet is not None and quiet.forecast_peak is None and not quiet.short, quiet
            arrivals(lambda i: i // 6)  # then arrivals ramp up to 8 per 2 s
            with session_scope() as s:
                cap = measure(s, now, depth=0)
            assert cap is not None and cap.drain_s == 0.0
            assert cap.forecast_peak is not None and cap.forecast_peak > cap.throughput_per_s * cap.bucket_s, cap
            assert cap.short and cap.workers_needed() >= 2 and "forecast" in cap.describe()
            later = now + dt.timedelta(seconds=3 * bucket)  # three quiet buckets on: the load is gone
            with session_scope() as s:
                s.query(Worker).filter(Worker.id == wid).update({"heartbeat_at": later})
            with session_scope() as s:
                after = measure(s, later, depth=0)
            assert after is not None and after.forecast_peak is None and not after.short, after
        finally:
            with session_scope() as s:
                s.query(Worker).filter(Worker.id == wid).delete()
