"""Worker tools: list the worker processes, drain or restart one, and scale how many the supervisor runs.

The job loop a worker process runs is the edge's (:mod:`workers.jobs`); what it writes (its row, its
heartbeats) is :mod:`tools.jobs.leases`. Commands reach a worker through its row: it reads them on
its next heartbeat. A worker that stopped heartbeating on this host is signalled instead.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import socket
import threading
from dataclasses import dataclass

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from levqor.settings import get_settings
from memory.audit.repository import AuditRepository
from memory.db import utcnow
from memory.jobs.models import Worker
from memory.jobs.repository import JobRepository, WorkerRepository
from memory.leases.repository import LeaseRepository
from tools.context import ToolContext
from tools.enterprise import audit_log
from tools.enterprise.rbac import require_staff
from tools.errors import NotFound, Unprocessable
from tools.jobs.health import health, worker_health
from tools.jobs.queue import org_scope
from tools.registry import tool

log = logging.getLogger(__name__)
HUNG_KILL_GRACE_S = 5.0  # after SIGCONT + SIGTERM, a hung worker still running is killed


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
    import psutil  # kept lazy: start-up time (the API lists workers rarely)

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
    return WorkerRead(id=w.id, host=w.host, pid=w.pid, state=w.state, health=health(w, now),
                      concurrency=w.concurrency, current_job_id=jobs[0] if jobs else None, current_jobs=jobs,
                      jobs_done=w.jobs_done, cpu_percent=cpu, rss_bytes=rss, started_at=w.started_at,
                      heartbeat_at=w.heartbeat_at, pending_command=w.command)


@tool("workers.list", risk="read")
def list_workers(ctx: ToolContext, params: NoInput) -> WorkerList:
    """List worker processes with health, current job, CPU and memory (RSS)."""
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
    require_staff(ctx, f"{command} workers: they run every organisation's jobs")
    repo = WorkerRepository(ctx.session)
    w = repo.get(worker_id)
    if w is None:
        raise NotFound(f"worker {worker_id!r} not found", field="worker_id")
    affected = JobRepository(ctx.session).orgs_of({int(j) for j in (w.current_jobs or [])})
    now = utcnow()
    delivery = "heartbeat"
    if command == "restart" and health(w, now) == "stale" and w.host == socket.gethostname():
        # A hung worker never reads its row: stop it directly if it is really one of ours.
        delivery = _stop_hung(w.pid, told_before=w.command == "restart")
    repo.set_command(worker_id, command)
    ctx.session.refresh(w)
    audit_log.record_platform(ctx, f"workers.{command}", f"worker:{worker_id}", affected,
                              detail={"delivery": delivery})
    return WorkerCommandOut(worker=_read(w, now), command=command, delivery=delivery)


def _stop_hung(pid: int, *, told_before: bool) -> str:
    """Stop a worker process on this host that stopped heartbeating; how: signal, killed or gone.

    A stopped (SIGSTOP) or wedged process ignores SIGTERM, so it is continued first, asked to stop
    (SIGTERM: it returns its jobs and deregisters), and killed if it has not exited after
    ``HUNG_KILL_GRACE_S`` (a timer in this process). If it was already told to restart and still runs
    (the caller that held the timer is gone), it is killed at once. Its leases then expire and the
    lease sweep returns the jobs to the queue: none is lost, a job may run again (at least once)."""
    import psutil  # kept lazy: start-up time

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
    rows = AuditRepository(session).search(org_id=None, action=SCALED_ACTION, limit=1)
    if not rows or not rows[0].detail:
        return None
    d = rows[0].detail
    until = dt.datetime.fromisoformat(str(d["until"])) if d.get("until") else None
    if until is not None and until <= (now or utcnow()):
        return None
    return min(int(str(d["desired"])), get_settings().workers_max), until


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
    require_staff(ctx, "scale the workers: they run every organisation's jobs")
    s = get_settings()
    if params.desired > s.workers_max:
        raise Unprocessable(f"desired must be at most LEVQOR_WORKERS_MAX ({s.workers_max})", field="desired")
    now = utcnow()
    current = scale_decision(ctx.session, now)
    previous = current[0] if current is not None else s.workers
    until = now + dt.timedelta(seconds=params.for_s) if params.for_s else None
    audit_log.record_platform(ctx, SCALED_ACTION, "workers", before={"desired": previous},
                     detail={"desired": params.desired, "until": until.isoformat() if until else None,
                             "reason": params.reason})
    health = worker_health(ctx.session)
    return ScaleOut(desired=params.desired, previous=previous, limit=s.workers_max, until=until,
                    healthy=health.get("healthy", 0))


# ---- the supervisors (``levqor up``) running on each host -------------------------------------------

SUPERVISOR_LEASE = "supervisor:"  # + host: held by the ``levqor up`` running there (``host:pid``)


def supervisor_started(session: Session, pid: int, host: str | None = None) -> None:
    """Record that ``levqor up`` (``pid``) supervises this host's processes now (it replaces any earlier)."""
    host = host or socket.gethostname()
    LeaseRepository(session).put(SUPERVISOR_LEASE + host, f"{host}:{pid}", 86400 * 365)


def supervisor_stopped(session: Session, pid: int, host: str | None = None) -> None:
    """Record that ``levqor up`` (``pid``) stopped cleanly (with its children)."""
    host = host or socket.gethostname()
    LeaseRepository(session).drop(SUPERVISOR_LEASE + host, f"{host}:{pid}")


def supervisors(session: Session) -> list[tuple[str, int]]:
    """``(host, pid)`` of each ``levqor up`` that started and has not stopped cleanly."""
    out = []
    for lease in LeaseRepository(session).named(SUPERVISOR_LEASE):
        host, _, pid = lease.holder.rpartition(":")
        if pid.isdigit():
            out.append((host, int(pid)))
    return out


# ---- the API processes serving on each host --------------------------------------------------------

API_PROCESS_LEASE = "api-process:"  # + host:pid: held by each API process while it serves


@dataclass(frozen=True)
class ApiProcess:
    """An API process that started serving and has not stopped cleanly; ``serving``: how many processes its
    API serves from (``levqor api --processes``)."""

    host: str
    pid: int
    serving: int


def api_process_started(session: Session, pid: int, serving: int, host: str | None = None) -> None:
    """Record that API process ``pid`` serves (one of ``serving`` processes of its API on this host)."""
    host = host or socket.gethostname()
    LeaseRepository(session).put(f"{API_PROCESS_LEASE}{host}:{pid}", f"{host}:{pid}:{serving}", 86400 * 365)


def api_process_stopped(session: Session, pid: int, host: str | None = None) -> None:
    """Drop the record of API process ``pid`` (it stopped cleanly, or it died and was replaced)."""
    host = host or socket.gethostname()
    LeaseRepository(session).drop_named(f"{API_PROCESS_LEASE}{host}:{pid}")


def api_processes(session: Session) -> list[ApiProcess]:
    """Every API process that started serving and has not stopped cleanly (nor been forgotten)."""
    out = []
    for lease in LeaseRepository(session).named(API_PROCESS_LEASE):
        host, pid, serving = (lease.holder.rsplit(":", 2) + ["", ""])[:3]
        if pid.isdigit() and serving.isdigit():
            out.append(ApiProcess(host, int(pid), int(serving)))
    return out
