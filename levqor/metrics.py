"""Prometheus metrics (multiprocess-safe when PROMETHEUS_MULTIPROC_DIR is set)."""

from __future__ import annotations

import contextlib
import hmac
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, make_wsgi_app
from prometheus_client import multiprocess as mp
from prometheus_client.exposition import ThreadingWSGIServer

from levqor import __version__
from levqor.settings import get_settings


def _survive_a_full_disk() -> None:
    """Make the multiprocess metric files safe on a full disk (``PROMETHEUS_MULTIPROC_DIR`` in the var dir).

    prometheus_client grows its per-process files with ``truncate`` (sparse) and writes through ``mmap``: on a
    full file system the first write into an unallocated page kills the process with SIGBUS. Here each file
    is allocated for real (``posix_fallocate``) when it is created or grown, so a full disk raises ENOSPC
    instead; a metric value that cannot get its place in the file then lives in this process only (not in
    the aggregate /metrics, counted as ENOSPC at ``metrics``) and the caller carries on."""
    from prometheus_client import values
    from prometheus_client.mmap_dict import _INITIAL_MMAP_SIZE, MmapedDict

    from levqor import diskspace

    mmaped = values.ValueClass
    if not getattr(mmaped, "_multiprocess", False) or getattr(mmaped, "_levqor_guarded", False):
        return

    class AllocatedMmapedDict(MmapedDict):  # type: ignore[misc]
        def __init__(self, filename: str, read_mode: bool = False) -> None:
            fresh = not read_mode and not os.path.exists(filename)
            try:
                if not read_mode:  # allocated before the library maps it and writes its header
                    fd = os.open(filename, os.O_RDWR | os.O_CREAT, 0o644)
                    try:
                        os.posix_fallocate(fd, 0, max(os.fstat(fd).st_size, _INITIAL_MMAP_SIZE))
                    finally:
                        os.close(fd)
                super().__init__(filename, read_mode)
            except OSError:
                if fresh:
                    with contextlib.suppress(OSError):
                        os.unlink(filename)
                raise

        def _init_value(self, key: str) -> None:
            capacity = self._capacity
            encoded = len(key.encode("utf-8"))
            need = self._used + 4 + encoded + (8 - (encoded + 4) % 8) + 16
            while need > capacity:
                capacity *= 2
            if capacity != self._capacity:
                os.posix_fallocate(self._f.fileno(), 0, capacity)  # ENOSPC here, before the library grows it
            super()._init_value(key)

    class GuardedValue:
        _multiprocess = True
        _levqor_guarded = True

        def __new__(cls, *args: Any, **kwargs: Any) -> Any:
            try:
                return mmaped(*args, **kwargs)
            except OSError as exc:
                if not diskspace.is_enospc(exc):
                    raise
                diskspace.note_enospc("metrics")
                return values.MutexValue(*args, **kwargs)

    values.MmapedDict = AllocatedMmapedDict  # type: ignore[misc]
    values.ValueClass = GuardedValue


_survive_a_full_disk()

REQUESTS = Counter("levqor_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "levqor_http_request_duration_seconds", "HTTP request latency", ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BUILD = Gauge("levqor_build_info", "Build information", ["version", "python", "env"], multiprocess_mode="max")
# Pool gauges are kept by every process (pool events) and summed over live processes; the
# supervisor marks dead children so their last value does not linger.
DB_POOL_IN_USE = Gauge("levqor_db_pool_connections_in_use", "Checked-out DB connections",
                       multiprocess_mode="livesum")
DB_POOL_SIZE = Gauge("levqor_db_pool_size", "DB pool size", multiprocess_mode="livesum")
# One series per live process (multiprocess mode adds a ``pid`` label): shows every role serving.
PROCESS_START = Gauge("levqor_process_start_time_seconds", "Start time of a Levqor process (unix seconds)",
                      ["role"], multiprocess_mode="liveall")
TOOL_CALLS = Counter("levqor_tool_calls_total", "Tool invocations", ["tool"])
AUDIT_ENTRIES = Counter("levqor_audit_entries_total", "Audit entries appended", ["action"])
POLICY_DECISIONS = Counter("levqor_policy_decisions_total", "Policy decisions", ["outcome"])
EVENTS_DISPATCHED = Counter("levqor_events_handled_total", "Event handler runs", ["result"])
AGENT_TOOL_CALLS = Counter("levqor_agent_tool_calls_total", "Tool calls asked for by agents",
                           ["agent", "tool", "outcome"])
AGENT_RUNS = Counter("levqor_agent_runs_total", "Agent runs finished or paused", ["agent", "trigger", "status"])
LLM_TOKENS = Counter("levqor_llm_tokens_total", "LLM tokens used by agents", ["agent", "model", "direction"])

BUILD.labels(version=__version__, python=".".join(map(str, sys.version_info[:3])), env=get_settings().env).set(1)


_ready_gauge: Gauge | None = None


def ready_gauge() -> Gauge:
    """``levqor_ready``, created on first use so only API processes export it.

    In multiprocess mode a label-free gauge writes 0 for every process that creates it; a worker's 0
    would pull the aggregate down, so workers and schedulers never create it.
    """
    global _ready_gauge
    with _pool_lock:
        if _ready_gauge is None:
            _ready_gauge = Gauge("levqor_ready", "1 when the database answers and migrations are at head",
                                 multiprocess_mode="livemin")
        return _ready_gauge


def prepare_multiproc_dir(path: Path) -> None:
    """Empty (only ``*.db`` files) and create the multiprocess directory; call before children start."""
    path.mkdir(parents=True, exist_ok=True)
    for f in path.glob("*.db"):
        f.unlink()


def mark_process_dead(pid: int, path: Path) -> None:
    """Drop a dead child's live gauges (pool use, process series) from the aggregate."""
    mp.mark_process_dead(pid, str(path))


def start_process(role: str) -> None:
    """Record this process (role, start time) and count its DB pool use; call once per process.

    A standalone worker or scheduler (not a ``levqor up`` child, whose metrics the API aggregates)
    serves its own ``/metrics`` on ``LEVQOR_METRICS_PORT`` when that is set.
    """
    PROCESS_START.labels(role=os.environ.get("LEVQOR_PROCESS_ROLE") or role).set(time.time())
    install_pool_metrics()
    s = get_settings()
    if role != "api" and s.metrics_port and not os.environ.get("LEVQOR_PROCESS_ROLE"):
        serve_metrics(s.host, s.metrics_port)


def scrape_allowed(authorization: str | None) -> bool:
    """Whether a scrape may read /metrics: always without ``LEVQOR_METRICS_TOKEN``, else only with
    ``Authorization: Bearer <token>`` (compared in constant time)."""
    token = get_settings().metrics_token
    if not token:
        return True
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def serve_metrics(host: str, port: int) -> None:
    """Serve ``/metrics`` from a background thread (processes without the API), with the same optional
    bearer token as the API's."""
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        mp.MultiProcessCollector(registry)
    metrics_app = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        if not scrape_allowed(environ.get("HTTP_AUTHORIZATION")):
            start_response("401 Unauthorized", [("Content-Type", "text/plain"),
                                                ("WWW-Authenticate", 'Bearer realm="metrics"')])
            return [b"a bearer token is required (LEVQOR_METRICS_TOKEN)\n"]
        return metrics_app(environ, start_response)

    class _Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (the stdlib's name)
            pass

    server = make_server(host, port, app, ThreadingWSGIServer, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()


_pool_lock = threading.Lock()
_pool_sizes: dict[int, int] = {}
_checked_out: set[int] = set()
_pool_installed = False


def install_pool_metrics() -> None:
    """Track checked-out connections of every SQLAlchemy pool in this process (idempotent)."""
    global _pool_installed
    from sqlalchemy import event
    from sqlalchemy.pool import Pool

    with _pool_lock:
        if _pool_installed:
            return
        _pool_installed = True

    def checkout(_dbapi: Any, record: Any, _proxy: Any) -> None:
        pool = getattr(record, "_ConnectionRecord__pool", None)
        with _pool_lock:
            _checked_out.add(id(record))
            if id(pool) not in _pool_sizes:
                size = getattr(pool, "size", None)
                _pool_sizes[id(pool)] = int(size()) if callable(size) else 1
                DB_POOL_SIZE.set(sum(_pool_sizes.values()))
        DB_POOL_IN_USE.inc()

    def checkin(_dbapi: Any, record: Any) -> None:
        # Count only what was counted at checkout (a connection may predate the listener).
        with _pool_lock:
            if id(record) not in _checked_out:
                return
            _checked_out.discard(id(record))
        DB_POOL_IN_USE.dec()

    event.listen(Pool, "checkout", checkout)
    event.listen(Pool, "checkin", checkin)


def render() -> bytes:
    """Current metrics in Prometheus text format, aggregated across processes when configured."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        reg = CollectorRegistry()
        mp.MultiProcessCollector(reg)
        return generate_latest(reg)
    return generate_latest()
