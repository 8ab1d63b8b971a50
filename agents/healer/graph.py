"""The healer graph: diagnose -> summarize -> act (one healing step), for one incident.

Offline, the summary is the incident's template and the playbook is the diagnosis' own. With an LLM
configured, the model writes a plain-language summary and may propose one of the known playbooks; the
proposal goes through the same precondition, per-target limit, policy engine and verification.
No checkpointer: each run is one short step and the incident row holds the healing state.
"""

from __future__ import annotations

import json
import logging
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph

from agents import llm as llm_backend

log = logging.getLogger("levqor.agents.healer")

SYSTEM = (
    "You are Levqor's on-call healer. Given an incident as JSON and the playbooks you may choose, answer with "
    'one JSON object {"summary": "<two or three plain sentences for an operator: what broke, the evidence, '
    'what will be done>", "playbook": "<one of the allowed names, or null>"} and nothing else.'
)


class HealerState(TypedDict, total=False):
    incident_id: int
    incident: dict[str, Any]
    summary: str
    proposal: str | None
    step: dict[str, Any]


def diagnose(state: HealerState) -> dict[str, Any]:
    from tools.auto_intel.self_heal import invoke_as_healer

    inc = invoke_as_healer("incidents.get", {"incident_id": state["incident_id"]})
    return {"incident": inc}


def summarize(state: HealerState) -> dict[str, Any]:
    from tools.auto_intel.self_heal import invoke_as_healer, playbook_names

    inc = state["incident"]
    if not llm_backend.is_online() or inc["state"] == "resolved":
        return {"summary": inc["summary"], "proposal": None}
    from langchain_core.messages import HumanMessage, SystemMessage

    allowed = playbook_names()
    brief = {k: inc[k] for k in ("title", "diagnosis", "severity", "subject", "signals", "occurrences")}
    brief["timeline"] = [f"{e['kind']}: {e['message']}" for e in inc["timeline"][-10:]]
    try:
        answer = llm_backend.chat_model().invoke([
            SystemMessage(SYSTEM),
            HumanMessage(json.dumps({"incident": brief, "allowed_playbooks": allowed}, default=str))])
        text = str(answer.content).strip().removeprefix("```json").removeprefix("```").removesuffix("```")
        data = json.loads(text)
        summary = str(data.get("summary") or "").strip()[:4000]
        proposal = data.get("playbook")
        proposal = proposal if isinstance(proposal, str) and proposal in allowed else None
    except Exception:
        log.warning("LLM summary failed; keeping the template", exc_info=True)
        return {"summary": inc["summary"], "proposal": None}
    if summary:
        invoke_as_healer("incidents.summarize", {"incident_id": inc["id"], "summary": summary})
    return {"summary": summary or inc["summary"], "proposal": proposal}


def act(state: HealerState) -> dict[str, Any]:
    from tools.auto_intel.self_heal import heal

    step = heal(state["incident_id"], prefer=state.get("proposal"))
    return {"step": {"outcome": step.outcome, "action": step.action, "detail": step.detail}}


def build() -> Any:
    g: StateGraph[Any] = StateGraph(HealerState)
    g.add_node("diagnose", diagnose)
    g.add_node("summarize", summarize)
    g.add_node("act", act)
    g.add_edge(START, "diagnose")
    g.add_edge("diagnose", "summarize")
    g.add_edge("summarize", "act")
    g.add_edge("act", END)
    return g.compile()


_graph: Any = None


def run_healer(incident_id: int) -> HealerState:
    """Run the healer graph once for ``incident_id``."""
    global _graph
    if _graph is None:
        _graph = build()
    out: HealerState = _graph.invoke({"incident_id": incident_id})
    return out
