"""A run's outcome, written under the job's fence: success, failure (retry, failed or dead), release.

Every write is ``WHERE fence = :fence AND state = 'running'``, so a run whose lease expired (and which
someone else re-ran) can never record a second completion. Expired leases go back to the queue here too.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from sqlalchemy.orm import Session

from memory.db import utcnow
from memory.jobs.models import Job, JobStep
from memory.jobs.repository import JobRepository
from tools.events.service import emit
from tools.jobs import metrics

MAX_BACKOFF_S = 600.0


def backoff_seconds(base: float, attempts: int) -> float:
    """Exponential backoff with jitter: ``base * 2**(attempts-1)`` (capped) times 0.5 to 1.5."""
    return min(MAX_BACKOFF_S, base * 2 ** max(0, attempts - 1)) * random.uniform(0.5, 1.5)


def job_event_payload(job: Job, **extra: Any) -> dict[str, Any]:
    """The payload of a job event: the job's id, pipeline, state, attempts and trigger, and ``extra``."""
    return {"job_id": job.id, "pipeline_id": job.pipeline_id, "state": job.state, "attempts": job.attempts,
            "trigger": job.trigger, **extra}


def record_success(session: Session, job: Job, output: Any, steps: list[JobStep]) -> bool:
    """Record a run's success under its fence (exactly once); False if the run was stale."""
    now = utcnow()
    repo = JobRepository(session)
    repo.add_steps(steps)
    ok = repo.finish(job.id, job.fence, state="succeeded", output=output, finished_at=now, last_error=None,
                     retryable=False)
    if ok:
        job.state = "succeeded"
        emit(session, "job_complete", job_event_payload(job), org_id=job.org_id)
        metrics.JOBS_FINISHED.labels(outcome="succeeded").inc()
    return ok


def record_failure(session: Session, job: Job, error: str, retryable: bool, steps: list[JobStep],
                   backoff_base: float) -> str | None:
    """Record a failed run: retry later (queued), ``failed`` or ``dead``. None if the run was stale."""
    now = utcnow()
    repo = JobRepository(session)
    repo.add_steps(steps)
    error = error[-4000:]
    if retryable and job.attempts < job.max_attempts:
        state = "queued"
        run_at = now + dt.timedelta(seconds=backoff_seconds(backoff_base, job.attempts))
        values: dict[str, Any] = {"state": state, "run_at": run_at, "enqueued_at": run_at}
    else:
        state = "dead" if retryable else "failed"
        values = {"state": state, "finished_at": now}
    ok = repo.finish(job.id, job.fence, last_error=error, retryable=retryable, **values)
    if not ok:
        return None
    job.state = state
    event = {"queued": "job_retrying", "failed": "job_failed", "dead": "job_dead"}[state]
    emit(session, event, job_event_payload(job, error=error[:500], retryable=retryable), org_id=job.org_id)
    metrics.JOBS_FINISHED.labels(outcome="retrying" if state == "queued" else state).inc()
    return state


def release(session: Session, job: Job) -> bool:
    """Give a claimed job back to the queue untouched (graceful shutdown): the attempt does not count."""
    now = utcnow()
    return JobRepository(session).finish(job.id, job.fence, state="queued", attempts=job.attempts - 1,
                                         run_at=now, enqueued_at=now)


def requeue_expired(session: Session, org_id: int | None) -> tuple[list[int], list[int]]:
    """Return running jobs whose lease expired to the queue (dead after max attempts)."""
    repo = JobRepository(session)
    now = utcnow()
    requeued: list[int] = []
    dead: list[int] = []
    for job in repo.expired(org_id, now):
        is_dead = job.attempts >= job.max_attempts
        error = f"lease expired on attempt {job.attempts} (worker {job.lease_owner} stopped heartbeating)"
        if not repo.release_expired(job, now, dead=is_dead, error=error):
            continue
        if is_dead:
            job.state = "dead"
            dead.append(job.id)
            emit(session, "job_dead", job_event_payload(job, error=error, retryable=True), org_id=job.org_id)
            metrics.LEASES_EXPIRED.labels(action="dead").inc()
        else:
            requeued.append(job.id)
            metrics.LEASES_EXPIRED.labels(action="requeued").inc()
    return requeued, dead

