"""Helpers for tests that run real Levqor processes: free ports, env, polling, clean shutdown."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx

from tests.conftest import _TMP, TEST_DB_URL

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def levqor_env(var_dir: Path | None = None, db_url: str | None = TEST_DB_URL, **extra: str) -> dict[str, str]:
    """Environment for a child process on the test database (``db_url=None``: SQLite in ``var_dir``)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("LEVQOR_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env["LEVQOR_VAR_DIR"] = str(var_dir or _TMP)
    if db_url:
        env["LEVQOR_DATABASE_URL"] = db_url
    env["LEVQOR_LOG_JSON"] = "true"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def wait_for(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll ``check`` until it returns a truthy value; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except AssertionError:
            raise
        except Exception as exc:  # not up yet
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_exc!r})")


class Proc:
    """A child process whose stdout/stderr go to files (no pipe can fill up and block it)."""

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
        wait_for(ready, timeout, "the API to answer /readyz with 200")
    except BaseException:
        proc.stop()
        raise
    return proc, base
