"""``/metrics``: route templates (never raw ids), pool gauge, build info, readiness; a real Prometheus
scrapes a real API process and answers a query; ``promtool check metrics`` passes."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.factories.orgs import OrgFixture
from tests.support import ROOT, free_port, wait_for
from tests.support.processes import Proc, start_api


def _samples(text: str, name: str) -> dict[str, float]:
    """``{labels: value}`` of every sample of metric ``name`` in a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}(\{{.*\}})? (\S+)$", line)
        if m:
            out[m.group(1) or ""] = float(m.group(2))
    return out


def test_requests_are_labelled_by_route_template_never_raw_ids(app, client, org: OrgFixture) -> None:
    created = client.post("/v1/keys", json={"name": "m"}, headers=org.headers()).json()
    key_id = created["id"]
    assert client.delete(f"/v1/keys/{key_id}", headers=org.headers()).status_code == 200
    assert client.delete("/v1/keys/987654", headers=org.headers()).status_code == 404
    client.get("/no/such/path/4242")
    text = client.get("/metrics").text
    reqs = _samples(text, "levqor_http_requests_total")
    assert any('route="/v1/keys/{key_id}"' in k and 'method="DELETE"' in k and 'status="200"' in k for k in reqs)
    assert any('route="/v1/keys/{key_id}"' in k and 'status="404"' in k for k in reqs)
    assert any('route="unmatched"' in k for k in reqs)
    # Every route label is a template of the app (or "unmatched"); no raw id in any label value.
    templates = {getattr(r, "path", None) for r in app.routes} | {"unmatched", "/static"}
    routes = set(re.findall(r'route="([^"]*)"', text))
    assert routes and routes <= templates, routes - templates
    values = set(re.findall(r'="([^"]*)"', text))
    assert not {v for v in values if str(key_id) in v.split("/") or "987654" in v or "4242" in v}
    hist = _samples(text, "levqor_http_request_duration_seconds_count")
    assert any('route="/v1/keys/{key_id}"' in k and 'method="DELETE"' in k for k in hist)
    buckets = _samples(text, "levqor_http_request_duration_seconds_bucket")
    assert any('le="+Inf"' in k and 'route="/v1/keys"' in k for k in buckets)


def test_request_counter_counts_exactly(client) -> None:
    def count() -> float:
        text = client.get("/metrics").text
        return _samples(text, "levqor_http_requests_total").get(
            '{method="GET",route="/healthz",status="200"}', 0.0)

    before = count()
    for _ in range(7):
        client.get("/healthz")
    assert count() - before == 7


def test_build_info_and_readiness_gauges(client) -> None:
    from levqor import __version__

    text = client.get("/metrics").text
    build = _samples(text, "levqor_build_info")
    from levqor.settings import get_settings

    env = get_settings().env
    assert any(f'version="{__version__}"' in k and f'env="{env}"' in k and v == 1.0 for k, v in build.items())
    assert _samples(text, "levqor_ready") == {"": 1.0}
    assert any('role="api"' in k for k in _samples(text, "levqor_process_start_time_seconds"))


def test_pool_gauge_follows_checked_out_connections(client) -> None:
    from memory.db import get_engine

    def in_use() -> float:
        return _samples(client.get("/metrics").text, "levqor_db_pool_connections_in_use")[""]

    base = in_use()
    conns = [get_engine().connect() for _ in range(3)]
    try:
        assert in_use() == base + 3
    finally:
        for c in conns:
            c.close()
    assert in_use() == base
    assert _samples(client.get("/metrics").text, "levqor_db_pool_size")[""] >= 1


@pytest.mark.needs_pkg("prometheus", binary="promtool")
def test_promtool_check_metrics_passes(client, org: OrgFixture) -> None:
    client.get("/v1/me", headers=org.headers())
    client.get("/v1/keys/1", headers=org.headers("viewer"))
    text = client.get("/metrics").text
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    # promtool must be able to fail: a counter without the _total suffix is a lint problem.
    bad = "# HELP x_requests Bad.\n# TYPE x_requests counter\nx_requests 1\n"
    r = subprocess.run(["promtool", "check", "metrics"], input=bad, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0


@pytest.mark.needs_pkg("prometheus")
def test_real_prometheus_scrapes_the_api_and_answers_a_query(tmp_path: Path) -> None:
    api, base = start_api(tmp_path / "logs")
    prom: Proc | None = None
    try:
        for _ in range(5):
            assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        prom_port = free_port()
        target = base.removeprefix("http://")
        rules = (ROOT / "deploy" / "prometheus" / "alerts.yml").resolve()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"rule_files:\n  - {rules}\n"
            "scrape_configs:\n  - job_name: levqor-api\n"
            f"    static_configs:\n      - targets: ['{target}']\n"
        )
        prom = Proc(["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                     f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
                    env={"PATH": "/usr/bin:/bin"}, logdir=tmp_path / "logs", name="prometheus")
        papi = f"http://127.0.0.1:{prom_port}/api/v1"

        def target_up() -> bool:
            assert prom is not None and prom.popen.poll() is None, prom.stderr if prom else ""
            active = httpx.get(f"{papi}/targets", timeout=2).json()["data"]["activeTargets"]
            return bool(active) and active[0]["health"] == "up"

        wait_for(target_up, 90, "Prometheus to report the API target up")

        def healthz_count() -> float | None:
            q = 'levqor_http_requests_total{route="/healthz",status="200"}'
            res = httpx.get(f"{papi}/query", params={"query": q}, timeout=2).json()["data"]["result"]
            return float(res[0]["value"][1]) if res else None

        assert wait_for(healthz_count, 60, "levqor_http_requests_total in Prometheus") == 5.0
        up = httpx.get(f"{papi}/query", params={"query": 'up{job="levqor-api"}'}, timeout=5).json()
        assert up["data"]["result"][0]["value"][1] == "1"

        # The shipped alert rules load and evaluate without errors against real data.
        def rules_evaluated() -> list[dict[str, object]] | None:
            groups = httpx.get(f"{papi}/rules", timeout=2).json()["data"]["groups"]
            rules_ = [r for g in groups for r in g["rules"]]
            return rules_ if rules_ and all(r.get("lastEvaluation", "").startswith("20") for r in rules_) \
                else None

        evaluated = wait_for(rules_evaluated, 60, "Prometheus to evaluate the alert rules")
        assert {r["name"] for r in evaluated} >= {"LevqorApiDown", "LevqorHigh5xxRate", "LevqorHighP99Latency",
                                                  "LevqorNotReady"}
        assert all(r["health"] == "ok" for r in evaluated), [(r["name"], r.get("lastError")) for r in evaluated]
        firing = [r["name"] for r in evaluated if r["state"] == "firing"]
        assert "LevqorApiDown" not in firing and "LevqorNotReady" not in firing

        # Every Grafana panel query is valid PromQL and finds data for the core panels.
        import json

        dash = json.loads((ROOT / "deploy" / "grafana" / "levqor.json").read_text())
        for panel in dash["panels"]:
            for t in panel["targets"]:
                q = t["expr"].replace("$job", ".*").replace("$__rate_interval", "1m")
                res = httpx.get(f"{papi}/query", params={"query": q}, timeout=5).json()
                assert res["status"] == "success", (panel["title"], q, res)
                if panel["title"] in ("API up", "Ready", "Build", "DB pool"):
                    assert res["data"]["result"], (panel["title"], q)
    finally:
        if prom is not None:
            prom.stop()
        api.stop()
