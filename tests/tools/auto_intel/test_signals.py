"""Signals: sampling the platform, API latency from the histograms, rollups and retention, Prometheus."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.factories.jobs import ago, make_job, make_pipeline
from tests.factories.ops import clean_ops, jobs_out_of_the_windows
from tests.factories.orgs import OrgFixture, make_org
from tests.factories.settings import override_settings
from tests.support import free_port, wait_for
from tests.support.processes import Proc


def test_collect_reads_queue_failures_latency_and_workers(org: OrgFixture) -> None:
    from memory.db import session_scope, utcnow
    from memory.jobs.models import Worker
    from tools.auto_intel import signals

    clean_ops()
    jobs_out_of_the_windows()  # the p95 start latency below is over every job that started lately
    pid = make_pipeline(org.org_id)
    for _ in range(3):
        make_job(org.org_id, pid, "failed", started_at=ago(5), enqueued_at=ago(7))
    make_job(org.org_id, pid, "succeeded", started_at=ago(5), enqueued_at=ago(6))
    make_job(org.org_id, pid, "queued", enqueued_at=ago(42))
    wid = f"test-sig-{pid}"
    with session_scope() as s:
        s.add(Worker(id=wid, host="elsewhere", pid=1, concurrency=1, rss_bytes=123456, cpu_percent=7.5,
                     heartbeat_at=utcnow()))
    try:
        with session_scope() as s:
            pts = dict(signals.collect(s, utcnow(), api=signals.ApiWindow()))
        assert pts[f"jobs.failure_rate{{pipeline={pid}}}"] == 0.75
        assert pts[f"jobs.failed{{pipeline={pid}}}"] == 3.0
        assert pts["jobs.queue.depth"] >= 1 and pts["jobs.queue.oldest_age_s"] >= 42
        assert pts["jobs.start_latency_s.p95"] >= 1.0
        assert pts[f"worker.rss_bytes{{worker={wid}}}"] == 123456.0
        assert pts[f"worker.cpu_percent{{worker={wid}}}"] == 7.5
        assert "credits.spent" in pts and "workers.stale" in pts
    finally:
        with session_scope() as s:
            s.execute(Worker.__table__.delete().where(Worker.id == wid))


HIST = """# TYPE levqor_http_request_duration_seconds histogram
levqor_http_request_duration_seconds_bucket{{method="GET",route="/v1/x",le="0.1"}} {a}
levqor_http_request_duration_seconds_bucket{{method="GET",route="/v1/x",le="1.0"}} {b}
levqor_http_request_duration_seconds_bucket{{method="GET",route="/v1/x",le="+Inf"}} {b}
levqor_http_request_duration_seconds_count{{method="GET",route="/v1/x"}} {b}
levqor_http_request_duration_seconds_sum{{method="GET",route="/v1/x"}} 1.0
# TYPE levqor_http_requests_total counter
levqor_http_requests_total{{method="GET",route="/v1/x",status="200"}} {ok}
levqor_http_requests_total{{method="GET",route="/v1/x",status="500"}} {err}
"""


def test_api_latency_and_error_rate_come_from_histogram_deltas() -> None:
    from tools.auto_intel.signals import ApiWindow

    w = ApiWindow()
    assert w.sample(HIST.format(a=100, b=100, ok=100, err=0)) == []  # first sight: only a baseline
    # Next window: 10 requests, 5 fast (<0.1s) and 5 slow (0.1-1s), 2 of them errors.
    out = dict(w.sample(HIST.format(a=105, b=110, ok=108, err=2)))
    assert out["api.requests{route=/v1/x}"] == 10
    assert out["api.error_rate{route=/v1/x}"] == pytest.approx(0.2)
    assert out["api.latency_s.p50{route=/v1/x}"] == pytest.approx(0.1)
    assert 0.8 < out["api.latency_s.p95{route=/v1/x}"] <= 1.0
    assert dict(w.sample(HIST.format(a=105, b=110, ok=108, err=2))) == {}  # no traffic: no latency points


def test_rollups_then_retention_and_reads_merge_both() -> None:
    from memory.db import session_scope, utcnow
    from memory.ops.models import OpsSample
    from memory.ops.repository import SignalRepository
    from tools.auto_intel import signals

    clean_ops()
    now = signals.floor_bucket(utcnow())
    old = now - dt.timedelta(hours=30)  # past raw retention
    with session_scope() as s:
        for i in range(60):  # 10 minutes of 10-second points, two buckets
            signals.store(s, old + dt.timedelta(seconds=10 * i), [("t.series", float(i), 0.1 if i != 7 else 0.9)])
        signals.store(s, now - dt.timedelta(minutes=1), [("t.series", 500.0, None)])
        s.add(OpsSample(series="t.series", resolution="5m", ts=now - dt.timedelta(days=40), value=1.0, n=1))
    with override_settings(ops_raw_retention_h=24, ops_rollup_retention_d=30):
        with session_scope() as s:
            out = signals.maintain(s, now)
    assert out["rolled"] >= 2 and out["dropped_raw"] == 60 and out["dropped_rollups"] == 1
    with session_scope() as s:
        roll = SignalRepository(s).points("t.series", old - dt.timedelta(minutes=5), now, "5m")
        first = [r for r in roll if r.ts == signals.floor_bucket(old)][0]
        assert first.n == 30 and first.vmin == 0 and first.vmax == 29 and first.value == pytest.approx(14.5)
        assert first.score == pytest.approx(0.9)
        pts = signals.read_points(s, "t.series", old - dt.timedelta(hours=1), now)
        assert [p.value for p in pts][-1] == 500.0 and pts[0].max == 29
        # One run handles at most a day of buckets: the next one rolls the recent bucket, then nothing twice.
        assert signals.maintain(s, now)["rolled"] == 1
        assert signals.maintain(s, now)["rolled"] == 0


def test_signals_api_lists_series_and_points(client, org: OrgFixture, set_settings) -> None:
    from memory.db import session_scope, utcnow
    from tools.auto_intel import signals

    clean_ops()
    staff = make_org()
    set_settings(staff_orgs=[staff.slug])
    with session_scope() as s:
        signals.store(s, utcnow() - dt.timedelta(seconds=5), [("jobs.queue.depth", 3.0, 0.2)])
    # The queue is the platform's: Levqor staff read it, an organisation does not.
    r = client.get("/v1/signals", params={"prefix": "jobs."}, headers=staff.headers())
    assert r.status_code == 200 and "jobs.queue.depth" in r.json()["series"]
    r = client.get("/v1/signals/points", params={"series": "jobs.queue.depth"}, headers=staff.headers())
    assert r.status_code == 200 and r.json()["points"][-1]["value"] == 3.0
    r = client.get("/v1/signals", params={"prefix": "jobs."}, headers=org.headers("viewer"))
    assert r.status_code == 200 and "jobs.queue.depth" not in r.json()["series"]
    assert client.get("/v1/signals/points", params={"series": "jobs.queue.depth"},
                      headers=org.headers("viewer")).status_code == 404
    assert client.get("/v1/signals/points", params={"series": "x", "source": "nope"},
                      headers=org.headers()).status_code == 422
    r = client.get("/v1/signals/points", params={"series": "jobs.queue.depth", "source": "prometheus"},
                   headers=staff.headers())
    assert r.status_code == 400 and "LEVQOR_PROMETHEUS_URL" in r.json()["detail"]
    assert client.get("/v1/signals", headers=org.headers("partner")).status_code == 403


@pytest.mark.needs_pkg("prometheus")
def test_reads_series_from_a_real_prometheus(tmp_path: Path) -> None:
    from tools.auto_intel.signals import PrometheusReader

    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: self\n"
                      f"    static_configs:\n      - targets: ['127.0.0.1:{port}']\n")
    prom = Proc(["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                env={"PATH": "/usr/bin:/bin"}, logdir=tmp_path / "logs", name="prometheus")
    try:
        reader = PrometheusReader(f"http://127.0.0.1:{port}")

        def points() -> list[object] | None:
            assert prom.popen.poll() is None, prom.stderr
            end = dt.datetime.now(dt.UTC)
            try:
                pts = reader.query_range('up{job="self"}', end - dt.timedelta(minutes=1), end, 1)
            except Exception:
                return None
            return pts or None  # type: ignore[return-value]

        pts = wait_for(points, 90, "Prometheus to have scraped itself")
        assert all(p.value == 1.0 for p in pts)  # type: ignore[attr-defined]
        from tools.errors import BadRequest, NotFound

        with pytest.raises(NotFound):
            reader.series("no.such.series", dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1),
                          dt.datetime.now(dt.UTC), 1)
        with pytest.raises(BadRequest):
            reader.query_range("up{{", dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1), dt.datetime.now(dt.UTC), 1)
        end = dt.datetime.now(dt.UTC)
        assert reader.series("api.requests", end - dt.timedelta(minutes=1), end, 5) == []  # valid PromQL, no data
    finally:
        prom.stop()
