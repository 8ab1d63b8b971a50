"""The Celery 5 baseline: the same no-op job, on the local Redis (db 13, its own queue)."""

from __future__ import annotations

import os
import time

import redis
from celery import Celery

REDIS_URL = os.environ.get("LEVQOR_BENCH_REDIS", "redis://127.0.0.1:6379/13")
QUEUE = "levqor-bench"

app = Celery("levqor_bench", broker=REDIS_URL)
app.conf.update(
    task_default_queue=QUEUE,
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    worker_prefetch_multiplier=4,
)
_r = redis.Redis.from_url(REDIS_URL)


@app.task(name="bench.noop")
def noop(enqueued_at: float, tag: str) -> None:
    """Record enqueue, start and finish times; do nothing else."""
    started = time.time()
    _r.rpush(f"levqor-bench:{tag}", f"{enqueued_at},{started},{time.time()}")
