"""The run store: what the agent runtime records about its runs, tool calls, approvals, chats and costs.

The runtime (``agents.runtime``) reaches the database only through these functions, so the agents
import nothing from ``memory`` but the checkpointer.

Transactions: an agent run is not a request. Nothing wraps it in a transaction: the edge that started
it (a worker, a request after its commit, the CLI) has already committed. Each piece of the runtime's
bookkeeping must be durable on its own before the graph's next step: a claimed run must be visible to
every other process before the graph runs, a recorded tool call must survive a crash so that a
replayed node gets the recorded answer instead of calling the tool twice, an approval row must exist
before the interrupt is checkpointed. So each function here is one unit of work and commits it
(``session_scope``), and returns plain values, never rows. The exception is a tool call of a run: its
effect and its record commit together, in :func:`call_scope`, whose :class:`ToolContext` the call
and the recording functions share. Functions that take a session (``add_run``, ``queue_unless_active``)
write in the caller's transaction, for tools and event reactions that queue a run with their own work.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from sqlalchemy.orm import Session

from levqor import llm
from memory.agents.models import AgentApproval, AgentMessage, AgentRun, AgentToolCall
from memory.agents.repository import AgentRepository
from memory.db import session_scope, utcnow
from tools.agents.catalog import agent_info
from tools.context import Principal, ToolContext
from tools.enterprise.audit_log import append

TRIGGERS = ("schedule", "event", "chat", "manual")


@dataclass(frozen=True)
class RunInfo:
    """One run as the runtime needs it."""

    id: int
    agent: str
    org_id: int
    trigger: str
    status: str
    mode: str
    model: str | None
    thread_id: str
    input: dict[str, Any]

    @classmethod
    def of(cls, run: AgentRun) -> RunInfo:
        return cls(id=run.id, agent=run.agent, org_id=run.org_id, trigger=run.trigger, status=run.status,
                   mode=run.mode, model=run.model, thread_id=run.thread_id, input=dict(run.input or {}))


@dataclass(frozen=True)
class RecordedCall:
    """A tool call already recorded for a run (a replayed node gets this answer)."""

    tool: str
    outcome: str
    result: dict[str, Any] | None
    summary: str
    approved_by: str | None


@dataclass(frozen=True)
class PendingApproval:
    id: int
    args: dict[str, Any]
    reason: str


@dataclass(frozen=True)
class ApprovalState:
    status: str
    decided_by: str | None
    edited_args: dict[str, Any] | None


@dataclass(frozen=True)
class Resume:
    """A decided approval this process won the right to resume."""

    run_id: int
    status: str
    decided_by: str | None


# ---- runs ---------------------------------------------------------------------------------------

def add_run(session: Session, agent: str, org_id: int, trigger: str, *, input: dict[str, Any] | None = None,
            requested_by: str | None = None) -> AgentRun:
    """Add a queued run row in the caller's transaction (it is executed after commit)."""
    agent_info(agent)
    if trigger not in TRIGGERS:
        raise ValueError(f"trigger must be one of {TRIGGERS}")
    mode = llm.mode()
    return AgentRepository(session).add_run(AgentRun(
        org_id=org_id, agent=agent, trigger=trigger, status="queued", mode=mode,
        model=llm.model_name() if mode == "llm" else None, input=input or {},
        requested_by=requested_by, thread_id=f"run-{uuid.uuid4().hex}"))


def open_run(agent: str, org_id: int, trigger: str, *, input: dict[str, Any] | None = None,
             requested_by: str | None = None) -> int:
    """Add a queued run and commit it; its id."""
    with session_scope() as s:
        return add_run(s, agent, org_id, trigger, input=input, requested_by=requested_by).id


def queue_unless_active(session: Session, agent: str, org_id: int, trigger: str,
                        input: dict[str, Any] | None = None) -> int | None:
    """Queue a run of ``agent`` in the caller's transaction unless one is active in the organisation."""
    if AgentRepository(session).active_run(org_id, agent) is not None:
        return None
    return add_run(session, agent, org_id, trigger, input=input).id


def queue_for_all_orgs(agent: str, trigger: str, *, tick: str | None = None) -> list[int]:
    """Queue a run of ``agent`` in every organisation where none is active; their ids. With ``tick`` (the
    scheduler tick's key), once per tick: an organisation that has a run for it gets none, and the runs
    of it still queued (their scheduler died before starting them) are returned to run now."""
    with session_scope() as s:
        repo = AgentRepository(s)
        if tick is None:
            queued = (queue_unless_active(s, agent, org_id, trigger) for org_id in repo.org_ids())
            return [run_id for run_id in queued if run_id is not None]
        had = repo.runs_of_tick(agent, tick)
        ids = [r.id for r in had if r.status == "queued"]
        done = {r.org_id for r in had}
        for org_id in repo.org_ids():
            if org_id not in done:
                run_id = queue_unless_active(s, agent, org_id, trigger, input={"tick": tick})
                if run_id is not None:
                    ids.append(run_id)
        return ids


def run_info(run_id: int) -> RunInfo | None:
    with session_scope() as s:
        run = AgentRepository(s).run(run_id)
        return RunInfo.of(run) if run is not None else None


def claim_run(run_id: int, from_status: str) -> tuple[bool, RunInfo | None]:
    """Move the run from ``from_status`` to running (only one process wins); whether this one did, and the run."""
    with session_scope() as s:
        repo = AgentRepository(s)
        claimed = repo.claim_run(run_id, from_status)
        run = repo.run(run_id)
        return claimed, RunInfo.of(run) if run is not None else None


def go_offline(run_id: int) -> None:
    """Record that run ``run_id`` runs offline (its LLM was unavailable): a resume builds the same graph."""
    with session_scope() as s:
        AgentRepository(s).set_mode(run_id, "offline")


def end_run(run_id: int, status: str, *, steps: int = 0, summary: str | None = None, error: str | None = None,
            finished: bool = True) -> None:
    """Count the run's graph steps and set its status (``finished`` stamps its end)."""
    with session_scope() as s:
        repo = AgentRepository(s)
        if steps:
            repo.bump_run(run_id, steps=steps)
        repo.set_status(run_id, status, summary=summary, error=error, finished=finished)


def record_usage(run_id: int, org_id: int, agent: str, model: str, tokens_in: int, tokens_out: int,
                 cost_micro_usd: int) -> None:
    """Add one model response's tokens and cost to the run and to the day's cost row."""
    with session_scope() as s:
        repo = AgentRepository(s)
        repo.bump_run(run_id, tokens_in=tokens_in, tokens_out=tokens_out, cost_micro_usd=cost_micro_usd)
        repo.add_usage(day=utcnow().date(), org_id=org_id, agent=agent, model=model, tokens_in=tokens_in,
                       tokens_out=tokens_out, cost_micro_usd=cost_micro_usd)


def stale_work(idle_s: float, abandoned_s: float) -> tuple[list[int], list[int]]:
    """Approvals decided and runs queued over ``idle_s`` ago that nobody took up; runs still running
    ``abandoned_s`` after they started lost their process and are failed here (they must not block the
    next one)."""
    older = utcnow() - dt.timedelta(seconds=idle_s)
    with session_scope() as s:
        repo = AgentRepository(s)
        approvals = repo.decided_unresumed_ids(older)
        queued = repo.queued_run_ids(older)
        for run_id in repo.stale_running_ids(utcnow() - dt.timedelta(seconds=abandoned_s)):
            repo.set_status(run_id, "failed", error="abandoned: the process running it stopped", finished=True)
    return approvals, queued


# ---- one tool call of a run ---------------------------------------------------------------------

@contextmanager
def call_scope(principal: Principal, run_id: int) -> Iterator[ToolContext]:
    """One tool call of a run: the tool's effect and its record commit together."""
    with session_scope() as s:
        yield ToolContext(session=s, principal=principal, agent_run_id=run_id)


def recorded_call(run_id: int, call_key: str) -> RecordedCall | None:
    with session_scope() as s:
        c = AgentRepository(s).tool_call(run_id, call_key)
        if c is None:
            return None
        return RecordedCall(tool=c.tool, outcome=c.outcome, result=c.result, summary=c.result_summary,
                            approved_by=c.approved_by)


def record_call(ctx: ToolContext, call_key: str, agent: str, tool: str, args: dict[str, Any], outcome: str,
                data: dict[str, Any] | None, summary: str, ms: float) -> None:
    """Record one tool call of the run (``ctx.agent_run_id``) and count it on the run."""
    assert ctx.agent_run_id is not None
    repo = AgentRepository(ctx.session)
    repo.add_tool_call(AgentToolCall(run_id=ctx.agent_run_id, call_key=call_key, agent=agent, tool=tool, args=args,
                                     outcome=outcome, result=data, result_summary=summary[:2000],
                                     duration_ms=round(ms, 3)))
    repo.bump_run(ctx.agent_run_id, tools_called=1)


def update_call(ctx: ToolContext, call_key: str, outcome: str, data: dict[str, Any] | None, summary: str, *,
                approved_by: str | None = None, ms: float | None = None,
                args: dict[str, Any] | None = None) -> str | None:
    """Set the outcome of a recorded call (one that waited for approval); its tool, None when unrecorded."""
    assert ctx.agent_run_id is not None
    call = AgentRepository(ctx.session).tool_call(ctx.agent_run_id, call_key)
    if call is None:
        return None
    call.outcome, call.result, call.result_summary = outcome, data, summary[:2000]
    if approved_by:
        call.approved_by = approved_by
    if ms is not None:
        call.duration_ms = round(ms, 3)
    if args is not None:
        call.args = args
    return call.tool


def request_approval(ctx: ToolContext, org_id: int, call_key: str, tool: str, args: dict[str, Any],
                     input_model: type[BaseModel], purpose: str | None, ttl_s: int) -> PendingApproval:
    """The approval this call waits for: the one already asked for, or a new pending one (audited).

    ``purpose`` (what the call is for) heads the reason of a new one."""
    assert ctx.agent_run_id is not None
    run_id, actor, agent = ctx.agent_run_id, ctx.principal.actor, ctx.principal.id
    repo = AgentRepository(ctx.session)
    ap = repo.approval_for(run_id, call_key)
    if ap is None:
        # The policy engine recorded the needs_approval decision (and its reason) a moment ago.
        reason = repo.last_policy_reason(actor, tool) or f"{tool} needs approval"
        if purpose:
            reason = f"{purpose[:300]}. {reason}"
        now = utcnow()
        # The policy engine already validated these arguments; store them as the tool sees them.
        clean = input_model.model_validate(args).model_dump(mode="json")
        ap = repo.add_approval(AgentApproval(
            org_id=org_id, agent=agent, run_id=run_id, call_key=call_key, tool=tool, args=clean,
            reason=reason[:500], status="pending", requested_at=now,
            expires_at=now + dt.timedelta(seconds=ttl_s))) or repo.approval_for(run_id, call_key)
        assert ap is not None
        append(ctx.session, actor=actor, action="agent.approval_requested", target=tool, org_id=org_id,
               detail={"approval_id": ap.id, "run_id": run_id, "args": ap.args, "reason": ap.reason})
    return PendingApproval(id=ap.id, args=dict(ap.args), reason=ap.reason)


# ---- approvals ----------------------------------------------------------------------------------

def approval_state(approval_id: int) -> ApprovalState:
    """What was decided on an approval (the row, not a resume value, says so)."""
    with session_scope() as s:
        ap = AgentRepository(s).approval(approval_id)
        assert ap is not None
        return ApprovalState(status=ap.status, decided_by=ap.decided_by, edited_args=ap.edited_args)


def claim_resume(approval_id: int) -> Resume | None:
    """Mark a decided approval as being resumed; None when another process (or nobody's decision) has it."""
    with session_scope() as s:
        repo = AgentRepository(s)
        if not repo.claim_resume(approval_id):
            return None
        ap = repo.approval(approval_id)
        assert ap is not None
        return Resume(run_id=ap.run_id, status=ap.status, decided_by=ap.decided_by)


def expire_due() -> list[int]:
    """Expire pending approvals past their time (they count as rejected; audited); their ids."""
    expired: list[int] = []
    with session_scope() as s:
        repo = AgentRepository(s)
        for ap_id in repo.expired_pending_ids(utcnow()):
            if repo.decide(ap_id, "expired", "system:expiry", "expired before anyone decided", None):
                ap = repo.approval(ap_id)
                assert ap is not None
                append(s, actor="system:expiry", action="agent.approval_expired", target=ap.tool,
                       org_id=ap.org_id, outcome="rejected",
                       detail={"approval_id": ap.id, "run_id": ap.run_id, "agent": ap.agent})
                expired.append(ap_id)
    return expired


# ---- chat ---------------------------------------------------------------------------------------

def thread_history(thread_id: int) -> list[tuple[str, str]]:
    """A chat thread's messages as (role, content), oldest first."""
    with session_scope() as s:
        return [(m.role, m.content) for m in AgentRepository(s).messages(thread_id)]


def save_answer(run_id: int, thread_id: int, answer: str, calls: list[dict[str, Any]], steps: int, *,
                status: str = "succeeded") -> int:
    """Store a chat run's answer in its thread and end the run (``declined``: the agent did not answer the
    question, e.g. out of its scope); the message's id."""
    with session_scope() as s:
        repo = AgentRepository(s)
        msg = repo.add_message(AgentMessage(thread_id=thread_id, role="assistant", content=answer,
                                            tool_calls=calls or None, run_id=run_id))
        repo.bump_run(run_id, steps=steps)
        repo.set_status(run_id, status, summary=answer[:2000], finished=True)
        return msg.id
