"""The chaos suite: break a small real platform on purpose and measure whether the monitor and healer cope.

``levqor chaos run [SCENARIO]`` starts worker processes (``levqor worker``, and ``levqor api`` for
``api_slowdown``) on a scratch SQLite database (or the configured one with ``--here``), a minimal
supervisor with the rules of ``levqor up`` (restart any worker that exits; run as many as
``workers.scale`` asks for), and runs the monitor and healer in this process every ``TICK_S``. Each
scenario injects one fault, then measures time to detect (an incident for the cause opens), time to
recover (it is resolved with no person), the actions taken, jobs lost (submitted but never succeeded)
and unsafe actions (the healer's policy denials).

What *recovered* means per scenario: the healer's action was verified (worker restarted or recycled,
leases requeued, poison job dead-lettered with every innocent job succeeding, failing partner endpoint
disabled while the healthy one received every event, workers added and the backlog cleared), except
``api_slowdown``: no control action speeds up an API, so the healer only watches and the incident is
resolved by the monitor once the injected latency is lifted (see :func:`api_slowdown`).
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
             "LEVQOR_WORKER_CONCURRENCY": "2", "LEVQOR_LOG_JSON": "true", "LEVQOR_OPS_QUEUE_AGE_MAX_S": "60",
             # scaled-down thresholds so that each fault shows within seconds
             "LEVQOR_OPS_RSS_GROWTH_BYTES": "60000000", "LEVQOR_OPS_CAPACITY_HORIZON_S": "10",
             "LEVQOR_OPS_API_P95_MAX_S": "0.3", "LEVQOR_WORKERS_MAX": "4",
             # the partner receivers of the partner_500s scenario listen on 127.0.0.1
             "LEVQOR_ALLOW_LOOPBACK_URLS": "true"}

# Per-scenario worker (and API) settings; ``{var_dir}`` is the scratch directory. Workers sweep expired
# leases themselves on each heartbeat; in the expired-leases scenario that sweep is off, so the scenario
# tests the monitor and healer rather than racing them (and a run where the sweep wins would show the
# fault as undetected). The fault injections (leak, API latency) exist only through these settings.
SCENARIO_ENV: dict[str, dict[str, str]] = {
    "expired_leases": {"LEVQOR_JOB_LEASE_SWEEP": "false"},
    "api_slowdown": {"LEVQOR_CHAOS_API_DELAY_FILE": "{var_dir}/chaos-api-delay"},
}
# Settings only the first worker process gets (its replacements run without them): the faulty one.
FIRST_WORKER_ENV: dict[str, dict[str, str]] = {
    "memory_leak": {"LEVQOR_CHAOS_LEAK_BYTES_PER_JOB": "6000000"},
}
WITH_API = frozenset({"api_slowdown"})  # scenarios whose platform also runs `levqor api`


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
    """Worker processes (and, when asked, the API) plus the supervisor's rules, on one database: restart
    any worker that exits, and run as many as ``workers.scale`` asks for (as ``levqor up`` does)."""

    def __init__(self, workers: int, env: dict[str, str], logdir: Path, *, first_env: dict[str, str] | None = None,
                 api: bool = False):
        self.env = env
        self.logdir = logdir
        self.base = workers
        self.procs: list[subprocess.Popen[bytes]] = []
        self.retiring: list[subprocess.Popen[bytes]] = []
        self.next_scale_check = 0.0
        self.api: subprocess.Popen[bytes] | None = None
        self.api_url = ""
        for i in range(workers):
            self.procs.append(self._start({**env, **(first_env or {})} if i == 0 else env))
        if api:
            try:
                self._start_api()
            except BaseException:
                self.stop()
                raise

    def _log(self, name: str) -> Any:
        self.logdir.mkdir(parents=True, exist_ok=True)
        return (self.logdir / f"{name}-{len(os.listdir(self.logdir))}.err").open("wb")

    def _start(self, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "api.cli", "worker"], env=env or self.env,
                                stdout=subprocess.DEVNULL, stderr=self._log("worker"), start_new_session=True)

    def _start_api(self) -> None:
        import socket

        import httpx

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        self.api_url = f"http://127.0.0.1:{port}"
        self.api = subprocess.Popen([sys.executable, "-m", "api.cli", "api", "--host", "127.0.0.1", "--port",
                                     str(port)], env=self.env, stdout=subprocess.DEVNULL, stderr=self._log("api"),
                                    start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.api.poll() is None:
            try:
                if httpx.get(self.api_url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("the chaos API process did not start")

    def supervise(self) -> None:
        for i, p in enumerate(self.procs):
            if p.poll() is not None:
                self.procs[i] = self._start()
        self.retiring = [p for p in self.retiring if p.poll() is None]
        if time.monotonic() >= self.next_scale_check:
            from tools.jobs.workers import desired_workers

            self.next_scale_check = time.monotonic() + 1.0
            want = desired_workers(self.base)
            while len(self.procs) < want:
                self.procs.append(self._start())
            while len(self.procs) > want:
                p = self.procs.pop()
                p.send_signal(signal.SIGTERM)
                self.retiring.append(p)

    def owns(self, pid: int) -> bool:
        return any(p.pid == pid and p.poll() is None for p in self.procs)

    def api_metrics(self) -> str | None:
        if not self.api_url:
            return None
        import httpx

        try:
            return httpx.get(self.api_url + "/metrics", timeout=5).text
        except httpx.HTTPError:
            return None

    def stop(self) -> None:
        procs = self.procs + self.retiring + ([self.api] if self.api is not None else [])
        for p in procs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGCONT)
                    p.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _tick(platform: Platform | None = None) -> None:
    from agents.monitor.graph import run_monitor

    run_monitor(api_text=platform.api_metrics() if platform is not None else None)


def _until(platform: Platform, pred: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        platform.supervise()
        _tick(platform)
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
    """A job that crashes every worker that runs it (simulated: whoever runs it is killed -9), among
    innocent jobs that keep arriving while it does: the healer dead-letters the poison job only, and every
    innocent job (``lost`` counts them) still succeeds, even one killed beside it (it runs again)."""
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
            state = job.state if job is not None else None
        if state == "queued" and len(jobs) < 18 and sum(_states(jobs).get(st, 0) for st in ("queued", "running")) < 2:
            jobs.extend(_submit(org_id, pipeline_id, 2))  # innocent work keeps arriving beside the poison
        if state != "running":
            return
        with session_scope() as s:
            for w in WorkerRepository(s).all():
                if poison in (w.current_jobs or []) and platform.owns(w.pid):
                    os.kill(w.pid, signal.SIGKILL)

    _finish(platform, res, f"job:{poison}", t0, jobs, timeout=90, during=crash_its_worker)
    res.note = (res.note + f"; {len(jobs) - res.lost}/{len(jobs)} innocent jobs succeeded").lstrip("; ")
    with session_scope() as s:
        job = s.get(Job, poison)
        if job is None or job.state != "dead":
            res.recovered = False
            res.note = (res.note + f"; poison job ended {job.state if job else 'missing'}").lstrip("; ")
    return res


def _worker_of(platform: Platform, pid: int, timeout: float = 30) -> Any:
    from memory.db import session_scope
    from memory.jobs.repository import WorkerRepository

    def find() -> Any:
        with session_scope() as s:
            for w in WorkerRepository(s).all():
                if w.pid == pid:
                    s.expunge(w)
                    return w
        return None

    return _until(platform, find, timeout)


def memory_leak(platform: Platform, org_id: int, pipeline_id: int) -> Result:
    """The first worker keeps memory from every job it runs (LEVQOR_CHAOS_LEAK_BYTES_PER_JOB): its RSS
    grows steadily until the healer recycles it (``workers.restart``); its replacement runs clean."""
    from memory.db import utcnow

    res = Result("memory_leak")
    leaky_pid = platform.procs[0].pid
    w = _worker_of(platform, leaky_pid)
    if w is None:
        res.note = "the leaking worker never registered"
        return res
    t0 = utcnow()
    jobs: list[int] = []

    def keep_busy() -> None:  # a steady trickle of work until the leak is seen (bounded)
        if not res.detected and len(jobs) < 200 and _states(jobs).get("queued", 0) < 4:
            jobs.extend(_submit(org_id, pipeline_id, 4))

    return _finish(platform, res, f"worker:{w.id}", t0, jobs, timeout=90, during=keep_busy)


class _Receiver:
    """Partner endpoints on 127.0.0.1: ``/ok`` answers 200, ``/fail`` answers 500; counts what arrives."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        counts = self.counts = {"/ok": 0, "/fail": 0}
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_a: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("content-length") or 0))
                with lock:
                    counts[self.path] = counts.get(self.path, 0) + 1
                self.send_response(500 if self.path == "/fail" else 200)
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _partner_installs(org_id: int, receiver: str) -> dict[str, int]:
    """A partner with two listed plugins subscribed to ``job_complete``, both installed by ``org_id``."""
    import uuid

    from memory.db import session_scope
    from tools.context import SYSTEM, Principal, ToolContext
    from tools.registry import registry

    tag = uuid.uuid4().hex[:6]
    out = {}
    with session_scope() as s:
        partner = registry.invoke("org.create", ToolContext(s, SYSTEM), {"name": "Chaos partner",
                                                                        "slug": f"chaos-partner-{tag}"})
        pctx = ToolContext(s, Principal(kind="system", id="chaos", org_id=partner.id, role="admin"))  # type: ignore[attr-defined]
        cctx = ToolContext(s, Principal(kind="system", id="chaos", org_id=org_id, role="admin"))
        registry.invoke("partners.register", pctx, {"display_name": "Chaos", "contact_email": "c@chaos.example"})
        for path in ("ok", "fail"):
            slug = f"chaos{tag}.{path}"
            m = {"id": slug, "name": f"Chaos {path}", "author": "Chaos", "version": "1.0.0", "scopes": ["jobs:read"],
                 "events": ["job_complete"], "endpoints": {"webhook_url": f"{receiver}/{path}"},
                 "revenue_share": 0.7, "support_url": "https://chaos.example/s", "privacy_url": "https://chaos.example/p"}
            registry.invoke("plugins.create", pctx, {"manifest": m})
            registry.invoke("plugins.submit", pctx, {"plugin": slug, "version": "1.0.0"})
            registry.invoke("plugins.review", pctx, {"plugin": slug, "version": "1.0.0", "decision": "approve"})
            out[path] = registry.invoke("plugins.install", cctx, {"plugin": slug}).id  # type: ignore[attr-defined]
    return out


def partner_500s(platform: Platform, org_id: int, pipeline_id: int) -> Result:
    """One installed partner endpoint answers 500 to every delivery: the healer disables that endpoint
    (``plugins.disable_endpoint``, the partner is emailed); the other endpoint keeps receiving every event."""
    from memory.db import session_scope, utcnow
    from memory.partner.models import PartnerEmail, PluginInstall

    res = Result("partner_500s")
    receiver = _Receiver()
    try:
        installs = _partner_installs(org_id, receiver.url)
        t0 = utcnow()
        jobs = _submit(org_id, pipeline_id, 8)
        _finish(platform, res, f"partner:{installs['fail']}", t0, jobs, timeout=60)
        more = _submit(org_id, pipeline_id, 4)  # after the fault: the healthy endpoint must get these too
        jobs += more
        _until(platform, lambda: _states(more).get("succeeded", 0) == len(more)
               and receiver.counts["/ok"] >= len(jobs), 60)
        states = _states(jobs)
        res.lost = len(jobs) - states.get("succeeded", 0)
        with session_scope() as s:
            failing = s.get(PluginInstall, installs["fail"])
            healthy = s.get(PluginInstall, installs["ok"])
            mailed = s.query(PartnerEmail).filter(PartnerEmail.body.like(f"%to install {installs['fail']} %")).count()
            problems = []
            if failing is None or failing.endpoint_disabled_at is None:
                problems.append("the failing endpoint is still enabled")
            if healthy is None or healthy.endpoint_disabled_at is not None:
                problems.append("the healthy endpoint was disabled")
            if receiver.counts["/ok"] < len(jobs):
                problems.append(f"the healthy endpoint got {receiver.counts['/ok']} of {len(jobs)} events")
            if not mailed:
                problems.append("the partner was not emailed")
        if problems:
            res.recovered = False
            res.note = (res.note + "; " + "; ".join(problems)).lstrip("; ")
        else:
            res.note = (res.note + f"; healthy endpoint received {receiver.counts['/ok']}/{len(jobs)} events, "
                        "partner emailed").lstrip("; ")
        return res
    finally:
        receiver.close()


def api_slowdown(platform: Platform, org_id: int, pipeline_id: int) -> Result:
    """The API answers every request ``INJECTED_DELAY_S`` late (LEVQOR_CHAOS_API_DELAY_FILE) while steady
    traffic hits ``/healthz``. Detected by the p95 latency rule (LEVQOR_OPS_API_P95_MAX_S). No control
    action speeds the API up, so the healer only watches: *healed* here means the incident resolved with no
    person once the latency went back under the limit (the scenario lifts the injection
    ``HOLD_AFTER_DETECT_S`` after detection, as a rollback of a bad deploy would), never that an action
    mitigated it."""
    import threading

    import httpx

    from memory.db import utcnow

    res = Result("api_slowdown")
    delay_file = Path(platform.env["LEVQOR_CHAOS_API_DELAY_FILE"])
    delay_file.write_text("0")
    stop = threading.Event()

    def traffic() -> None:  # bounded: stops with the scenario or after 3 minutes
        deadline = time.monotonic() + 180
        with httpx.Client(base_url=platform.api_url, timeout=10) as client:
            while not stop.is_set() and time.monotonic() < deadline:
                try:
                    client.get("/healthz")
                except httpx.HTTPError:
                    pass
                stop.wait(0.05)

    threads = [threading.Thread(target=traffic, daemon=True) for _ in range(8)]
    for th in threads:
        th.start()
    try:
        warm = time.monotonic() + 3.0  # normal latency first
        _until(platform, lambda: time.monotonic() > warm, 10)
        t0 = utcnow()
        delay_file.write_text(str(INJECTED_DELAY_S))
        seen_at: list[float] = []

        def lift_after_detection() -> None:
            if res.detected and not seen_at:
                seen_at.append(time.monotonic())
            if seen_at and len(seen_at) == 1 and time.monotonic() - seen_at[0] >= HOLD_AFTER_DETECT_S:
                delay_file.write_text("0")
                seen_at.append(time.monotonic())

        _finish(platform, res, "api:/healthz", t0, [], timeout=60, during=lift_after_detection)
        if res.recovered:
            res.note = (f"no action (none helps): resolved by the monitor once the injected {INJECTED_DELAY_S}s "
                        f"latency was lifted {HOLD_AFTER_DETECT_S:g}s after detection")
        return res
    finally:
        stop.set()
        delay_file.write_text("0")
        for th in threads:
            th.join(timeout=15)


INJECTED_DELAY_S = 0.6
HOLD_AFTER_DETECT_S = 3.0


def traffic_spike(platform: Platform, org_id: int, pipeline_id: int) -> Result:
    """A burst of submissions the workers cannot clear within LEVQOR_OPS_CAPACITY_HORIZON_S: the capacity
    rule warns, the healer asks for more workers (``workers.scale``, up to LEVQOR_WORKERS_MAX), the
    supervisor starts them and the queue drains. The scale decision is undone at the end."""
    from memory.db import session_scope, utcnow
    from tools.context import SYSTEM, ToolContext
    from tools.registry import registry

    res = Result("traffic_spike")
    warm = _submit(org_id, pipeline_id, 4)  # measured throughput needs a few finished jobs
    _until(platform, lambda: _states(warm).get("succeeded", 0) == len(warm), 30)
    t0 = utcnow()
    jobs = _submit(org_id, pipeline_id, SPIKE_JOBS)
    peak = [len(platform.procs)]

    def count_workers() -> None:
        peak[0] = max(peak[0], len(platform.procs))

    try:
        _finish(platform, res, "capacity", t0, warm + jobs, timeout=120, during=count_workers)
    finally:
        with session_scope() as s:
            registry.invoke("workers.scale", ToolContext(s, SYSTEM), {"desired": platform.base,
                                                                       "reason": "chaos traffic_spike done"})
    res.note = (res.note + f"; workers {platform.base} -> {peak[0]}").lstrip("; ")
    if peak[0] <= platform.base:
        res.recovered = False
        res.note += " (no worker was added)"
    return res


SPIKE_JOBS = 120

SCENARIOS: dict[str, Callable[[Platform, int, int], Result]] = {
    "worker_kill9": worker_kill9, "worker_hang": worker_hang, "memory_leak": memory_leak,
    "expired_leases": expired_leases, "poison_job": poison_job, "partner_500s": partner_500s,
    "api_slowdown": api_slowdown, "traffic_spike": traffic_spike,
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
        var_dir = str(get_settings().var_dir)
        extra = {k: v.replace("{var_dir}", var_dir) for k, v in SCENARIO_ENV.get(name, {}).items()}
        platform = Platform(workers, {**env, **extra}, logdir / name, first_env=FIRST_WORKER_ENV.get(name),
                            api=name in WITH_API)
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
