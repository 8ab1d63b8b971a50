"""Healer nodes: diagnose -> summarize -> act -> (approve) -> verify -> report.

``act`` takes one step of ``tools.auto_intel.self_heal.heal`` inside this run: precondition, per-target
limit, policy engine, then the action. When the policy wants a person to approve it, ``approve`` asks
through the run's toolbox, which records the approval and interrupts the run (checkpointed); a person's
decision resumes it there, in whichever process takes it. ``approve`` is re-run from its start on resume,
so everything before the toolbox call only checks that the action is still wanted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal

from langgraph.types import Command

from agents.healer import prompts
from agents.healer.state import HealerState
from agents.runtime import RunDeps
from tools.auto_intel import self_heal
from tools.auto_intel.playbooks import playbook_names

log = logging.getLogger("levqor.agents.healer")


def step_dict(step: self_heal.HealStep) -> dict[str, Any]:
    """A healing step as the run's state keeps it (checkpointed: plain data)."""
    return {"outcome": step.outcome, "action": step.action, "detail": step.detail, "tool": step.tool,
            "args": step.args}


def nodes(deps: RunDeps) -> dict[str, Callable[..., Any]]:
    def diagnose(state: HealerState) -> Command[Literal["summarize", "report"]]:
        iid = state.get("incident_id")
        if iid is None:
            return Command(goto="report", update={"step": {"outcome": "skipped", "detail": "no incident is due"}})
        res = deps.toolbox.call("incidents.get", {"incident_id": iid}, call_key="diagnose")
        if not res.ok or res.data is None:
            return Command(goto="report", update={"step": {"outcome": "error", "detail": res.message}})
        return Command(goto="summarize", update={"incident": prompts.brief(res.data)})

    def summarize(state: HealerState) -> dict[str, Any]:
        inc = state["incident"]
        template = {"incident_summary": inc.get("summary") or "", "proposal": None}
        if deps.mode != "llm" or deps.model is None or inc.get("state") == "resolved":
            return template
        from langchain_core.messages import HumanMessage, SystemMessage  # kept lazy: start-up time

        allowed = playbook_names()
        try:
            answer = deps.model.invoke([SystemMessage(prompts.SYSTEM), HumanMessage(prompts.ask(inc, allowed))])
            deps.record_llm(answer)
            summary, proposal = prompts.parse(answer.content, allowed)
        except Exception:
            log.warning("LLM summary failed; keeping the template", exc_info=True,
                        extra={"fields": {"run": deps.run_id, "incident": inc.get("id")}})
            return template
        if summary:
            deps.toolbox.call("incidents.summarize", {"incident_id": inc["id"], "summary": summary},
                              call_key="summarize")
        return {"incident_summary": summary or template["incident_summary"], "proposal": proposal}

    def act(state: HealerState) -> Command[Literal["approve", "verify", "report"]]:
        step = step_dict(self_heal.heal(int(state["incident_id"] or 0), prefer=state.get("proposal"),
                                    run_id=deps.run_id))
        if step["outcome"] == "needs_approval":
            return Command(goto="approve", update={"step": step,
                                                   "summary": prompts.awaiting(state["incident"], step)})
        return Command(goto="verify" if step["outcome"] == "acted" else "report", update={"step": step})

    def approve(state: HealerState) -> Command[Literal["verify", "report"]]:
        iid = int(state["incident_id"] or 0)
        step = state["step"]
        moot = self_heal.approval_still_needed(iid, deps.run_id)
        if moot is not None:
            return Command(goto="report", update={"approval": {"outcome": "not needed", "message": moot}})
        # Pauses here (interrupt) until a person decides; resumed, the recorded decision comes back.
        res = deps.toolbox.call(str(step["tool"]), dict(step.get("args") or {}), call_key=f"heal:{iid}",
                                purpose=prompts.purpose(state["incident"], step))
        decided = self_heal.approval_decided(iid, run_id=deps.run_id, outcome=res.outcome, message=res.message,
                                             approval_id=res.approval_id, result=res.data)
        return Command(goto="verify" if decided.outcome == "acted" else "report", update={
            "approval": {"outcome": res.outcome, "approval_id": res.approval_id, "approved_by": res.approved_by,
                         "message": res.message},
            "step": step_dict(decided)})

    def verify(state: HealerState) -> dict[str, Any]:
        # One check at once (a dead-lettered job is dead now); slower symptoms are verified by the
        # monitor's next steps until the playbook's deadline. act=False: this step never acts again.
        step = self_heal.heal(int(state["incident_id"] or 0), run_id=deps.run_id, act=False)
        return {"verified": {"outcome": step.outcome, "detail": step.detail}}

    def report(state: HealerState) -> dict[str, Any]:
        return {"summary": prompts.report(dict(state))}

    return {"diagnose": diagnose, "summarize": summarize, "act": act, "approve": approve, "verify": verify,
            "report": report}
