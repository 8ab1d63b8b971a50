"""Prometheus metrics (multiprocess-safe when PROMETHEUS_MULTIPROC_DIR is set)."""

from __future__ import annotations

import os
import sys
import shutil
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as mp

from levqor import __version__

REQUESTS = Counter("levqor_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "levqor_http_request_duration_seconds", "HTTP request latency", ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BUILD = Gauge("levqor_build_info", "Build information", ["version", "python"], multiprocess_mode="max")
DB_POOL_IN_USE = Gauge("levqor_db_pool_connections_in_use", "Checked-out DB connections",
                       multiprocess_mode="livesum")
DB_POOL_SIZE = Gauge("levqor_db_pool_size", "DB pool size", multiprocess_mode="max")
TOOL_CALLS = Counter("levqor_tool_calls_total", "Tool invocations", ["tool"])
AUDIT_ENTRIES = Counter("levqor_audit_entries_total", "Audit entries appended", ["action"])
POLICY_DECISIONS = Counter("levqor_policy_decisions_total", "Policy decisions", ["outcome"])
EVENTS_DISPATCHED = Counter("levqor_events_handled_total", "Event handler runs", ["result"])

BUILD.labels(version=__version__, python=".".join(map(str, sys.version_info[:3]))).set(1)


def prepare_multiproc_dir(path: Path) -> None:
    """Wipe and create the multiprocess directory (call once, in the supervisor, before children)."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)


def render() -> bytes:
    """Current metrics in Prometheus text format, aggregated across processes when configured."""
    _update_pool()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        reg = CollectorRegistry()
        mp.MultiProcessCollector(reg)
        return generate_latest(reg)
    return generate_latest()


def _update_pool() -> None:
    from memory.db import _engines

    in_use = 0
    size = 0
    for engine in list(_engines.values()):
        pool = engine.pool
        checked = getattr(pool, "checkedout", None)
        if callable(checked):
            in_use += int(checked())
        sz = getattr(pool, "size", None)
        if callable(sz):
            size += int(sz())
    DB_POOL_IN_USE.set(in_use)
    DB_POOL_SIZE.set(size)
