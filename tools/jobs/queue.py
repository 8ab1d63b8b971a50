"""Jobs and the queue in the database: submission, and the job, dead-letter and queue tools.

A submission charges credits and inserts the job row (which *is* the queue entry) in the caller's
transaction. Workers claim due rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL) under a lease and a
fence (:mod:`tools.jobs.leases`) and write each outcome under that fence (:mod:`tools.jobs.outcomes`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from memory.db import utcnow
from memory.identity.models import Organization
from memory.jobs.models import JOB_STATES, Job, Pipeline
from memory.jobs.repository import JobRepository, PipelineRepository
from tools.context import ToolContext
from tools.enterprise import audit_log
from tools.errors import Conflict, Forbidden, NotFound, PaymentRequired
from tools.events.service import emit
from tools.jobs import metrics
from tools.jobs.credits import charge_job, refund_job, run_cost
from tools.jobs.outcomes import job_event_payload, requeue_expired
from tools.registry import tool

log = logging.getLogger(__name__)
JobState = Literal["queued", "running", "succeeded", "failed", "dead", "cancelled"]


def org_scope(ctx: ToolContext) -> int | None:
    """The organisation an operational tool acts on; None (every organisation) only for the platform's
    own principals without one (the system, an ops agent such as the janitor)."""
    if ctx.principal.org_id is None and ctx.principal.kind in ("system", "agent"):
        return None
    return ctx.org_id


def mode_scope(ctx: ToolContext) -> str | None:
    """The mode an operational tool acts on: the caller's (``test`` for a test-mode key), or None (both)
    for the platform's own principals without an organisation."""
    return None if org_scope(ctx) is None else ctx.mode


def submit_job(session: Session, *, org_id: int, pipeline: Pipeline, input: dict[str, Any], trigger: str,
               actor: str, idempotency_key: str | None = None) -> tuple[Job, bool]:
    """Charge credits and enqueue a run of ``pipeline``; with a known key return the existing job.

    Returns ``(job, created)``. Raises ``PaymentRequired`` (nothing written) when credits are short.
    The job is of its pipeline's mode: a test pipeline's runs are test jobs, charged to test credits.
    """
    repo = JobRepository(session)
    mode = pipeline.mode
    if idempotency_key:
        existing = repo.by_idempotency_key(org_id, idempotency_key, mode)
        if existing is not None:
            _check_same_pipeline(existing, pipeline, idempotency_key)
            return existing, False
    org = session.get(Organization, org_id)
    cost = run_cost(org.plan if org is not None else "free")
    now = utcnow()
    job = Job(org_id=org_id, pipeline_id=pipeline.id, mode=mode, state="queued", trigger=trigger,
              idempotency_key=idempotency_key, input=input, attempts=0, max_attempts=pipeline.max_attempts,
              cost=cost, run_at=now, fence=0, created_by=actor, created_at=now, enqueued_at=now,
              retryable=False)
    try:
        # Only a key can collide with a concurrent submission; without one, skip the savepoint.
        with session.begin_nested() if idempotency_key else contextlib.nullcontext():
            repo.add(job)
            charge_job(session, org_id=org_id, job_id=job.id, cost=cost, actor=actor, mode=mode)
    except IntegrityError:
        # A concurrent submission with the same key won; ours (and its charge) rolled back.
        if not idempotency_key:
            raise
        existing = repo.by_idempotency_key(org_id, idempotency_key, mode)
        if existing is None:
            raise
        _check_same_pipeline(existing, pipeline, idempotency_key)
        return existing, False
    except PaymentRequired:
        metrics.JOBS_REFUSED.labels(reason="credits").inc()
        raise
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("NOTIFY levqor_jobs"))
    metrics.JOBS_SUBMITTED.labels(trigger=trigger).inc()
    return job, True


def _check_same_pipeline(job: Job, pipeline: Pipeline, key: str) -> None:
    if job.pipeline_id != pipeline.id:
        raise Conflict(f"idempotency key {key!r} was already used for a job of pipeline {job.pipeline_id}",
                       field="idempotency_key")


# ---- schemas -------------------------------------------------------------------------------

class NoInput(BaseModel):
    pass


class StepRunRead(BaseModel):
    run: int
    attempt: int
    position: int
    name: str
    kind: str
    status: str
    output: Any
    log: str
    started_at: dt.datetime
    finished_at: dt.datetime | None


class JobRead(BaseModel):
    id: int
    pipeline_id: int
    state: str
    attempts: int
    max_attempts: int
    last_error: str | None
    retryable: bool = Field(description="True when the last error was transient (timeout, connection, 5xx, 429)")
    created_at: dt.datetime
    finished_at: dt.datetime | None
    trigger: str
    idempotency_key: str | None
    input: dict[str, Any]
    output: Any
    cost: int
    run_at: dt.datetime
    enqueued_at: dt.datetime
    started_at: dt.datetime | None
    lease_owner: str | None
    lease_until: dt.datetime | None

    @classmethod
    def of(cls, j: Job) -> JobRead:
        return cls(id=j.id, pipeline_id=j.pipeline_id, state=j.state, attempts=j.attempts,
                   max_attempts=j.max_attempts, last_error=j.last_error, retryable=bool(j.retryable),
                   created_at=j.created_at, finished_at=j.finished_at, trigger=j.trigger,
                   idempotency_key=j.idempotency_key, input=dict(j.input or {}), output=j.output, cost=j.cost,
                   run_at=j.run_at, enqueued_at=j.enqueued_at, started_at=j.started_at,
                   lease_owner=j.lease_owner, lease_until=j.lease_until)


class JobDetail(JobRead):
    steps: list[StepRunRead]


class JobSubmit(BaseModel):
    pipeline_id: int = Field(ge=1, le=2**31 - 1)
    input: dict[str, Any] = Field(default_factory=dict, description="Data the steps see as `input`")
    idempotency_key: str | None = Field(None, min_length=1, max_length=200,
                                        description="The same key returns the same job (no second charge)")


class JobSubmitted(JobRead):
    created: bool = Field(description="False when the idempotency key matched an existing job")


class JobQuery(BaseModel):
    state: JobState | None = None
    pipeline_id: int | None = Field(None, ge=1, le=2**31 - 1)
    cursor: int | None = Field(None, ge=1, le=2**62, description="Return jobs older than this id")
    limit: int = Field(50, ge=1, le=500)


class JobPage(BaseModel):
    items: list[JobRead]
    next_cursor: int | None


class JobRef(BaseModel):
    job_id: int = Field(ge=1, le=2**62)


class RetryFailed(BaseModel):
    pipeline_id: int | None = Field(None, ge=1, le=2**31 - 1)
    limit: int = Field(100, ge=1, le=1000)


class JobIds(BaseModel):
    job_ids: list[int]
    count: int


class RequeueResult(BaseModel):
    requeued: list[int]
    dead: list[int]


class DeadQuery(BaseModel):
    pipeline_id: int | None = Field(None, ge=1, le=2**31 - 1)
    cursor: int | None = Field(None, ge=1, le=2**62)
    limit: int = Field(50, ge=1, le=500)


class DeadPurge(BaseModel):
    job_ids: list[Annotated[int, Field(ge=1, le=2**62)]] | None = Field(
        None, max_length=1000, description="Only these dead jobs (default: all)")
    older_than_s: int | None = Field(None, ge=0, le=10**9, description="Only jobs dead for at least this long")


class PurgeResult(BaseModel):
    purged: int


class QueueSwitch(BaseModel):
    pipeline_id: int | None = Field(None, ge=1, le=2**31 - 1, description="One pipeline (default: the whole queue)")


class QueueStatus(BaseModel):
    scope: str
    paused: bool


def _get_job(ctx: ToolContext, job_id: int, *, lock: bool = False) -> Job:
    repo = JobRepository(ctx.session)
    org, mode = org_scope(ctx), mode_scope(ctx)
    job = repo.get_for_update(org, job_id, mode) if lock else repo.get(org, job_id, mode)
    if job is None:
        raise NotFound(f"job {job_id} not found", field="job_id")
    return job


def _page(rows: list[Job], limit: int) -> JobPage:
    more = len(rows) > limit
    rows = rows[:limit]
    return JobPage(items=[JobRead.of(j) for j in rows], next_cursor=rows[-1].id if more else None)


def _requeue(job: Job) -> None:
    now = utcnow()
    job.state, job.attempts, job.run_at, job.enqueued_at = "queued", 0, now, now
    job.finished_at, job.lease_owner, job.lease_until = None, None, None


# ---- tools ---------------------------------------------------------------------------------

@tool("jobs.submit", risk="write")
def submit(ctx: ToolContext, params: JobSubmit) -> JobSubmitted:
    """Run a pipeline: charge its credits and queue a job (an idempotency key returns the same job).

    With a test-mode key only test pipelines can be run, charged to the test credits."""
    p = PipelineRepository(ctx.session).get(ctx.org_id, params.pipeline_id, ctx.mode)
    if p is None:
        raise NotFound(f"pipeline {params.pipeline_id} not found", field="pipeline_id")
    job, created = submit_job(ctx.session, org_id=ctx.org_id, pipeline=p, input=params.input, trigger="manual",
                              actor=ctx.principal.actor, idempotency_key=params.idempotency_key)
    return JobSubmitted(**JobRead.of(job).model_dump(), created=created)


@tool("jobs.list", risk="read")
def list_jobs(ctx: ToolContext, params: JobQuery) -> JobPage:
    """List jobs newest first, filtered by state and pipeline, with cursor pagination."""
    rows = JobRepository(ctx.session).search(
        org_scope(ctx), states=[params.state] if params.state else None, pipeline_id=params.pipeline_id,
        before_id=params.cursor, limit=params.limit + 1, mode=mode_scope(ctx))
    return _page(rows, params.limit)


@tool("jobs.get", risk="read")
def get_job(ctx: ToolContext, params: JobRef) -> JobDetail:
    """Show one job with every step's result and log, for every run."""
    job = _get_job(ctx, params.job_id)
    steps = JobRepository(ctx.session).steps(job.id)
    return JobDetail(**JobRead.of(job).model_dump(), steps=[
        StepRunRead(run=s.run, attempt=s.attempt, position=s.position, name=s.name, kind=s.kind, status=s.status,
                    output=s.output, log=s.log, started_at=s.started_at, finished_at=s.finished_at)
        for s in steps])


@tool("jobs.cancel", risk="write")
def cancel(ctx: ToolContext, params: JobRef) -> JobRead:
    """Cancel a queued or running job (a job that never started is refunded)."""
    job = _get_job(ctx, params.job_id, lock=True)
    if job.state not in ("queued", "running"):
        raise Conflict(f"job {job.id} is {job.state}; only queued or running jobs can be cancelled", field="job_id")
    before = job.state
    never_ran = job.state == "queued" and job.attempts == 0 and job.fence == 0
    job.state, job.finished_at, job.lease_owner, job.lease_until = "cancelled", utcnow(), None, None
    ctx.session.flush()
    if never_ran:
        refund_job(ctx.session, org_id=job.org_id, job_id=job.id, cost=job.cost, actor=ctx.principal.actor,
                   note="cancelled before it started", mode=job.mode)
    emit(ctx.session, "job_cancelled", job_event_payload(job, previous=before), org_id=job.org_id, mode=job.mode)
    audit_log.record(ctx, "jobs.cancelled", f"job:{job.id}", before={"state": before}, after={"state": job.state})
    return JobRead.of(job)


def _retry(ctx: ToolContext, job: Job, allowed: tuple[str, ...]) -> JobRead:
    if job.state not in allowed:
        raise Conflict(f"job {job.id} is {job.state}; only {' or '.join(allowed)} jobs can be retried",
                       field="job_id")
    before = job.state
    _requeue(job)
    ctx.session.flush()
    audit_log.record(ctx, "jobs.retried", f"job:{job.id}", before={"state": before}, after={"state": "queued"})
    return JobRead.of(job)


@tool("jobs.retry", risk="write")
def retry(ctx: ToolContext, params: JobRef) -> JobRead:
    """Queue a failed or dead job again with fresh attempts (no second charge)."""
    return _retry(ctx, _get_job(ctx, params.job_id, lock=True), ("failed", "dead"))


@tool("jobs.retry_failed", risk="write")
def retry_failed(ctx: ToolContext, params: RetryFailed) -> JobIds:
    """Queue again up to `limit` failed jobs, optionally of one pipeline."""
    repo = JobRepository(ctx.session)
    rows = repo.search(org_scope(ctx), states=["failed"], pipeline_id=params.pipeline_id, limit=params.limit,
                       mode=mode_scope(ctx))
    ids: list[int] = []
    for job in rows:
        locked = repo.get_for_update(org_scope(ctx), job.id, mode_scope(ctx))
        if locked is not None and locked.state == "failed":
            _requeue(locked)
            ids.append(locked.id)
    ctx.session.flush()
    audit_log.record(ctx, "jobs.retried_failed", f"pipeline:{params.pipeline_id or '*'}",
                     detail={"job_ids": ids[:200], "count": len(ids)})
    return JobIds(job_ids=ids, count=len(ids))


@tool("jobs.requeue_expired", risk="write")
def requeue_expired_tool(ctx: ToolContext, params: NoInput) -> RequeueResult:
    """Return running jobs whose worker lease expired to the queue (dead after max attempts)."""
    requeued, dead = requeue_expired(ctx.session, org_scope(ctx), mode_scope(ctx))
    if requeued or dead:
        audit_log.record(ctx, "jobs.requeued_expired", "queue", detail={"requeued": requeued, "dead": dead})
    return RequeueResult(requeued=requeued, dead=dead)


@tool("jobs.dead_letter", risk="destructive")
def dead_letter(ctx: ToolContext, params: JobRef) -> JobRead:
    """Move a poison job (queued, running or failed) to the dead-letter list so nobody runs it."""
    job = _get_job(ctx, params.job_id, lock=True)
    if job.state not in ("queued", "running", "failed"):
        raise Conflict(f"job {job.id} is {job.state}; it cannot be dead-lettered", field="job_id")
    before = job.state
    job.state, job.finished_at, job.lease_owner, job.lease_until = "dead", utcnow(), None, None
    job.last_error = (job.last_error or "") + f"\n[dead-lettered by {ctx.principal.actor}]"
    ctx.session.flush()
    emit(ctx.session, "job_dead", job_event_payload(job, error="moved to dead-letter", retryable=False),
         org_id=job.org_id, mode=job.mode)
    audit_log.record(ctx, "jobs.dead_lettered", f"job:{job.id}", before={"state": before}, after={"state": "dead"})
    return JobRead.of(job)


@tool("jobs.dead_list", risk="read")
def dead_list(ctx: ToolContext, params: DeadQuery) -> JobPage:
    """List dead-letter jobs (out of attempts or moved there), newest first."""
    rows = JobRepository(ctx.session).search(org_scope(ctx), states=["dead"], pipeline_id=params.pipeline_id,
                                             before_id=params.cursor, limit=params.limit + 1, mode=mode_scope(ctx))
    return _page(rows, params.limit)


@tool("jobs.dead_retry", risk="write")
def dead_retry(ctx: ToolContext, params: JobRef) -> JobRead:
    """Queue a dead-letter job again with fresh attempts."""
    return _retry(ctx, _get_job(ctx, params.job_id, lock=True), ("dead",))


@tool("jobs.dead_purge", risk="destructive")
def dead_purge(ctx: ToolContext, params: DeadPurge) -> PurgeResult:
    """Delete dead-letter jobs (all, some ids, or those dead longer than a while)."""
    older = utcnow() - dt.timedelta(seconds=params.older_than_s) if params.older_than_s is not None else None
    n = JobRepository(ctx.session).purge(org_scope(ctx), ["dead"], older, params.job_ids, mode_scope(ctx))
    audit_log.record(ctx, "jobs.dead_purged", "dead-letter", detail={"purged": n, "job_ids": params.job_ids,
                                                                     "older_than_s": params.older_than_s})
    return PurgeResult(purged=n)


def _switch(ctx: ToolContext, params: QueueSwitch, paused: bool) -> QueueStatus:
    action = "queues.paused" if paused else "queues.resumed"
    if params.pipeline_id is not None:
        if PipelineRepository(ctx.session).set_paused(org_scope(ctx), params.pipeline_id, paused,
                                                      mode_scope(ctx)) == 0:
            raise NotFound(f"pipeline {params.pipeline_id} not found", field="pipeline_id")
        audit_log.record(ctx, action, f"pipeline:{params.pipeline_id}")
        return QueueStatus(scope=f"pipeline:{params.pipeline_id}", paused=paused)
    if ctx.mode == "test":
        # The organisation's queue switch holds its live jobs too: a test-mode key never changes it.
        raise Forbidden("a test-mode API key can pause or resume only a test pipeline (pipeline_id), not the "
                        "organisation's queue", field="pipeline_id")
    JobRepository(ctx.session).set_queue_paused(ctx.org_id, paused, ctx.principal.actor)
    audit_log.record(ctx, action, f"org:{ctx.org_id}")
    return QueueStatus(scope=f"org:{ctx.org_id}", paused=paused)


@tool("queues.pause", risk="write")
def pause(ctx: ToolContext, params: QueueSwitch) -> QueueStatus:
    """Stop workers from starting the organisation's jobs (or one pipeline's); running jobs finish."""
    return _switch(ctx, params, True)


@tool("queues.resume", risk="write")
def resume(ctx: ToolContext, params: QueueSwitch) -> QueueStatus:
    """Let workers start the organisation's (or one pipeline's) jobs again."""
    return _switch(ctx, params, False)


class QueueStats(BaseModel):
    paused: bool
    depth: int
    oldest_queued_age_s: float
    by_state: dict[str, int]


@tool("queues.status", risk="read")
def queue_status(ctx: ToolContext, params: NoInput) -> QueueStats:
    """Show whether the queue is paused, its depth, oldest due job age and jobs by state."""
    repo = JobRepository(ctx.session)
    qs = repo.queue_state(ctx.org_id)
    now = utcnow()
    depth, oldest = repo.queue_stats(now, ctx.org_id, ctx.mode)
    counts = repo.counts_by_state(ctx.org_id, ctx.mode)
    return QueueStats(paused=bool(qs and qs.paused), depth=depth,
                      oldest_queued_age_s=(now - oldest).total_seconds() if oldest else 0.0,
                      by_state={s: counts.get(s, 0) for s in JOB_STATES})
