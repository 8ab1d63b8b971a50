"""The chaos scenarios: faults injected into a running platform, and the suite that runs them.

What *recovered* means per scenario: the healer's action was verified (worker restarted or recycled,
leases requeued, poison job dead-lettered with every innocent job succeeding, failing partner endpoint
disabled while the healthy one received every event, workers added and the backlog cleared), except
``api_slowdown``: no control action speeds up an API, so the healer only watches and the incident is
resolved by the monitor once the injected latency is lifted (see :func:`api_slowdown`); and the faults
whose control is built in rather than a healer action (``supervisor_kill9``: the children's parent-death
signal and parent watch, and a restart; ``scheduler_kill9``: the lease and the tick take-over;
``llm_outage``: the circuit breaker and the cost cap; ``api_kill9``: uvicorn's manager replacing the
process, the shared listening socket and the clients' safe retries; ``db_outage``: backoff and
reconnection in every process, the API's 503 with Retry-After, the outage noted outside the database),
where the healer only watches and *recovered* is what each scenario's docstring checks. Each scenario
runs on a platform of its own (:func:`run`), so one fault cannot spoil the next.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from bench.chaos import disk, harness
from bench.chaos.harness import CHAOS_ENV, TICK_S, Platform, restore_env, stop_process, until
from bench.chaos.measure import Result, busy_worker, call, finish, incident, org_ctx, setup, states, submit, worker_of
from levqor.settings import get_settings
from memory.agents.models import AgentRun
from memory.agents.repository import AgentRepository
from memory.db import aware, session_scope, utcnow
from memory.events.models import Event
from memory.jobs.models import Job
from memory.jobs.repository import WorkerRepository
from memory.leases.models import Lease
from memory.ops.models import Incident
from memory.partner.models import PartnerEmail, PluginInstall
from memory.scheduler.repository import TickRepository
from tools.context import SYSTEM, ToolContext
from tools.jobs.workers import api_processes
from tools.schedules import SCHEDULER_LEASE

ALL_SCENARIOS: tuple[str, ...] = (  # one per line: the scenarios added later append here
    "worker_kill9",
    "worker_hang",
    "memory_leak",
    "expired_leases",
    "poison_job",
    "partner_500s",
    "api_slowdown",
    "traffic_spike",
    "supervisor_kill9",
    "scheduler_kill9",
    "llm_outage",
    "db_outage",
    "api_kill9",
    "disk_full",
)
# Per-scenario worker (and API) settings; ``{var_dir}`` is the scratch directory. Workers sweep expired
# leases themselves on each heartbeat; in the expired-leases scenario that sweep is off, so the scenario
# tests the monitor and healer rather than racing them (and a run where the sweep wins would show the
# fault as undetected). The fault injections (leak, API latency) exist only through these settings.
SCENARIO_ENV: dict[str, dict[str, str]] = {
    "expired_leases": {"LEVQOR_JOB_LEASE_SWEEP": "false"},
    "api_slowdown": {"LEVQOR_CHAOS_API_DELAY_FILE": "{var_dir}/chaos-api-delay"},
    "scheduler_kill9": {"LEVQOR_AGENT_SCHEDULES": '{"janitor": "interval:8"}', "LEVQOR_SCHEDULER_LEASE_S": "4",
                        "LEVQOR_SCHEDULER_RENEW_S": "0.5", "LEVQOR_CHAOS_TICK_PAUSE": '{"agent.janitor": 5}',
                        # the suite's own loop is the monitor (the schedulers' would race it)
                        "LEVQOR_OPS_SAMPLE_INTERVAL_S": "86400"},
    # SQLite: a write waits this long for the lock the scenario holds before the database counts as unavailable
    # (at 1 s the catch-up right after the outage sometimes waited that long for the lock: a second blip)
    "db_outage": {"LEVQOR_DB_BUSY_TIMEOUT_S": "3", "LEVQOR_SCHEDULER_LEASE_S": "6",
                  # the suite's own loop is the monitor (the scheduler's would race it)
                  "LEVQOR_OPS_SAMPLE_INTERVAL_S": "86400"},
}
# Settings only the first worker process gets (its replacements run without them): the faulty one.
FIRST_WORKER_ENV: dict[str, dict[str, str]] = {
    "memory_leak": {"LEVQOR_CHAOS_LEAK_BYTES_PER_JOB": "6000000"},
}
WITH_API = frozenset({"api_slowdown", "db_outage"})  # scenarios whose platform also runs `levqor api`
# Scenarios whose platform runs fewer worker processes than asked (they start their own `levqor up`).
PLATFORM_WORKERS: dict[str, int] = {
    "supervisor_kill9": 0,
    "api_kill9": 0,
}


def _signal_a_busy_worker(platform: Platform, res: Result, org_id: int, pipeline_id: int, sig: int,
                          timeout: float = 60.0) -> Result:
    """Send ``sig`` to a worker while it runs jobs, then measure the incident for that worker."""
    jobs = submit(org_id, pipeline_id, 12)
    w = until(platform, lambda: busy_worker(platform), 30)
    if w is None:
        res.note = "no worker picked up a job"
        return res
    t0 = utcnow()
    os.kill(w.pid, sig)
    try:
        return finish(platform, res, f"worker:{w.id}", t0, jobs, timeout=timeout)
    finally:
        if sig == signal.SIGSTOP:
            try:  # never leave a stopped process behind
                os.kill(w.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def worker_kill9(platform: Platform, org_id: int, pipeline_id: int) -> Result:
    """A worker running jobs is killed -9: the healer has it restarted and its jobs run again."""
    return _signal_a_busy_worker(platform, Result("worker_kill9"), org_id, pipeline_id, signal.SIGKILL)


def worker_hang(platform: Platform, org_id: int, pipeline_id: int) -> Result:
    """A worker running jobs is stopped (SIGSTOP, it stops beating): the healer has it restarted."""
    return _signal_a_busy_worker(platform, Result("worker_hang"), org_id, pipeline_id, signal.SIGSTOP, timeout=45)


def expired_leases(platform: Platform, org_id: int, pipeline_id: int) -> Result:
    """Jobs left running by a worker on a machine that vanished (its row never existed here)."""
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
    return finish(platform, res, "queue:leases", t0, ids)


def poison_job(platform: Platform, org_id: int, pipeline_id: int) -> Result:
    """A job that crashes every worker that runs it (simulated: whoever runs it is killed -9), among
    innocent jobs that keep arriving while it does: the healer dead-letters the poison job only, and every
    innocent job (``lost`` counts them) still succeeds, even one killed beside it (it runs again)."""
    res = Result("poison_job")
    with session_scope() as s:
        ctx = org_ctx(s, org_id)
        slow = call(ctx, "pipelines.create", name="poison", max_attempts=6, steps=[{"kind": "delay", "seconds": 30}])
        poison = call(ctx, "jobs.submit", pipeline_id=slow.id).id
    jobs = submit(org_id, pipeline_id, 6)
    t0 = utcnow()

    def crash_its_worker() -> None:
        with session_scope() as s:
            job = s.get(Job, poison)
            state = job.state if job is not None else None
        if state == "queued" and len(jobs) < 18 and sum(states(jobs).get(st, 0) for st in ("queued", "running")) < 2:
            jobs.extend(submit(org_id, pipeline_id, 2))  # innocent work keeps arriving beside the poison
        if state != "running":
            return
        with session_scope() as s:
            for w in WorkerRepository(s).all():
                if poison in (w.current_jobs or []) and platform.owns(w.pid):
                    os.kill(w.pid, signal.SIGKILL)

    finish(platform, res, f"job:{poison}", t0, jobs, timeout=90, during=crash_its_worker)
    res.note = (res.note + f"; {len(jobs) - res.lost}/{len(jobs)} innocent jobs succeeded").lstrip("; ")
    with session_scope() as s:
        job = s.get(Job, poison)
        if job is None or job.state != "dead":
            res.recovered = False
            res.note = (res.note + f"; poison job ended {job.state if job else 'missing'}").lstrip("; ")
    return res


def memory_leak(platform: Platform, org_id: int, pipeline_id: int) -> Result:
    """The first worker keeps memory from every job it runs (LEVQOR_CHAOS_LEAK_BYTES_PER_JOB): its RSS
    grows steadily until the healer recycles it (``workers.restart``); its replacement runs clean."""
    res = Result("memory_leak")
    leaky_pid = platform.procs[0].pid
    w = worker_of(platform, leaky_pid)
    if w is None:
        res.note = "the leaking worker never registered"
        return res
    t0 = utcnow()
    jobs: list[int] = []

    def keep_busy() -> None:  # a steady trickle of work until the leak is seen (bounded)
        if not res.detected and len(jobs) < 200 and states(jobs).get("queued", 0) < 4:
            jobs.extend(submit(org_id, pipeline_id, 4))

    return finish(platform, res, f"worker:{w.id}", t0, jobs, timeout=90, during=keep_busy)


class _LoopbackServer:
    """An HTTP server on 127.0.0.1 (a free port) served from a daemon thread; ``url`` ends with ``path``."""

    def _serve(self, handler: type[BaseHTTPRequestHandler], path: str = "") -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Receiver(_LoopbackServer):
    """Partner endpoints on 127.0.0.1: ``/ok`` answers 200, ``/fail`` answers 500; counts what arrives."""

    def __init__(self) -> None:
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

        self._serve(Handler)


def partner_installs(org_id: int, receiver: str) -> dict[str, int]:
    """A partner with two listed plugins subscribed to ``job_complete``, both installed by ``org_id``."""
    tag = uuid.uuid4().hex[:6]
    out = {}
    with session_scope() as s:
        partner = call(ToolContext(s, SYSTEM), "org.create", name="Chaos partner", slug=f"chaos-partner-{tag}")
        pctx, cctx = org_ctx(s, partner.id), org_ctx(s, org_id)
        call(pctx, "partners.register", display_name="Chaos", contact_email="c@chaos.example")
        for path in ("ok", "fail"):
            slug = f"chaos{tag}.{path}"
            m = {"id": slug, "name": f"Chaos {path}", "author": "Chaos", "version": "1.0.0", "scopes": ["jobs:read"],
                 "events": ["job_complete"], "endpoints": {"webhook_url": f"{receiver}/{path}"},
                 "revenue_share": 0.7, "support_url": "https://chaos.example/s", "privacy_url": "https://chaos.example/p"}
            call(pctx, "plugins.create", manifest=m)
            call(pctx, "plugins.submit", plugin=slug, version="1.0.0")
            call(ToolContext(s, SYSTEM), "plugins.review", plugin=slug, version="1.0.0", decision="approve")
            out[path] = call(cctx, "plugins.install", plugin=slug).id
    return out


def partner_500s(platform: Platform, org_id: int, pipeline_id: int) -> Result:
    """One installed partner endpoint answers 500 to every delivery: the healer disables that endpoint
    (``plugins.disable_endpoint``, the partner is emailed); the other endpoint keeps receiving every event."""
    res = Result("partner_500s")
    receiver = _Receiver()
    try:
        installs = partner_installs(org_id, receiver.url)
        t0 = utcnow()
        jobs = submit(org_id, pipeline_id, 8)
        finish(platform, res, f"partner:{installs['fail']}", t0, jobs, timeout=60)
        more = submit(org_id, pipeline_id, 4)  # after the fault: the healthy endpoint must get these too
        jobs += more
        until(platform, lambda: states(more).get("succeeded", 0) == len(more)
              and receiver.counts["/ok"] >= len(jobs), 60)
        final = states(jobs)
        res.lost = len(jobs) - final.get("succeeded", 0)
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
        until(platform, lambda: time.monotonic() > warm, 10)
        t0 = utcnow()
        delay_file.write_text(str(INJECTED_DELAY_S))
        seen_at: list[float] = []

        def lift_after_detection() -> None:
            if res.detected and not seen_at:
                seen_at.append(time.monotonic())
            if seen_at and len(seen_at) == 1 and time.monotonic() - seen_at[0] >= HOLD_AFTER_DETECT_S:
                delay_file.write_text("0")
                seen_at.append(time.monotonic())

        finish(platform, res, "api:/healthz", t0, [], timeout=60, during=lift_after_detection)
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
    res = Result("traffic_spike")
    warm = submit(org_id, pipeline_id, 4)  # measured throughput needs a few finished jobs
    until(platform, lambda: states(warm).get("succeeded", 0) == len(warm), 30)
    t0 = utcnow()
    jobs = submit(org_id, pipeline_id, SPIKE_JOBS)
    peak = [len(platform.procs)]

    def count_workers() -> None:
        peak[0] = max(peak[0], len(platform.procs))

    try:
        finish(platform, res, "capacity", t0, warm + jobs, timeout=120, during=count_workers)
    finally:
        with session_scope() as s:
            call(ToolContext(s, SYSTEM), "workers.scale", desired=platform.base, reason="chaos traffic_spike done")
    res.note = (res.note + f"; workers {platform.base} -> {peak[0]}").lstrip("; ")
    if peak[0] <= platform.base:
        res.recovered = False
        res.note += " (no worker was added)"
    return res


SPIKE_JOBS = 120


class _Up:
    """A ``levqor up`` of the chaos platform (two workers, a scheduler, the API: one process, or with
    ``api_processes=None`` the default, one per core and at least two) on ``port``."""

    def __init__(self, platform: Platform, port: int, name: str, *, api_processes: str | None = "1",
                 env: dict[str, str] | None = None):
        # the chaos suite's own loop is the monitor: the scheduler's would race it on the same incidents
        env = {**platform.env, "LEVQOR_PORT": str(port), "LEVQOR_HOST": "127.0.0.1",
               "LEVQOR_OPS_SAMPLE_INTERVAL_S": "86400", **(env or {})}
        env.pop("LEVQOR_API_PROCESSES", None)
        if api_processes is not None or (os.cpu_count() or 1) < 2:
            env["LEVQOR_API_PROCESSES"] = api_processes or "2"
        platform.logdir.mkdir(parents=True, exist_ok=True)
        self.log = platform.logdir / f"{name}.err"
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "api.cli", "up", "--workers", "2"], env=env,
                                     stdout=subprocess.DEVNULL, stderr=self.log.open("wb"), start_new_session=True)

    def children(self) -> list[Any]:
        import psutil  # kept lazy: only this scenario reads the process tree

        try:
            return list(psutil.Process(self.proc.pid).children())
        except psutil.NoSuchProcess:
            return []

    def api_processes(self) -> list[Any]:
        """The API's serving processes (uvicorn's worker processes, or the API child itself when alone)."""
        import psutil  # kept lazy: only these scenarios read the process tree

        out = []
        for child in self.children():
            try:
                if child.cmdline()[-1:] == ["api"]:
                    kids = [k for k in child.children() if "spawn_main" in " ".join(k.cmdline())]
                    out += kids or [child]
            except psutil.Error:
                pass
        return out

    def clients_of(self, proc: Any) -> int:
        """How many client connections API process ``proc`` holds open now."""
        import psutil  # kept lazy: only these scenarios read the process tree

        try:
            return sum(1 for c in proc.net_connections(kind="tcp")
                       if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == self.port)
        except psutil.Error:
            return 0

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"levqor up exited {self.proc.returncode}: {self.log.read_text()[-800:]}")
        try:
            return len(self.children()) >= 4 and httpx.get(self.base + "/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def restarts(self) -> int:
        return self.log.read_text(errors="replace").count('"child exited; restarting"')

    def stop(self) -> None:
        stop_process(self.proc)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _FakeLlm(_LoopbackServer):
    """An OpenAI-compatible chat endpoint on 127.0.0.1 whose behaviour the scenario switches: ``ok``
    (answers), ``hang`` (answers after the client's timeout), ``down`` (503), ``loop`` (asks for a tool
    again and again, each answer costing $1.35 at gpt-4o-mini prices); it counts what reaches it."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.calls: Counter[str] = Counter()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_a: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
                mode = fake.mode
                fake.calls[mode] += 1
                if mode == "hang":
                    time.sleep(LLM_HANG_S)
                if mode in ("hang", "down"):
                    self._send(503, {"error": {"message": "chaos: LLM outage", "type": "server_error"}})
                    return
                msg: dict[str, Any] = {"role": "assistant", "content": "All quiet."}
                usage = (100, 20)
                if mode == "loop":
                    msg = {"role": "assistant", "content": None, "tool_calls": [{
                        "id": f"call_{uuid.uuid4().hex[:8]}", "type": "function",
                        "function": {"name": "jobs.list", "arguments": "{}"}}]}
                    usage = (5_000_000, 1_000_000)
                self._send(200, {"id": "chatcmpl-chaos", "object": "chat.completion", "created": int(time.time()),
                                 "model": body.get("model", "gpt-4o-mini"),
                                 "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1],
                                           "total_tokens": sum(usage)},
                                 "choices": [{"index": 0, "message": msg,
                                              "finish_reason": "tool_calls" if mode == "loop" else "stop"}]})

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (timeout)
                    pass

        self._serve(Handler, "/v1")


LLM_HANG_S = 2.5  # the client's timeout is 1 s in the scenario
LLM_OUTAGE_HOLD_S = 8.0  # the endpoint stays down this long after detection ("minutes", scaled down)
LLM_ENV = {"OPENAI_API_KEY": "sk-chaos", "LEVQOR_LLM_TIMEOUT_S": "1", "LEVQOR_LLM_MAX_RETRIES": "0",
           "LEVQOR_LLM_BREAKER_OPEN_S": "3"}


def _run(org_id: int) -> tuple[str, str]:
    """Start a janitor run now (in this process, as the scheduler would); its status and mode."""
    from agents.runtime import start_run  # kept lazy: the agents' runtime loads LangGraph

    run_id = start_run("janitor", org_id, "manual")
    with session_scope() as s:
        run = s.get(AgentRun, run_id)
        return (run.status, run.mode) if run is not None else ("missing", "")


def llm_outage(platform: Platform, org_id: int, pipeline_id: int) -> Result:
    """The configured LLM endpoint first hangs past the client's timeout, then answers 503, for
    ``LLM_OUTAGE_HOLD_S`` after detection while janitor runs keep starting (one a second); then it answers
    again. Separately, the janitor's model loops on a tool at $1.35 a call. *Recovered*: every run during
    the outage succeeded (offline from the first failed call on: only that call and the breaker's
    half-open probes reached the endpoint), the incident resolved once a probe answered and the next run
    used the LLM again; and the policy's daily cost cap stopped the loop, with an incident."""
    from tools.agents import llm_guard  # kept lazy with the agents' runtime

    res = Result("llm_outage")
    fake = _FakeLlm()
    saved = {k: os.environ.get(k) for k in (*LLM_ENV, "OPENAI_BASE_URL")}
    os.environ.update({**LLM_ENV, "OPENAI_BASE_URL": fake.url})
    get_settings.cache_clear()
    problems: list[str] = []
    try:
        cause = f"llm:{llm_guard.endpoint()}"
        if _run(org_id) != ("succeeded", "llm"):
            res.note = "the janitor did not run with the LLM before the fault"
            return res
        t0 = utcnow()
        fake.mode = "hang"
        outage: list[tuple[str, str]] = []
        back: list[tuple[str, str]] = []
        at = {"next": 0.0, "detected": 0.0}

        def traffic() -> None:
            if fake.mode == "hang" and fake.calls["hang"]:
                fake.mode = "down"  # the timeouts turn into 5xx answers
            if res.detected and not at["detected"]:
                at["detected"] = time.monotonic()
            if at["detected"] and fake.mode != "ok" and time.monotonic() - at["detected"] >= LLM_OUTAGE_HOLD_S:
                fake.mode = "ok"
            if time.monotonic() >= at["next"] and len(outage) + len(back) < 80:  # runs go on after it, too
                at["next"] = time.monotonic() + 1.0
                (outage if fake.mode != "ok" else back).append(_run(org_id))

        finish(platform, res, cause, t0, [], timeout=90, during=traffic)
        reached = fake.calls["hang"] + fake.calls["down"]
        after = back[-1] if back else _run(org_id)
        failed = [r for r in outage + back if r[0] != "succeeded"]
        if failed:
            problems.append(f"{len(failed)} of {len(outage)} runs during the outage did not succeed: {failed[:3]}")
        if after != ("succeeded", "llm"):
            problems.append(f"after the outage the janitor ran {after}, not with the LLM")
        offline = sum(1 for r in outage if r[1] == "offline")
        res.note = (f"{len(outage)} runs during the outage ({offline} offline), {reached} calls reached the "
                    f"failing endpoint (the first and the half-open probes), LLM again after")

        fake.mode = "loop"
        t1 = utcnow()
        looped = _run(org_id)
        loop_calls = fake.calls["loop"]
        capped = until(platform, lambda: incident(f"llm_cost:{org_id}:janitor", t1)[0], 20)
        if looped[0] != "failed" or loop_calls > 4:
            problems.append(f"the looping janitor was not stopped by its cost cap ({loop_calls} calls, {looped})")
        if capped is None:
            problems.append("no incident for the cost cap")
        res.note += f"; looping janitor stopped by the daily cost cap after {loop_calls} calls, incident opened"
    finally:
        restore_env(saved)
        fake.close()
    if problems:
        res.recovered = False
        res.note = (res.note + "; " + "; ".join(problems)).lstrip("; ")
    return res


def _scheduler(platform: Platform, name: str) -> subprocess.Popen[bytes]:
    platform.logdir.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "api.cli", "scheduler"], env=platform.env,
                            stdout=subprocess.DEVNULL, stderr=(platform.logdir / f"{name}.err").open("wb"),
                            start_new_session=True)


def _scheduler_lease() -> tuple[int | None, int]:
    """The pid holding a live scheduler lease (None: nobody), and the lease's epoch."""
    with session_scope() as s:
        lease = s.get(Lease, SCHEDULER_LEASE)
        if lease is None:
            return None, 0
        live = aware(lease.expires_at) > utcnow()
        return (int(lease.holder.split(":")[1]) if live else None), lease.epoch


def scheduler_kill9(platform: Platform, org_id: int, pipeline_id: int) -> Result:
    """The scheduler leader is killed -9 in the middle of a tick (the janitor agent's, every 8 s: its runs
    started, the tick not yet recorded finished) while a standby scheduler runs. *Recovered*: the standby
    leads within the lease's length, re-runs that tick once (recorded as taken over), and every
    organisation got exactly one janitor run for it (none lost, none twice); the incident resolved."""
    res = Result("scheduler_kill9")
    ttl = float(platform.env["LEVQOR_SCHEDULER_LEASE_S"])
    a = _scheduler(platform, "scheduler-a")
    b: subprocess.Popen[bytes] | None = None
    problems: list[str] = []
    try:
        if not until(platform, lambda: _scheduler_lease()[0] == a.pid, 60):
            res.note = "the first scheduler never led"
            return res
        b = _scheduler(platform, "scheduler-b")
        if not until(platform, lambda: "scheduler started" in (platform.logdir / "scheduler-b.err").read_text(), 60):
            res.note = "the standby scheduler never started"
            return res

        def mid_tick() -> tuple[str, int] | None:  # A's janitor tick: its runs succeeded, not recorded finished
            with session_scope() as s:
                for t in TickRepository(s).ticks("agent.janitor"):
                    if t.completed_at is None and t.holder.split(":")[1] == str(a.pid):
                        runs = AgentRepository(s).runs_of_tick("janitor", f"{t.job}:{t.slot}")
                        if runs and all(r.status == "succeeded" for r in runs):
                            return t.job, t.slot
            return None

        hit = until(platform, mid_tick, 60)
        if hit is None:
            res.note = "the leader was never caught mid-tick"
            return res
        key = f"{hit[0]}:{hit[1]}"
        t0 = utcnow()
        os.kill(a.pid, signal.SIGKILL)
        a.wait()
        killed = time.monotonic()
        took: list[float] = []

        def watch_lease() -> None:
            if not took and _scheduler_lease()[0] == b.pid:
                took.append(time.monotonic() - killed)

        finish(platform, res, "scheduler", t0, [], timeout=90, during=watch_lease)
        with session_scope() as s:
            tick = next((t for t in TickRepository(s).ticks(hit[0]) if t.slot == hit[1]), None)
            runs = AgentRepository(s).runs_of_tick("janitor", key)
            orgs = len(AgentRepository(s).org_ids())
        per_org = Counter(r.org_id for r in runs)
        if not took:
            problems.append("the standby never took the lease")
        elif took[0] > ttl + 2:
            problems.append(f"the standby took the lease {took[0]:.1f}s after the kill (lease {ttl:g}s)")
        if tick is None or tick.completed_at is None or tick.taken_over_from is None:
            problems.append(f"tick {key} was not taken over and finished")
        if sorted(per_org.values()) != [1] * orgs:
            problems.append(f"janitor runs for tick {key} per organisation: {dict(per_org)} ({orgs} organisations)")
        res.lost = orgs - len(per_org)
        res.note = (f"standby led {took[0]:.1f}s after the kill; " if took else "") + \
            f"tick {key} re-run once, {len(runs)} janitor run(s) for {orgs} organisation(s)"
    finally:
        for p in (a, b):
            if p is not None:
                stop_process(p)
    if problems:
        res.recovered = False
        res.note = (res.note + "; " + "; ".join(problems)).lstrip("; ")
    return res


def supervisor_kill9(platform: Platform, org_id: int, pipeline_id: int) -> Result:
    """``levqor up`` itself is killed -9 while its workers run jobs: its children stop with it (parent-death
    signal, parent watch: no orphan keeps the port or runs jobs), the monitor sees the supervisor that
    died uncleanly, and a ``levqor up`` started again on the same port comes up cleanly (no child
    crash-loops) and runs every accepted job. *Recovered*: the incident resolved once the new supervisor
    runs, no orphan, the new one ready with no restart, every job succeeded."""
    import psutil  # kept lazy: only this scenario reads the process tree

    res = Result("supervisor_kill9")
    port = _free_port()
    first = _Up(platform, port, "up-1")
    second: _Up | None = None
    problems: list[str] = []
    orphans: list[Any] = []
    try:
        if not until(platform, first.ready, 120):
            res.note = "the first levqor up never became ready"
            return res
        kids = first.children()
        jobs = submit(org_id, pipeline_id, 12)
        if not until(platform, lambda: states(jobs).get("running", 0) > 0, 30):
            res.note = "no job started under the first levqor up"
            return res
        t0 = utcnow()
        first.proc.kill()
        first.proc.wait()
        t_kill = time.monotonic()
        until(platform, lambda: not [p for p in kids if p.is_running() and p.status() != psutil.STATUS_ZOMBIE],
              30)
        orphans = [p for p in kids if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        if orphans:
            problems.append(f"{len(orphans)} children outlived the supervisor")
        else:
            res.note = f"children gone {time.monotonic() - t_kill:.1f}s after the kill"
        # the restart comes once the fault is seen (a service manager restarts at once; a monitor on this
        # clock must see the dead supervisor before the new one replaces its record)
        until(platform, lambda: incident(f"supervisor:{socket.gethostname()}", t0)[0] is not None, 15)
        second = _Up(platform, port, "up-2")
        if not until(platform, second.ready, 120):
            problems.append("the restarted levqor up never became ready")
        finish(platform, res, f"supervisor:{socket.gethostname()}", t0, jobs, timeout=120)
        if second.restarts():
            problems.append(f"a child of the restarted levqor up crash-looped ({second.restarts()} restarts)")
    finally:
        for p in orphans:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        first.stop()
        if second is not None:
            second.stop()
    if problems:
        res.recovered = False
        res.note = (res.note + "; " + "; ".join(problems)).lstrip("; ")
    return res


DB_OUTAGE_S = 30.0


class _Outage:
    """Make the database unavailable and available again: the suite's scratch PostgreSQL server stopped
    (``pg_ctl stop -m fast``) and started; or the SQLite file locked by another connection holding its
    write lock (``BEGIN EXCLUSIVE``: writers wait LEVQOR_DB_BUSY_TIMEOUT_S, then fail; WAL readers go on)."""

    def __init__(self) -> None:
        url = get_settings().resolved_database_url
        self.kind = "sqlite" if url.startswith("sqlite") else "postgresql"
        self.path = url.removeprefix("sqlite:///")
        self.lock: Any = None
        self.up = True
        if self.kind == "postgresql" and harness.scratch_pg is None:
            raise RuntimeError("db_outage on PostgreSQL needs the suite's scratch server (run.py --pg)")

    def begin(self) -> None:
        self.up = False
        if self.kind == "postgresql":
            assert harness.scratch_pg is not None
            harness.scratch_pg.stop()
        else:
            import sqlite3

            self.lock = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self.lock.execute("BEGIN EXCLUSIVE")

    def end(self) -> None:
        if self.kind == "postgresql" and not self.up:
            assert harness.scratch_pg is not None
            harness.scratch_pg.start()
            self.up = True
        elif self.lock is not None:
            self.lock.execute("ROLLBACK")
            self.lock.close()
            self.lock = None


def _api_key(org_id: int) -> str:
    with session_scope() as s:
        return str(call(org_ctx(s, org_id), "keys.create", name="chaos db_outage", role="admin").key)


def db_outage(platform: Platform, org_id: int, pipeline_id: int) -> Result:
    """The database is unavailable for ``DB_OUTAGE_S`` while jobs run and API traffic goes on (job
    submissions, job lists, /readyz, /healthz). *Recovered*: the incident records the outage's start and
    end (noted by the processes outside the database, recorded by the monitor once it is back) and
    resolved with no person; every request that needed the database during the outage got 503 problem
    details with Retry-After (no 500), /readyz said not ready and /healthz stayed up; no worker process
    exited and the scheduler leads again (they back off and reconnect); every accepted job succeeded
    (``lost``), none ran twice, and each has one ``job_complete`` event, dispatched by the outbox."""
    res = Result("db_outage")
    outage = _Outage()
    key = _api_key(org_id)
    seen: list[tuple[str, str, int, bool]] = []  # (phase, route, status, has Retry-After)
    accepted: list[int] = []
    phase = {"now": "before"}
    stop = threading.Event()

    def traffic() -> None:  # bounded: stops with the scenario or after 3 minutes
        deadline = time.monotonic() + 180
        with httpx.Client(base_url=platform.api_url, timeout=30,
                          headers={"Authorization": f"Bearer {key}"}) as client:
            while not stop.is_set() and time.monotonic() < deadline:
                for method, route in (("POST", "/v1/jobs"), ("GET", "/v1/jobs"), ("GET", "/readyz"),
                                      ("GET", "/healthz")):
                    at = phase["now"]
                    try:
                        r = client.request(method, route, json={"pipeline_id": pipeline_id} if method == "POST"
                                           else None, params={"limit": 5} if route == "/v1/jobs" and
                                           method == "GET" else None)
                    except httpx.HTTPError:
                        seen.append((at, f"{method} {route}", 0, False))
                        continue
                    seen.append((at, f"{method} {route}", r.status_code, "retry-after" in r.headers))
                    if method == "POST" and r.status_code == 201:
                        accepted.append(int(r.json()["id"]))
                stop.wait(0.2)

    sched = _scheduler(platform, "scheduler")
    threads = [threading.Thread(target=traffic, daemon=True) for _ in range(2)]
    problems: list[str] = []
    try:
        if not until(platform, lambda: _scheduler_lease()[0] == sched.pid, 60):
            res.note = "the scheduler never led"
            return res
        jobs = submit(org_id, pipeline_id, 8)
        if not until(platform, lambda: states(jobs).get("running", 0) > 0, 30):
            res.note = "no job started before the outage"
            return res
        for th in threads:
            th.start()
        pids = {p.pid for p in platform.procs}
        until(platform, lambda: len(seen) >= 8, 20)
        t0 = utcnow()
        phase["now"] = "outage"
        outage.begin()
        held = time.monotonic() + DB_OUTAGE_S
        # This process (the monitor's) cannot use the database either: it only restarts exited workers
        # meanwhile (no scale reads, no ticks).
        platform.next_scale_check = held + 1.0
        while time.monotonic() < held:
            platform.supervise()
            time.sleep(TICK_S)
        phase["now"] = "after"
        outage.end()
        t_end = utcnow()
        restarted = len({p.pid for p in platform.procs} - pids)
        finish(platform, res, "database", t0, [], timeout=60)
        stop.set()
        for th in threads:
            th.join(timeout=40)
        jobs += accepted
        until(platform, lambda: states(jobs).get("succeeded", 0) == len(jobs), 90)
        if not until(platform, lambda: sched.poll() is None and _scheduler_lease()[0] == sched.pid, 30):
            problems.append(f"the scheduler did not lead again after the outage (exit code {sched.poll()})")
    finally:
        stop.set()
        outage.end()
        stop_process(sched)
    until(platform, lambda: _completions(org_id, jobs)[1] == 0, 30)  # the outbox catches up
    per_job, undispatched = _completions(org_id, jobs)
    final = states(jobs)
    res.lost = len(jobs) - final.get("succeeded", 0)
    with session_scope() as s:
        again = [j.id for j in s.query(Job).filter(Job.id.in_(jobs), Job.attempts > 1)]
        inc = s.query(Incident).filter(Incident.cause == "database").order_by(Incident.id.desc()).first()
        span = (aware(inc.detected_at), aware(inc.resolved_at) if inc and inc.resolved_at else None) if inc else None
    during = Counter(st for ph, route, st, _ in seen if ph == "outage" and route.startswith(("POST /v1", "GET /v1")))
    ready = Counter(st for ph, route, st, _ in seen if ph == "outage" and route == "GET /readyz")
    health = Counter(st for ph, route, st, _ in seen if ph == "outage" and route == "GET /healthz")
    no_retry = sum(1 for ph, route, st, ra in seen if ph == "outage" and route.startswith(("POST /v1", "GET /v1"))
                   and st == 503 and not ra)
    if during.get(500) or any(st >= 500 and st != 503 for st in during) or during.get(0):
        problems.append(f"API answers during the outage: {dict(during)}")
    if not during.get(503):
        problems.append("no request got 503 during the outage")
    if no_retry:
        problems.append(f"{no_retry} 503 answers without Retry-After")
    if not ready.get(503):
        problems.append(f"/readyz during the outage: {dict(ready)}")
    if set(health) != {200}:
        problems.append(f"/healthz during the outage: {dict(health)}")
    if restarted:
        problems.append(f"{restarted} worker process(es) exited during the outage")
    if again:
        problems.append(f"{len(again)} job(s) ran more than once: {again[:5]}")
    if sorted(per_job.get(j, 0) for j in jobs) != [1] * len(jobs) or undispatched:
        problems.append(f"job_complete events: {sum(per_job.values())} for {len(jobs)} jobs, {undispatched} "
                        "not dispatched")
    logs = _outage_log_lines(platform.logdir)
    if any(n > 1 for n in logs.values()):
        problems.append(f"'database unavailable' logged more than once by a process: {logs}")
    res.note = (f"{outage.kind}: {DB_OUTAGE_S:g}s down; API during it: {dict(sorted(during.items()))}, "
                f"/readyz {dict(ready)}, /healthz {dict(health)}; {len(accepted)} jobs accepted by the API, "
                f"{len(jobs)} in all, {len(again)} ran twice, {sum(per_job.values())} job_complete events "
                f"({undispatched} not dispatched); no worker exited, the scheduler led again; outage logged once by "
                f"{len(logs)} process(es)")
    if span is not None:
        res.note += (f"; incident from +{(span[0] - t0).total_seconds():.1f}s to "
                     f"+{(span[1] - t0).total_seconds():.1f}s (database back at +{(t_end - t0).total_seconds():.1f}s)"
                     if span[1] is not None else "; incident not resolved")
    if problems:
        res.recovered = False
        res.note = (res.note + "; " + "; ".join(problems)).lstrip("; ")
    return res


API_TRAFFIC_S = 15.0  # steady traffic this long; one API process is killed in the middle
# the clients' traffic is not what this scenario limits (the plan's rate limits would answer 429s)
UNLIMITED_TIERS = json.dumps({"pro": {"key_per_second": 10**6, "org_per_second": 10**6, "key_per_day": 10**9,
                                      "org_per_day": 10**9, "org_per_month": 10**9}})


def api_kill9(platform: Platform, org_id: int, pipeline_id: int) -> Result:
    """One of the API processes of the default ``levqor up`` (one per core, at least two, sharing the
    port) is killed -9 in the middle of ``API_TRAFFIC_S`` of steady traffic (:class:`Clients`: keep-alive
    connections, authenticated reads and idempotency-keyed job submissions). The monitor's
    ``api_process_died`` rule sees the API process that died without stopping; uvicorn's manager starts
    a replacement. *Recovered*: the process replaced and the incident resolved, no request failed (after
    the clients' safe retries; the note gives the failures a client without retries saw), and every
    accepted submission ran exactly once (``lost`` counts those that did not)."""
    import psutil  # kept lazy: only these scenarios read the process tree

    from bench.chaos.traffic import Clients  # kept lazy: only this scenario drives HTTP traffic

    res = Result("api_kill9")
    with session_scope() as s:
        ctx = org_ctx(s, org_id)
        quick = call(ctx, "pipelines.create", name="quick", steps=[{"kind": "delay", "seconds": 0.05}]).id
        key = call(ctx, "keys.create", name="chaos clients", role="admin").key
    up = _Up(platform, _free_port(), "up", api_processes=None, env={"LEVQOR_API_TIERS": UNLIMITED_TIERS})
    clients: Clients | None = None
    problems: list[str] = []
    try:
        if not until(platform, up.ready, 120):
            res.note = "levqor up never became ready"
            return res
        def several() -> list[Any] | None:
            procs = up.api_processes()
            return procs if len(procs) >= 2 else None

        before = until(platform, several, 60)
        if not before:
            res.note = f"levqor up serves the API from {len(up.api_processes())} process(es), not two or more"
            return res
        clients = Clients(up.base, key, quick).start()
        started = time.monotonic()
        until(platform, lambda: time.monotonic() - started >= API_TRAFFIC_S / 2, API_TRAFFIC_S)
        # the process holding the most client connections (their requests in flight are the ones at risk)
        held = {p.pid: up.clients_of(p) for p in before}
        victim = max(held, key=lambda pid: held[pid])
        t0 = utcnow()
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        replaced: list[float] = []

        def watch() -> None:  # replaced: as many processes as before serve (recorded once started up)
            if not replaced:
                with session_scope() as s:
                    serving = [p.pid for p in api_processes(s) if psutil.pid_exists(p.pid)]
                if victim not in serving and len(serving) >= len(before):
                    replaced.append(time.monotonic() - killed)

        until(platform, lambda: watch() or time.monotonic() - started >= API_TRAFFIC_S, API_TRAFFIC_S + 5)
        tally = clients.stop()
        jobs = sorted(set(tally.accepted.values()))
        finish(platform, res, f"api-processes:{socket.gethostname()}", t0, jobs, timeout=60, during=watch)
        with session_scope() as s:
            made = Counter(s.scalars(select(Job.idempotency_key).where(
                Job.org_id == org_id, Job.idempotency_key.in_(tally.keys_sent))))
            runs = Counter(s.scalars(select(Job.attempts).where(Job.id.in_(jobs))))
        twice = sum(n > 1 for n in made.values()) + sum(n for a, n in runs.items() if a != 1)
        unanswered = len(made) - len(tally.accepted)
        last = f", the last {max(tally.failed_at) - killed:+.2f}s after the kill" if tally.failed_at else ""
        res.note = (f"{len(before)} API processes, pid {victim} killed (it held {held[victim]} of "
                    f"{sum(held.values())} client connections); "
                    + (f"replaced {replaced[0]:.1f}s after; " if replaced else "")
                    + f"{tally.requests} requests, {tally.failed} failed after safe retries "
                    f"({tally.first_failed} without: {dict(tally.errors) or 'none'}{last}), "
                    f"{len(jobs)} submissions accepted")
        if not replaced:
            problems.append("the killed API process was not replaced")
        if tally.failed:
            problems.append(f"{tally.failed} request(s) failed")
        if tally.crashed:
            problems.append(f"{len(tally.crashed)} client(s) crashed: {tally.crashed[0]}")
        if twice:
            problems.append(f"{twice} submission(s) made or ran more than once")
        if unanswered:
            problems.append(f"{unanswered} submission(s) made whose answer never arrived")
    finally:
        if clients is not None:
            clients.stop()
        up.stop()
    if problems:
        res.recovered = False
        res.note = (res.note + "; " + "; ".join(problems)).lstrip("; ")
    return res


def _completions(org_id: int, jobs: list[int]) -> tuple[Counter[int], int]:
    """``job_complete`` events per job of ``jobs``, and how many of them the outbox has not dispatched."""
    wanted = set(jobs)
    with session_scope() as s:
        rows = [(e.payload.get("job_id"), e.dispatched_at) for e in s.query(Event).filter(
            Event.org_id == org_id, Event.name == "job_complete")]
    mine = [(j, d) for j, d in rows if j in wanted]
    return Counter(j for j, _ in mine), sum(1 for _, d in mine if d is None)


def _outage_log_lines(logdir: Path) -> dict[str, int]:
    """Per process log: how many times it logged 'database unavailable'."""
    out = {}
    for path in logdir.glob("*.err"):
        n = path.read_text(errors="replace").count("database unavailable")
        if n:
            out[path.name] = n
    return out


SCENARIOS: dict[str, Callable[[Platform, int, int], Result]] = {  # one per line, in ALL_SCENARIOS order
    "worker_kill9": worker_kill9,
    "worker_hang": worker_hang,
    "memory_leak": memory_leak,
    "expired_leases": expired_leases,
    "poison_job": poison_job,
    "partner_500s": partner_500s,
    "api_slowdown": api_slowdown,
    "traffic_spike": traffic_spike,
    "supervisor_kill9": supervisor_kill9,
    "scheduler_kill9": scheduler_kill9,
    "llm_outage": llm_outage,
    "db_outage": db_outage,
    "api_kill9": api_kill9,
    "disk_full": disk.disk_full,
}


def run(names: list[str], *, workers: int = 2, logdir: Path) -> list[Result]:
    """Run the scenarios (one platform each, so one fault cannot spoil the next)."""
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
        try:
            with disk.context(name) as var_env:  # disk_full: a size-limited var directory of its own
                results.append(_run_one(name, workers, {**env, **var_env}, logdir))
        except disk.NoSmallFileSystem as exc:
            results.append(Result(name, built=False, note=str(exc)))
    return results


def _run_one(name: str, workers: int, env: dict[str, str], logdir: Path) -> Result:
    org_id, pipeline_id = setup()
    var_dir = str(get_settings().var_dir)
    extra = {k: v.replace("{var_dir}", var_dir) for k, v in SCENARIO_ENV.get(name, {}).items()}
    platform = Platform(PLATFORM_WORKERS.get(name, workers), {**env, **extra}, logdir / name,
                        first_env=FIRST_WORKER_ENV.get(name),
                        api=name in WITH_API)
    try:
        return SCENARIOS[name](platform, org_id, pipeline_id)
    finally:
        platform.stop()


def summary_line(results: list[Result]) -> str:
    """The suite's last line: ``chaos: detected=N/M healed=N/M lost=N unsafe=N mttr_worker_crash_s=X``, where M
    is the number of scenarios that ran (all of them by default, the named ones otherwise)."""
    ran = len(results)
    crash = next((r for r in results if r.scenario == "worker_kill9" and r.ttr_s is not None), None)
    mttr = f"{crash.ttr_s:.1f}" if crash is not None and crash.ttr_s is not None else "n/a"
    return (f"chaos: detected={sum(r.detected for r in results)}/{ran} "
            f"healed={sum(r.recovered for r in results)}/{ran} lost={sum(r.lost for r in results)} "
            f"unsafe={sum(r.unsafe for r in results)} mttr_worker_crash_s={mttr}")
