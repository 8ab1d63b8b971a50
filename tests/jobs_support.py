"""Helpers for the jobs runtime tests: pipelines, credits, in-process and subprocess workers."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.conftest import TEST_DB_URL

ROOT = Path(__file__).resolve().parent.parent


def wait_for(pred: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05, what: str = "condition") -> Any:
    """Poll ``pred`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def org_ctx(session: Any, org_id: int) -> Any:
    from tools.context import Principal, ToolContext

    return ToolContext(session, Principal(kind="system", id="test", org_id=org_id, role="admin", name="test"))


def invoke(org_id: int, name: str, params: dict[str, Any]) -> Any:
    """Run a tool for ``org_id`` in its own committed transaction."""
    from memory.db import session_scope
    from tools.registry import registry

    with session_scope() as s:
        return registry.invoke(name, org_ctx(s, org_id), params)


def grant(org_id: int, amount: int) -> int:
    return int(invoke(org_id, "credits.grant", {"amount": amount}).balance)


def balance(org_id: int) -> int:
    from memory.db import session_scope
    from memory.jobs.repository import CreditRepository

    with session_scope() as s:
        return CreditRepository(s).balance(org_id)


def pipeline(org_id: int, steps: list[dict[str, Any]], **kw: Any) -> int:
    import uuid

    spec = {"name": kw.pop("name", f"p-{uuid.uuid4().hex[:8]}"), "steps": steps, **kw}
    return int(invoke(org_id, "pipelines.create", spec).id)


def submit(org_id: int, pipeline_id: int, input: dict[str, Any] | None = None, key: str | None = None) -> int:
    out = invoke(org_id, "jobs.submit", {"pipeline_id": pipeline_id, "input": input or {}, "idempotency_key": key})
    return int(out.id)


def job(job_id: int) -> Any:
    from memory.db import session_scope
    from memory.jobs.models import Job

    with session_scope() as s:
        j = s.get(Job, job_id)
        assert j is not None
        s.expunge(j)
        return j


def events_for(name: str, job_id: int) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from memory.db import session_scope
    from memory.events.models import Event

    with session_scope() as s:
        rows = s.scalars(select(Event).where(Event.name == name)).all()
        return [dict(e.payload) for e in rows if e.payload.get("job_id") == job_id]


def ledger_rows(job_id: int) -> list[tuple[str, int]]:
    from sqlalchemy import select

    from memory.db import session_scope
    from memory.jobs.models import CreditLedger

    with session_scope() as s:
        return [(r.reason, r.delta) for r in s.scalars(select(CreditLedger).where(CreditLedger.job_id == job_id))]


@contextlib.contextmanager
def running_worker(concurrency: int = 2, lease_s: float = 30.0, grace_s: float = 5.0) -> Iterator[Any]:
    """A :class:`JobWorker` in a thread of this process (stopped on exit)."""
    from workers.jobs import JobWorker

    w = JobWorker(concurrency, lease_s=lease_s, grace_s=grace_s)
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "LEVQOR_DATABASE_URL": TEST_DB_URL, "LEVQOR_LOG_JSON": "true", "LEVQOR_LOG_LEVEL": "WARNING"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(extra)
    return env


def spawn(args: list[str], **env: str) -> subprocess.Popen[bytes]:
    """Start ``levqor <args>``; its stderr goes to a temp file (see :func:`stderr_of`)."""
    import tempfile

    log = tempfile.NamedTemporaryFile(prefix="levqor-child-", suffix=".log", delete=False)  # noqa: SIM115
    p = subprocess.Popen([sys.executable, "-m", "api.cli", *args], cwd=ROOT, env=child_env(**env),
                         stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    p.log_path = log.name  # type: ignore[attr-defined]
    return p


def stderr_of(p: subprocess.Popen[bytes]) -> str:
    return Path(p.log_path).read_text(errors="replace")[-3000:]  # type: ignore[attr-defined]


def stop_process(p: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
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
    import httpx

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
