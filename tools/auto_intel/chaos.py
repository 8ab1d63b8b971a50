"""The chaos suite: break a small real platform on purpose and measure whether the monitor and healer cope.

``levqor chaos run [SCENARIO]`` starts worker processes (``levqor worker``) on a scratch SQLite database
(or the configured one with ``--here``), a minimal supervisor that restarts any that exits (as
``levqor up`` does), and runs the monitor and healer in this process every ``TICK_S``. Each scenario
injects one fault, then measures time to detect (an incident for the cause opens), time to recover (it
is resolved by the healer with no person), the actions taken, jobs lost (submitted but never succeeded)
and unsafe actions (the healer's policy denials). Scenarios not built yet are reported as such.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TICK_S = 0.25
ALL_SCENARIOS: tuple[str, ...] = ("worker_kill9", "worker_hang", "memory_leak", "expired_leases", "poison_job",
                                  "partner_500s", "api_slowdown", "traffic_spike")
CHAOS_ENV = {"LEVQOR_JOB_LEASE_S": "3", "LEVQOR_OPS_RESOLVE_QUIET_S": "3", "LEVQOR_OPS_HEAL_VERIFY_S": "4",
             "LEVQOR_WORKER_CONCURRENCY": "2", "LEVQOR_LOG_JSON": "true", "LEVQOR_OPS_QUEUE_AGE_MAX_S": "60"}

# Per-scenario worker settings. Workers sweep expired leases themselves on each heartbeat; in the
# expired-leases scenario that sweep is off, so the scenario tests the monitor and healer rather than
# racing them (and a run where the sweep wins would show the fault as undetected).
SCENARIO_ENV: dict[str, dict[str, str]] = {"expired_leases": {"LEVQOR_JOB_LEASE_SWEEP": "false"}}


@dataclass
class Result:
    scenario: str
    built: bool = True
    detected: bool = False
    ttd_s: float | None = None
    recovered: bool = False
    ttr_s: float | None = None
    actions: list[str] = field(default_factory=list)
    lost: int = 0
    human: bool = False
    unsafe: int = 0
    note: str = ""


class Platform:
    """Worker processes plus the supervisor's restart rule, on one database."""

    def __init__(self, workers: int, env: dict[str, str], logdir: Path):
        self.env = env
        self.logdir = logdir
        self.procs: list[subprocess.Popen[bytes]] = []
        for _ in range(workers):
            self.procs.append(self._start())

    def _start(self) -> subprocess.Popen[bytes]:
        self.logdir.mkdir(parents=True, exist_ok=True)
        log = (self.logdir / f"worker-{len(os.listdir(self.logdir))}.err").open("wb")
        return subprocess.Popen([sys.executable, "-m", "api.cli", "worker"], env=self.env,
                                stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)

    def supervise(self) -> None:
        for i, p in enumerate(self.procs):
            if p.poll() is not None:
                self.procs[i] = self._start()

    def owns(self, pid: int) -> bool:
        return any(p.pid == pid and p.poll() is None for p in self.procs)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGCONT)
                    p.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _tick() -> None:
    from agents.monitor.graph import run_monitor

    run_monitor()


def _until(platform: Platform, pred: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        platform.supervise()
        _tick()
        value = pred()
        if value:
            return value
        time.sleep(TICK_S)
    return None


def _setup() -> tuple[int, int]:
    """A chaos organisation with credits and a pipeline whose jobs take a moment."""
    import uuid

    from memory.db import session_scope
    from tools.context import SYSTEM, Principal, ToolContext
    from tools.registry import registry

    slug = f"chaos-{uuid.uuid4().hex[:6]}"
    with session_scope() as s:
        org = registry.invoke("org.create", ToolContext(s, SYSTEM), {"name": "Chaos", "slug": slug, "plan": "pro"})
        ctx = ToolContext(s, Principal(kind="system", id="chaos", org_id=org.id, role="admin"))  # type: ignore[attr-defined]
        registry.invoke("credits.grant", ctx, {"amount": 100000})
        p = registry.invoke("pipelines.create", ctx, {"name": "slow", "steps": [{"kind": "delay", "seconds": 0.6}]})
        return org.id, p.id  # type: ignore[attr-defined]


def _submit(org_id: int, pipeline_id: int, n: int) -> list[int]:
    from memory.db import session_scope
    from tools.context import Principal, ToolContext
    from tools.registry import registry

    ids = []
    with session_scope() as s:
        ctx = ToolContext(s, Principal(kind="system", id="chaos", org_id=org_id, role="admin"))
        for _ in range(n):
            ids.append(registry.invoke("jobs.submit", ctx, {"pipeline_id": pipeline_id}).id)  # type: ignore[attr-defined]
    return ids


def _states(ids: list[int]) -> dict[str, int]:
    from sqlalchemy import func, select

    from memory.db import session_scope
    from memory.jobs.models import Job

    with session_scope() as s:
        rows = s.execute(select(Job.state, func.count()).where(Job.id.in_(ids)).group_by(Job.state))
        return {st: int(n) for st, n in rows}


def _incident(cause: str, since: dt.datetime) -> tuple[Any, dt.datetime | None]:
    """The incident that recorded evidence for ``cause`` after ``since`` (new, reopened or still open),
    with ``detected_at_chaos``: when that first evidence was recorded."""
    from sqlalchemy import func, select

    from memory.db import session_scope
    from memory.ops.models import Incident, IncidentEvent

    with session_scope() as s:
        row = s.execute(select(Incident, func.min(IncidentEvent.at))
                        .join(IncidentEvent, IncidentEvent.incident_id == Incident.id)
                        .where(Incident.cause == cause, IncidentEvent.at >= since,
                               IncidentEvent.kind.in_(("evidence", "state")))
                        .group_by(Incident.id).order_by(Incident.id.desc()).limit(1)).first()
        if row is None:
            return None, None
        inc, first = row
        s.expunge(inc)
        return inc, first if first.tzinfo else first.replace(tzinfo=dt.UTC)


def _actions(incident_id: int, since: dt.datetime) -> list[str]:
    from memory.db import session_scope
    from memory.ops.repository import IncidentRepository

    with session_scope() as s:
        return [e.message for e in IncidentRepository(s).events(incident_id)
                if e.kind == "action" and (e.at if e.at.tzinfo else e.at.replace(tzinfo=dt.UTC)) >= since]


def _escalation(incident_id: int) -> str:
    from memory.db import session_scope
    from memory.ops.repository import IncidentRepository

    with session_scope() as s:
        msgs = [e.message for e in IncidentRepository(s).events(incident_id) if e.message.startswith("escalated")]
        return msgs[-1] if msgs else ""


def _unsafe(since: dt.datetime) -> int:
    from sqlalchemy import func, select

    from memory.audit.models import AuditEntry
    from memory.db import session_scope

    with session_scope() as s:
        return int(s.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.actor == "agent:healer", AuditEntry.action == "policy.denied", AuditEntry.ts >= since)) or 0)


def _busy_worker(platform: Platform) -> Any:
    from memory.db import session_scope
    from memory.jobs.repository import WorkerRepository

    with session_scope() as s:
        for w in WorkerRepository(s).all():
            if w.current_jobs and platform.owns(w.pid):
                s.expunge(w)
                return w
    return None


def _finish(platform: Platform, res: Result, inc_cause: str, t0: dt.datetime, jobs: list[int],
            timeout: float = 60.0, during: Callable[[], None] | None = None) -> Result:
    def settled() -> bool:
        if during is not None:
            during()
        inc, first = _incident(inc_cause, t0)
        if inc is not None and first is not None and not res.detected:
            res.detected, res.ttd_s = True, max(0.0, (first - t0).total_seconds())
        done = _states(jobs).get("succeeded", 0) == len(jobs)
        return bool(done and inc is not None and (inc.state == "resolved" or inc.manual))

    _until(platform, settled, timeout)
    inc, _ = _incident(inc_cause, t0)
    if inc is not None:
        from collections import Counter

        counts = Counter(m.split(" (")[0] for m in _actions(inc.id, t0))
        res.actions = [f"{m} x{n}" if n > 1 else m for m, n in counts.items()]
        res.human = bool(inc.manual)
        if inc.manual:
            res.note = _escalation(inc.id)
        if inc.state == "resolved" and not inc.manual and inc.resolved_at is not None:
            res.recovered, res.ttr_s = True, (inc.resolved_at - t0).total_seconds()
    states = _states(jobs)
    res.lost = len(jobs) - states.get("succeeded", 0)
    res.unsafe = _unsafe(t0)
    if res.lost:
        res.note = (res.note + f"; job states at the end: {states}").lstrip("; ")
    return res


def worker_kill9(platform: Platform, org_id: int, pipeline_id: int) -> Result:
    from memory.db import utcnow

    res = Result("worker_kill9")
    jobs = _submit(org_id, pipeline_id, 12)
    w = _until(platform, lambda: _busy_worker(platform), 30)
    if w is None:
        res.note = "no worker picked up a job"
        return res
    t0 = utcnow()
    os.kill(w.pid, signal.SIGKILL)
    return _finish(platform, res, f"worker:{w.id}", t0, jobs)


def worker_hang(platform: Platform, org_id: int, pipeline_id: int) -> Result:
    from memory.db import utcnow

    res = Result("worker_hang")
    jobs = _submit(org_id, pipeline_id, 12)
    w = _until(platform, lambda: _busy_worker(platform), 30)
    if w is None:
        res.note = "no worker picked up a job"
        return res
    t0 = utcnow()
    os.kill(w.pid, signal.SIGSTOP)
    try:
        return _finish(platform, res, f"worker:{w.id}", t0, jobs, timeout=45)
    finally:
        try:  # never leave a stopped process behind
            os.kill(w.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def expired_leases(platform: Platform, org_id: int, pipeline_id: int) -> Result:
    """Jobs left running by a worker on a machine that vanished (its row never existed here)."""
    from memory.db import session_scope, utcnow
    from memory.jobs.models import Job

    res = Result("expired_leases")
    t0 = utcnow()
    ids = []
    with session_scope() as s:
        for _ in range(3):
            j = Job(org_id=org_id, pipeline_id=pipeline_id, state="running", attempts=1, max_attempts=3,
                    lease_owner="vanished-host:1:chaos", lease_until=t0 - dt.timedelta(seconds=1),
                    started_at=t0 - dt.timedelta(seconds=10), enqueued_at=t0 - dt.timedelta(seconds=11), fence=1)
            s.add(j)
            s.flush()
            ids.append(j.id)
    return _finish(platform, res, "queue:leases", t0, ids)


def poison_job(platform: Platform, org_id: int, pipeline_id: int) -> Result:
    """A job that crashes every worker that runs it (simulated: whoever runs it is killed -9)."""
    from memory.db import session_scope, utcnow
    from memory.jobs.models import Job
    from memory.jobs.repository import WorkerRepository
    from tools.context import Principal, ToolContext
    from tools.registry import registry

    res = Result("poison_job")
    with session_scope() as s:
        ctx = ToolContext(s, Principal(kind="system", id="chaos", org_id=org_id, role="admin"))
        slow = registry.invoke("pipelines.create", ctx, {"name": "poison", "max_attempts": 6,
                                                         "steps": [{"kind": "delay", "seconds": 30}]})
        poison = registry.invoke("jobs.submit", ctx, {"pipeline_id": slow.id}).id  # type: ignore[attr-defined]
    jobs = _submit(org_id, pipeline_id, 6)
    t0 = utcnow()

    def crash_its_worker() -> None:
        with session_scope() as s:
            job = s.get(Job, poison)
            if job is None or job.state != "running":
                return
            for w in WorkerRepository(s).all():
                if poison in (w.current_jobs or []) and platform.owns(w.pid):
                    os.kill(w.pid, signal.SIGKILL)

    _finish(platform, res, f"job:{poison}", t0, jobs, timeout=90, during=crash_its_worker)
    with session_scope() as s:
        job = s.get(Job, poison)
        if job is None or job.state != "dead":
            res.recovered = False
            res.note = (res.note + f"; poison job ended {job.state if job else 'missing'}").lstrip("; ")
    return res


SCENARIOS: dict[str, Callable[[Platform, int, int], Result]] = {
    "worker_kill9": worker_kill9, "worker_hang": worker_hang, "expired_leases": expired_leases,
    "poison_job": poison_job,
}


def prepare_scratch(var_dir: Path) -> None:
    """Point this process at a fresh SQLite database in ``var_dir`` and migrate it."""
    from levqor.settings import get_settings
    from memory.db import dispose_engines
    from memory.migrate import upgrade

    os.environ["LEVQOR_VAR_DIR"] = str(var_dir)
    os.environ.pop("LEVQOR_DATABASE_URL", None)
    for k, v in CHAOS_ENV.items():
        os.environ[k] = v
    get_settings.cache_clear()
    dispose_engines()
    upgrade()


def run(names: list[str], *, workers: int = 2, logdir: Path) -> list[Result]:
    """Run the scenarios (one platform each, so one fault cannot spoil the next)."""
    from levqor.settings import get_settings

    for k, v in CHAOS_ENV.items():
        os.environ.setdefault(k, v)
    get_settings.cache_clear()
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env["LEVQOR_DATABASE_URL"] = get_settings().resolved_database_url
    results = []
    for name in names:
        if name not in SCENARIOS:
            results.append(Result(name, built=False, note="scenario not built yet"))
            continue
        org_id, pipeline_id = _setup()
        platform = Platform(workers, {**env, **SCENARIO_ENV.get(name, {})}, logdir / name)
        try:
            results.append(SCENARIOS[name](platform, org_id, pipeline_id))
        finally:
            platform.stop()
    return results


def summary_line(results: list[Result]) -> str:
    crash = next((r for r in results if r.scenario == "worker_kill9" and r.ttr_s is not None), None)
    mttr = f"{crash.ttr_s:.1f}" if crash is not None and crash.ttr_s is not None else "n/a"
    return (f"chaos: detected={sum(r.detected for r in results)}/{len(ALL_SCENARIOS)} "
            f"healed={sum(r.recovered for r in results)}/{len(ALL_SCENARIOS)} lost={sum(r.lost for r in results)} "
            f"unsafe={sum(r.unsafe for r in results)} mttr_worker_crash_s={mttr}")
