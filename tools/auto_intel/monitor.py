"""The monitor's tick: sample the signals, score them, evaluate the rules, correlate into incidents.

One tick is one transaction of its own (the monitor runs on a clock, nobody's request holds it); the
agents' monitor graph (``agents/monitor``) runs it on the leading scheduler every
``ops_sample_interval_s``, then the healer and the notifications.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from levqor import diskspace
from levqor.db_outage import is_unavailable
from levqor.settings import get_settings
from memory.db import get_engine, session_scope, utcnow
from tools.auto_intel import signals
from tools.auto_intel.anomalies import anomaly_findings, detectors
from tools.auto_intel.findings import Finding
from tools.auto_intel.lifecycle import open_or_update, refresh_gauges, resolve, resolve_quiet
from tools.auto_intel.notifications import send_in
from tools.auto_intel.rules import rule_findings
from tools.context import ToolContext
from tools.enterprise import audit_log
from tools.enterprise.rbac import require_staff
from tools.registry import tool

log = logging.getLogger("levqor.ops")


@dataclass
class TickResult:
    sampled: int = 0
    findings: list[Finding] = field(default_factory=list)
    opened: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)
    error: str | None = None


_last_maintenance: list[dt.datetime] = []


def tick_in(s: Session, now: dt.datetime, res: TickResult, *, api_text: str | None = None) -> None:
    """One tick in the caller's transaction, filling ``res``."""
    guard_disk()
    points = signals.collect(s, now, api_text=api_text)
    scored = detectors.score(s, now, points)
    res.sampled = signals.store(s, now, scored)
    res.findings = rule_findings(s, now, points) + anomaly_findings(scored, now)
    for f in res.findings:
        inc, what = open_or_update(s, f, now)
        (res.opened if what in ("opened", "reopened") else res.updated).append(inc.id)
        if f.ended_at is not None:
            resolve(s, inc, "agent:monitor", f"over at {f.ended_at:%H:%M:%S} UTC (recorded after the fact)",
                    f.ended_at)
            res.resolved.append(inc.id)
    res.resolved += resolve_quiet(s, now, {f.cause for f in res.findings})
    if not _last_maintenance or now - _last_maintenance[0] >= dt.timedelta(minutes=5):
        signals.maintain(s, now)
        _last_maintenance[:] = [now]
    refresh_gauges(s)


def guard_disk() -> None:
    """Release the var directory's reserve when free space is under the limit (so this tick's incident and
    the database's commits can be written), set it aside again when space is back. Never raises."""
    try:
        diskspace.guard_reserve()
    except OSError:
        log.warning("disk reserve check failed", exc_info=True)


def monitor_tick(now: dt.datetime | None = None, *, api_text: str | None = None) -> TickResult:
    """Sample, score, evaluate rules, correlate, open/update/resolve incidents. Never raises: a dead
    database connection is reported and the next tick starts afresh (detector state is in memory)."""
    res = TickResult()
    now = now or utcnow()
    try:
        with session_scope() as s:
            tick_in(s, now, res, api_text=api_text)
    except Exception as exc:
        res.error = f"{type(exc).__name__}: {exc}"[:500]
        if not is_unavailable(exc):  # an outage is logged once (levqor.db_outage) and recorded once it ends
            log.exception("monitor tick failed; retrying next tick")
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            get_engine().dispose()
    return res


class TickIn(BaseModel):
    # The API's Prometheus text when the API runs in another process (the chaos suite); else this one's.
    api_text: str | None = Field(None, max_length=2_000_000)


class TickOut(BaseModel):
    sampled: int
    findings: int
    opened: list[int]
    updated: list[int]
    resolved: list[int]
    error: str | None


class NotifyIn(BaseModel):
    limit: int = Field(50, ge=1, le=500)


class NotifyOut(BaseModel):
    sent: int


@tool("ops.monitor_tick", risk="write")
def monitor_tick_tool(ctx: ToolContext, params: TickIn) -> TickOut:
    """Sample the platform once: score the signals, evaluate the rules, open, update or resolve incidents."""
    require_staff(ctx, "run the platform monitor")
    res = TickResult()
    tick_in(ctx.session, utcnow(), res, api_text=params.api_text)
    if res.opened or res.resolved:  # a quiet tick changes nothing anyone acts on: not audited every 5 s
        audit_log.record(ctx, "ops.monitor_tick", "platform",
                         detail={"opened": res.opened, "resolved": res.resolved, "updated": res.updated})
    return TickOut(sampled=res.sampled, findings=len(res.findings), opened=res.opened, updated=res.updated,
                   resolved=res.resolved, error=res.error)


# How the monitor graph's summary starts when a tick changed nothing: no incident opened or resolved, no
# healing action, no notification. Such runs are heartbeats: only the newest few are kept.
HEARTBEAT = "heartbeat:"


class PruneIn(BaseModel):
    keep: int | None = Field(None, ge=1, le=10_000,
                             description="Heartbeat runs to keep (default LEVQOR_MONITOR_HEARTBEATS_KEPT)")


class PruneOut(BaseModel):
    pruned: int
    kept: int


@tool("ops.prune_monitor_history", risk="write")
def prune_monitor_history(ctx: ToolContext, params: PruneIn) -> PruneOut:
    """Delete the monitor's heartbeat runs (ticks where nothing happened) past the newest few, with their
    tool calls and checkpoints; runs where something happened are kept."""
    from memory.agents.checkpointer import checkpointer  # kept lazy: LangGraph is imported only for runs
    from memory.agents.repository import AgentRepository
    from memory.db import after_close

    require_staff(ctx, "prune the monitor's history")
    repo = AgentRepository(ctx.session)
    # The monitor acts as the platform (no organisation): its runs are those of its own run's organisation.
    run = repo.run(ctx.agent_run_id) if ctx.agent_run_id is not None else None
    org_id = run.org_id if run is not None else ctx.org_id
    keep = params.keep or get_settings().monitor_heartbeats_kept
    threads = repo.prune_runs(org_id, "monitor", summary_prefix=HEARTBEAT, keep=keep)

    def forget() -> None:
        saver = checkpointer()
        for thread_id in threads:
            saver.delete_thread(thread_id)

    if threads:
        after_close(ctx.session, forget)
    return PruneOut(pruned=len(threads), kept=keep)


@tool("ops.send_notifications", risk="write")
def send_notifications_tool(ctx: ToolContext, params: NotifyIn) -> NotifyOut:
    """Send the queued incident notifications (email to the log, webhooks through the SSRF guard)."""
    require_staff(ctx, "send incident notifications")
    return NotifyOut(sent=send_in(ctx.session, params.limit))
