"""What a worker's job loop does to the database, each step in a session the loop opens and commits.

The loop itself (threads, wake-ups, graceful stop) is the edge's, :mod:`workers.jobs`. Here: register
and deregister the worker row, claim a batch under a lease (a suspect job runs alone), renew the
leases of running jobs, heartbeat (health in, the pending command out), and sweep expired leases back
into the queue.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from levqor.settings import get_settings
from memory.db import utcnow
from memory.jobs.models import Job, Worker
from memory.jobs.repository import LOST_WORKER_ERROR, JobRepository, PipelineRepository, WorkerRepository
from tools.jobs.outcomes import requeue_expired
from tools.jobs.runner import PipelineSnapshot

log = logging.getLogger(__name__)
PRUNE_AFTER = dt.timedelta(hours=1)  # worker rows without a heartbeat for this long are deleted


@dataclass(frozen=True)
class Claimed:
    """A job this worker holds the lease of (detached from its session), with its pipeline as claimed."""

    job: Job
    pipeline: PipelineSnapshot | None


@dataclass(frozen=True)
class Batch:
    jobs: list[Claimed]
    suspect: int | None = None  # set when the batch is one suspect job, which must run alone


def register_worker(session: Session, worker_id: str, *, host: str, pid: int, concurrency: int) -> None:
    """Insert (or reset) the worker's row: running, no jobs, heartbeat now."""
    now = utcnow()
    WorkerRepository(session).upsert(Worker(
        id=worker_id, host=host, pid=pid, concurrency=concurrency, state="running", command=None,
        current_jobs=[], jobs_done=0, started_at=now, heartbeat_at=now))


def deregister_worker(session: Session, worker_id: str) -> None:
    WorkerRepository(session).remove(worker_id)


def claim_batch(session: Session, worker_id: str, n: int, lease_s: float, *, busy: bool = False) -> Batch:
    """Claim up to ``n`` jobs. A *suspect* (its last run lost its worker: it may be the poison that
    crashes workers, or an innocent job that ran beside it) runs alone: a busy worker does not claim
    one, and an idle one that does gives back the rest of its batch and claims nothing while it runs.
    So a poison job crashes no innocent job twice, and the poison detector tells them apart."""
    repo = JobRepository(session)
    jobs = repo.claim(worker_id, n, lease_s, skip_suspects=busy)
    if not jobs:
        return Batch([])
    suspect = next((j for j in jobs if (j.last_error or "").startswith(LOST_WORKER_ERROR)), None)
    if suspect is not None:
        for j in jobs:
            if j is not suspect:
                repo.unclaim(j.id, j.fence)
        jobs = [suspect]
    pipes = PipelineRepository(session).by_ids({j.pipeline_id for j in jobs})
    out = []
    for j in jobs:  # transient objects (the claim is Core SQL): no session to detach them from
        p = pipes.get(j.pipeline_id)
        out.append(Claimed(j, PipelineSnapshot.of(p) if p is not None else None))
    return Batch(out, suspect.id if suspect is not None else None)


def renew_leases(session: Session, held: Iterable[Job], lease_s: float) -> set[int]:
    """Extend the lease of every job held; the ids of those whose lease was lost (expired or cancelled)."""
    repo = JobRepository(session)
    return {job.id for job in held if not repo.renew(job.id, job.fence, lease_s)}


def heartbeat(session: Session, worker_id: str, *, current_jobs: list[int], jobs_done: int, state: str,
              cpu_percent: float, rss_bytes: int) -> str | None:
    """Report the worker's jobs and health on its row; the command left for it (``drain``, ``restart``)."""
    return WorkerRepository(session).heartbeat(worker_id, current_jobs=current_jobs, jobs_done=jobs_done,
                                               state=state, cpu_percent=cpu_percent, rss_bytes=rss_bytes)


def sweep_expired(session: Session) -> tuple[list[int], list[int]]:
    """Return jobs whose lease expired to the queue (when the sweep is on) and forget long-gone workers;
    the ids requeued and dead."""
    requeued, dead = requeue_expired(session, None) if get_settings().job_lease_sweep else ([], [])
    if requeued or dead:
        log.warning("expired leases swept", extra={"fields": {"requeued": requeued, "dead": dead}})
    WorkerRepository(session).prune(utcnow() - PRUNE_AFTER)
    return requeued, dead
