"""A run's outcome, written under the job's fence: success, failure (retry, failed or dead), release.

Every write is ``WHERE fence = :fence AND state = 'running'``, so a run whose lease expired (and which
someone else re-ran) can never record a second completion. Expired leases go back to the queue here too.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from memory.db import utcnow
from memory.jobs.models import Job, JobStep
from memory.jobs.repository import JobRepository
from tools.events.service import Reactions, emit, emit_many
from tools.jobs import metrics

MAX_BACKOFF_S = 600.0


def backoff_seconds(base: float, attempts: int) -> float:
    """Exponential backoff with jitter: ``base * 2**(attempts-1)`` (capped) times 0.5 to 1.5."""
    return min(MAX_BACKOFF_S, base * 2 ** max(0, attempts - 1)) * random.uniform(0.5, 1.5)


def job_event_payload(job: Job, **extra: Any) -> dict[str, Any]:
    """The payload of a job event: the job's id, pipeline, state, attempts and trigger, and ``extra``;
    a test job's events say ``livemode: false`` (they reach only test subscribers)."""
    out = {"job_id": job.id, "pipeline_id": job.pipeline_id, "state": job.state, "attempts": job.attempts,
           "trigger": job.trigger, **extra}
    if job.mode == "test":
        out["livemode"] = False
    return out


def record_success(session: Session, job: Job, output: Any, steps: list[JobStep]) -> bool:
    """Record a run's success under its fence (exactly once); False if the run was stale."""
    return record_successes(session, [(job, output, steps)])[0]


def record_successes(session: Session, runs: Sequence[tuple[Job, Any, list[JobStep]]],
                     reactions: Reactions | None = None) -> list[bool]:
    """Record the successes of many runs, each under its fence (exactly once): one insert of every step,
    one executemany of the fenced updates, one insert of the ``job_complete`` events (written already
    dispatched for organisations no reaction in ``reactions`` watches). Per run, False if it was stale.
    """
    if not runs:
        return []
    now = utcnow()
    repo = JobRepository(session)
    repo.add_steps([st for _, _, steps in runs for st in steps])
    written = repo.finish_many([{"job_id": job.id, "fence": job.fence, "state": "succeeded", "output": output,
                                 "finished_at": now, "last_error": None, "retryable": False}
                                for job, output, _ in runs])
    if written == len(runs):
        ok = [True] * len(runs)
    else:  # some run was stale: ours are the rows now succeeded under our fence at our timestamp
        mine = repo.finished_under([(job.id, job.fence) for job, _, _ in runs], "succeeded", now)
        ok = [(job.id, job.fence) in mine for job, _, _ in runs]
    done = [job for (job, _, _), good in zip(runs, ok, strict=True) if good]
    for job in done:
        job.state = "succeeded"
    emit_many(session, [("job_complete", job_event_payload(job), job.org_id) for job in done], reactions)
    if done:
        metrics.JOBS_FINISHED.labels(outcome="succeeded").inc(len(done))
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


def requeue_expired(session: Session, org_id: int | None,
                    mode: str | None = None) -> tuple[list[int], list[int]]:
    """Return running jobs whose lease expired to the queue (dead after max attempts); of one mode if given."""
    repo = JobRepository(session)
    now = utcnow()
    requeued: list[int] = []
    dead: list[int] = []
    for job in repo.expired(org_id, now, mode=mode):
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

