"""How many processes serve the API (``LEVQOR_API_PROCESSES``): one for ``levqor api``, one per core under
``levqor up``; a real ``levqor api --processes 2`` serves from two processes on one port, aggregates their
metrics, and stops both on SIGTERM."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import psutil
import pytest

from api.cli.serve import api_processes, drop_dead_processes
from levqor.settings import Settings
from tests.support import free_port, wait_for
from tests.support.processes import Proc, levqor_env


def test_process_count_follows_the_option_the_setting_and_levqor_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEVQOR_API_PROCESSES", raising=False)
    unset = Settings()
    assert api_processes(None, unset, under_up=False, cores=8) == 1  # `levqor api` alone: one process
    assert api_processes(None, unset, under_up=True, cores=8) == 8  # under `levqor up`: one per core
    assert api_processes(None, unset, under_up=True, cores=None) == 1
    assert api_processes(3, unset, under_up=True, cores=8) == 3  # --processes wins
    monkeypatch.setenv("LEVQOR_API_PROCESSES", "2")
    assert api_processes(None, Settings(), under_up=False, cores=8) == 2
    assert api_processes(None, Settings(), under_up=True, cores=8) == 2
    monkeypatch.setenv("LEVQOR_API_PROCESSES", "0")
    assert api_processes(None, Settings(), under_up=False, cores=4) == 4


def test_levqor_api_serves_from_two_processes_on_one_port(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = Proc.levqor("api", "--port", str(port), "--processes", "2", env=levqor_env(var_dir=tmp_path),
                       logdir=tmp_path / "logs")
    try:
        def two_api_processes() -> set[str] | None:
            if proc.popen.poll() is not None:
                raise AssertionError(f"levqor api exited {proc.popen.returncode}:\n{proc.stderr[-3000:]}")
            try:
                text = httpx.get(f"{base}/metrics", timeout=2).text
            except httpx.HTTPError:
                return None
            pids = set(re.findall(r'^levqor_process_start_time_seconds\{pid="(\d+)",role="api"\}', text, re.M))
            return pids if len(pids) == 2 else None

        pids = wait_for(two_api_processes, 240, "two API processes in /metrics")
        kids = {str(p.pid) for p in psutil.Process(proc.pid).children(recursive=True)}
        assert pids <= kids, (pids, kids)
        assert httpx.get(f"{base}/readyz", timeout=5).status_code == 200
        children = psutil.Process(proc.pid).children(recursive=True)
        assert proc.stop() == 0, proc.stderr[-3000:]
        _, alive = psutil.wait_procs(children, timeout=20)
        assert not alive, alive
    finally:
        proc.stop()


def test_a_restarted_api_drops_the_live_gauges_of_its_killed_processes(tmp_path: Path) -> None:
    gone = psutil.Popen(["true"])
    gone.wait()
    for name in (f"gauge_livesum_{gone.pid}.db", f"gauge_liveall_{gone.pid}.db", f"gauge_liveall_{1}.db",
                 f"counter_{gone.pid}.db"):
        (tmp_path / name).write_bytes(b"")
    assert drop_dead_processes(tmp_path) == [gone.pid]
    assert sorted(f.name for f in tmp_path.iterdir()) == [f"counter_{gone.pid}.db", "gauge_liveall_1.db"]
