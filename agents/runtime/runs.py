"""Agent runs: queue, execute until they end or pause, resume after an approval, and the sweep.

A run is claimed before it executes (one process wins), its graph state is checkpointed, and a run
paused on an approval is resumed with ``Command(resume=...)`` by whichever process claims the decided
approval first. The edges start the work the tools only record: a run queued by ``agents.run`` or an
approval decided by ``approvals.approve`` is executed or resumed once the edge's transaction has
committed (:func:`execute_after_commit`, :func:`resume_after_commit`), in the process that took it.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from sqlalchemy.orm import Session

from agents.runtime.definitions import get_agent, run_deps
from levqor.metrics import AGENT_RUNS
from levqor.settings import get_settings
from memory.agents.checkpointer import checkpointer
from tools.agents import llm_guard
from tools.agents import runs as store
from tools.agents.runs import RunInfo
from tools.events.service import after_commit
from tools.registry import ToolRegistry

log = logging.getLogger("levqor.agents")

ABANDONED_AFTER_S = 1800


def create_run(session: Session, agent: str, org_id: int, trigger: str, *, input: dict[str, Any] | None = None,
               requested_by: str | None = None) -> RunInfo:
    """Add a queued run row in the caller's transaction (it is executed after commit)."""
    get_agent(agent)
    return RunInfo.of(store.add_run(session, agent, org_id, trigger, input=input, requested_by=requested_by))


def start_run(agent: str, org_id: int, trigger: str, *, input: dict[str, Any] | None = None,
              requested_by: str | None = None, reg: ToolRegistry | None = None) -> int:
    """Create a run and execute it now in this process; return its id."""
    get_agent(agent)
    run_id = store.open_run(agent, org_id, trigger, input=input, requested_by=requested_by)
    execute_run(run_id, reg=reg)
    return run_id


def execute_run(run_id: int, *, resume: dict[str, Any] | None = None, reg: ToolRegistry | None = None) -> str:
    """Run (or resume) run ``run_id`` until it ends or pauses; return its new status."""
    from langgraph.types import Command  # kept lazy: start-up time (the API imports the runtime)

    claimed, run = store.claim_run(run_id, "waiting_approval" if resume is not None else "queued")
    if not claimed or run is None:
        return run.status if run else "missing"
    agent = get_agent(run.agent)
    deps = run_deps(run, reg)
    config: dict[str, Any] = {"configurable": {"thread_id": run.thread_id},
                              "recursion_limit": get_settings().agent_recursion_limit}
    graph = agent.build(deps).compile(checkpointer=checkpointer())
    inp: Any = Command(resume=resume) if resume is not None else agent.initial_state(deps, dict(run.input))
    steps = 0
    paused = False
    try:
        try:
            for chunk in graph.stream(inp, config, stream_mode="updates"):
                if "__interrupt__" in chunk:
                    paused = True
                else:
                    steps += 1
        except Exception as exc:
            # The LLM failed (or was refused) before the run did anything: it runs offline instead, at once.
            if deps.mode != "llm" or resume is not None or steps or not _llm_unavailable(exc):
                raise
            log.warning("LLM unavailable at the run's first call; running it offline",
                        extra={"fields": {"run": run_id, "agent": run.agent, "error": f"{type(exc).__name__}"}})
            store.go_offline(run_id)
            deps = run_deps(dataclasses.replace(run, mode="offline", model=None), reg)
            graph = agent.build(deps).compile(checkpointer=checkpointer())
            for chunk in graph.stream(agent.initial_state(deps, dict(run.input)), config, stream_mode="updates"):
                if "__interrupt__" in chunk:
                    paused = True
                else:
                    steps += 1
        values = graph.get_state(config).values
        # A graph may end its run as declined (the advisor, asked something outside what it answers).
        status = "waiting_approval" if paused else ("declined" if values.get("declined") else "succeeded")
        store.end_run(run_id, status, steps=steps, summary=str(values.get("summary") or "") or None,
                      finished=not paused)
    except Exception as exc:
        if isinstance(exc, llm_guard.LlmUnavailable):  # a guardrail stopped it (cost cap): the reason, no traceback
            log.warning("agent run stopped", extra={"fields": {"run": run_id, "agent": run.agent, "reason": str(exc)}})
        else:
            log.exception("agent run failed", extra={"fields": {"run": run_id, "agent": run.agent}})
        status = "failed"
        store.end_run(run_id, "failed", steps=steps, error=f"{type(exc).__name__}: {exc}")
    AGENT_RUNS.labels(agent=run.agent, trigger=run.trigger, status=status).inc()
    log.info("agent run", extra={"fields": {"run": run_id, "agent": run.agent, "status": status,
                                            "steps": steps}})
    return status


def _llm_unavailable(exc: BaseException) -> bool:
    return isinstance(exc, llm_guard.LlmUnavailable) or llm_guard.is_outage(exc)


def run_values(run_id: int, reg: ToolRegistry | None = None) -> dict[str, Any]:
    """The run's graph state at its last checkpoint (what its nodes produced so far); {} if none."""
    run = store.run_info(run_id)
    if run is None:
        return {}
    graph = get_agent(run.agent).build(run_deps(run, reg)).compile(checkpointer=checkpointer())
    return dict(graph.get_state({"configurable": {"thread_id": run.thread_id}}).values)


# ---- approvals --------------------------------------------------------------------------------

def resume_approval(approval_id: int, reg: ToolRegistry | None = None) -> str | None:
    """Resume the run paused on a decided approval, once across all processes; return its status."""
    claimed = store.claim_resume(approval_id)
    if claimed is None:
        return None
    return execute_run(claimed.run_id, reg=reg,
                       resume={"approval_id": approval_id, "status": claimed.status, "by": claimed.decided_by})


def expire_approvals(reg: ToolRegistry | None = None) -> int:
    """Expire pending approvals past their time (they count as rejected, audited) and resume their runs."""
    expired = store.expire_due()
    for ap_id in expired:
        resume_approval(ap_id, reg)
    return len(expired)


def sweep(reg: ToolRegistry | None = None) -> None:
    """Scheduler housekeeping: expire approvals, resume decided ones nobody resumed, run stuck queued runs."""
    expire_approvals(reg)
    stale_approvals, queued = store.stale_work(idle_s=60, abandoned_s=ABANDONED_AFTER_S)
    for ap_id in stale_approvals:
        resume_approval(ap_id, reg)
    for run_id in queued:
        execute_run(run_id, reg=reg)


# ---- after the edge's commit ------------------------------------------------------------------

def execute_after_commit(session: Session, run_id: int) -> None:
    """Execute the run queued in ``session``'s transaction once it has ended (the sweep catches a crash)."""
    after_commit(session, lambda: _quietly(execute_run, run_id))


def resume_after_commit(session: Session, approval_id: int) -> None:
    """Resume the run paused on the approval decided in ``session``'s transaction once it has committed."""
    after_commit(session, lambda: _quietly(resume_approval, approval_id))


def _quietly(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except Exception:
        log.exception("agent work after commit failed", extra={"fields": {"fn": fn.__name__, "args": args}})
