"""Jobs runtime metrics (multiprocess-safe, in the style of ``levqor.metrics``).

Counters and histograms are observed where things happen (API: submissions, credits; workers:
starts, finishes). Gauges read from the database (jobs by state, queue depth, oldest queued age,
workers) are refreshed by every worker's heartbeat; in multiprocess mode the most recent value
from a live process wins.
"""

from __future__ import annotations

import datetime as dt

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy.orm import Session

from memory.db import utcnow
from memory.jobs.models import JOB_STATES
from memory.jobs.repository import JobRepository
from tools.jobs.health import worker_health

JOBS_SUBMITTED = Counter("levqor_jobs_submitted_total", "Jobs accepted", ["trigger"])
JOBS_REFUSED = Counter("levqor_jobs_refused_total", "Submissions refused", ["reason"])
JOBS_FINISHED = Counter("levqor_jobs_finished_total", "Job runs finished", ["outcome"])
ENQUEUE_TO_START = Histogram(
    "levqor_job_enqueue_to_start_seconds", "Time from enqueue to a worker starting the job",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
RUN_DURATION = Histogram(
    # No pipeline label: /metrics carries no tenant-controlled label values (per-pipeline figures are
    # the organisation's own signals, GET /v1/signals).
    "levqor_job_run_duration_seconds", "Job run duration",
    buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
)
CREDITS_SPENT = Counter("levqor_credits_spent_total", "Credits charged for job runs")
JOBS_BY_STATE = Gauge("levqor_jobs", "Jobs by state", ["state"], multiprocess_mode="livemostrecent")
QUEUE_DEPTH = Gauge("levqor_job_queue_depth", "Jobs due and waiting for a worker",
                    multiprocess_mode="livemostrecent")
OLDEST_QUEUED = Gauge("levqor_job_queue_oldest_age_seconds", "Age of the oldest due queued job",
                      multiprocess_mode="livemostrecent")
WORKERS = Gauge("levqor_workers", "Registered workers by health", ["health"], multiprocess_mode="livemostrecent")
LEASES_EXPIRED = Counter("levqor_job_leases_expired_total", "Running jobs whose lease expired", ["action"])


def refresh(session: Session) -> None:
    """Read the queue's state from the database into the gauges."""
    repo = JobRepository(session)
    counts = repo.counts_by_state()
    for state in JOB_STATES:
        JOBS_BY_STATE.labels(state=state).set(counts.get(state, 0))
    now = utcnow()
    depth, oldest = repo.queue_stats(now)
    QUEUE_DEPTH.set(depth)
    OLDEST_QUEUED.set(max(0.0, (now - oldest).total_seconds()) if isinstance(oldest, dt.datetime) else 0.0)
    health = worker_health(session)
    for key in ("healthy", "stale", "draining"):
        WORKERS.labels(health=key).set(health.get(key, 0))
