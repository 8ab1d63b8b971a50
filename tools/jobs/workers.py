"""Workers: the claim loop, heartbeats (worker row + job leases), graceful stop, and worker tools.

A worker process runs one :class:`JobWorker` (``workers.jobs``).
It claims up to ``concurrency`` jobs, runs each in a thread, renews their leases every third of
the lease, sweeps expired leases back into the queue, and obeys ``drain`` / ``restart``
commands left on its row. On SIGTERM it stops claiming, lets running jobs finish for a grace
period, then gives the rest back to the queue.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from levqor.settings import get_settings
from memory.db import session_scope, utcnow
from memory.jobs.models import Job, Worker
from memory.jobs.repository import LOST_WORKER_ERROR, JobRepository, PipelineRepository, WorkerRepository
from tools.context import ToolContext
from tools.enterprise import audit_log
from tools.errors import NotFound
from tools.jobs.runner import PipelineSnapshot, RunControl, run_claimed
from tools.registry import tool

log = logging.getLogger(__name__)
# Idle claim polls; between them a commit elsewhere wakes the loop (PostgreSQL NOTIFY, SQLite data_version).
IDLE_POLL_S = {"sqlite": 0.5, "postgresql": 1.0}
SQLITE_WATCH_S = 0.005
SHUTDOWN_GRACE_S = 10.0
HUNG_KILL_GRACE_S = 5.0  # after SIGCONT + SIGTERM, a hung worker still running is killed
PRUNE_AFTER = dt.timedelta(hours=1)
_chaos_leak: list[bytearray] = []  # LEVQOR_CHAOS_LEAK_BYTES_PER_JOB (chaos suite only)


def _pg_listen_url() -> str | None:
    from sqlalchemy.engine import make_url

    url = make_url(get_settings().resolved_database_url)
    if not url.drivername.startswith("postgresql"):
        return None
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class JobWorker:
    """One worker process's job loop."""

    def __init__(self, concurrency: int | None = None, *, lease_s: float | None = None,
                 grace_s: float = SHUTDOWN_GRACE_S):
        s = get_settings()
        self.concurrency = max(1, concurrency or s.worker_concurrency)
        self.lease_s = float(lease_s or s.job_lease_s)
        self.grace_s = grace_s
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.running: dict[int, tuple[Job, RunControl]] = {}
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.draining = False
        self.restart = False
        self.solo: int | None = None  # a suspect job running alone (see _claim)
        self.jobs_done = 0
        self.dialect = "postgresql" if not s.is_sqlite else "sqlite"

    # ---- main loop -----------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        self._register()
        hb_stop = threading.Event()
        hb = threading.Thread(target=self._heartbeat_loop, args=(hb_stop,), name="jobs-heartbeat", daemon=True)
        hb.start()
        watch = self._listen if self.dialect == "postgresql" else self._watch_sqlite
        threading.Thread(target=watch, args=(stop,), name="jobs-wake", daemon=True).start()
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="job")
        log.info("job worker started", extra={"fields": {"worker": self.id, "concurrency": self.concurrency}})
        try:
            while not stop.is_set() and not self.restart:
                with self.lock:
                    free = self.concurrency - len(self.running)
                    busy = bool(self.running)
                    alone = self.solo is not None
                if self.draining or free <= 0 or alone:
                    self._idle(stop, 0.5)
                    continue
                try:
                    jobs = self._claim(free, busy=busy)
                except Exception:
                    log.exception("claim failed")
                    stop.wait(1.0)
                    continue
                for job, snapshot in jobs:
                    ctrl = RunControl()
                    with self.lock:
                        self.running[job.id] = (job, ctrl)
                    pool.submit(self._run_one, job, ctrl, snapshot)
                if not jobs:
                    self._idle(stop, IDLE_POLL_S[self.dialect])
        finally:
            self._shutdown(pool)
            hb_stop.set()
            hb.join(timeout=5)
            try:
                with session_scope() as s:
                    WorkerRepository(s).remove(self.id)
            except Exception:
                log.exception("could not deregister worker")
            log.info("job worker stopped", extra={"fields": {"worker": self.id, "jobs_done": self.jobs_done}})
        if self.restart and not stop.is_set():
            # Exit the process; the supervisor (or the service manager) starts a fresh one.
            os.kill(os.getpid(), signal.SIGTERM)

    def _idle(self, stop: threading.Event, seconds: float) -> None:
        self.wake.wait(seconds)
        self.wake.clear()

    def _claim(self, n: int, *, busy: bool = False) -> list[tuple[Job, PipelineSnapshot | None]]:
        """Claim up to ``n`` jobs. A *suspect* (its last run lost its worker: it may be the poison that
        crashes workers, or an innocent job that ran beside it) runs alone: a busy worker does not claim
        one, and an idle one that does gives back the rest of its batch and claims nothing while it runs.
        So a poison job crashes no innocent job twice, and the poison detector tells them apart."""
        with session_scope() as s:
            repo = JobRepository(s)
            jobs = repo.claim(self.id, n, self.lease_s, skip_suspects=busy)
            if not jobs:
                return []
            suspect = next((j for j in jobs if (j.last_error or "").startswith(LOST_WORKER_ERROR)), None)
            if suspect is not None:
                for j in jobs:
                    if j is not suspect:
                        repo.unclaim(j.id, j.fence)
                jobs = [suspect]
                with self.lock:
                    self.solo = suspect.id
            pipes = PipelineRepository(s).by_ids({j.pipeline_id for j in jobs})
            out = []
            for j in jobs:
                s.expunge(j)
                p = pipes.get(j.pipeline_id)
                out.append((j, PipelineSnapshot.of(p) if p is not None else None))
            return out

    def _run_one(self, job: Job, ctrl: RunControl, snapshot: PipelineSnapshot | None) -> None:
        try:
            leak = get_settings().chaos_leak_bytes_per_job
            if leak > 0:  # the chaos suite's memory leak: touched pages, kept for the process's life
                _chaos_leak.append(bytearray(b"\x01") * leak)
            outcome = run_claimed(job, ctrl, snapshot)
            log.info("job run finished", extra={"fields": {"job_id": job.id, "outcome": outcome,
                                                           "attempt": job.attempts}})
        except Exception:
            log.exception("job run crashed", extra={"fields": {"job_id": job.id}})
        finally:
            with self.lock:
                self.running.pop(job.id, None)
                self.jobs_done += 1
                if self.solo == job.id:
                    self.solo = None
            self.wake.set()

    def _shutdown(self, pool: ThreadPoolExecutor) -> None:
        deadline = time.monotonic() + self.grace_s
        while time.monotonic() < deadline:
            with self.lock:
                if not self.running:
                    break
            time.sleep(0.05)
        with self.lock:
            for _job, ctrl in self.running.values():
                ctrl.shutdown.set()
        pool.shutdown(wait=True, cancel_futures=False)

    def _listen(self, stop: threading.Event) -> None:
        """PostgreSQL: wake the claim loop on ``NOTIFY levqor_jobs`` (sent by each submission's commit)."""
        import psycopg

        url = _pg_listen_url()
        assert url
        while not stop.is_set():
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("LISTEN levqor_jobs")
                    while not stop.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self.wake.set()
            except Exception:
                log.warning("job notification listener failed; retrying", exc_info=True)
                stop.wait(2.0)

    def _watch_sqlite(self, stop: threading.Event) -> None:
        """SQLite: wake the claim loop when another connection commits (``PRAGMA data_version``)."""
        import sqlite3

        path = get_settings().resolved_database_url.removeprefix("sqlite:///")
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        except sqlite3.Error:
            log.warning("cannot watch the SQLite file; polling only", exc_info=True)
            return
        last = None
        try:
            while not stop.is_set():
                try:
                    version = conn.execute("PRAGMA data_version").fetchall()[0][0]
                except sqlite3.Error:
                    version = None
                if version != last:
                    last = version
                    self.wake.set()
                stop.wait(SQLITE_WATCH_S)
        finally:
            conn.close()

    # ---- heartbeat -----------------------------------------------------------------------

    def _register(self) -> None:
        import psutil

        psutil.Process().cpu_percent(None)
        now = utcnow()
        with session_scope() as s:
            WorkerRepository(s).upsert(Worker(
                id=self.id, host=socket.gethostname(), pid=os.getpid(), concurrency=self.concurrency,
                state="running", command=None, current_jobs=[], jobs_done=0, started_at=now, heartbeat_at=now))

    def _heartbeat_loop(self, stop: threading.Event) -> None:
        interval = max(0.2, self.lease_s / 3)
        last_refresh = 0.0
        while not stop.wait(interval):
            try:
                self.beat()
                if time.monotonic() - last_refresh > 5.0:
                    last_refresh = time.monotonic()
                    with session_scope() as s:
                        from tools.jobs.metrics import refresh

                        refresh(s)
            except Exception:
                log.exception("heartbeat failed")

    def beat(self) -> None:
        """Renew our leases, report our health, obey commands, sweep expired leases."""
        import psutil

        with self.lock:
            held = list(self.running.values())
        lost: list[RunControl] = []
        with session_scope() as s:
            repo = JobRepository(s)
            for job, ctrl in held:
                if not repo.renew(job.id, job.fence, self.lease_s):
                    lost.append(ctrl)
        for ctrl in lost:
            ctrl.lost.set()
        proc = psutil.Process()
        state = "draining" if self.draining else ("stopping" if self.restart else "running")
        with session_scope() as s:
            command = WorkerRepository(s).heartbeat(
                self.id, current_jobs=[j.id for j, _ in held], jobs_done=self.jobs_done, state=state,
                cpu_percent=proc.cpu_percent(None), rss_bytes=proc.memory_info().rss)
        if command == "drain" and not self.draining:
            log.info("draining on request", extra={"fields": {"worker": self.id}})
            self.draining = True
        elif command == "restart" and not self.restart:
            log.info("restarting on request", extra={"fields": {"worker": self.id}})
            self.restart = True
            self.wake.set()
        with session_scope() as s:
            from tools.jobs.queue import requeue_expired

            requeued, dead = requeue_expired(s, None) if get_settings().job_lease_sweep else ([], [])
            if requeued or dead:
                log.warning("expired leases swept", extra={"fields": {"requeued": requeued, "dead": dead}})
            WorkerRepository(s).prune(utcnow() - PRUNE_AFTER)
        if requeued:
            self.wake.set()


# ---- tools ---------------------------------------------------------------------------------

def _stale_after() -> dt.timedelta:
    return dt.timedelta(seconds=max(3.0, float(get_settings().job_lease_s)))


def _health(w: Worker, now: dt.datetime) -> str:
    if now - w.heartbeat_at > _stale_after():
        return "stale"
    return "draining" if w.state == "draining" else "healthy"


def worker_health(session: Session) -> dict[str, int]:
    now = utcnow()
    out: dict[str, int] = {}
    for w in WorkerRepository(session).all():
        h = _health(w, now)
        out[h] = out.get(h, 0) + 1
    return out


class WorkerRead(BaseModel):
    id: str
    host: str
    pid: int
    state: str
    health: str = Field(description="healthy, draining or stale (no heartbeat for a lease period)")
    concurrency: int
    current_job_id: int | None
    current_jobs: list[int]
    jobs_done: int
    cpu_percent: float | None
    rss_bytes: int | None
    started_at: dt.datetime
    heartbeat_at: dt.datetime
    pending_command: str | None


class WorkerList(BaseModel):
    items: list[WorkerRead]
    healthy: int
    stale: int


class NoInput(BaseModel):
    pass


def _live_usage(w: Worker) -> tuple[float | None, int | None]:
    """CPU and RSS straight from psutil when the worker runs on this host, else what it reported."""
    import psutil

    if w.host == socket.gethostname():
        try:
            p = psutil.Process(w.pid)
            with p.oneshot():
                return p.cpu_percent(interval=None) or w.cpu_percent, p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return w.cpu_percent, w.rss_bytes


def _read(w: Worker, now: dt.datetime) -> WorkerRead:
    cpu, rss = _live_usage(w)
    jobs = [int(j) for j in (w.current_jobs or [])]
    return WorkerRead(id=w.id, host=w.host, pid=w.pid, state=w.state, health=_health(w, now),
                      concurrency=w.concurrency, current_job_id=jobs[0] if jobs else None, current_jobs=jobs,
                      jobs_done=w.jobs_done, cpu_percent=cpu, rss_bytes=rss, started_at=w.started_at,
                      heartbeat_at=w.heartbeat_at, pending_command=w.command)


@tool("workers.list", risk="read")
def list_workers(ctx: ToolContext, params: NoInput) -> WorkerList:
    """List worker processes with health, current job, CPU and memory (RSS)."""
    from tools.jobs.queue import org_scope

    now = utcnow()
    items = [_read(w, now) for w in WorkerRepository(ctx.session).all()]
    org_id = org_scope(ctx)
    if org_id is not None:
        # Workers are shared: an organisation sees which of *its* jobs they run, not other tenants'.
        mine = JobRepository(ctx.session).ids_of_org(org_id, {j for i in items for j in i.current_jobs})
        for i in items:
            i.current_jobs = [j for j in i.current_jobs if j in mine]
            i.current_job_id = i.current_jobs[0] if i.current_jobs else None
    return WorkerList(items=items, healthy=sum(1 for i in items if i.health == "healthy"),
                      stale=sum(1 for i in items if i.health == "stale"))


class WorkerRef(BaseModel):
    worker_id: str = Field(min_length=1, max_length=100)


class WorkerCommandOut(BaseModel):
    worker: WorkerRead
    command: str
    delivery: str = Field(description="heartbeat (the worker acts within a third of a lease) or signal")


def _command(ctx: ToolContext, worker_id: str, command: str) -> WorkerCommandOut:
    repo = WorkerRepository(ctx.session)
    w = repo.get(worker_id)
    if w is None:
        raise NotFound(f"worker {worker_id!r} not found", field="worker_id")
    now = utcnow()
    delivery = "heartbeat"
    if command == "restart" and _health(w, now) == "stale" and w.host == socket.gethostname():
        # A hung worker never reads its row: stop it directly if it is really one of ours.
        delivery = _stop_hung(w.pid, told_before=w.command == "restart")
    repo.set_command(worker_id, command)
    ctx.session.refresh(w)
    audit_log.record(ctx, f"workers.{command}", f"worker:{worker_id}", detail={"delivery": delivery})
    return WorkerCommandOut(worker=_read(w, now), command=command, delivery=delivery)


def _stop_hung(pid: int, *, told_before: bool) -> str:
    """Stop a worker process on this host that stopped heartbeating; how: signal, killed or gone.

    A stopped (SIGSTOP) or wedged process ignores SIGTERM, so it is continued first, asked to stop
    (SIGTERM: it returns its jobs and deregisters), and killed if it has not exited after
    ``HUNG_KILL_GRACE_S`` (a timer in this process). If it was already told to restart and still runs
    (the caller that held the timer is gone), it is killed at once. Its leases then expire and the
    lease sweep returns the jobs to the queue: none is lost, a job may run again (at least once)."""
    import psutil

    try:
        p = psutil.Process(pid)
        if "worker" not in " ".join(p.cmdline()):
            return "heartbeat"  # the pid is not a worker any more: leave it alone
        if told_before:
            p.kill()
            return "killed"
        p.send_signal(signal.SIGCONT)
        p.terminate()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "gone"

    def kill_if_still_there() -> None:
        try:
            p.wait(timeout=HUNG_KILL_GRACE_S)
        except psutil.TimeoutExpired:
            try:
                p.kill()  # psutil refuses if the pid now belongs to another process
                log.warning("hung worker killed", extra={"fields": {"pid": pid}})
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        except psutil.NoSuchProcess:
            pass

    threading.Thread(target=kill_if_still_there, name=f"kill-hung-{pid}", daemon=True).start()
    return "signal"


@tool("workers.restart", risk="destructive")
def restart_worker(ctx: ToolContext, params: WorkerRef) -> WorkerCommandOut:
    """Restart a worker process: it stops claiming, finishes or returns its jobs, and is started afresh."""
    return _command(ctx, params.worker_id, "restart")


@tool("workers.drain", risk="write")
def drain_worker(ctx: ToolContext, params: WorkerRef) -> WorkerCommandOut:
    """Drain a worker: it finishes its current jobs and claims no new ones."""
    return _command(ctx, params.worker_id, "drain")


# ---- scaling -------------------------------------------------------------------------------------
# The desired worker count is the latest ``workers.scaled`` decision in the audit log (platform-wide,
# tamper-evident, no extra table): the ``levqor up`` supervisor reads it and starts or stops worker
# processes; a decision with ``until`` lapses back to the supervisor's own count after that time.

SCALED_ACTION = "workers.scaled"


def scale_decision(session: Session, now: dt.datetime | None = None) -> tuple[int, dt.datetime | None] | None:
    """The desired count in force and until when (None: no decision, or the last one lapsed)."""
    from memory.audit.repository import AuditRepository

    rows = AuditRepository(session).search(org_id=None, action=SCALED_ACTION, limit=1)
    if not rows or not rows[0].detail:
        return None
    d = rows[0].detail
    until = dt.datetime.fromisoformat(str(d["until"])) if d.get("until") else None
    if until is not None and until <= (now or utcnow()):
        return None
    return min(int(str(d["desired"])), get_settings().workers_max), until


def desired_workers(base: int) -> int:
    """Worker processes a supervisor started with ``base`` should run now (``base`` if the store fails)."""
    try:
        with session_scope() as s:
            decision = scale_decision(s)
    except Exception:
        log.warning("could not read the desired worker count; keeping %s", base, exc_info=True)
        return base
    return base if decision is None else decision[0]


class ScaleIn(BaseModel):
    desired: int = Field(ge=1, le=256, description="Worker processes the supervisor should run")
    for_s: int | None = Field(None, ge=10, le=7 * 86400,
                              description="Keep this count this long, then return to the supervisor's own count "
                                          "(empty: until the next decision)")
    reason: str = Field("", max_length=500)


class ScaleOut(BaseModel):
    desired: int
    previous: int = Field(description="The count in force before (LEVQOR_WORKERS when no decision held)")
    limit: int = Field(description="LEVQOR_WORKERS_MAX")
    until: dt.datetime | None
    healthy: int = Field(description="Workers heartbeating now")


@tool("workers.scale", risk="write")
def scale_workers(ctx: ToolContext, params: ScaleIn) -> ScaleOut:
    """Set how many worker processes the supervisor runs (up to LEVQOR_WORKERS_MAX), optionally for a while."""
    from tools.errors import Forbidden, Unprocessable
    from tools.identity.service import is_staff

    p = ctx.principal
    if not (p.org_id is None and p.kind in ("system", "agent")) and not is_staff(ctx):
        raise Forbidden("workers are shared by every organisation: only Levqor staff scale them")
    s = get_settings()
    if params.desired > s.workers_max:
        raise Unprocessable(f"desired must be at most LEVQOR_WORKERS_MAX ({s.workers_max})", field="desired")
    now = utcnow()
    current = scale_decision(ctx.session, now)
    previous = current[0] if current is not None else s.workers
    until = now + dt.timedelta(seconds=params.for_s) if params.for_s else None
    audit_log.record(ctx, SCALED_ACTION, "workers", before={"desired": previous},
                     detail={"desired": params.desired, "until": until.isoformat() if until else None,
                             "reason": params.reason})
    health = worker_health(ctx.session)
    return ScaleOut(desired=params.desired, previous=previous, limit=s.workers_max, until=until,
                    healthy=health.get("healthy", 0))
