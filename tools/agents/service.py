"""Agent tools: list agents and runs, start a run, decide approvals, chat threads, LLM spend.

These tools record and decide; they never run an agent. The edge that called them starts the run they
queued (``agents.run``, ``agents.chat``) or resumes the run paused on the approval they decided, once
its transaction has committed, in the same process (``agents.runtime.execute_after_commit`` and
``resume_after_commit``). Deciding an approval is for people only (a user or an API key with the role).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from levqor import llm
from levqor.settings import get_settings
from memory.agents.models import AgentApproval, AgentMessage, AgentRun, AgentThread, AgentToolCall
from memory.agents.repository import AgentRepository
from memory.db import utcnow
from policies.engine import get_engine
from tools.agents.catalog import AGENTS, agent_info, offered_tools
from tools.agents.runs import add_run
from tools.context import ToolContext
from tools.enterprise import audit_log
from tools.enterprise.rbac import allowed
from tools.errors import Conflict, Forbidden, NotFound, Unprocessable
from tools.registry import registry, tool

AgentName = str


# ---- schemas ------------------------------------------------------------------------------------

class AgentRead(BaseModel):
    name: str
    description: str
    schedule: str | None
    events: list[str]
    tools: dict[str, str]  # tool -> allow | needs_approval


class AgentList(BaseModel):
    mode: dict[str, Any]
    items: list[AgentRead]


class NoInput(BaseModel):
    pass


class ToolCallRead(BaseModel):
    id: int
    tool: str
    args: dict[str, Any]
    outcome: str
    result_summary: str
    duration_ms: float
    approved_by: str | None
    created_at: dt.datetime

    @classmethod
    def of(cls, c: AgentToolCall) -> ToolCallRead:
        return cls(id=c.id, tool=c.tool, args=c.args, outcome=c.outcome, result_summary=c.result_summary,
                   duration_ms=c.duration_ms, approved_by=c.approved_by, created_at=c.created_at)


class RunRead(BaseModel):
    id: int
    agent: str
    trigger: str
    status: str
    mode: str
    model: str | None
    requested_by: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    steps: int
    tools_called: int
    tokens_in: int
    tokens_out: int
    cost_usd: float = Field(description="Cost in US dollars (stored as integer micro-dollars)")
    summary: str | None
    error: str | None
    tool_calls: list[ToolCallRead] | None = None

    @classmethod
    def of(cls, r: AgentRun, calls: list[AgentToolCall] | None = None) -> RunRead:
        return cls(id=r.id, agent=r.agent, trigger=r.trigger, status=r.status, mode=r.mode, model=r.model,
                   requested_by=r.requested_by, created_at=r.created_at, started_at=r.started_at,
                   finished_at=r.finished_at, steps=r.steps, tools_called=r.tools_called, tokens_in=r.tokens_in,
                   tokens_out=r.tokens_out, cost_usd=r.cost_micro_usd / 1_000_000, summary=r.summary,
                   error=r.error, tool_calls=[ToolCallRead.of(c) for c in calls] if calls is not None else None)


class RunQuery(BaseModel):
    agent: str | None = Field(None, max_length=64)
    status: Literal["queued", "running", "waiting_approval", "succeeded", "declined", "failed"] | None = None
    cursor: int | None = Field(None, ge=1, le=2**31 - 1, description="Return runs older than this id")
    limit: int = Field(50, ge=1, le=200)


class RunPage(BaseModel):
    items: list[RunRead]
    next_cursor: int | None


class RunId(BaseModel):
    run_id: int = Field(ge=1, le=2**31 - 1)


class RunStart(BaseModel):
    agent: str = Field(min_length=1, max_length=64)
    pipeline_id: int | None = Field(None, ge=1, le=2**31 - 1)


class ApprovalRead(BaseModel):
    id: int
    agent: str
    run_id: int
    tool: str
    args: dict[str, Any]
    reason: str
    status: str
    requested_at: dt.datetime
    expires_at: dt.datetime
    decided_at: dt.datetime | None
    decided_by: str | None
    note: str | None
    edited_args: dict[str, Any] | None

    @classmethod
    def of(cls, a: AgentApproval) -> ApprovalRead:
        return cls(id=a.id, agent=a.agent, run_id=a.run_id, tool=a.tool, args=a.args, reason=a.reason,
                   status=a.status, requested_at=a.requested_at, expires_at=a.expires_at,
                   decided_at=a.decided_at, decided_by=a.decided_by, note=a.note, edited_args=a.edited_args)


class ApprovalQuery(BaseModel):
    status: Literal["pending", "approved", "rejected", "expired"] | None = None
    cursor: int | None = Field(None, ge=1, le=2**31 - 1)
    limit: int = Field(50, ge=1, le=200)


class ApprovalPage(BaseModel):
    items: list[ApprovalRead]
    next_cursor: int | None


class ApprovalDecision(BaseModel):
    approval_id: int = Field(ge=1, le=2**31 - 1)
    args: dict[str, Any] | None = Field(None, description="Edited arguments (approve only); the policy's "
                                                          "limits still apply")
    note: str | None = Field(None, max_length=1000)


class MessageRead(BaseModel):
    id: int
    role: str
    content: str
    tool_calls: list[dict[str, Any]] | None
    run_id: int | None
    created_at: dt.datetime

    @classmethod
    def of(cls, m: AgentMessage) -> MessageRead:
        return cls(id=m.id, role=m.role, content=m.content, tool_calls=m.tool_calls, run_id=m.run_id,
                   created_at=m.created_at)


class ThreadRead(BaseModel):
    id: int
    agent: str
    title: str
    created_at: dt.datetime
    updated_at: dt.datetime
    messages: list[MessageRead]

    @classmethod
    def of(cls, t: AgentThread, msgs: list[AgentMessage]) -> ThreadRead:
        return cls(id=t.id, agent=t.agent, title=t.title, created_at=t.created_at, updated_at=t.updated_at,
                   messages=[MessageRead.of(m) for m in msgs])


class ThreadGet(BaseModel):
    agent: str = Field(min_length=1, max_length=64)
    thread_id: int = Field(ge=1, le=2**31 - 1)


class ChatStart(BaseModel):
    agent: str = Field(min_length=1, max_length=64)
    message: str = Field(min_length=1, max_length=8000)
    thread_id: int | None = Field(None, ge=1, le=2**31 - 1)


class ChatStarted(BaseModel):
    thread_id: int
    run_id: int
    message_id: int


class CostQuery(BaseModel):
    days: int = Field(30, ge=1, le=366)


class CostDay(BaseModel):
    day: dt.date
    agent: str
    model: str
    calls: int
    tokens_in: int
    tokens_out: int
    cost_usd: float


class CostList(BaseModel):
    items: list[CostDay]
    total_usd: float


# ---- agents and runs ----------------------------------------------------------------------------

@tool("agents.list", risk="read")
def list_agents(ctx: ToolContext, params: NoInput) -> AgentList:
    """List the agents with their schedule, event triggers and the tools policy offers each."""
    s = get_settings()
    items = []
    for name, agent in sorted(AGENTS.items()):
        events = sorted(e for e, names in s.agent_event_triggers.items() if name in names)
        items.append(AgentRead(name=name, description=agent.description, schedule=s.agent_schedules.get(name),
                               events=events,
                               tools={t: outcome for t, (_spec, outcome) in offered_tools(name).items()}))
    return AgentList(mode=llm.mode_info(), items=items)


@tool("agents.runs", risk="read")
def list_runs(ctx: ToolContext, params: RunQuery) -> RunPage:
    """List the organisation's agent runs, newest first."""
    rows = AgentRepository(ctx.session).runs(ctx.org_id, agent=params.agent, status=params.status,
                                             before_id=params.cursor, limit=params.limit + 1)
    more = len(rows) > params.limit
    rows = rows[: params.limit]
    return RunPage(items=[RunRead.of(r) for r in rows], next_cursor=rows[-1].id if more else None)


@tool("agents.get_run", risk="read")
def get_run(ctx: ToolContext, params: RunId) -> RunRead:
    """Show one agent run with every tool call it asked for and the policy outcome."""
    repo = AgentRepository(ctx.session)
    run = repo.run(params.run_id, ctx.org_id)
    if run is None:
        raise NotFound(f"run {params.run_id} not found", field="run_id")
    return RunRead.of(run, repo.tool_calls(run.id))


@tool("agents.run", risk="write")
def start_run(ctx: ToolContext, params: RunStart) -> RunRead:
    """Start an agent run now (it executes once this request's changes commit)."""
    run = add_run(ctx.session, params.agent, ctx.org_id, "manual",
                  input={"pipeline_id": params.pipeline_id} if params.pipeline_id else {},
                  requested_by=ctx.principal.actor)
    audit_log.record(ctx, "agents.run_started", f"agent:{params.agent}", detail={"run_id": run.id})
    return RunRead.of(run)


@tool("agents.costs", risk="read")
def costs(ctx: ToolContext, params: CostQuery) -> CostList:
    """List LLM spend per day, agent and model for the organisation."""
    since = utcnow().date() - dt.timedelta(days=params.days - 1)
    rows = AgentRepository(ctx.session).costs(ctx.org_id, since)
    items = [CostDay(day=r.day, agent=r.agent, model=r.model, calls=r.calls, tokens_in=r.tokens_in,
                     tokens_out=r.tokens_out, cost_usd=r.cost_micro_usd / 1_000_000) for r in rows]
    return CostList(items=items, total_usd=sum(r.cost_micro_usd for r in rows) / 1_000_000)


class RecentCallsQuery(BaseModel):
    tools: list[str] = Field(min_length=1, max_length=10, description="Tool names, e.g. [\"jobs.retry\"]")
    agent: str | None = Field(None, max_length=64, description="Agent (people only; an agent sees its own)")
    since_s: int = Field(3600, ge=1, le=7 * 86400)
    limit: int = Field(200, ge=1, le=1000)


class RecentCall(BaseModel):
    run_id: int
    tool: str
    args: dict[str, Any]
    outcome: str
    result: dict[str, Any] | None
    created_at: dt.datetime


class RecentCallList(BaseModel):
    items: list[RecentCall]


@tool("agents.recent_calls", risk="read")
def recent_calls(ctx: ToolContext, params: RecentCallsQuery) -> RecentCallList:
    """List your own recent successful calls of some tools (what you already did lately)."""
    agent = ctx.principal.id if ctx.principal.kind == "agent" else params.agent
    if not agent:
        raise Unprocessable("agent is required", field="agent")
    since = utcnow() - dt.timedelta(seconds=params.since_s)
    rows = AgentRepository(ctx.session).recent_calls(ctx.org_id, agent, params.tools, since, params.limit)
    return RecentCallList(items=[RecentCall(run_id=c.run_id, tool=c.tool, args=c.args, outcome=c.outcome,
                                            result=c.result, created_at=c.created_at) for c in rows])


# ---- approvals ----------------------------------------------------------------------------------

@tool("approvals.list", risk="read")
def list_approvals(ctx: ToolContext, params: ApprovalQuery) -> ApprovalPage:
    """List agent approvals (pending first by default filter), newest first."""
    rows = AgentRepository(ctx.session).approvals(ctx.org_id, status=params.status, before_id=params.cursor,
                                                  limit=params.limit + 1)
    more = len(rows) > params.limit
    rows = rows[: params.limit]
    return ApprovalPage(items=[ApprovalRead.of(a) for a in rows], next_cursor=rows[-1].id if more else None)


def _human_with_role(ctx: ToolContext, approval_id: int) -> None:
    """Only a person (user or API key) whose role holds approvals:write decides; agents never do."""
    p = ctx.principal
    if p.kind in ("user", "api_key") and allowed(p.role, "approvals:write"):
        return
    audit_log.append_detached(session=ctx.session, actor=p.actor, action="approvals.decision_refused",
                              target=f"approval:{approval_id}", org_id=p.org_id, request_id=ctx.request_id,
                              outcome="denied", detail={"kind": p.kind, "role": p.role})
    raise Forbidden("approvals are decided by a person with the approvals:write permission, never by an agent",
                    field="principal")


def _pending(ctx: ToolContext, approval_id: int) -> AgentApproval:
    ap = AgentRepository(ctx.session).approval(approval_id, ctx.org_id)
    if ap is None:
        raise NotFound(f"approval {approval_id} not found", field="approval_id")
    if ap.status != "pending":
        raise Conflict(f"approval {approval_id} is already {ap.status}", field="approval_id")
    if ap.expires_at <= utcnow():
        raise Conflict(f"approval {approval_id} has expired", field="approval_id")
    return ap


@tool("approvals.approve", risk="write")
def approve(ctx: ToolContext, params: ApprovalDecision) -> ApprovalRead:
    """Approve a paused agent tool call, optionally with edited arguments; the run then resumes."""
    _human_with_role(ctx, params.approval_id)
    ap = _pending(ctx, params.approval_id)
    edited = None
    if params.args is not None:
        edited = _check_edited(ap, params.args)
    repo = AgentRepository(ctx.session)
    if not repo.decide(ap.id, "approved", ctx.principal.actor, params.note, edited):
        raise Conflict(f"approval {ap.id} was decided meanwhile", field="approval_id")
    ctx.session.refresh(ap)
    audit_log.record(ctx, "approvals.approved", f"approval:{ap.id}", before={"args": ap.args},
                     after={"args": edited if edited is not None else ap.args},
                     detail={"agent": ap.agent, "run_id": ap.run_id, "tool": ap.tool, "note": params.note})
    return ApprovalRead.of(ap)


@tool("approvals.reject", risk="write")
def reject(ctx: ToolContext, params: ApprovalDecision) -> ApprovalRead:
    """Reject a paused agent tool call; the run resumes without it."""
    _human_with_role(ctx, params.approval_id)
    ap = _pending(ctx, params.approval_id)
    if params.args is not None:
        raise Unprocessable("args can only be edited when approving", field="args")
    repo = AgentRepository(ctx.session)
    if not repo.decide(ap.id, "rejected", ctx.principal.actor, params.note, None):
        raise Conflict(f"approval {ap.id} was decided meanwhile", field="approval_id")
    ctx.session.refresh(ap)
    audit_log.record(ctx, "approvals.rejected", f"approval:{ap.id}", outcome="rejected",
                     detail={"agent": ap.agent, "run_id": ap.run_id, "tool": ap.tool, "note": params.note})
    return ApprovalRead.of(ap)


def _check_edited(ap: AgentApproval, args: dict[str, Any]) -> dict[str, Any]:
    """Edited arguments must fit the tool's schema and the agent's policy limits."""
    spec = registry.get(ap.tool)
    try:
        params = spec.input_model.model_validate(args)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise Unprocessable(f"args.{loc}: {err['msg']}", field=f"args.{loc}") from None
    clean = params.model_dump(mode="json")
    decision = get_engine().evaluate(f"agent:{ap.agent}", "agent", spec, clean)
    if decision.outcome == "deny":
        raise Unprocessable(f"edited arguments are refused by policy: {decision.reason}", field="args")
    return dict(clean)


# ---- chat threads -------------------------------------------------------------------------------

@tool("agents.get_thread", risk="read")
def get_thread(ctx: ToolContext, params: ThreadGet) -> ThreadRead:
    """Show one of your chat threads with an agent and its messages."""
    repo = AgentRepository(ctx.session)
    thread = repo.thread(params.thread_id, ctx.org_id, ctx.principal.actor)
    if thread is None or thread.agent != params.agent:
        raise NotFound(f"thread {params.thread_id} not found", field="thread_id")
    return ThreadRead.of(thread, repo.messages(thread.id))


@tool("agents.chat", risk="write")
def chat_start(ctx: ToolContext, params: ChatStart) -> ChatStarted:
    """Store your message in a chat thread with an agent (new thread when none given) and open a chat run."""
    if agent_info(params.agent).platform:
        raise Unprocessable(f"agent {params.agent} acts on the whole platform and does not chat", field="agent")
    repo = AgentRepository(ctx.session)
    if params.thread_id is not None:
        thread = repo.thread(params.thread_id, ctx.org_id, ctx.principal.actor)
        if thread is None or thread.agent != params.agent:
            raise NotFound(f"thread {params.thread_id} not found", field="thread_id")
    else:
        thread = repo.add_thread(AgentThread(org_id=ctx.org_id, owner=ctx.principal.actor, agent=params.agent,
                                             title=params.message.strip().splitlines()[0][:200]))
    run = add_run(ctx.session, params.agent, ctx.org_id, "chat", input={"thread_id": thread.id},
                  requested_by=ctx.principal.actor)
    msg = repo.add_message(AgentMessage(thread_id=thread.id, role="user", content=params.message, run_id=run.id))
    return ChatStarted(thread_id=thread.id, run_id=run.id, message_id=msg.id)
