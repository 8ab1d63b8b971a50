"""The agent runtime: policy-checked tools, the checkpointer, runs, approvals, schedules, triggers.

An agent sees only the tools ``policies/policy.json`` allows it (allow or needs_approval). Every call
it asks for goes through ``registry.invoke`` again as ``agent:<name>``, so the policy engine records
it, enforces rate and argument limits and audits denials; a tool it was not offered is refused and
audited here. A ``needs_approval`` decision becomes an approval row and a LangGraph ``interrupt``
persisted by the checkpointer; whichever process sees the decision resumes the run with
``Command(resume=...)``. An approved call runs as a system call naming the approver.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from agents import llm as llm_client
from levqor import llm as llm_backend
from levqor.settings import get_settings
from memory.agents.models import AgentApproval, AgentRun, AgentToolCall
from memory.agents.repository import AgentRepository
from memory.db import session_scope, utcnow
from tools.context import Principal, ToolContext
from tools.errors import AppError, ApprovalRequired, NotFound, PolicyDenied
from tools.events.service import Reaction, after_commit
from tools.registry import ToolRegistry, ToolSpec, registry
from tools.schedules import Schedule

if TYPE_CHECKING:
    from langchain_core.tools import StructuredTool

log = logging.getLogger("levqor.agents")

# Modules that define agents (each calls :func:`register_agent` on import).
AGENT_MODULES: tuple[str, ...] = ("agents.janitor.graph", "agents.advisor.graph", "agents.planner.graph",
                                  "agents.healer.graph")
TRIGGERS = ("schedule", "event", "chat", "manual")
ABANDONED_AFTER_S = 1800
FINAL_OUTCOMES = ("ok", "denied", "refused", "error", "approved", "rejected")


# ---- agent definitions ------------------------------------------------------------------------

@dataclass(frozen=True)
class AgentDef:
    """One agent: how to build its graph and its first state, and its offline chat handler."""

    name: str
    description: str
    build: Callable[[RunDeps], Any]  # returns an uncompiled StateGraph
    initial_state: Callable[[RunDeps, dict[str, Any]], dict[str, Any]]
    offline_chat: Callable[[RunDeps, str], Iterator[ChatEvent]] | None = None
    system_prompt: str = ""
    # Its tools act on the whole platform (a principal with no organisation, like the ops healer); the
    # run's organisation owns the run record, its approvals and its costs.
    platform: bool = False


_agents: dict[str, AgentDef] = {}
_loaded = False
_load_lock = threading.Lock()


def register_agent(agent: AgentDef) -> AgentDef:
    _agents[agent.name] = agent
    return agent


def agents() -> dict[str, AgentDef]:
    global _loaded
    with _load_lock:
        if not _loaded:
            for mod in AGENT_MODULES:
                importlib.import_module(mod)
            _loaded = True
    return dict(_agents)


def get_agent(name: str) -> AgentDef:
    try:
        return agents()[name]
    except KeyError:
        raise NotFound(f"no agent called {name!r}", field="agent") from None


# ---- tools for one agent ----------------------------------------------------------------------

def llm_name(tool: str) -> str:
    """OpenAI function names allow ``[a-zA-Z0-9_-]``: ``jobs.retry`` becomes ``jobs__retry``."""
    return tool.replace(".", "__")


def offered_tools(agent: str, reg: ToolRegistry | None = None) -> dict[str, tuple[ToolSpec, str]]:
    """Tools policy.json allows ``agent`` (allow or needs_approval), with that outcome."""
    from policies.engine import get_engine

    reg = reg or registry
    engine = get_engine()
    out: dict[str, tuple[ToolSpec, str]] = {}
    for spec in reg.all():
        decision = engine.evaluate(f"agent:{agent}", "agent", spec, {})
        if decision.outcome in ("allow", "needs_approval"):
            out[spec.name] = (spec, decision.outcome)
    return out


class ToolResult(BaseModel):
    """What a node or the model gets back from one tool call."""

    tool: str
    outcome: str  # ok | denied | refused | error | approved | rejected | needs_approval
    data: dict[str, Any] | None = None
    message: str = ""
    approval_id: int | None = None
    approved_by: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in ("ok", "approved")

    def for_model(self) -> str:
        if self.ok:
            return json.dumps(self.data, default=str)[:8000]
        return json.dumps({"outcome": self.outcome, "error": self.message})


def _summary(data: dict[str, Any] | None) -> str:
    if data is None:
        return ""
    items = data.get("items")
    if isinstance(items, list):
        return f"{len(items)} items" + (", more" if data.get("next_cursor") else "")
    return json.dumps(data, default=str)[:300]


class Toolbox:
    """The tools one agent run may use; every call is policy-checked, recorded and counted."""

    def __init__(self, agent: str, org_id: int, run_id: int, reg: ToolRegistry | None = None,
                 *, interruptible: bool = True, platform: bool = False):
        self.agent = agent
        self.org_id = org_id
        self.run_id = run_id
        self.registry = reg or registry
        self.interruptible = interruptible
        self.principal = Principal(kind="agent", id=agent, org_id=None if platform else org_id, role="agent",
                                   name=f"agent {agent}")
        self.offered = offered_tools(agent, self.registry)
        self._llm_names = {llm_name(n): n for n in self.offered}
        self._seq = 0

    # The name the audit log, policy engine and metrics see for a model's tool name.
    def resolve(self, name: str) -> str:
        if name in self._llm_names:
            return self._llm_names[name]
        if name in self.offered:
            return name
        for spec in self.registry.all():
            if llm_name(spec.name) == name:
                return spec.name
        return name.replace("__", ".")[:100]

    def langchain_tools(self) -> list[StructuredTool]:
        """LangChain tools (pydantic input model as the schema, tool docstring as the description)."""
        from langchain_core.tools import StructuredTool

        out = []
        for name, (spec, outcome) in sorted(self.offered.items()):
            desc = spec.description + (" (a person must approve this call)" if outcome == "needs_approval" else "")

            def run(_name: str = name, **kwargs: Any) -> str:
                return self.call(_name, kwargs).for_model()

            out.append(StructuredTool.from_function(func=run, name=llm_name(name), description=desc,
                                                    args_schema=spec.input_model))
        return out

    def call(self, tool: str, args: dict[str, Any], call_key: str | None = None, *,
             purpose: str | None = None) -> ToolResult:
        """Ask for ``tool(args)`` as this agent. Replays of a graph node get the recorded answer.

        ``purpose`` (what the call is for, e.g. the incident) heads the approval request if one is needed."""
        if call_key is None:
            self._seq += 1
            call_key = f"auto-{self._seq}"
        tool = self.resolve(tool)
        with session_scope() as s:
            prior = AgentRepository(s).tool_call(self.run_id, call_key)
            if prior is not None and prior.outcome in FINAL_OUTCOMES:
                return ToolResult(tool=prior.tool, outcome=prior.outcome, data=prior.result,
                                  message=prior.result_summary, approved_by=prior.approved_by)
            pending = prior is not None
        if not pending:
            if tool not in self.offered:
                return self._refuse(tool, args, call_key)
            result = self._invoke(tool, args, call_key)
            if result.outcome != "needs_approval":
                return result
        return self._await_approval(tool, args, call_key, purpose)

    # -- the three paths ---------------------------------------------------------------------

    def _refuse(self, tool: str, args: dict[str, Any], call_key: str) -> ToolResult:
        from tools.enterprise.audit_log import append_detached

        reason = f"{tool} was not offered to agent:{self.agent} (not in its policy)"
        with session_scope() as s:
            self._record(s, call_key, tool, args, "refused", None, reason, 0.0)
            append_detached(session=s, actor=self.principal.actor, action="agent.tool_refused", target=tool,
                            org_id=self.org_id, outcome="denied",
                            detail={"reason": reason, "args": _jsonable(args), "run_id": self.run_id})
        return ToolResult(tool=tool, outcome="refused", message=reason)

    def _invoke(self, tool: str, args: dict[str, Any], call_key: str) -> ToolResult:
        started = time.perf_counter()
        ctx_args = _jsonable(args)
        with session_scope() as s:
            ctx = ToolContext(session=s, principal=self.principal, agent_run_id=self.run_id)
            try:
                out = self.registry.invoke(tool, ctx, dict(args))
            except PolicyDenied as exc:
                outcome, data, msg = "denied", None, exc.detail
            except ApprovalRequired as exc:
                outcome, data, msg = "needs_approval", None, exc.detail
            except AppError as exc:
                s.rollback()
                outcome, data, msg = "error", None, f"{exc.title}: {exc.detail}"
            except Exception as exc:  # a broken tool must not crash the run; the model sees the error
                s.rollback()
                log.exception("agent tool call failed", extra={"fields": {"tool": tool, "run": self.run_id}})
                outcome, data, msg = "error", None, f"{type(exc).__name__}: {exc}"
            else:
                outcome, data, msg = "ok", out.model_dump(mode="json"), ""
            ms = (time.perf_counter() - started) * 1000
            self._record(s, call_key, tool, ctx_args, outcome, data, msg or _summary(data), ms)
        return ToolResult(tool=tool, outcome=outcome, data=data, message=msg or _summary(data))

    def _await_approval(self, tool: str, args: dict[str, Any], call_key: str,
                        purpose: str | None = None) -> ToolResult:
        if not self.interruptible:
            msg = f"{tool} needs a person's approval; it can only be asked for in an agent run, not in chat"
            with session_scope() as s:
                self._update(s, call_key, "rejected", None, msg)
            return ToolResult(tool=tool, outcome="rejected", message=msg)
        from langgraph.types import interrupt

        ap = self._ensure_approval(tool, args, call_key, purpose)
        interrupt({"approval_id": ap["id"], "tool": tool, "args": ap["args"], "reason": ap["reason"],
                   "agent": self.agent, "run_id": self.run_id})
        # Resumed: the row, not the resume value, says what was decided.
        with session_scope() as s:
            row = AgentRepository(s).approval(ap["id"])
            assert row is not None
            status, by, edited = row.status, row.decided_by, row.edited_args
        if status != "approved":
            msg = f"{tool} was {status} (approval {ap['id']}" + (f" by {by})" if by else ")")
            with session_scope() as s:
                self._update(s, call_key, "rejected", None, msg)
            return ToolResult(tool=tool, outcome="rejected", message=msg, approval_id=ap["id"])
        return self._run_approved(tool, edited if edited is not None else ap["args"], call_key, ap["id"],
                                  by or "")

    def _ensure_approval(self, tool: str, args: dict[str, Any], call_key: str,
                         purpose: str | None = None) -> dict[str, Any]:
        from tools.enterprise.audit_log import append

        with session_scope() as s:
            repo = AgentRepository(s)
            ap = repo.approval_for(self.run_id, call_key)
            if ap is None:
                # The policy engine recorded the needs_approval decision (and its reason) a moment ago.
                reason = repo.last_policy_reason(self.principal.actor, tool) or f"{tool} needs approval"
                if purpose:
                    reason = f"{purpose[:300]}. {reason}"
                now = utcnow()
                # The policy engine already validated these arguments; store them as the tool sees them.
                clean = self.registry.get(tool).input_model.model_validate(args).model_dump(mode="json")
                ap = repo.add_approval(AgentApproval(
                    org_id=self.org_id, agent=self.agent, run_id=self.run_id, call_key=call_key, tool=tool,
                    args=clean, reason=reason[:500], status="pending", requested_at=now,
                    expires_at=now + dt.timedelta(seconds=approval_ttl_s()))) or repo.approval_for(
                    self.run_id, call_key)
                assert ap is not None
                append(s, actor=self.principal.actor, action="agent.approval_requested", target=tool,
                       org_id=self.org_id, detail={"approval_id": ap.id, "run_id": self.run_id,
                                                   "args": ap.args, "reason": ap.reason})
            return {"id": ap.id, "args": dict(ap.args), "reason": ap.reason}

    def _run_approved(self, tool: str, args: dict[str, Any], call_key: str, approval_id: int,
                      approved_by: str) -> ToolResult:
        """Run an approved call as the system, naming the approver; the agent's limits still apply."""
        from policies.engine import get_engine
        from tools.enterprise.audit_log import append, append_detached

        started = time.perf_counter()
        spec = self.registry.get(tool)
        with session_scope() as s:
            try:
                params = spec.input_model.model_validate(args)
            except Exception as exc:
                msg = f"approved arguments are invalid: {exc}"
                self._update(s, call_key, "error", None, msg)
                return ToolResult(tool=tool, outcome="error", message=msg, approval_id=approval_id)
            # The approval covers the approval requirement only: deny rules and limits still hold.
            decision = get_engine().evaluate(self.principal.actor, "agent", spec, params.model_dump(mode="json"))
            if decision.outcome == "deny":
                self._update(s, call_key, "denied", None, decision.reason)
                append_detached(session=s, actor=self.principal.actor, action="policy.denied", target=tool,
                                org_id=self.org_id, outcome="denied",
                                detail={"reason": decision.reason, "args": params.model_dump(mode="json"),
                                        "approval_id": approval_id})
                return ToolResult(tool=tool, outcome="denied", message=decision.reason, approval_id=approval_id)
            system = Principal(kind="system", id=f"approval-{approval_id}", org_id=self.principal.org_id,
                               role="admin", name=f"agent {self.agent}, approved by {approved_by}")
            ctx = ToolContext(session=s, principal=system, agent_run_id=self.run_id)
            try:
                out = self.registry.invoke(tool, ctx, params)
            except Exception as exc:
                s.rollback()
                msg = exc.detail if isinstance(exc, AppError) else f"{type(exc).__name__}: {exc}"
                self._update(s, call_key, "error", None, msg)
                return ToolResult(tool=tool, outcome="error", message=msg, approval_id=approval_id)
            data = out.model_dump(mode="json")
            append(s, actor=system.actor, action="agent.approved_call", target=tool, org_id=self.org_id,
                   detail={"approval_id": approval_id, "approved_by": approved_by, "agent": self.agent,
                           "run_id": self.run_id, "args": params.model_dump(mode="json")})
            self._update(s, call_key, "approved", data, _summary(data), approved_by=approved_by,
                         ms=(time.perf_counter() - started) * 1000, args=params.model_dump(mode="json"))
        return ToolResult(tool=tool, outcome="approved", data=data, message=_summary(data),
                          approval_id=approval_id, approved_by=approved_by)

    # -- records -----------------------------------------------------------------------------

    def _record(self, s: Any, call_key: str, tool: str, args: dict[str, Any], outcome: str,
                data: dict[str, Any] | None, summary: str, ms: float) -> None:
        from levqor.metrics import AGENT_TOOL_CALLS

        repo = AgentRepository(s)
        repo.add_tool_call(AgentToolCall(run_id=self.run_id, call_key=call_key, agent=self.agent, tool=tool,
                                         args=args, outcome=outcome, result=data, result_summary=summary[:2000],
                                         duration_ms=round(ms, 3)))
        repo.bump_run(self.run_id, tools_called=1)
        AGENT_TOOL_CALLS.labels(agent=self.agent, tool=tool, outcome=outcome).inc()

    def _update(self, s: Any, call_key: str, outcome: str, data: dict[str, Any] | None, summary: str,
                approved_by: str | None = None, ms: float | None = None,
                args: dict[str, Any] | None = None) -> None:
        from levqor.metrics import AGENT_TOOL_CALLS

        call = AgentRepository(s).tool_call(self.run_id, call_key)
        if call is None:
            return
        call.outcome, call.result, call.result_summary = outcome, data, summary[:2000]
        if approved_by:
            call.approved_by = approved_by
        if ms is not None:
            call.duration_ms = round(ms, 3)
        if args is not None:
            call.args = args
        AGENT_TOOL_CALLS.labels(agent=self.agent, tool=call.tool, outcome=outcome).inc()


def _jsonable(value: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(json.dumps(value, default=str)))


def approval_ttl_s() -> int:
    s = get_settings()
    if s.approval_ttl_s > 0:
        return s.approval_ttl_s
    from policies.engine import get_engine

    return get_engine().doc.approval_ttl_s


# ---- runs -------------------------------------------------------------------------------------

@dataclass
class RunDeps:
    """What a graph's nodes use: the toolbox, the model (None offline), and the run's ids."""

    agent: str
    org_id: int
    run_id: int
    toolbox: Toolbox
    mode: str
    model: Any = None  # a ChatOpenAI in LLM mode
    model_name: str | None = None
    history: list[tuple[str, str]] = field(default_factory=list)  # a chat's earlier (role, content), oldest first

    def record_llm(self, message: Any) -> None:
        """Count one model response's tokens and cost on the run and in the cost store."""
        usage = getattr(message, "usage_metadata", None) or {}
        record_llm_usage(self.run_id, self.org_id, self.agent, self.model_name or llm_backend.model_name(),
                         int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0)))


@dataclass
class ChatEvent:
    """One server-sent event of a chat answer: token | tool_call | tool_result | done | error."""

    event: str
    data: dict[str, Any]


def record_llm_usage(run_id: int, org_id: int, agent: str, model: str, tokens_in: int, tokens_out: int) -> None:
    from levqor.metrics import LLM_TOKENS

    cost = llm_backend.cost_micro_usd(model, tokens_in, tokens_out)
    with session_scope() as s:
        repo = AgentRepository(s)
        repo.bump_run(run_id, tokens_in=tokens_in, tokens_out=tokens_out, cost_micro_usd=cost)
        repo.add_usage(day=utcnow().date(), org_id=org_id, agent=agent, model=model, tokens_in=tokens_in,
                       tokens_out=tokens_out, cost_micro_usd=cost)
    LLM_TOKENS.labels(agent=agent, model=model, direction="in").inc(tokens_in)
    LLM_TOKENS.labels(agent=agent, model=model, direction="out").inc(tokens_out)


_saver_lock = threading.Lock()
_savers: dict[str, Any] = {}
CHECKPOINT_SCHEMA = "levqor_agent_checkpoints"


def checkpointer() -> Any:
    """The process's LangGraph checkpointer: PostgresSaver on PostgreSQL, else SqliteSaver in VAR_DIR."""
    s = get_settings()
    url = s.resolved_database_url
    key = url if not s.is_sqlite else str((s.var_dir / "agent_checkpoints.db").resolve())
    with _saver_lock:
        if key in _savers:
            return _savers[key]
        if s.is_sqlite:
            import sqlite3

            from langgraph.checkpoint.sqlite import SqliteSaver

            s.var_dir.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(key, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=30000")
            saver: Any = SqliteSaver(conn)
        else:
            import psycopg
            from langgraph.checkpoint.postgres import PostgresSaver
            from psycopg.rows import dict_row
            from psycopg_pool import ConnectionPool

            conninfo = url.replace("postgresql+psycopg://", "postgresql://", 1)
            # Its own schema: the checkpointer's tables are not the application's (Alembic ignores them).
            with psycopg.connect(conninfo, autocommit=True) as c:
                c.execute(f"CREATE SCHEMA IF NOT EXISTS {CHECKPOINT_SCHEMA}")
            pool: Any = ConnectionPool(conninfo, min_size=1, max_size=4, open=True, kwargs={
                "autocommit": True, "prepare_threshold": None, "row_factory": dict_row,
                "options": f"-c search_path={CHECKPOINT_SCHEMA}"})
            saver = PostgresSaver(pool)
        saver.setup()
        _savers[key] = saver
        return saver


def reset_checkpointers() -> None:
    """Forget cached checkpointers (tests that switch databases)."""
    with _saver_lock:
        _savers.clear()


def _deps(run: AgentRun, reg: ToolRegistry | None, *, interruptible: bool = True) -> RunDeps:
    toolbox = Toolbox(run.agent, run.org_id, run.id, reg, interruptible=interruptible,
                      platform=get_agent(run.agent).platform)
    if run.mode == "llm":
        return RunDeps(run.agent, run.org_id, run.id, toolbox, "llm", llm_client.chat_model(),
                       run.model or llm_backend.model_name())
    return RunDeps(run.agent, run.org_id, run.id, toolbox, "offline")


def create_run(session: Any, agent: str, org_id: int, trigger: str, *, input: dict[str, Any] | None = None,
               requested_by: str | None = None) -> AgentRun:
    """Add a queued run row in the caller's transaction (it is executed after commit)."""
    get_agent(agent)
    if trigger not in TRIGGERS:
        raise ValueError(f"trigger must be one of {TRIGGERS}")
    mode = llm_backend.mode()
    return AgentRepository(session).add_run(AgentRun(
        org_id=org_id, agent=agent, trigger=trigger, status="queued", mode=mode,
        model=llm_backend.model_name() if mode == "llm" else None, input=input or {},
        requested_by=requested_by, thread_id=f"run-{uuid.uuid4().hex}"))


def start_run(agent: str, org_id: int, trigger: str, *, input: dict[str, Any] | None = None,
              requested_by: str | None = None, reg: ToolRegistry | None = None) -> int:
    """Create a run and execute it now in this process; return its id."""
    with session_scope() as s:
        run_id = create_run(s, agent, org_id, trigger, input=input, requested_by=requested_by).id
    execute_run(run_id, reg=reg)
    return run_id


def execute_run(run_id: int, *, resume: dict[str, Any] | None = None, reg: ToolRegistry | None = None) -> str:
    """Run (or resume) run ``run_id`` until it ends or pauses; return its new status."""
    from langgraph.types import Command

    from levqor.metrics import AGENT_RUNS

    with session_scope() as s:
        repo = AgentRepository(s)
        if not repo.claim_run(run_id, "waiting_approval" if resume is not None else "queued"):
            run = repo.run(run_id)
            return run.status if run else "missing"
        run = repo.run(run_id)
        assert run is not None
        s.expunge(run)
    agent = get_agent(run.agent)
    deps = _deps(run, reg)
    config: dict[str, Any] = {"configurable": {"thread_id": run.thread_id},
                              "recursion_limit": get_settings().agent_recursion_limit}
    graph = agent.build(deps).compile(checkpointer=checkpointer())
    inp: Any = Command(resume=resume) if resume is not None else agent.initial_state(deps, dict(run.input))
    steps = 0
    paused = False
    try:
        for chunk in graph.stream(inp, config, stream_mode="updates"):
            if "__interrupt__" in chunk:
                paused = True
            else:
                steps += 1
        values = graph.get_state(config).values
        status = "waiting_approval" if paused else "succeeded"
        with session_scope() as s:
            repo = AgentRepository(s)
            repo.bump_run(run_id, steps=steps)
            repo.set_status(run_id, status, summary=str(values.get("summary") or "") or None,
                            finished=not paused)
    except Exception as exc:
        log.exception("agent run failed", extra={"fields": {"run": run_id, "agent": run.agent}})
        status = "failed"
        with session_scope() as s:
            repo = AgentRepository(s)
            repo.bump_run(run_id, steps=steps)
            repo.set_status(run_id, "failed", error=f"{type(exc).__name__}: {exc}", finished=True)
    AGENT_RUNS.labels(agent=run.agent, trigger=run.trigger, status=status).inc()
    log.info("agent run", extra={"fields": {"run": run_id, "agent": run.agent, "status": status,
                                            "steps": steps}})
    return status


def run_values(run_id: int, reg: ToolRegistry | None = None) -> dict[str, Any]:
    """The run's graph state at its last checkpoint (what its nodes produced so far); {} if none."""
    with session_scope() as s:
        run = AgentRepository(s).run(run_id)
        if run is None:
            return {}
        s.expunge(run)
    graph = get_agent(run.agent).build(_deps(run, reg)).compile(checkpointer=checkpointer())
    return dict(graph.get_state({"configurable": {"thread_id": run.thread_id}}).values)


# ---- approvals --------------------------------------------------------------------------------

def resume_approval(approval_id: int, reg: ToolRegistry | None = None) -> str | None:
    """Resume the run paused on a decided approval, once across all processes; return its status."""
    with session_scope() as s:
        repo = AgentRepository(s)
        if not repo.claim_resume(approval_id):
            return None
        ap = repo.approval(approval_id)
        assert ap is not None
        run_id, status, by = ap.run_id, ap.status, ap.decided_by
    return execute_run(run_id, resume={"approval_id": approval_id, "status": status, "by": by}, reg=reg)


def expire_approvals(reg: ToolRegistry | None = None) -> int:
    """Expire pending approvals past their time (they count as rejected, audited) and resume their runs."""
    from tools.enterprise.audit_log import append

    now = utcnow()
    expired: list[int] = []
    with session_scope() as s:
        repo = AgentRepository(s)
        for ap_id in repo.expired_pending_ids(now):
            if repo.decide(ap_id, "expired", "system:expiry", "expired before anyone decided", None):
                ap = repo.approval(ap_id)
                assert ap is not None
                append(s, actor="system:expiry", action="agent.approval_expired", target=ap.tool,
                       org_id=ap.org_id, outcome="rejected",
                       detail={"approval_id": ap.id, "run_id": ap.run_id, "agent": ap.agent})
                expired.append(ap_id)
    for ap_id in expired:
        resume_approval(ap_id, reg)
    return len(expired)


def sweep(reg: ToolRegistry | None = None) -> None:
    """Scheduler housekeeping: expire approvals, resume decided ones nobody resumed, run stuck queued runs."""
    expire_approvals(reg)
    older = utcnow() - dt.timedelta(seconds=60)
    with session_scope() as s:
        repo = AgentRepository(s)
        stale_approvals = repo.decided_unresumed_ids(older)
        queued = repo.queued_run_ids(older)
        # A run still "running" long after it started lost its process; it must not block the next one.
        for run_id in repo.stale_running_ids(utcnow() - dt.timedelta(seconds=ABANDONED_AFTER_S)):
            repo.set_status(run_id, "failed", error="abandoned: the process running it stopped", finished=True)
    for ap_id in stale_approvals:
        resume_approval(ap_id, reg)
    for run_id in queued:
        execute_run(run_id, reg=reg)


# ---- schedules and event triggers -------------------------------------------------------------

def run_for_all_orgs(agent: str, trigger: str = "schedule", reg: ToolRegistry | None = None) -> list[int]:
    """Run ``agent`` once per organisation (skipping orgs where it is still active)."""
    ids: list[int] = []
    with session_scope() as s:
        repo = AgentRepository(s)
        for org_id in repo.org_ids():
            if repo.active_run(org_id, agent) is None:
                ids.append(create_run(s, agent, org_id, trigger).id)
    for run_id in ids:
        execute_run(run_id, reg=reg)
    return ids


def parse_schedule(spec: str) -> tuple[str, Any]:
    """``interval:300`` -> ("interval", 300.0); ``cron:*/5 * * * *`` -> ("cron", CronTrigger)."""
    kind, _, value = spec.partition(":")
    if kind == "interval":
        seconds = float(value)
        if seconds <= 0:
            raise ValueError(f"schedule {spec!r}: interval must be positive")
        return "interval", seconds
    if kind == "cron":
        from apscheduler.triggers.cron import CronTrigger

        return "cron", CronTrigger.from_crontab(value.strip(), timezone="UTC")
    raise ValueError(f"schedule {spec!r}: use interval:SECONDS or cron:MIN HOUR DOM MON DOW")


def scheduled_jobs() -> list[tuple[str, str, Any, Callable[[], None]]]:
    """(job name, kind, interval seconds or cron trigger, function) for each configured agent schedule."""
    out: list[tuple[str, str, Any, Callable[[], None]]] = []
    for agent, spec in get_settings().agent_schedules.items():
        get_agent(agent)
        kind, value = parse_schedule(spec)

        def job(_agent: str = agent) -> None:
            run_for_all_orgs(_agent, "schedule")

        out.append((f"agent.{agent}", kind, value, job))
    out.append(("agents.sweep", "interval", 30.0, sweep))
    return out


def schedules() -> list[Schedule]:
    """The configured agent schedules and the agents' sweep, for the scheduler edge to run."""
    out: list[Schedule] = []
    for name, kind, value, fn in scheduled_jobs():
        every: float | str = value if kind == "interval" else "cron:" + get_settings().agent_schedules[
            name.removeprefix("agent.")].partition(":")[2]
        out.append(Schedule(name, every, fn))
    return out


def event_reactions() -> list[Reaction]:
    """Agents started by platform events, as configured (``LEVQOR_AGENT_EVENT_TRIGGERS``)."""
    out: list[Reaction] = []
    for event, names in get_settings().agent_event_triggers.items():
        for agent in names:
            get_agent(agent)
            out.append(Reaction(event, f"agents.trigger.{agent}", handle=_event_handler(agent)))
    return out


def _event_handler(agent: str) -> Callable[[Any, Any], None]:
    def handle(session: Any, event: Any) -> None:
        if event.org_id is None:
            return
        repo = AgentRepository(session)
        # One run at a time per organisation: a burst of events coalesces into the active run.
        if repo.active_run(event.org_id, agent) is not None:
            return
        run = create_run(session, agent, event.org_id, "event",
                         input={"event": event.name, "event_id": event.uid, "payload": event.payload})
        run_id = run.id
        # Queued in the handler's transaction; executed once it commits (the sweep catches a crash).
        after_commit(session, lambda: _safe_execute(run_id))

    return handle


def _safe_execute(run_id: int) -> None:
    try:
        execute_run(run_id)
    except Exception:
        log.exception("event-triggered agent run failed", extra={"fields": {"run": run_id}})


# ---- chat -------------------------------------------------------------------------------------

MAX_CHAT_TURNS = 8


def chat_stream(run_id: int, thread_id: int, reg: ToolRegistry | None = None) -> Iterator[ChatEvent]:
    """Answer the thread's last user message as events; store the answer; the history feeds the model."""
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

    from levqor.metrics import AGENT_RUNS
    from memory.agents.models import AgentMessage

    with session_scope() as s:
        repo = AgentRepository(s)
        if not repo.claim_run(run_id):
            yield ChatEvent("error", {"detail": f"run {run_id} is not waiting to start"})
            return
        run = repo.run(run_id)
        assert run is not None
        s.expunge(run)
        history = [(m.role, m.content) for m in repo.messages(thread_id)]
    agent = get_agent(run.agent)
    if agent.platform:
        yield ChatEvent("error", {"detail": f"agent {agent.name} acts on the whole platform and does not chat"})
        with session_scope() as s:
            AgentRepository(s).set_status(run_id, "failed", error="platform agents do not chat", finished=True)
        return
    deps = _deps(run, reg, interruptible=False)
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    steps = 0
    try:
        if deps.mode == "offline" or deps.model is None:
            if agent.offline_chat is None:
                raise NotFound(f"agent {agent.name} has no offline chat", field="agent")
            user = next((c for r, c in reversed(history) if r == "user"), "")
            deps.history = history[:-1] if history and history[-1] == ("user", user) else history
            for ev in agent.offline_chat(deps, user):
                if ev.event == "token":
                    text.append(str(ev.data.get("text", "")))
                elif ev.event == "tool_call":
                    calls.append(ev.data)
                yield ev
            steps = 1
        else:
            msgs: list[Any] = [SystemMessage(agent.system_prompt)]
            for role, content in history:
                msgs.append(HumanMessage(content) if role == "user" else AIMessage(content))
            bound = deps.model.bind_tools(deps.toolbox.langchain_tools())
            for turn in range(MAX_CHAT_TURNS):
                steps += 1
                acc: Any = None
                for chunk in bound.stream(msgs):
                    if chunk.content:
                        text.append(str(chunk.content))
                        yield ChatEvent("token", {"text": str(chunk.content)})
                    acc = chunk if acc is None else acc + chunk
                if acc is None:
                    break
                deps.record_llm(acc)
                reply = AIMessage(content=acc.content, tool_calls=acc.tool_calls)
                msgs.append(reply)
                if not reply.tool_calls:
                    break
                for tc in reply.tool_calls:
                    name = deps.toolbox.resolve(tc["name"])
                    calls.append({"tool": name, "args": tc["args"]})
                    yield ChatEvent("tool_call", {"tool": name, "args": tc["args"]})
                    res = deps.toolbox.call(tc["name"], dict(tc["args"]), call_key=f"chat:{turn}:{tc['id']}"[:100])
                    yield ChatEvent("tool_result", {"tool": name, "outcome": res.outcome,
                                                    "summary": res.message or _summary(res.data)})
                    msgs.append(ToolMessage(content=res.for_model(), tool_call_id=tc["id"] or "", name=tc["name"]))
        answer = "".join(text).strip()
        with session_scope() as s:
            repo = AgentRepository(s)
            msg = repo.add_message(AgentMessage(thread_id=thread_id, role="assistant", content=answer,
                                                tool_calls=calls or None, run_id=run_id))
            repo.bump_run(run_id, steps=steps)
            repo.set_status(run_id, "succeeded", summary=answer[:2000], finished=True)
            message_id = msg.id
        AGENT_RUNS.labels(agent=run.agent, trigger="chat", status="succeeded").inc()
        yield ChatEvent("done", {"thread_id": thread_id, "run_id": run_id, "message_id": message_id,
                                 "mode": deps.mode})
    except Exception as exc:
        log.exception("chat failed", extra={"fields": {"run": run_id}})
        with session_scope() as s:
            AgentRepository(s).set_status(run_id, "failed", error=f"{type(exc).__name__}: {exc}", finished=True)
        AGENT_RUNS.labels(agent=run.agent, trigger="chat", status="failed").inc()
        yield ChatEvent("error", {"detail": "the agent could not answer; the error was logged", "run_id": run_id})
