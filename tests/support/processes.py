"""Real Levqor processes in tests: their environment, start and stop, an API on a free port, an
in-process job worker. Output goes to files, so no pipe can fill up and block a child."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.support import ROOT, free_port, wait_for
from tests.support.database import TEST_DB_URL, TMP


def levqor_env(var_dir: Path | None = None, db_url: str | None = TEST_DB_URL, **extra: str) -> dict[str, str]:
    """Environment for a child process on the test database (``db_url=None``: SQLite in ``var_dir``).

    No ``LEVQOR_*`` variable of this process leaks in: the child's settings are ``extra`` alone.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEVQOR_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env["LEVQOR_VAR_DIR"] = str(var_dir or TMP)
    if db_url:
        env["LEVQOR_DATABASE_URL"] = db_url
    env["LEVQOR_LOG_JSON"] = "true"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment (settings included) on the test database, warnings-only logs."""
    env = {**os.environ, "LEVQOR_DATABASE_URL": TEST_DB_URL, "LEVQOR_LOG_JSON": "true", "LEVQOR_LOG_LEVEL": "WARNING"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(extra)
    return env


class Proc:
    """A child process whose stdout/stderr go to files in ``logdir``."""

    def __init__(self, args: list[str], env: dict[str, str], logdir: Path, name: str,
                 new_session: bool = False):
        logdir.mkdir(parents=True, exist_ok=True)
        self.out_path = logdir / f"{name}.out"
        self.err_path = logdir / f"{name}.err"
        self._out = self.out_path.open("wb")
        self._err = self.err_path.open("wb")
        self.popen = subprocess.Popen(args, env=env, cwd=ROOT, stdout=self._out, stderr=self._err,
                                      start_new_session=new_session)
        self.pid = self.popen.pid

    @classmethod
    def levqor(cls, *cli_args: str, env: dict[str, str], logdir: Path, name: str | None = None,
               new_session: bool = False) -> Proc:
        """``levqor <cli_args>`` as a child process."""
        return cls([sys.executable, "-m", "api.cli", *cli_args], env, logdir, name or cli_args[0], new_session)

    @property
    def stderr(self) -> str:
        self._err.flush()
        return self.err_path.read_text(errors="replace")

    @property
    def stdout(self) -> str:
        self._out.flush()
        return self.out_path.read_text(errors="replace")

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM, then SIGKILL after ``timeout``; also kill any child left behind."""
        import psutil

        try:
            kids = psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            kids = []
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        for kid in kids:
            try:
                kid.kill()
            except psutil.NoSuchProcess:
                pass
        self._out.close()
        self._err.close()
        return int(self.popen.returncode)


def start_api(logdir: Path, env: dict[str, str] | None = None, timeout: float = 240) -> tuple[Proc, str]:
    """Start ``levqor api`` on a free port and wait for ``/readyz``; return the process and base URL."""
    port = free_port()
    proc = Proc.levqor("api", "--port", str(port), env=env or levqor_env(), logdir=logdir)
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if proc.popen.poll() is not None:
            raise AssertionError(f"API exited with {proc.popen.returncode}:\n{proc.stderr[-3000:]}")
        return httpx.get(f"{base}/readyz", timeout=2).status_code == 200

    try:
        wait_for(ready, timeout, "the API to answer /readyz with 200", interval=0.1)
    except BaseException:
        proc.stop()
        raise
    return proc, base


def spawn(args: list[str], **env: str) -> subprocess.Popen[bytes]:
    """Start ``levqor <args>`` in its own session; its stderr goes to a temp file (see :func:`stderr_of`)."""
    log = tempfile.NamedTemporaryFile(prefix="levqor-child-", suffix=".log", delete=False)  # noqa: SIM115
    p = subprocess.Popen([sys.executable, "-m", "api.cli", *args], cwd=ROOT, env=child_env(**env),
                         stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    p.log_path = log.name  # type: ignore[attr-defined]
    return p


def stderr_of(p: subprocess.Popen[bytes]) -> str:
    """The last 3000 characters a :func:`spawn`-ed process wrote to stderr."""
    return Path(p.log_path).read_text(errors="replace")[-3000:]  # type: ignore[attr-defined]


def stop_process(p: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
    """Send ``sig`` and wait (SIGKILL after ``timeout``); return the exit code."""
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    log = getattr(p, "log_path", None)
    if log and sig == signal.SIGKILL:  # final stop: nothing left to read
        Path(log).unlink(missing_ok=True)
    return int(p.returncode)


@contextlib.contextmanager
def api_server(**env: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A real API process on a free port (killed on exit)."""
    port = free_port()
    p = spawn(["api", "--port", str(port)], **env)
    url = f"http://127.0.0.1:{port}"
    try:
        def up() -> bool:
            if p.poll() is not None:
                raise AssertionError(f"API exited: {stderr_of(p)}")
            try:
                return httpx.get(url + "/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=30, interval=0.1, what="API up")
        yield url, p
    finally:
        stop_process(p, signal.SIGKILL)


@contextlib.contextmanager
def running_worker(concurrency: int = 2, lease_s: float = 30.0, grace_s: float = 5.0) -> Iterator[Any]:
    """A :class:`JobWorker` in a thread of this process (stopped on exit)."""
    from workers import wiring
    from workers.jobs import JobWorker

    w = JobWorker(concurrency, lease_s=lease_s, grace_s=grace_s, reactions=wiring.reactions())
    stop = threading.Event()
    t = threading.Thread(target=w.run, args=(stop,), daemon=True)
    t.start()
    try:
        yield w
    finally:
        stop.set()
        w.wake.set()
        t.join(timeout=30)
        assert not t.is_alive(), "worker thread did not stop"
