"""Triggers other than a manual submit: cron schedules, secret webhook URLs, platform events."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, Field

from memory.db import session_scope, utcnow
from memory.jobs.repository import PipelineRepository
from tools.context import Principal, ToolContext
from tools.errors import NotFound, PaymentRequired, Unprocessable
from tools.events.service import KNOWN_EVENTS, EventRecord, Reaction, event_mode
from tools.jobs.pipelines import next_fire, secret_hash
from tools.jobs.queue import JobRead, JobSubmitted, submit_job
from tools.registry import tool
from tools.schedules import Schedule

log = logging.getLogger(__name__)


def schedule_tick() -> None:
    """Submit a job for every scheduled pipeline that is due, then move it to its next fire time."""
    with session_scope() as s:
        now = utcnow()
        for p in PipelineRepository(s).due_scheduled(now):
            due = p.next_run_at
            assert due is not None
            cron = str(p.trigger.get("cron") or "")
            try:
                p.next_run_at = next_fire(cron, now)
            except ValueError:
                p.next_run_at = None
                log.error("schedule disabled: bad cron", extra={"fields": {"pipeline_id": p.id, "cron": cron}})
                continue
            if p.paused:
                continue
            try:
                with s.begin_nested():
                    submit_job(s, org_id=p.org_id, pipeline=p, input={"scheduled_for": due.isoformat()},
                               trigger="schedule", actor="system:scheduler",
                               idempotency_key=f"schedule:{p.id}:{due.isoformat()}")
            except PaymentRequired as exc:
                log.warning("scheduled run skipped", extra={"fields": {"pipeline_id": p.id, "reason": exc.detail}})


# Job events of event-triggered runs do not trigger further pipelines (no loops).
def _on_platform_event(session: Any, ev: EventRecord) -> None:
    if ev.name.startswith("job_") and ev.payload.get("trigger") == "event":
        return
    mode = event_mode(ev.payload)
    for p in PipelineRepository(session).by_event(ev.org_id, ev.name):
        if p.mode != mode:  # a test event triggers only test pipelines, a live one only live pipelines
            continue
        if p.paused or ev.created_at < p.created_at:  # only events after the pipeline existed
            continue
        try:
            with session.begin_nested():
                submit_job(session, org_id=p.org_id, pipeline=p, input={"event": ev.name, "payload": ev.payload,
                                                                        "event_id": ev.uid},
                           trigger="event", actor="system:events", idempotency_key=f"event:{ev.uid}:{p.id}")
        except PaymentRequired as exc:
            log.warning("event-triggered run skipped", extra={"fields": {"pipeline_id": p.id,
                                                                        "reason": exc.detail}})


# Pipelines triggered by platform events: every known event except the busiest (a completion per job).
REACTIONS = tuple(Reaction(name, f"jobs.trigger.{name}", handle=_on_platform_event)
                  for name in sorted(KNOWN_EVENTS - {"job_complete"}))
SCHEDULES = (Schedule("jobs.schedule", 10.0, schedule_tick),)


class HookCall(BaseModel):
    secret: str = Field(min_length=1, max_length=200)
    body: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = Field(None, max_length=200)


@tool("hooks.trigger", risk="write")
def trigger_webhook(ctx: ToolContext, params: HookCall) -> JobSubmitted:
    """Run the pipeline whose secret webhook URL was called, with the request body as input."""
    p = PipelineRepository(ctx.session).by_webhook_hash(secret_hash(params.secret))
    if p is None or p.trigger.get("type") != "webhook":
        raise NotFound("no pipeline listens on this URL", field="secret")
    if p.paused:
        raise Unprocessable("this pipeline is paused", field="secret")
    job, created = submit_job(ctx.session, org_id=p.org_id, pipeline=p, input=params.body, trigger="webhook",
                              actor=f"webhook:pipeline:{p.id}", idempotency_key=params.idempotency_key)
    return JobSubmitted(**JobRead.of(job).model_dump(), created=created)


HOOK_PRINCIPAL = Principal(kind="system", id="webhook", org_id=None, role="admin", name="webhook trigger")


def hook_context(session: Any, request_id: str | None) -> ToolContext:
    return ToolContext(session=session, principal=HOOK_PRINCIPAL, request_id=request_id)

