"""Pipelines, jobs and credits: through the tools (as a customer would) or as rows in a given state."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import select

from memory.db import session_scope, utcnow
from memory.events.models import Event
from memory.jobs.models import CreditLedger, Job, JobStep, Pipeline
from memory.jobs.repository import CreditRepository, JobRepository
from tests.factories.orgs import org_ctx
from tests.factories.rows import detached
from tools.context import SYSTEM, ToolContext
from tools.registry import registry


def invoke(org_id: int, name: str, params: dict[str, Any]) -> Any:
    """Run tool ``name`` for ``org_id`` in its own committed transaction."""
    with session_scope() as s:
        return registry.invoke(name, org_ctx(s, org_id), params)


def invoke_platform(name: str, params: dict[str, Any]) -> Any:
    """Run tool ``name`` as the platform itself (the system principal, no organisation)."""
    with session_scope() as s:
        return registry.invoke(name, ToolContext(s, SYSTEM), params)


def grant(org_id: int, amount: int) -> int:
    """Grant credits; return the new balance."""
    return int(invoke(org_id, "credits.grant", {"amount": amount}).balance)


def balance(org_id: int) -> int:
    with session_scope() as s:
        return CreditRepository(s).balance(org_id)


def pipeline(org_id: int, steps: list[dict[str, Any]], **kw: Any) -> int:
    """Create a pipeline through ``pipelines.create``; return its id."""
    spec = {"name": kw.pop("name", f"p-{uuid.uuid4().hex[:8]}"), "steps": steps, **kw}
    return int(invoke(org_id, "pipelines.create", spec).id)


def submit(org_id: int, pipeline_id: int, input: dict[str, Any] | None = None, key: str | None = None) -> int:
    """Submit a job through ``jobs.submit``; return its id."""
    out = invoke(org_id, "jobs.submit", {"pipeline_id": pipeline_id, "input": input or {}, "idempotency_key": key})
    return int(out.id)


def job(job_id: int) -> Job:
    """Job ``job_id`` as a detached row."""
    return detached(Job, job_id)


def job_steps(job_id: int) -> list[JobStep]:
    """The recorded steps of a job, in order."""
    with session_scope() as s:
        return list(JobRepository(s).steps(job_id))


def events_for(name: str, job_id: int) -> list[dict[str, Any]]:
    """Payloads of the events ``name`` about job ``job_id``."""
    with session_scope() as s:
        rows = s.scalars(select(Event).where(Event.name == name)).all()
        return [dict(e.payload) for e in rows if e.payload.get("job_id") == job_id]


def ledger_rows(job_id: int) -> list[tuple[str, int]]:
    """(reason, delta) of every credit ledger row for the job."""
    with session_scope() as s:
        return [(r.reason, r.delta) for r in s.scalars(select(CreditLedger).where(CreditLedger.job_id == job_id))]


def make_pipeline(org_id: int, name: str | None = None) -> int:
    """A one-step pipeline written as a row (no validation, no events); return its id."""
    with session_scope() as s:
        p = Pipeline(org_id=org_id, name=name or f"p-{uuid.uuid4().hex[:8]}", trigger={"type": "manual"},
                     steps=[{"type": "transform", "name": "t", "expression": "@"}])
        s.add(p)
        s.flush()
        return p.id


def make_job(org_id: int, pipeline_id: int, state: str, **values: Any) -> int:
    """A job row in ``state`` (finished now if it is a final state); return its id."""
    now = utcnow()
    with session_scope() as s:
        j = Job(org_id=org_id, pipeline_id=pipeline_id, state=state, enqueued_at=values.pop("enqueued_at", now),
                run_at=values.pop("run_at", now), **values)
        if state in ("succeeded", "failed", "dead") and j.finished_at is None:
            j.finished_at = now
        s.add(j)
        s.flush()
        return j.id


def ago(seconds: float) -> dt.datetime:
    """The database clock ``seconds`` ago."""
    return utcnow() - dt.timedelta(seconds=seconds)
