"""What a chaos scenario measures, and the work it puts on the platform.

Each scenario injects one fault, then :func:`finish` measures time to detect (an incident for the cause
opens), time to recover (it is resolved with no person), the actions taken, jobs lost (submitted but never
succeeded) and unsafe actions (the healer's policy denials). The work (an organisation, a pipeline, jobs)
is created through the tools by name, as an operator's script would; their outputs are read as they come.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from bench.chaos.harness import Platform, until
from memory.audit.models import AuditEntry
from memory.db import session_scope
from memory.jobs.models import Job
from memory.jobs.repository import WorkerRepository
from memory.ops.models import Incident, IncidentEvent
from memory.ops.repository import IncidentRepository
from tools.context import SYSTEM, Principal, ToolContext
from tools.registry import registry


@dataclass
class Result:
    """One scenario's outcome: the table row and the JSON record of ``levqor chaos run``."""

    scenario: str
    built: bool = True
    detected: bool = False
    ttd_s: float | None = None
    recovered: bool = False
    ttr_s: float | None = None
    actions: list[str] = field(default_factory=list)
    lost: int = 0
    human: bool = False
    unsafe: int = 0
    note: str = ""


def call(ctx: ToolContext, tool: str, /, **params: Any) -> Any:
    """Run ``tool`` (policy-checked) with ``params``; its output, read by attribute."""
    return registry.invoke(tool, ctx, params)


def org_ctx(session: Any, org_id: int) -> ToolContext:
    """The suite acting as an administrator of ``org_id``."""
    return ToolContext(session, Principal(kind="system", id="chaos", org_id=org_id, role="admin"))


def setup() -> tuple[int, int]:
    """A chaos organisation with credits and a pipeline whose jobs take a moment."""
    slug = f"chaos-{uuid.uuid4().hex[:6]}"
    with session_scope() as s:
        org = call(ToolContext(s, SYSTEM), "org.create", name="Chaos", slug=slug, plan="pro")
        ctx = org_ctx(s, org.id)
        call(ctx, "credits.grant", amount=100000)
        p = call(ctx, "pipelines.create", name="slow", steps=[{"kind": "delay", "seconds": 0.6}])
        return org.id, p.id


def submit(org_id: int, pipeline_id: int, n: int) -> list[int]:
    """Submit ``n`` jobs of ``pipeline_id``; their ids."""
    with session_scope() as s:
        ctx = org_ctx(s, org_id)
        return [call(ctx, "jobs.submit", pipeline_id=pipeline_id).id for _ in range(n)]


def states(ids: list[int]) -> dict[str, int]:
    """How many of the jobs ``ids`` are in each state."""
    with session_scope() as s:
        rows = s.execute(select(Job.state, func.count()).where(Job.id.in_(ids)).group_by(Job.state))
        return {st: int(n) for st, n in rows}


def incident(cause: str, since: dt.datetime) -> tuple[Any, dt.datetime | None]:
    """The incident that recorded evidence for ``cause`` after ``since`` (new, reopened or still open),
    with ``detected_at_chaos``: when that first evidence was recorded."""
    with session_scope() as s:
        row = s.execute(select(Incident, func.min(IncidentEvent.at))
                        .join(IncidentEvent, IncidentEvent.incident_id == Incident.id)
                        .where(Incident.cause == cause, IncidentEvent.at >= since,
                               IncidentEvent.kind.in_(("evidence", "state")))
                        .group_by(Incident.id).order_by(Incident.id.desc()).limit(1)).first()
        if row is None:
            return None, None
        inc, first = row
        s.expunge(inc)
        return inc, first if first.tzinfo else first.replace(tzinfo=dt.UTC)


def actions(incident_id: int, since: dt.datetime) -> list[str]:
    """The healer's actions on the incident since ``since`` (their timeline messages)."""
    with session_scope() as s:
        return [e.message for e in IncidentRepository(s).events(incident_id)
                if e.kind == "action" and (e.at if e.at.tzinfo else e.at.replace(tzinfo=dt.UTC)) >= since]


def escalation(incident_id: int) -> str:
    """Why the incident went to a person (its last escalation), or ``""``."""
    with session_scope() as s:
        msgs = [e.message for e in IncidentRepository(s).events(incident_id) if e.message.startswith("escalated")]
        return msgs[-1] if msgs else ""


def unsafe(since: dt.datetime) -> int:
    """The healer's calls the policy engine denied since ``since``."""
    with session_scope() as s:
        return int(s.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.actor == "agent:healer", AuditEntry.action == "policy.denied", AuditEntry.ts >= since)) or 0)


def busy_worker(platform: Platform) -> Any:
    """A worker of the platform that is running a job now (detached), or None."""
    with session_scope() as s:
        for w in WorkerRepository(s).all():
            if w.current_jobs and platform.owns(w.pid):
                s.expunge(w)
                return w
    return None


def worker_of(platform: Platform, pid: int, timeout: float = 30) -> Any:
    """The worker row of process ``pid`` once it registered (detached), or None after ``timeout``."""
    def find() -> Any:
        with session_scope() as s:
            for w in WorkerRepository(s).all():
                if w.pid == pid:
                    s.expunge(w)
                    return w
        return None

    return until(platform, find, timeout)


def finish(platform: Platform, res: Result, inc_cause: str, t0: dt.datetime, jobs: list[int],
           timeout: float = 60.0, during: Callable[[], None] | None = None) -> Result:
    """Run the platform until the incident for ``inc_cause`` is resolved or with a person and every job
    succeeded (or ``timeout``), calling ``during`` each tick; then fill ``res`` in."""
    def settled() -> bool:
        if during is not None:
            during()
        inc, first = incident(inc_cause, t0)
        if inc is not None and first is not None and not res.detected:
            res.detected, res.ttd_s = True, max(0.0, (first - t0).total_seconds())
        done = states(jobs).get("succeeded", 0) == len(jobs)
        return bool(done and inc is not None and (inc.state == "resolved" or inc.manual))

    until(platform, settled, timeout)
    inc, _ = incident(inc_cause, t0)
    if inc is not None:
        counts = Counter(m.split(" (")[0] for m in actions(inc.id, t0))
        res.actions = [f"{m} x{n}" if n > 1 else m for m, n in counts.items()]
        res.human = bool(inc.manual)
        if inc.manual:
            res.note = escalation(inc.id)
        if inc.state == "resolved" and not inc.manual and inc.resolved_at is not None:
            res.recovered, res.ttr_s = True, (inc.resolved_at - t0).total_seconds()
    final = states(jobs)
    res.lost = len(jobs) - final.get("succeeded", 0)
    res.unsafe = unsafe(t0)
    if res.lost:
        res.note = (res.note + f"; job states at the end: {final}").lstrip("; ")
    return res
