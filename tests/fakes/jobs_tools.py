"""Fake ``jobs.*`` tools for agent tests, with the jobs runtime's names and shapes.

The store is a JSON file (so a second process sees the same jobs); tests register the tools in a
test-only :class:`ToolRegistry`, or, for child processes, in the global one (when it lacks them).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field

from tools.context import ToolContext
from tools.errors import Conflict, NotFound
from tools.registry import ToolRegistry

_lock = threading.Lock()


def store_path() -> Path:
    return Path(os.environ.get("LEVQOR_FAKE_JOBS") or Path(os.environ["LEVQOR_VAR_DIR"]) / "fake_jobs.json")


def _load() -> dict[str, Any]:
    p = store_path()
    return json.loads(p.read_text()) if p.exists() else {"next_id": 1, "jobs": {}}


def _save(data: dict[str, Any]) -> None:
    p = store_path()
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(p)


def reset() -> None:
    with _lock:
        _save({"next_id": 1, "jobs": {}})


def add_job(org_id: int, *, state: str = "failed", retryable: bool = True, attempts: int = 1,
            max_attempts: int = 5, last_error: str = "ConnectionError: upstream timed out",
            pipeline_id: int = 1) -> int:
    with _lock:
        data = _load()
        jid = data["next_id"]
        data["next_id"] += 1
        now = dt.datetime.now(dt.UTC).isoformat()
        data["jobs"][str(jid)] = {"id": jid, "org_id": org_id, "pipeline_id": pipeline_id, "state": state,
                                  "attempts": attempts, "max_attempts": max_attempts, "last_error": last_error,
                                  "retryable": retryable, "created_at": now,
                                  "finished_at": now if state in ("failed", "succeeded") else None,
                                  "retries": 0}
        _save(data)
        return int(jid)


def set_state(job_id: int, state: str) -> None:
    with _lock:
        data = _load()
        data["jobs"][str(job_id)]["state"] = state
        _save(data)


def jobs(org_id: int) -> list[dict[str, Any]]:
    return [j for j in _load()["jobs"].values() if j["org_id"] == org_id]


def job(job_id: int) -> dict[str, Any]:
    return dict(_load()["jobs"][str(job_id)])


class JobListIn(BaseModel):
    state: str | None = Field(None, max_length=20)
    pipeline_id: int | None = Field(None, ge=1)
    cursor: int | None = Field(None, ge=1)
    limit: int = Field(50, ge=1, le=500)


class JobItem(BaseModel):
    id: int
    pipeline_id: int
    state: str
    attempts: int
    max_attempts: int
    last_error: str | None
    retryable: bool
    created_at: dt.datetime
    finished_at: dt.datetime | None


class JobPage(BaseModel):
    items: list[JobItem]
    next_cursor: int | None


class JobId(BaseModel):
    job_id: int = Field(ge=1)


class RetryFailedIn(BaseModel):
    pipeline_id: int | None = Field(None, ge=1)
    limit: int = Field(100, ge=1, le=1000)


class RetryFailedOut(BaseModel):
    retried: int
    job_ids: list[int]


def _item(j: dict[str, Any]) -> JobItem:
    return JobItem.model_validate(j)


def jobs_list(ctx: ToolContext, params: JobListIn) -> JobPage:
    """List the organisation's jobs, newest first, filtered by state and pipeline."""
    rows = sorted(jobs(ctx.org_id), key=lambda j: -j["id"])
    rows = [j for j in rows if (params.state is None or j["state"] == params.state)
            and (params.pipeline_id is None or j["pipeline_id"] == params.pipeline_id)
            and (params.cursor is None or j["id"] < params.cursor)]
    page = rows[: params.limit]
    more = len(rows) > params.limit
    return JobPage(items=[_item(j) for j in page], next_cursor=page[-1]["id"] if more else None)


def jobs_get(ctx: ToolContext, params: JobId) -> JobItem:
    """Show one job with its attempts and last error."""
    data = _load()["jobs"].get(str(params.job_id))
    if data is None or data["org_id"] != ctx.org_id:
        raise NotFound(f"job {params.job_id} not found", field="job_id")
    return _item(data)


def jobs_retry(ctx: ToolContext, params: JobId) -> JobItem:
    """Retry one failed job now."""
    with _lock:
        data = _load()
        j = data["jobs"].get(str(params.job_id))
        if j is None or j["org_id"] != ctx.org_id:
            raise NotFound(f"job {params.job_id} not found", field="job_id")
        if j["state"] != "failed":
            raise Conflict(f"job {params.job_id} is {j['state']}, not failed", field="job_id")
        j["state"], j["retries"] = "queued", j["retries"] + 1
        j["retried_by"] = ctx.principal.actor
        _save(data)
        return _item(j)


def jobs_retry_failed(ctx: ToolContext, params: RetryFailedIn) -> RetryFailedOut:
    """Retry up to ``limit`` failed jobs with a retryable error at once."""
    with _lock:
        data = _load()
        picked = [j for j in sorted(data["jobs"].values(), key=lambda j: j["id"])
                  if j["org_id"] == ctx.org_id and j["state"] == "failed" and j["retryable"]
                  and (params.pipeline_id is None or j["pipeline_id"] == params.pipeline_id)][: params.limit]
        for j in picked:
            j["state"], j["retries"] = "queued", j["retries"] + 1
            j["retried_by"] = ctx.principal.actor
        _save(data)
        return RetryFailedOut(retried=len(picked), job_ids=[j["id"] for j in picked])


TOOLS: dict[str, tuple[Any, str]] = {
    "jobs.list": (jobs_list, "read"),
    "jobs.get": (jobs_get, "read"),
    "jobs.retry": (jobs_retry, "write"),
    "jobs.retry_failed": (jobs_retry_failed, "write"),
}


def register(reg: ToolRegistry) -> ToolRegistry:
    """Register the fake jobs tools in ``reg`` (skipping names it already has)."""
    reg.load()
    have = {t.name for t in reg.all()}
    for name, (fn, risk) in TOOLS.items():
        if name not in have:
            reg.tool(name, risk=risk)(fn)  # type: ignore[arg-type]
    return reg


def fake_registry() -> ToolRegistry:
    return register(ToolRegistry())


def overlay(reg: ToolRegistry, target: dict[str, Any]) -> None:
    """Put the fake jobs tools into a registry's table ``target`` (overriding real ones)."""
    fakes = fake_registry()
    for name in TOOLS:
        target[name] = fakes.get(name)


def clear_agent_decisions(agent: str = "janitor") -> None:
    """Forget an agent's recorded policy decisions (its rate limits count them across tests)."""
    from sqlalchemy import delete

    from memory.db import session_scope
    from memory.policy.models import PolicyDecision

    with session_scope() as s:
        s.execute(delete(PolicyDecision).where(PolicyDecision.actor == f"agent:{agent}"))


@pytest.fixture()
def fake_jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake jobs.* tools in the global registry (over any real ones) with a fresh store."""
    from tools.registry import registry

    monkeypatch.setenv("LEVQOR_FAKE_JOBS", str(tmp_path / "jobs.json"))
    registry.load()
    reset()
    table: dict[str, Any] = {}
    overlay(registry, table)
    for name, spec in table.items():
        monkeypatch.setitem(registry._tools, name, spec)
    clear_agent_decisions()
    yield


@pytest.fixture()
def janitor_on_job_failed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Subscribe the janitor to job_failed (off by default) for one test."""
    from levqor.settings import get_settings

    monkeypatch.setenv("LEVQOR_AGENT_EVENT_TRIGGERS", '{"job_failed": ["janitor"]}')
    get_settings.cache_clear()
    yield
    monkeypatch.delenv("LEVQOR_AGENT_EVENT_TRIGGERS")
    get_settings.cache_clear()
