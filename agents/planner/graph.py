"""The planner agent: evaluate KPI targets, then propose suggestions for those missed or at risk.

Offline (and for now also with an LLM) it runs the deterministic planner through the ``planner.run``
tool, policy-checked as ``agent:planner``; the pulse scheduler also runs it weekly.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph

from agents.runtime import AgentDef, ChatEvent, RunDeps, register_agent

SYSTEM_PROMPT = ("You are Levqor's planner. Read the KPI targets, find what is missed or at risk and why, "
                 "and propose roadmap adjustments with evidence, the simulator's expected effect and a confidence.")


class PlannerState(TypedDict, total=False):
    findings: list[dict[str, Any]]
    suggestions: list[int]
    summary: str


def build(deps: RunDeps) -> StateGraph[Any]:
    def evaluate(state: PlannerState) -> dict[str, Any]:
        res = deps.toolbox.call("pulse.targets", {}, call_key="targets")
        items = (res.data or {}).get("items", []) if res.ok else []
        return {"findings": [i for i in items if i.get("status") in ("missed", "at_risk")]}

    def propose(state: PlannerState) -> dict[str, Any]:
        if not state.get("findings"):
            return {"suggestions": [], "summary": "every KPI target is met; nothing to propose"}
        res = deps.toolbox.call("planner.run", {}, call_key="plan")
        if not res.ok or res.data is None:
            return {"suggestions": [], "summary": f"planner.run {res.outcome}: {res.message}"}
        made = [s["id"] for s in res.data.get("suggestions", [])]
        kpis = ", ".join(f["kpi"] for f in res.data.get("findings", []))
        return {"suggestions": made, "summary": f"{len(made)} new suggestions for {kpis}"}

    g: StateGraph[Any] = StateGraph(PlannerState)
    g.add_node("evaluate", evaluate)
    g.add_node("propose", propose)
    g.add_edge(START, "evaluate")
    g.add_edge("evaluate", "propose")
    g.add_edge("propose", END)
    return g


def initial_state(deps: RunDeps, run_input: dict[str, Any]) -> dict[str, Any]:
    return {"findings": [], "suggestions": []}


def offline_chat(deps: RunDeps, message: str) -> Iterator[ChatEvent]:
    """List the open suggestions (the planner does not converse offline)."""
    yield ChatEvent("tool_call", {"tool": "suggestions.list", "args": {"status": "proposed"}})
    res = deps.toolbox.call("suggestions.list", {"status": "proposed"})
    items = (res.data or {}).get("items", []) if res.ok else []
    yield ChatEvent("tool_result", {"tool": "suggestions.list", "outcome": res.outcome,
                                    "summary": res.message or f"{len(items)} open suggestions"})
    text = "Open suggestions: " + "; ".join(f"#{s['id']} {s['title']}" for s in items) if items else \
        "There are no open suggestions."
    for word in text.split(" "):
        yield ChatEvent("token", {"text": word + " "})


AGENT = register_agent(AgentDef(
    name="planner",  # described in tools/agents/catalog.py
    build=build, initial_state=initial_state, offline_chat=offline_chat, system_prompt=SYSTEM_PROMPT,
))
