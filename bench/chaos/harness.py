"""The chaos suite's platform: worker processes (and the API) on one database, the supervisor's rules, the clock.

``levqor chaos run`` (``bench/chaos/run.py``) prepares a scratch SQLite database (:func:`prepare_scratch`;
or uses the configured one with ``--here``), then for each scenario (:mod:`bench.chaos.scenarios`) starts
a :class:`Platform`: worker processes (``levqor worker``, and ``levqor api`` when asked) with a minimal
supervisor following the rules of ``levqor up`` (restart any worker that exits; run as many as
``workers.scale`` asks for). The monitor and healer run in this process every ``TICK_S``
(:func:`until`), as the scheduler runs them on a real platform.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from agents.monitor.graph import run_monitor
from levqor.settings import get_settings
from memory.db import dispose_engines
from memory.migrate import upgrade
from workers.supervisor import desired_workers

TICK_S = 0.25
CHAOS_ENV = {"LEVQOR_JOB_LEASE_S": "3", "LEVQOR_OPS_RESOLVE_QUIET_S": "3", "LEVQOR_OPS_HEAL_VERIFY_S": "4",
             "LEVQOR_WORKER_CONCURRENCY": "2", "LEVQOR_LOG_JSON": "true", "LEVQOR_OPS_QUEUE_AGE_MAX_S": "60",
             # scaled-down thresholds so that each fault shows within seconds
             "LEVQOR_OPS_RSS_GROWTH_BYTES": "60000000", "LEVQOR_OPS_CAPACITY_HORIZON_S": "10",
             "LEVQOR_OPS_API_P95_MAX_S": "0.3", "LEVQOR_WORKERS_MAX": "4",
             # the partner receivers of the partner_500s scenario listen on 127.0.0.1
             "LEVQOR_ALLOW_LOOPBACK_URLS": "true"}


class Platform:
    """Worker processes (and, when asked, the API) plus the supervisor's rules, on one database: restart
    any worker that exits, and run as many as ``workers.scale`` asks for (as ``levqor up`` does)."""

    def __init__(self, workers: int, env: dict[str, str], logdir: Path, *, first_env: dict[str, str] | None = None,
                 api: bool = False):
        self.env = env
        self.logdir = logdir
        self.base = workers
        self.procs: list[subprocess.Popen[bytes]] = []
        self.retiring: list[subprocess.Popen[bytes]] = []
        self.next_scale_check = 0.0
        self.api: subprocess.Popen[bytes] | None = None
        self.api_url = ""
        for i in range(workers):
            self.procs.append(self._start({**env, **(first_env or {})} if i == 0 else env))
        if api:
            try:
                self._start_api()
            except BaseException:
                self.stop()
                raise

    def _log(self, name: str) -> Any:
        self.logdir.mkdir(parents=True, exist_ok=True)
        return (self.logdir / f"{name}-{len(os.listdir(self.logdir))}.err").open("wb")

    def _start(self, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "api.cli", "worker"], env=env or self.env,
                                stdout=subprocess.DEVNULL, stderr=self._log("worker"), start_new_session=True)

    def _start_api(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        self.api_url = f"http://127.0.0.1:{port}"
        self.api = subprocess.Popen([sys.executable, "-m", "api.cli", "api", "--host", "127.0.0.1", "--port",
                                     str(port)], env=self.env, stdout=subprocess.DEVNULL, stderr=self._log("api"),
                                    start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.api.poll() is None:
            try:
                if httpx.get(self.api_url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("the chaos API process did not start")

    def supervise(self) -> None:
        """Restart workers that exited; start or retire workers to the count ``workers.scale`` asks for."""
        for i, p in enumerate(self.procs):
            if p.poll() is not None:
                self.procs[i] = self._start()
        self.retiring = [p for p in self.retiring if p.poll() is None]
        if time.monotonic() >= self.next_scale_check:
            self.next_scale_check = time.monotonic() + 1.0
            want = desired_workers(self.base)
            while len(self.procs) < want:
                self.procs.append(self._start())
            while len(self.procs) > want:
                p = self.procs.pop()
                p.send_signal(signal.SIGTERM)
                self.retiring.append(p)

    def owns(self, pid: int) -> bool:
        return any(p.pid == pid and p.poll() is None for p in self.procs)

    def api_metrics(self) -> str | None:
        if not self.api_url:
            return None
        try:
            return httpx.get(self.api_url + "/metrics", timeout=5).text
        except httpx.HTTPError:
            return None

    def stop(self) -> None:
        procs = self.procs + self.retiring + ([self.api] if self.api is not None else [])
        for p in procs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGCONT)
                    p.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def stop_process(p: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Stop ``p`` as a supervisor would: SIGTERM, then SIGKILL if it has not exited within ``timeout``."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def restore_env(saved: dict[str, str | None]) -> None:
    """Put back the environment variables a scenario changed (None: it was unset) and re-read the settings."""
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    get_settings.cache_clear()

def tick(platform: Platform | None = None) -> None:
    """One run of the monitor graph (sample, heal, notify), reading the platform's API metrics if it has one."""
    run_monitor(api_text=platform.api_metrics() if platform is not None else None)


def until(platform: Platform, pred: Callable[[], Any], timeout: float) -> Any:
    """Supervise and tick until ``pred()`` is truthy (its value) or ``timeout`` seconds pass (None)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        platform.supervise()
        tick(platform)
        value = pred()
        if value:
            return value
        time.sleep(TICK_S)
    return None


class ScratchPostgres:
    """A PostgreSQL server of the suite's own (``initdb`` in ``data_dir``, a free port on 127.0.0.1, trust
    auth), so that the ``db_outage`` scenario can stop and start it (``pg_ctl``) without touching anyone
    else's server. Run as the ``postgres`` system user when this process is root (initdb refuses root)."""

    def __init__(self, data_dir: Path):
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        if not bins:
            raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
        self.bin = bins[-1].parent
        self.data = data_dir / "pg"
        self.log = data_dir / "pg.log"
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            import pwd  # kept lazy: POSIX only

            pw = pwd.getpwnam("postgres")
            os.chown(data_dir, pw.pw_uid, pw.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-o",
                  f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data} -c fsync=off", "start")

    def stop(self) -> None:
        """Stop at once: clients are disconnected (``-m fast``), new connections refused."""
        self._run("pg_ctl", "-D", str(self.data), "-w", "-m", "fast", "stop")


scratch_pg: ScratchPostgres | None = None  # the suite's own server (run.py --pg), which db_outage may stop


def prepare_scratch(var_dir: Path, *, postgres: bool = False) -> None:
    """Point this process at a fresh database in ``var_dir`` (SQLite, or a scratch PostgreSQL server of
    its own with ``postgres``) and migrate it."""
    global scratch_pg
    os.environ["LEVQOR_VAR_DIR"] = str(var_dir)
    os.environ.pop("LEVQOR_DATABASE_URL", None)
    if postgres:
        scratch_pg = ScratchPostgres(var_dir)
        os.environ["LEVQOR_DATABASE_URL"] = scratch_pg.url
    for k, v in CHAOS_ENV.items():
        os.environ[k] = v
    get_settings.cache_clear()
    dispose_engines()
    upgrade()

