"""Deployment files: docker-compose names only real CLI commands, the Dockerfile builds the `levqor`
image from the lock, Prometheus config and alert rules pass promtool, the Grafana dashboard and the
alerts query only metrics the app exports."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import ROOT

PROM_DIR = ROOT / "deploy" / "prometheus"


def _compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _check_cli_command(argv: list[str]) -> None:
    """Raise unless ``argv`` (``levqor sub [options]``) parses against the typer app in api/cli/."""
    import typer
    from typer.core import TyperGroup

    from api.cli import app

    assert argv and argv[0] == "levqor", f"command must start with the levqor CLI: {argv}"
    cmd: Any = typer.main.get_command(app)  # a group (typer vendors its own click); commands load lazily
    assert isinstance(cmd, TyperGroup)
    args = argv[1:]
    while isinstance(cmd, TyperGroup):
        assert args, f"{argv}: no subcommand"
        _name, sub, rest = cmd.resolve_command(cmd.make_context("levqor", [], resilient_parsing=True),
                                               list(args))  # a UsageError when there is no such command
        assert sub is not None, f"{argv}: the levqor CLI has no command {args[0]!r}"
        cmd, args = sub, rest
    cmd.make_context(cmd.name or "", list(args))  # raises a click UsageError on unknown options


def test_compose_has_the_services_and_only_real_cli_commands() -> None:
    services = _compose()["services"]
    assert {"api", "worker", "scheduler", "postgres", "prometheus"} <= set(services)
    levqor_services = {name: s for name, s in services.items() if s.get("image") == "levqor"}
    assert {"api", "worker", "scheduler"} <= set(levqor_services)
    for name, svc in levqor_services.items():
        assert isinstance(svc.get("command"), list), f"{name}: command must be an exec-form list"
        _check_cli_command(svc["command"])
        env = svc["environment"]
        assert env["LEVQOR_DATABASE_URL"].startswith("postgresql+psycopg://") and "@postgres:" in env[
            "LEVQOR_DATABASE_URL"]
    assert levqor_services["api"]["command"][1] == "api"
    assert levqor_services["worker"]["command"][1] == "worker"
    assert levqor_services["scheduler"]["command"][1] == "scheduler"
    # Exactly one scheduler: it must not be scaled in the file (others would only stand by).
    assert services["scheduler"].get("deploy", {}).get("replicas", 1) == 1


def test_the_cli_check_can_fail() -> None:
    for bad in (["levqor", "serve"], ["levqor", "api", "--no-such-flag"], ["levqor", "keys", "frobnicate"],
                ["python", "-m", "api.cli", "api"], ["levqor", "api", "--port", "eighty"]):
        with pytest.raises(Exception) as exc:
            _check_cli_command(bad)
        assert exc.typename in ("AssertionError", "NoSuchOption", "UsageError", "BadParameter"), exc


def test_compose_prometheus_mounts_the_shipped_config() -> None:
    svc = _compose()["services"]["prometheus"]
    mounts = {}
    for vol in svc["volumes"]:
        src, dst = vol.split(":")[:2]
        mounts[dst] = src
    assert mounts.get("/etc/prometheus") in ("./deploy/prometheus", "deploy/prometheus")
    assert "--config.file=/etc/prometheus/prometheus.yml" in svc["command"]
    config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    for rule_file in config["rule_files"]:
        assert (PROM_DIR / rule_file).is_file(), rule_file
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    api_port = _compose()["services"]["api"]["command"][-1]
    sd = jobs["levqor-api"]["dns_sd_configs"][0]
    assert sd["names"] == ["api"] and str(sd["port"]) == api_port
    services = _compose()["services"]
    for role in ("worker", "scheduler"):
        sd = jobs[f"levqor-{role}"]["dns_sd_configs"][0]
        assert sd["names"] == [role]
        assert str(sd["port"]) == services[role]["environment"]["LEVQOR_METRICS_PORT"]


def test_dockerfile_builds_the_levqor_image_from_the_lock() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert "pip install -r requirements/base.lock" in text
    assert re.search(r"pip install --no-deps (-e )?\.", text)
    copied = re.findall(r"^COPY (\S+)", text, re.M)
    for src in copied:
        assert (ROOT / src).exists(), f"Dockerfile copies missing {src}"
    packages = re.search(r"^include = \[(.*)\]", (ROOT / "pyproject.toml").read_text(), re.M)
    assert packages is not None
    for pkg in re.findall(r'"(\w+)\*"', packages.group(1)):  # every installed package is in the image
        assert pkg in copied, f"Dockerfile does not copy the package {pkg}/"
    for svc in _compose()["services"].values():
        if svc.get("image") == "levqor":
            assert svc.get("build") in (".", {"context": "."})


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120, cwd=PROM_DIR)


@pytest.mark.needs_pkg("prometheus", binary="promtool")
def test_promtool_accepts_config_and_rules_and_the_rule_unit_tests_pass(tmp_path: Path) -> None:
    r = _promtool("check", "rules", "alerts.yml")
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr
    r = _promtool("check", "config", "prometheus.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    r = _promtool("test", "rules", "alerts_test.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    # promtool can fail: a rule with a broken expression is refused.
    bad = tmp_path / "bad.yml"
    bad.write_text("groups:\n  - name: x\n    rules:\n      - alert: X\n"
                   "        expr: rate(levqor_http_requests_total[5m\n")
    assert _promtool("check", "rules", str(bad)).returncode != 0


def _alert_rules() -> dict[str, str]:
    groups = yaml.safe_load((PROM_DIR / "alerts.yml").read_text())["groups"]
    return {r["alert"]: r["expr"] for g in groups for r in g["rules"]}


def test_alert_rules_cover_the_required_conditions() -> None:
    rules = _alert_rules()
    assert {"LevqorApiDown", "LevqorHigh5xxRate", "LevqorHighP99Latency", "LevqorNotReady"} <= set(rules)
    assert "up{" in rules["LevqorApiDown"]
    assert 'status=~"5.."' in rules["LevqorHigh5xxRate"]
    assert "histogram_quantile(0.99" in rules["LevqorHighP99Latency"]
    assert "levqor_ready" in rules["LevqorNotReady"]


def _dashboard_exprs() -> list[str]:
    dash = json.loads((ROOT / "deploy" / "grafana" / "levqor.json").read_text())
    assert dash["uid"] and dash["panels"]
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def _exported_names(client: Any) -> set[str]:
    text = client.get("/metrics").text
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        names.add(name)
        if kind == "counter":
            names.add(name if name.endswith("_total") else name + "_total")
        if kind == "histogram":
            names.update({name + "_bucket", name + "_count", name + "_sum"})
    return names


def test_dashboard_and_alerts_query_only_exported_metrics(client) -> None:
    exported = _exported_names(client)
    exprs = _dashboard_exprs()
    assert len(exprs) >= 10
    used = set()
    for expr in [*exprs, *_alert_rules().values()]:
        used.update(re.findall(r"\blevqor_[a-z0-9_]+\b", expr))
    missing = used - exported
    assert not missing, f"dashboard/alerts use metrics the app does not export: {sorted(missing)}"
    for required in ("levqor_http_requests_total", "levqor_http_request_duration_seconds_bucket",
                     "levqor_db_pool_connections_in_use", "levqor_build_info", "levqor_ready"):
        assert required in used


def test_operations_doc_covers_scale_and_names_only_real_settings() -> None:
    from levqor.settings import Settings

    text = (ROOT / "docs" / "operations.md").read_text()
    for topic in ("PostgreSQL", "replicas", "scheduler leader", "PROMETHEUS_MULTIPROC_DIR", "/healthz", "/readyz",
                  "Backups", "off the box", "request_id", "levqor audit verify"):
        assert topic in text, f"docs/operations.md should cover {topic!r}"
    known = {f"LEVQOR_{name.upper()}" for name in Settings.model_fields}
    named = set(re.findall(r"\bLEVQOR_[A-Z0-9_]+\b", text))
    assert named and not named - known, f"unknown settings in docs/operations.md: {sorted(named - known)}"
    arch = (ROOT / "docs" / "architecture.md").read_text()
    assert "levqor/" in arch and "tools/registry" in arch
