"""The tools of one agent run: offered by policy, every call policy-checked, recorded and counted.

An agent sees only the tools ``policies/policy.json`` allows it (allow or needs_approval). Every call
it asks for goes through ``registry.invoke`` again as ``agent:<name>``, so the policy engine records
it, enforces rate and argument limits and audits denials; a tool it was not offered is refused and
audited here. A ``needs_approval`` decision becomes an approval row and a LangGraph ``interrupt``
persisted by the checkpointer; whichever process sees the decision resumes the run with
``Command(resume=...)``. An approved call runs as a system call naming the approver.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from levqor.metrics import AGENT_TOOL_CALLS
from levqor.settings import get_settings
from policies.engine import get_engine
from tools.agents import runs as store
from tools.agents.catalog import offered_tools
from tools.context import Principal, ToolContext
from tools.enterprise.audit_log import append, append_detached
from tools.errors import AppError, ApprovalRequired, PolicyDenied
from tools.registry import ToolRegistry, registry

if TYPE_CHECKING:
    from langchain_core.tools import StructuredTool

log = logging.getLogger("levqor.agents")

FINAL_OUTCOMES = ("ok", "denied", "refused", "error", "approved", "rejected")


def llm_name(tool: str) -> str:
    """OpenAI function names allow ``[a-zA-Z0-9_-]``: ``jobs.retry`` becomes ``jobs__retry``."""
    return tool.replace(".", "__")


def approval_ttl_s() -> int:
    """How long an approval waits for a person: the setting, else the policy's."""
    s = get_settings()
    if s.approval_ttl_s > 0:
        return s.approval_ttl_s
    return get_engine().doc.approval_ttl_s


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


def summary(data: dict[str, Any] | None) -> str:
    """A short account of a tool's result (``3 items, more``) for the run's record and a chat."""
    if data is None:
        return ""
    items = data.get("items")
    if isinstance(items, list):
        return f"{len(items)} items" + (", more" if data.get("next_cursor") else "")
    return json.dumps(data, default=str)[:300]


def _jsonable(value: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(json.dumps(value, default=str)))


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
        from langchain_core.tools import StructuredTool  # kept lazy: start-up time (LLM mode only)

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
        prior = store.recorded_call(self.run_id, call_key)
        if prior is not None and prior.outcome in FINAL_OUTCOMES:
            return ToolResult(tool=prior.tool, outcome=prior.outcome, data=prior.result, message=prior.summary,
                              approved_by=prior.approved_by)
        if prior is None:
            if tool not in self.offered:
                return self._refuse(tool, args, call_key)
            result = self._invoke(tool, args, call_key)
            if result.outcome != "needs_approval":
                return result
        return self._await_approval(tool, args, call_key, purpose)

    # -- the three paths ---------------------------------------------------------------------

    def _refuse(self, tool: str, args: dict[str, Any], call_key: str) -> ToolResult:
        reason = f"{tool} was not offered to agent:{self.agent} (not in its policy)"
        with store.call_scope(self.principal, self.run_id) as ctx:
            self._record(ctx, call_key, tool, args, "refused", None, reason, 0.0)
            append_detached(session=ctx.session, actor=self.principal.actor, action="agent.tool_refused",
                            target=tool, org_id=self.org_id, outcome="denied",
                            detail={"reason": reason, "args": _jsonable(args), "run_id": self.run_id})
        return ToolResult(tool=tool, outcome="refused", message=reason)

    def _invoke(self, tool: str, args: dict[str, Any], call_key: str) -> ToolResult:
        started = time.perf_counter()
        ctx_args = _jsonable(args)
        with store.call_scope(self.principal, self.run_id) as ctx:
            try:
                out = self.registry.invoke(tool, ctx, dict(args))
            except PolicyDenied as exc:
                outcome, data, msg = "denied", None, exc.detail
            except ApprovalRequired as exc:
                outcome, data, msg = "needs_approval", None, exc.detail
            except AppError as exc:
                ctx.session.rollback()
                outcome, data, msg = "error", None, f"{exc.title}: {exc.detail}"
            except Exception as exc:  # a broken tool must not crash the run; the model sees the error
                ctx.session.rollback()
                log.exception("agent tool call failed", extra={"fields": {"tool": tool, "run": self.run_id}})
                outcome, data, msg = "error", None, f"{type(exc).__name__}: {exc}"
            else:
                outcome, data, msg = "ok", out.model_dump(mode="json"), ""
            ms = (time.perf_counter() - started) * 1000
            self._record(ctx, call_key, tool, ctx_args, outcome, data, msg or summary(data), ms)
        return ToolResult(tool=tool, outcome=outcome, data=data, message=msg or summary(data))

    def _await_approval(self, tool: str, args: dict[str, Any], call_key: str,
                        purpose: str | None = None) -> ToolResult:
        if not self.interruptible:
            msg = f"{tool} needs a person's approval; it can only be asked for in an agent run, not in chat"
            with store.call_scope(self.principal, self.run_id) as ctx:
                self._update(ctx, call_key, "rejected", None, msg)
            return ToolResult(tool=tool, outcome="rejected", message=msg)
        from langgraph.types import interrupt  # kept lazy: start-up time (the API imports the runtime)

        with store.call_scope(self.principal, self.run_id) as ctx:
            ap = store.request_approval(ctx, self.org_id, call_key, tool, args, self.registry.get(tool).input_model,
                                       purpose, approval_ttl_s())
        interrupt({"approval_id": ap.id, "tool": tool, "args": ap.args, "reason": ap.reason,
                   "agent": self.agent, "run_id": self.run_id})
        # Resumed: the row, not the resume value, says what was decided.
        decided = store.approval_state(ap.id)
        if decided.status != "approved":
            by = decided.decided_by
            msg = f"{tool} was {decided.status} (approval {ap.id}" + (f" by {by})" if by else ")")
            with store.call_scope(self.principal, self.run_id) as ctx:
                self._update(ctx, call_key, "rejected", None, msg)
            return ToolResult(tool=tool, outcome="rejected", message=msg, approval_id=ap.id)
        return self._run_approved(tool, decided.edited_args if decided.edited_args is not None else ap.args,
                                  call_key, ap.id, decided.decided_by or "")

    def _run_approved(self, tool: str, args: dict[str, Any], call_key: str, approval_id: int,
                      approved_by: str) -> ToolResult:
        """Run an approved call as the system, naming the approver; the agent's limits still apply."""
        started = time.perf_counter()
        spec = self.registry.get(tool)
        system = Principal(kind="system", id=f"approval-{approval_id}", org_id=self.principal.org_id,
                           role="admin", name=f"agent {self.agent}, approved by {approved_by}")
        with store.call_scope(system, self.run_id) as ctx:
            try:
                params = spec.input_model.model_validate(args)
            except Exception as exc:
                msg = f"approved arguments are invalid: {exc}"
                self._update(ctx, call_key, "error", None, msg)
                return ToolResult(tool=tool, outcome="error", message=msg, approval_id=approval_id)
            # The approval covers the approval requirement only: deny rules and limits still hold.
            decision = get_engine().evaluate(self.principal.actor, "agent", spec, params.model_dump(mode="json"))
            if decision.outcome == "deny":
                self._update(ctx, call_key, "denied", None, decision.reason)
                append_detached(session=ctx.session, actor=self.principal.actor, action="policy.denied",
                                target=tool, org_id=self.org_id, outcome="denied",
                                detail={"reason": decision.reason, "args": params.model_dump(mode="json"),
                                        "approval_id": approval_id})
                return ToolResult(tool=tool, outcome="denied", message=decision.reason, approval_id=approval_id)
            try:
                out = self.registry.invoke(tool, ctx, params)
            except Exception as exc:
                ctx.session.rollback()
                msg = exc.detail if isinstance(exc, AppError) else f"{type(exc).__name__}: {exc}"
                self._update(ctx, call_key, "error", None, msg)
                return ToolResult(tool=tool, outcome="error", message=msg, approval_id=approval_id)
            data = out.model_dump(mode="json")
            append(ctx.session, actor=system.actor, action="agent.approved_call", target=tool, org_id=self.org_id,
                   detail={"approval_id": approval_id, "approved_by": approved_by, "agent": self.agent,
                           "run_id": self.run_id, "args": params.model_dump(mode="json")})
            self._update(ctx, call_key, "approved", data, summary(data), approved_by=approved_by,
                         ms=(time.perf_counter() - started) * 1000, args=params.model_dump(mode="json"))
        return ToolResult(tool=tool, outcome="approved", data=data, message=summary(data),
                          approval_id=approval_id, approved_by=approved_by)

    # -- records -----------------------------------------------------------------------------

    def _record(self, ctx: ToolContext, call_key: str, tool: str, args: dict[str, Any], outcome: str,
                data: dict[str, Any] | None, text: str, ms: float) -> None:
        store.record_call(ctx, call_key, self.agent, tool, args, outcome, data, text, ms)
        AGENT_TOOL_CALLS.labels(agent=self.agent, tool=tool, outcome=outcome).inc()

    def _update(self, ctx: ToolContext, call_key: str, outcome: str, data: dict[str, Any] | None, text: str,
                approved_by: str | None = None, ms: float | None = None,
                args: dict[str, Any] | None = None) -> None:
        tool = store.update_call(ctx, call_key, outcome, data, text, approved_by=approved_by, ms=ms, args=args)
        if tool is not None:
            AGENT_TOOL_CALLS.labels(agent=self.agent, tool=tool, outcome=outcome).inc()
