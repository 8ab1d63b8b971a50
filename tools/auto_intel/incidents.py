"""The incident tools: list, show, acknowledge, resolve and summarize incidents, within the caller's scope.

Incidents are opened and resolved by the monitor (:mod:`tools.auto_intel.monitor`, with the lifecycle in
:mod:`tools.auto_intel.lifecycle`); platform incidents (no organisation) are for Levqor staff and the
platform's own principals, an organisation's for its members.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

from memory.db import utcnow
from memory.ops.models import INCIDENT_STATES, Incident, IncidentEvent
from memory.ops.repository import IncidentRepository
from tools.auto_intel.lifecycle import resolve
from tools.context import ToolContext
from tools.enterprise import audit_log
from tools.enterprise.rbac import is_staff
from tools.errors import Conflict, NotFound, Unprocessable
from tools.registry import tool


class IncidentRead(BaseModel):
    id: int
    org_id: int | None
    cause: str
    kind: str
    diagnosis: str
    title: str
    severity: str
    state: str
    manual: bool
    flapping: bool
    subject: dict[str, Any]
    signals: list[str]
    summary: str
    occurrences: int
    reopens: int
    heal_attempts: int
    detected_at: dt.datetime
    opened_at: dt.datetime
    last_seen_at: dt.datetime
    acknowledged_at: dt.datetime | None
    acknowledged_by: str | None
    mitigated_at: dt.datetime | None
    resolved_at: dt.datetime | None
    resolved_by: str | None

    @classmethod
    def of(cls, i: Incident) -> IncidentRead:
        return cls.model_validate(i, from_attributes=True)


class TimelineEntry(BaseModel):
    at: dt.datetime
    kind: str
    actor: str
    message: str
    data: dict[str, Any]

    @classmethod
    def of(cls, e: IncidentEvent) -> TimelineEntry:
        return cls(at=e.at, kind=e.kind, actor=e.actor, message=e.message, data=e.data or {})


class NotificationRead(BaseModel):
    channel: str
    target: str
    status: str
    created_at: dt.datetime
    sent_at: dt.datetime | None


class IncidentDetail(IncidentRead):
    timeline: list[TimelineEntry]
    notifications: list[NotificationRead]


class IncidentQuery(BaseModel):
    state: list[str] | None = Field(None, max_length=4, description="open, acknowledged, mitigated, resolved")
    cursor: int | None = Field(None, ge=1, le=2**31 - 1)
    limit: int = Field(50, ge=1, le=500)


class IncidentPage(BaseModel):
    items: list[IncidentRead]
    next_cursor: int | None
    counts: dict[str, int]


class IncidentRef(BaseModel):
    incident_id: int = Field(ge=1, le=2**31 - 1)


class IncidentResolve(IncidentRef):
    note: str = Field("", max_length=1000)


def _scope(ctx: ToolContext) -> int | None:
    """Platform incidents (no organisation) are for Levqor staff and the platform's own principals."""
    p = ctx.principal
    if p.kind in ("system", "agent") and p.org_id is None:
        return None
    if is_staff(ctx):
        return None
    return ctx.org_id


def _visible(ctx: ToolContext, incident_id: int, *, lock: bool = False) -> Incident:
    inc = IncidentRepository(ctx.session).get(incident_id, lock=lock)
    scope = _scope(ctx)
    if inc is None or (scope is not None and inc.org_id != scope):
        raise NotFound(f"incident {incident_id} not found", field="incident_id")
    return inc


@tool("incidents.list", risk="read")
def list_incidents(ctx: ToolContext, params: IncidentQuery) -> IncidentPage:
    """List incidents, newest first, optionally by state."""
    for st in params.state or []:
        if st not in INCIDENT_STATES:
            raise Unprocessable(f"state must be one of {', '.join(INCIDENT_STATES)}", field="state")
    scope = _scope(ctx)
    repo = IncidentRepository(ctx.session)
    rows = repo.search(scope, states=params.state, before_id=params.cursor, limit=params.limit + 1)
    if scope is not None:
        rows = [r for r in rows if r.org_id == scope]
    more = len(rows) > params.limit
    rows = rows[:params.limit]
    counts: dict[str, int] = {}
    for r in repo.search(scope, states=None, before_id=None, limit=5000):
        if scope is None or r.org_id == scope:
            counts[r.state] = counts.get(r.state, 0) + 1
    return IncidentPage(items=[IncidentRead.of(r) for r in rows], next_cursor=rows[-1].id if more else None,
                        counts=counts)


@tool("incidents.get", risk="read")
def get_incident(ctx: ToolContext, params: IncidentRef) -> IncidentDetail:
    """Show one incident with its timeline of evidence and actions and its notifications."""
    inc = _visible(ctx, params.incident_id)
    repo = IncidentRepository(ctx.session)
    return IncidentDetail(**IncidentRead.of(inc).model_dump(),
                          timeline=[TimelineEntry.of(e) for e in repo.events(inc.id)],
                          notifications=[NotificationRead.model_validate(n, from_attributes=True)
                                         for n in repo.notifications(inc.id)])


@tool("incidents.ack", risk="write")
def ack_incident(ctx: ToolContext, params: IncidentRef) -> IncidentRead:
    """Acknowledge an open incident: a person is looking at it."""
    inc = _visible(ctx, params.incident_id, lock=True)
    if inc.state == "resolved":
        raise Conflict(f"incident {inc.id} is resolved", field="incident_id")
    if inc.state == "open":
        now = utcnow()
        inc.state, inc.acknowledged_at, inc.acknowledged_by = "acknowledged", now, ctx.principal.actor
        IncidentRepository(ctx.session).add_event(inc.id, "state", "acknowledged", actor=ctx.principal.actor, at=now)
        audit_log.record(ctx, "incidents.acknowledged", f"incident:{inc.id}")
    return IncidentRead.of(inc)


@tool("incidents.resolve", risk="write")
def resolve_incident(ctx: ToolContext, params: IncidentResolve) -> IncidentRead:
    """Resolve an incident, with a note on what was done."""
    inc = _visible(ctx, params.incident_id, lock=True)
    if inc.state == "resolved":
        raise Conflict(f"incident {inc.id} is already resolved", field="incident_id")
    resolve(ctx.session, inc, ctx.principal.actor, params.note or "resolved by hand")
    audit_log.record(ctx, "incidents.resolved", f"incident:{inc.id}", detail={"note": params.note})
    return IncidentRead.of(inc)


class IncidentSummary(IncidentRef):
    summary: str = Field(min_length=1, max_length=4000)


@tool("incidents.summarize", risk="write")
def summarize_incident(ctx: ToolContext, params: IncidentSummary) -> IncidentRead:
    """Replace an incident's plain-language summary (written by the healer or a person)."""
    inc = _visible(ctx, params.incident_id, lock=True)
    inc.summary = params.summary
    IncidentRepository(ctx.session).add_event(inc.id, "note", "summary updated", actor=ctx.principal.actor,
                                              data={"summary": params.summary[:1000]})
    return IncidentRead.of(inc)
