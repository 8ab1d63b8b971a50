"""The job loop of a worker process."""

from __future__ import annotations

import threading

from tools.jobs.workers import JobWorker


def run_jobs(stop: threading.Event, concurrency: int | None) -> None:
    """Claim and run jobs until ``stop`` is set (one :class:`JobWorker` per process)."""
    JobWorker(concurrency).run(stop)
