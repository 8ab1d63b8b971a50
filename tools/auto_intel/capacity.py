"""Capacity: can the healthy workers keep up with the jobs, now and as forecast?

Throughput is measured, not configured: the job slots of the workers heartbeating now divided by the
mean run time of the jobs that recently succeeded. Two warnings, each opening a ``capacity`` incident:

* **backlog**: the due queue would take longer than ``ops_capacity_horizon_s`` to clear at that
  throughput (it warns before the queue-age rule, ``ops_queue_age_max_s``, is breached);
* **forecast**: the predictor (:func:`tools.auto_intel.predictor.forecast`) forecasts job arrivals per
  bucket (a fifth of the horizon) from the last ``HISTORY_BUCKETS`` buckets and
  :func:`~tools.auto_intel.predictor.spike_warning` says they will exceed what the workers clear per
  bucket within the horizon, while arrivals already reach ``RECENT_LOAD_SHARE`` of it. It needs
  ``MIN_HISTORY_BUCKETS`` of the monitor's history first.

The healer's playbook then asks the supervisor for more workers (``workers.scale``, up to
``LEVQOR_WORKERS_MAX``).
"""

from __future__ import annotations

import datetime as dt
import math
import socket
from dataclasses import dataclass

from sqlalchemy.orm import Session

from levqor.settings import get_settings
from memory.db import aware as _aware
from memory.ops.repository import SignalRepository, SignalSourceRepository
from tools.auto_intel.predictor import ForecastError, forecast, spike_warning

MIN_RUNS = 3  # finished jobs needed before throughput counts as measured
HORIZON_BUCKETS = 5
HISTORY_BUCKETS = 48
MIN_HISTORY_BUCKETS = 24
RECENT_LOAD_SHARE = 0.5  # the forecast warns only while the last buckets' arrivals reach this share of capacity


@dataclass(frozen=True)
class Capacity:
    depth: int
    healthy_workers: int
    slots: int
    mean_run_s: float
    throughput_per_s: float
    drain_s: float  # the backlog now, at the measured throughput
    horizon_s: float
    bucket_s: float
    forecast_peak: float | None  # arrivals per bucket when the predictor warns they outgrow throughput

    @property
    def short(self) -> bool:
        """The workers cannot clear the backlog within the horizon, or the forecast arrivals outgrow them."""
        return self.drain_s > self.horizon_s or self.forecast_peak is not None

    def describe(self) -> str:
        head = f"{self.healthy_workers} worker(s) clear {self.throughput_per_s:.1f} jobs/s"
        if self.drain_s > self.horizon_s:
            return f"{head}: {self.depth} queued need {self.drain_s:.0f}s (limit {self.horizon_s:g}s)"
        return (f"{head}: job arrivals are forecast to reach {self.forecast_peak:.0f} per {self.bucket_s:g}s "
                f"within {self.horizon_s:g}s, more than they clear")

    def workers_needed(self) -> int:
        """Workers that would clear the backlog within the horizon and keep up with the forecast arrivals."""
        need_per_s = max(self.depth / self.horizon_s, (self.forecast_peak or 0.0) / self.bucket_s)
        per_worker = self.throughput_per_s / max(1, self.healthy_workers)
        return max(self.healthy_workers + 1, math.ceil(need_per_s / max(per_worker, 1e-9)))


def measure(session: Session, now: dt.datetime, *, depth: int | None = None) -> Capacity | None:
    """Measure capacity now; None when it cannot be measured (no healthy worker, no recent runs)."""
    import psutil  # kept lazy: start-up time

    s = get_settings()
    src = SignalSourceRepository(session)
    stale_after = max(3.0, float(s.job_lease_s))
    host = socket.gethostname()
    healthy = [w for w in src.workers()
               if (now - _aware(w.heartbeat_at)).total_seconds() <= stale_after and w.state == "running"
               and (w.host != host or psutil.pid_exists(w.pid))]
    if not healthy:
        return None  # no worker at all is the worker rules' business
    runs = src.run_seconds(now - dt.timedelta(seconds=s.ops_window_s))
    if len(runs) < MIN_RUNS:
        return None
    if depth is None:
        depth = src.queue(now)[0]
    slots = sum(max(1, w.concurrency) for w in healthy)
    mean_run = max(0.05, sum(runs) / len(runs))
    throughput = slots / mean_run
    horizon = max(1.0, float(s.ops_capacity_horizon_s))
    bucket = horizon / HORIZON_BUCKETS
    return Capacity(depth=depth, healthy_workers=len(healthy), slots=slots, mean_run_s=mean_run,
                    throughput_per_s=throughput, drain_s=depth / throughput, horizon_s=horizon, bucket_s=bucket,
                    forecast_peak=_spike_peak(session, now, bucket, throughput * bucket))


def _spike_peak(session: Session, now: dt.datetime, bucket_s: float, clearable: float) -> float | None:
    """Peak forecast arrivals per bucket when the predictor warns they exceed ``clearable`` (jobs the
    workers finish per bucket) within the horizon; None otherwise or with too little history."""
    start = now - dt.timedelta(seconds=bucket_s * HISTORY_BUCKETS)
    first = SignalRepository(session).points("jobs.queue.depth", start, now, "raw", limit=1)
    if not first or _aware(first[0].ts) > now - dt.timedelta(seconds=bucket_s * MIN_HISTORY_BUCKETS):
        return None  # the monitor has not watched long enough to know the usual load
    origin = max(start, _aware(first[0].ts))
    n = int((now - origin).total_seconds() // bucket_s)
    counts = [0.0] * n
    for t in SignalSourceRepository(session).enqueue_times(now - dt.timedelta(seconds=bucket_s * n)):
        i = int((t - (now - dt.timedelta(seconds=bucket_s * n))).total_seconds() // bucket_s)
        if 0 <= i < n:
            counts[i] += 1
    if sum(counts[-2:]) / 2 < RECENT_LOAD_SHARE * clearable:
        return None  # not loaded now: a past burst the forecast still echoes is no warning
    base = now.timestamp() - bucket_s * n
    try:
        fc = forecast(counts, horizon=HORIZON_BUCKETS, timestamps=[base + bucket_s * (i + 1) for i in range(n)],
                      step_s=bucket_s)
    except ForecastError:
        return None
    warning = spike_warning(fc, capacity=clearable)
    return warning.peak if warning is not None else None
