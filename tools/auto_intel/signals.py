"""Signals: time series sampled from the platform itself, kept raw for a day and as 5-minute rollups.

Series are named ``name`` or ``name{label=value}``: job failure rate and counts by pipeline, queue
depth and oldest age, enqueue-to-start latency, API latency quantiles and error rate by route (from the
process's Prometheus histograms, aggregated across processes in multiprocess mode), worker CPU, RSS and
heartbeat age, partner endpoint error rates, credits spent. :class:`PrometheusReader` reads series
from an external Prometheus instead (``LEVQOR_PROMETHEUS_URL``).
"""

from __future__ import annotations

import datetime as dt
import math
import socket
import threading
from collections import defaultdict
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from levqor.metrics import render
from levqor.settings import get_settings
from memory.db import aware as _aware
from memory.db import utcnow
from memory.ops.models import OpsSample
from memory.ops.repository import SignalRepository, SignalSourceRepository
from tools.context import ToolContext
from tools.enterprise.rbac import is_staff
from tools.errors import BadRequest, NotFound
from tools.registry import tool

BUCKET = dt.timedelta(minutes=5)
MAX_BUCKETS_PER_RUN = 288


def series_name(name: str, **labels: object) -> str:
    """``name{k=v,...}`` with labels sorted (one spelling per series)."""
    if not labels:
        return name
    return name + "{" + ",".join(f"{k}={labels[k]}" for k in sorted(labels)) + "}"


def parse_series(series: str) -> tuple[str, dict[str, str]]:
    if "{" not in series:
        return series, {}
    name, rest = series.split("{", 1)
    labels = dict(kv.split("=", 1) for kv in rest.rstrip("}").split(",") if "=" in kv)
    return name, labels


def quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    xs = sorted(values)
    pos = q * (len(xs) - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


# ---- API latency from the Prometheus histograms ---------------------------------------------------

class ApiWindow:
    """Turns the cumulative HTTP counters into per-sample deltas (one instance per sampler)."""

    def __init__(self) -> None:
        self.prev_buckets: dict[tuple[str, float], float] = {}
        self.prev_requests: dict[tuple[str, str], float] = {}
        self.lock = threading.Lock()

    def sample(self, text: str | None = None) -> list[tuple[str, float]]:
        if text is None:
            text = render().decode()
        buckets: dict[tuple[str, float], float] = defaultdict(float)
        requests: dict[tuple[str, str], float] = defaultdict(float)
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                route = s.labels.get("route", "")
                if route in ("/metrics", "unmatched") or not route:
                    continue
                if s.name == "levqor_http_request_duration_seconds_bucket":
                    buckets[(route, float(s.labels["le"]))] += s.value
                elif s.name == "levqor_http_requests_total":
                    requests[(route, s.labels.get("status", ""))] += s.value
        with self.lock:
            first = not self.prev_buckets and not self.prev_requests
            d_buckets = {k: max(0.0, v - self.prev_buckets.get(k, 0.0)) for k, v in buckets.items()}
            d_requests = {k: max(0.0, v - self.prev_requests.get(k, 0.0)) for k, v in requests.items()}
            self.prev_buckets, self.prev_requests = dict(buckets), dict(requests)
        if first:
            return []
        out: list[tuple[str, float]] = []
        per_route: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for (route, le), n in d_buckets.items():
            per_route[route].append((le, n))
        for route, bs in per_route.items():
            bs.sort()
            total = bs[-1][1] if bs else 0.0
            if total <= 0:
                continue
            for q, label in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
                out.append((series_name(f"api.latency_s.{label}", route=route), _hist_quantile(bs, q)))
        totals: dict[str, float] = defaultdict(float)
        errors: dict[str, float] = defaultdict(float)
        for (route, status), n in d_requests.items():
            totals[route] += n
            if status.startswith("5"):
                errors[route] += n
        for route, n in totals.items():
            if n > 0:
                out.append((series_name("api.requests", route=route), n))
                out.append((series_name("api.error_rate", route=route), errors[route] / n))
        return out


def _hist_quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """Prometheus' histogram_quantile: linear interpolation inside the bucket holding rank q."""
    total = buckets[-1][1]
    rank = q * total
    prev_le, prev_n = 0.0, 0.0
    for le, n in buckets:
        if n >= rank:
            if math.isinf(le):
                return prev_le
            width = n - prev_n
            return prev_le + (le - prev_le) * ((rank - prev_n) / width if width > 0 else 1.0)
        prev_le, prev_n = le, n
    return prev_le


_api_window = ApiWindow()


# ---- sampling -------------------------------------------------------------------------------------

def collect(session: Session, now: dt.datetime | None = None, *, api: ApiWindow | None = None,
            api_text: str | None = None) -> list[tuple[str, float]]:
    """Read every signal once: ``[(series, value), ...]`` at ``now``."""
    import psutil  # kept lazy: start-up time

    s = get_settings()
    now = now or utcnow()
    since = now - dt.timedelta(seconds=s.ops_window_s)
    src = SignalSourceRepository(session)
    out: list[tuple[str, float]] = []

    depth, oldest = src.queue(now)
    out.append(("jobs.queue.depth", float(depth)))
    out.append(("jobs.queue.oldest_age_s", (now - _aware(oldest)).total_seconds() if oldest else 0.0))
    out.append(("jobs.leases.expired", float(len(src.expired_leases(now)))))

    finished = failed = 0
    for pid, (n, bad) in sorted(src.finished_by_pipeline(since).items()):
        finished += n
        failed += bad
        out.append((series_name("jobs.finished", pipeline=pid), float(n)))
        out.append((series_name("jobs.failed", pipeline=pid), float(bad)))
        out.append((series_name("jobs.failure_rate", pipeline=pid), bad / n if n else 0.0))
    out.append(("jobs.finished", float(finished)))
    out.append(("jobs.failed", float(failed)))
    out.append(("jobs.failure_rate", failed / finished if finished else 0.0))

    lat = src.start_latencies(since)
    out.append(("jobs.start_latency_s.p50", quantile(lat, 0.5)))
    out.append(("jobs.start_latency_s.p95", quantile(lat, 0.95)))

    stale_after = max(3.0, float(s.job_lease_s))
    healthy = stale = 0
    host = socket.gethostname()
    for w in src.workers():
        age = (now - _aware(w.heartbeat_at)).total_seconds()
        alive = True
        if w.host == host:
            alive = psutil.pid_exists(w.pid)
        if age > stale_after or not alive:
            stale += 1
        else:
            healthy += 1
        out.append((series_name("worker.heartbeat_age_s", worker=w.id), max(0.0, age)))
        if w.rss_bytes is not None:
            out.append((series_name("worker.rss_bytes", worker=w.id), float(w.rss_bytes)))
        if w.cpu_percent is not None:
            out.append((series_name("worker.cpu_percent", worker=w.id), float(w.cpu_percent)))
    out.append(("workers.healthy", float(healthy)))
    out.append(("workers.stale", float(stale)))

    out.append(("credits.spent", float(src.credits_spent(since))))
    try:
        partner = src.partner_attempts(since)
    except Exception:  # the partner tables are optional (older databases)
        partner = {}
    for install, (n, errs) in sorted(partner.items()):
        out.append((series_name("partner.attempts", install=install), float(n)))
        out.append((series_name("partner.error_rate", install=install), errs / n if n else 0.0))

    out.extend((api or _api_window).sample(api_text))
    return out


def store(session: Session, ts: dt.datetime, points: list[tuple[str, float, float | None]]) -> int:
    return SignalRepository(session).add_samples(ts, points)


def floor_bucket(t: dt.datetime) -> dt.datetime:
    epoch = int(t.timestamp())
    return dt.datetime.fromtimestamp(epoch - epoch % int(BUCKET.total_seconds()), dt.UTC)


def maintain(session: Session, now: dt.datetime | None = None) -> dict[str, int]:
    """Roll complete 5-minute buckets of raw samples up, then drop what is past retention."""
    s = get_settings()
    now = now or utcnow()
    repo = SignalRepository(session)
    last = repo.last_rollup()
    first = repo.first_raw()
    start = (floor_bucket(_aware(last)) + BUCKET) if last else None
    if first is not None and (start is None or start < floor_bucket(_aware(first))):
        start = floor_bucket(_aware(first))  # skip the gap before the oldest raw sample
    end = floor_bucket(now)
    rolled = 0
    if start is not None and start < end:
        end = min(end, start + BUCKET * MAX_BUCKETS_PER_RUN)
        groups: dict[tuple[str, dt.datetime], list[tuple[float, float | None]]] = defaultdict(list)
        for series, ts, value, score in repo.raw_between(start, end):
            groups[(series, floor_bucket(_aware(ts)))].append((value, score))
        rows = []
        for (series, b), vals in groups.items():
            xs = [v for v, _ in vals]
            scores = [sc for _, sc in vals if sc is not None]
            rows.append(OpsSample(series=series, resolution="5m", ts=b, value=sum(xs) / len(xs), vmin=min(xs),
                                  vmax=max(xs), n=len(xs), score=max(scores) if scores else None))
        repo.add_rollups(rows)
        rolled = len(rows)
    dropped_raw = repo.drop_before("raw", now - dt.timedelta(hours=s.ops_raw_retention_h))
    dropped_rollups = repo.drop_before("5m", now - dt.timedelta(days=s.ops_rollup_retention_d))
    return {"rolled": rolled, "dropped_raw": dropped_raw, "dropped_rollups": dropped_rollups}


class Point(BaseModel):
    ts: dt.datetime
    value: float
    min: float | None = None
    max: float | None = None
    score: float | None = None


def read_points(session: Session, series: str, since: dt.datetime, until: dt.datetime) -> list[Point]:
    """Raw points where they are kept, 5-minute rollups before that."""
    repo = SignalRepository(session)
    raw = repo.points(series, since, until, "raw")
    cutoff = _aware(raw[0].ts) if raw else until
    older = repo.points(series, since, min(cutoff, until), "5m")
    return ([Point(ts=r.ts, value=r.value, min=r.vmin, max=r.vmax, score=r.score) for r in older]
            + [Point(ts=r.ts, value=r.value, score=r.score) for r in raw])


# ---- external Prometheus --------------------------------------------------------------------------

# Our series, as PromQL over the metrics Levqor exports (for reading them from a real Prometheus).
PROMQL: dict[str, str] = {
    "api.requests": "sum(increase(levqor_http_requests_total[1m]))",
    "api.error_rate": 'sum(rate(levqor_http_requests_total{status=~"5.."}[1m])) '
                      "/ clamp_min(sum(rate(levqor_http_requests_total[1m])), 1e-9)",
    "api.latency_s.p95": "histogram_quantile(0.95, sum by (le) "
                         "(rate(levqor_http_request_duration_seconds_bucket[1m])))",
    "jobs.queue.depth": "max(levqor_job_queue_depth)",
}


class PrometheusReader:
    """Reads range queries from a Prometheus HTTP API (``/api/v1/query_range``)."""

    def __init__(self, base_url: str | None = None, timeout_s: float = 10.0):
        url = base_url if base_url is not None else get_settings().prometheus_url
        if not url:
            raise BadRequest("no Prometheus configured (LEVQOR_PROMETHEUS_URL)", field="prometheus_url")
        self.base_url = url.rstrip("/")
        self.timeout_s = timeout_s

    def query_range(self, query: str, start: dt.datetime, end: dt.datetime, step_s: float) -> list[Point]:
        import httpx  # kept lazy: start-up time

        r = httpx.get(f"{self.base_url}/api/v1/query_range", timeout=self.timeout_s,
                      params={"query": query, "start": start.timestamp(), "end": end.timestamp(), "step": step_s})
        body: dict[str, Any] = r.json()
        if r.status_code != 200 or body.get("status") != "success":
            raise BadRequest(f"Prometheus answered {r.status_code}: {body.get('error', '')}"[:300], field="query")
        out: list[Point] = []
        for res in body["data"]["result"][:1]:
            for ts, value in res["values"]:
                v = float(value)
                if math.isfinite(v):
                    out.append(Point(ts=dt.datetime.fromtimestamp(float(ts), dt.UTC), value=v))
        return out

    def series(self, name: str, start: dt.datetime, end: dt.datetime, step_s: float) -> list[Point]:
        if name not in PROMQL:
            raise NotFound(f"no PromQL for series {name!r}; known: {', '.join(sorted(PROMQL))}", field="series")
        return self.query_range(PROMQL[name], start, end, step_s)


# ---- tools ----------------------------------------------------------------------------------------

class SeriesQuery(BaseModel):
    prefix: str = Field("", max_length=200)
    since_s: int = Field(3600, ge=1, le=40 * 86400)


class SeriesNames(BaseModel):
    series: list[str]


class PointsQuery(BaseModel):
    series: str = Field(min_length=1, max_length=200)
    since_s: int = Field(3600, ge=1, le=40 * 86400)
    source: str = Field("local", pattern="^(local|prometheus)$")
    step_s: float = Field(15, gt=0, le=86400)


class PointsOut(BaseModel):
    series: str
    source: str
    points: list[Point]


# Labels that tie a series to one organisation's object; a series without one is the platform's.
_TENANT_LABELS = ("pipeline", "install")


def visible_series(ctx: ToolContext, names: list[str]) -> list[str]:
    """The series the caller may read: all for Levqor staff; for an organisation, only the series of its
    own pipelines and installs (platform series, such as queue depth or workers, are staff-only)."""
    if is_staff(ctx, read=True):
        return names
    labelled: list[tuple[str, dict[str, str]]] = []
    for n in names:
        _name, labels = parse_series(n)
        if len(labels) == 1 and next(iter(labels)) in _TENANT_LABELS and next(iter(labels.values())).isdigit():
            labelled.append((n, labels))
    pipes = {int(lb["pipeline"]) for _n, lb in labelled if "pipeline" in lb}
    installs = {int(lb["install"]) for _n, lb in labelled if "install" in lb}
    own_p, own_i = SignalSourceRepository(ctx.session).owned_by(ctx.org_id, pipes, installs)
    return [n for n, lb in labelled
            if ("pipeline" in lb and int(lb["pipeline"]) in own_p) or ("install" in lb and int(lb["install"]) in own_i)]


@tool("signals.list", risk="read")
def list_series(ctx: ToolContext, params: SeriesQuery) -> SeriesNames:
    """List the sampled operations series (optionally those starting with a prefix)."""
    since = utcnow() - dt.timedelta(seconds=params.since_s)
    return SeriesNames(series=visible_series(ctx, SignalRepository(ctx.session).series_names(params.prefix, since)))


@tool("signals.points", risk="read")
def get_points(ctx: ToolContext, params: PointsQuery) -> PointsOut:
    """Show one series' points (raw, then 5-minute rollups) with their anomaly scores."""
    if not visible_series(ctx, [params.series]):
        raise NotFound(f"series {params.series!r} not found", field="series")
    until = utcnow()
    since = until - dt.timedelta(seconds=params.since_s)
    if params.source == "prometheus":
        pts = PrometheusReader().series(params.series, since, until, params.step_s)
    else:
        pts = read_points(ctx.session, params.series, since, until + dt.timedelta(seconds=1))
    return PointsOut(series=params.series, source=params.source, points=pts)
