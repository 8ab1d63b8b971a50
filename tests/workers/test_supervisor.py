"""Real processes: `levqor up` end to end (readiness, multiprocess metrics, Ctrl-C stops everything,
a killed worker is restarted), JSON logs with request ids, and a malformed policy stopping start-up."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support import ROOT, free_port, wait_for
from tests.support.database import IS_PG, TEST_DB_URL
from tests.support.processes import Proc, levqor_env, start_api

pytestmark = pytest.mark.slow


def _process_series(base: str) -> dict[int, str]:
    """``{pid: role}`` from the aggregated ``levqor_process_start_time_seconds`` series."""
    text = httpx.get(f"{base}/metrics", timeout=5).text
    out = {}
    for labels in re.findall(r"^levqor_process_start_time_seconds\{([^}]*)\} ", text, re.M):
        d = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        out[int(d["pid"])] = d["role"]
    return out


class Up:
    """``levqor up --workers N`` on a fresh var dir, prepared like ``make run`` (migrate, seed-demo)."""

    def __init__(self, tmp: Path, workers: int = 2):
        self.var = tmp / "var"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        # SQLite in the fresh var dir, like `make run`; on the PostgreSQL run, the test database.
        self.env = levqor_env(self.var, db_url=TEST_DB_URL if IS_PG else None, LEVQOR_PORT=str(self.port),
                              LEVQOR_AUDIT_CHECKPOINT_INTERVAL_S="3600",
                              LEVQOR_API_PROCESSES="1")  # one per child here; several: tests/api/test_api_processes.py
        started = time.monotonic()
        for cmd in (["migrate"], ["seed-demo"]):
            r = subprocess.run([sys.executable, "-m", "api.cli", *cmd], env=self.env, cwd=ROOT,
                               capture_output=True, text=True, timeout=300)
            assert r.returncode == 0, r.stdout + r.stderr
        self.seed_out = r.stdout
        self.proc = Proc.levqor("up", "--workers", str(workers), env=self.env, logdir=tmp / "logs")
        try:
            wait_for(self._ready, 300, "levqor up to answer /readyz")
        except BaseException:
            self.proc.stop()
            raise
        self.ready_after_s = time.monotonic() - started
        print(f"\nlevqor up (migrate + seed-demo + up --workers {workers}) ready after "
              f"{self.ready_after_s:.2f}s")

    def _ready(self) -> bool:
        if self.proc.popen.poll() is not None:
            raise AssertionError(f"levqor up exited {self.proc.popen.returncode}:\n{self.proc.stderr[-3000:]}")
        return httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200

    def children(self) -> dict[int, psutil.Process]:
        return {p.pid: p for p in psutil.Process(self.proc.pid).children(recursive=True)}


@pytest.fixture()
def up(tmp_path: Path):  # type: ignore[no-untyped-def]
    u = Up(tmp_path)
    try:
        yield u
    finally:
        u.proc.stop()


def test_levqor_up_serves_aggregated_metrics_and_ctrl_c_stops_every_child(up: Up) -> None:
    assert "lvq_live_" in up.seed_out  # seed-demo printed the one-time admin key

    roles = {"api", "scheduler", "worker-1", "worker-2"}

    def all_processes_reported() -> dict[int, str] | None:
        series = _process_series(up.base)
        return series if set(series.values()) == roles else None

    series = wait_for(all_processes_reported, 120, "every child to appear in /metrics")
    kids = up.children()
    # One series per child process, aggregated by the API from the shared multiprocess directory.
    assert set(series) == set(kids), (series, kids)
    assert len(set(series)) == 4

    # The pool gauges sum over the live processes: each of the 4 has opened its pool.
    per_process = 10 if IS_PG else 5  # LEVQOR_DB_POOL_SIZE on PostgreSQL; SQLAlchemy's default for SQLite

    def pool_size() -> float | None:
        text = httpx.get(f"{up.base}/metrics", timeout=5).text
        m = re.search(r"^levqor_db_pool_size (\S+)$", text, re.M)
        return float(m.group(1)) if m and float(m.group(1)) >= 4 * per_process else None

    wait_for(pool_size, 60, "levqor_db_pool_size summed over 4 processes")
    # Readiness comes from the API process alone (workers must not pull the aggregate to 0).
    text = httpx.get(f"{up.base}/metrics", timeout=5).text
    assert re.findall(r"^levqor_ready(?:\{.*\})? (\S+)$", text, re.M) == ["1.0"]

    # Ctrl-C on the supervisor: it and ALL children exit within the deadline.
    procs = list(kids.values())
    up.proc.popen.send_signal(signal.SIGINT)
    started = time.monotonic()
    code = up.proc.popen.wait(timeout=30)
    _, alive = psutil.wait_procs(procs, timeout=max(1.0, 30 - (time.monotonic() - started)))
    assert not alive, f"children still running after Ctrl-C: {alive}"
    assert code == 0, up.proc.stderr[-3000:]
    logs = [json.loads(line) for line in up.proc.stderr.splitlines() if line.startswith("{")]
    assert any(rec["msg"] == "all processes stopped" for rec in logs)


def test_supervisor_restarts_a_worker_killed_with_sigkill(up: Up) -> None:
    series = wait_for(lambda: (s := _process_series(up.base)) and len(s) == 4 and s, 120,
                      "every child to appear in /metrics")
    victim = next(pid for pid, role in series.items() if role == "worker-1")
    psutil.Process(victim).kill()

    def restarted() -> dict[int, str] | None:
        kids = up.children()
        now = _process_series(up.base)
        worker1 = [pid for pid, role in now.items() if role == "worker-1"]
        if victim in kids or len(kids) != 4 or len(worker1) != 1 or worker1[0] == victim:
            return None
        return now if set(now) == set(kids) else None

    now = wait_for(restarted, 120, "the supervisor to restart worker-1")
    assert victim not in now  # the dead worker's live series were dropped, not summed forever
    assert sorted(now.values()) == ["api", "scheduler", "worker-1", "worker-2"]
    assert httpx.get(f"{up.base}/readyz", timeout=5).status_code == 200
    logs = [json.loads(line) for line in up.proc.stderr.splitlines() if line.startswith("{")]
    assert any(rec["msg"] == "child exited; restarting" and rec.get("role") == "worker-1" for rec in logs)


def test_children_do_not_outlive_a_supervisor_killed_with_sigkill(up: Up, tmp_path: Path) -> None:
    """``kill -9`` of ``levqor up``: no orphan keeps serving (or holding the port); a new ``levqor up`` on
    the same var dir and port comes up cleanly."""
    kids = wait_for(lambda: (k := up.children()) and len(k) >= 4 and k, 120, "every child to start")
    up.proc.popen.kill()
    up.proc.popen.wait(timeout=10)
    gone, alive = psutil.wait_procs(list(kids.values()), timeout=30)
    assert not alive, f"children outlived their supervisor: {[(p.pid, p.cmdline()[-1]) for p in alive]}"
    assert gone
    with pytest.raises(httpx.HTTPError):  # the port is free: nothing answers on it
        httpx.get(f"{up.base}/healthz", timeout=1)

    again = Proc.levqor("up", "--workers", "2", env=up.env, logdir=tmp_path / "logs-again")
    try:
        def ready() -> bool:
            if again.popen.poll() is not None:
                raise AssertionError(f"levqor up exited {again.popen.returncode}:\n{again.stderr[-3000:]}")
            return httpx.get(f"{up.base}/readyz", timeout=2).status_code == 200

        wait_for(ready, 120, "the restarted levqor up to answer /readyz")
        logs = [json.loads(line) for line in again.stderr.splitlines() if line.startswith("{")]
        assert not any(rec["msg"] == "child exited; restarting" for rec in logs), "a child crash-looped"
    finally:
        again.stop()


def test_request_id_is_echoed_and_logged_as_json(tmp_path: Path) -> None:
    api, base = start_api(tmp_path / "logs")
    try:
        r = httpx.get(f"{base}/readyz", headers={"x-request-id": "abc123"}, timeout=5)
        assert r.status_code == 200 and r.headers["x-request-id"] == "abc123"
        r = httpx.get(f"{base}/v1/me", headers={"x-request-id": "abc124"}, timeout=5)
        assert r.status_code == 401 and r.json()["request_id"] == "abc124"
        # A request without one gets a fresh id; a hostile one is replaced, not logged.
        generated = httpx.get(f"{base}/healthz", timeout=5).headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", generated)
        hostile = httpx.get(f"{base}/healthz", headers={"x-request-id": 'x"}{evil'}, timeout=5)
        assert re.fullmatch(r"[0-9a-f]{32}", hostile.headers["x-request-id"])

        def logged() -> list[dict[str, object]] | None:
            recs = []
            for line in api.stderr.splitlines():
                rec = json.loads(line)  # every line on stderr is one JSON object
                if rec.get("request_id") in ("abc123", "abc124"):
                    recs.append(rec)
            return recs if len(recs) >= 2 else None

        recs = wait_for(logged, 30, "the request log lines")
        by_id = {r["request_id"]: r for r in recs}
        assert by_id["abc123"]["route"] == "/readyz" and by_id["abc123"]["status"] == 200
        assert by_id["abc124"]["status"] == 401 and by_id["abc124"]["level"] == "info"
        assert all({"ts", "level", "logger", "msg"} <= set(r) for r in recs)
    finally:
        api.stop()


@pytest.mark.parametrize("case", ["broken_json", "unknown_key"])
def test_malformed_policy_stops_startup_naming_file_and_line(tmp_path: Path, case: str) -> None:
    good = json.loads((ROOT / "policies" / "policy.json").read_text())
    bad = tmp_path / "policy.json"
    if case == "broken_json":
        text = json.dumps(good, indent=2)
        lines = text.splitlines()
        lines.insert(3, '  "oops": ,')  # line 4
        bad.write_text("\n".join(lines))
        want_line = 4
    else:
        actor = next(iter(good["actors"]))
        good["actors"][actor]["alow"] = ["*"]
        text = json.dumps(good, indent=2)
        bad.write_text(text)
        want_line = next(i for i, ln in enumerate(text.splitlines(), 1) if '"alow"' in ln)
    port = free_port()
    r = subprocess.run([sys.executable, "-m", "api.cli", "api", "--port", str(port)],
                       env=levqor_env(LEVQOR_POLICY_PATH=str(bad)), cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode != 0
    assert f"{bad}:{want_line}" in r.stderr, r.stderr
    if case == "unknown_key":
        assert "alow" in r.stderr
    with pytest.raises(httpx.HTTPError):  # nothing is listening
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)


def test_standalone_worker_serves_its_own_metrics(tmp_path: Path) -> None:
    port = free_port()
    token = "scrape-token-for-the-test"
    worker = Proc.levqor("worker", env=levqor_env(LEVQOR_METRICS_PORT=str(port), LEVQOR_METRICS_TOKEN=token),
                         logdir=tmp_path)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        def scraped() -> str | None:
            assert worker.popen.poll() is None, worker.stderr[-3000:]
            text = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=2).text
            return text if 'levqor_process_start_time_seconds{role="worker"}' in text else None

        text = wait_for(scraped, 120, "the worker's /metrics")
        assert "levqor_db_pool_connections_in_use" in text and "levqor_build_info" in text
        # The token the setting asks for is required on the worker's own port too.
        assert httpx.get(url, timeout=2).status_code == 401
        assert httpx.get(url, headers={"Authorization": "Bearer wrong"}, timeout=2).status_code == 401
        worker.popen.send_signal(signal.SIGTERM)
        assert worker.popen.wait(timeout=40) == 0, worker.stderr[-3000:]
    finally:
        worker.stop()
