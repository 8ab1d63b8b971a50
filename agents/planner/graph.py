"""The planner agent: evaluate KPI targets, propose suggestions for those missed or at risk, explain.

``evaluate`` reads the targets and ``propose`` runs the deterministic planner through the ``planner.run``
tool, policy-checked as ``agent:planner``: a proposal already made for the same KPI (proposed, accepted
or rejected) is not made again, and the run's summary says so. With an LLM configured, ``reason`` asks
the model for the reasoning in prose over those findings and suggestions (its numbers are the tools');
offline, or when the model fails, the summary is the deterministic one. The pulse scheduler also runs
it weekly; "Run the planner now" on /pulse starts a run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph

from agents.planner import prompts
from agents.runtime import AgentDef, ChatEvent, RunDeps, register_agent

log = logging.getLogger("levqor.agents.planner")
SYSTEM_PROMPT = prompts.SYSTEM


class PlannerState(TypedDict, total=False):
    findings: list[dict[str, Any]]
    suggestions: list[int]
    already: list[dict[str, Any]]
    planned: dict[str, Any]
    reasoning: str | None
    summary: str


def build(deps: RunDeps) -> StateGraph[Any]:
    def evaluate(state: PlannerState) -> dict[str, Any]:
        res = deps.toolbox.call("pulse.targets", {}, call_key="targets")
        items = (res.data or {}).get("items", []) if res.ok else []
        return {"findings": [i for i in items if i.get("status") in ("missed", "at_risk")]}

    def propose(state: PlannerState) -> dict[str, Any]:
        if not state.get("findings"):
            return {"suggestions": [], "already": [], "summary": "every KPI target is met; nothing to propose"}
        res = deps.toolbox.call("planner.run", {}, call_key="plan")
        if not res.ok or res.data is None:
            return {"suggestions": [], "already": [], "summary": f"planner.run {res.outcome}: {res.message}"}
        return {"suggestions": [s["id"] for s in res.data.get("suggestions", [])],
                "already": list(res.data.get("already", [])), "planned": res.data,
                "summary": str(res.data.get("summary") or "")}

    def reason(state: PlannerState) -> dict[str, Any]:
        if deps.mode != "llm" or deps.model is None or not state.get("planned"):
            return {"reasoning": None}
        from langchain_core.messages import HumanMessage, SystemMessage  # kept lazy: start-up time

        try:
            answer = deps.model.invoke([SystemMessage(prompts.SYSTEM),
                                        HumanMessage(prompts.ask(state.get("findings", []), state["planned"]))])
            deps.record_llm(answer)
            text = str(answer.content).strip()
        except Exception:
            log.warning("LLM reasoning failed; keeping the deterministic summary", exc_info=True,
                        extra={"fields": {"run": deps.run_id}})
            return {"reasoning": None}
        if not text:
            return {"reasoning": None}
        return {"reasoning": text[:1500], "summary": f"{state.get('summary', '')}\n\nWhy: {text[:1500]}"}

    g: StateGraph[Any] = StateGraph(PlannerState)
    g.add_node("evaluate", evaluate)
    g.add_node("propose", propose)
    g.add_node("reason", reason)
    g.add_edge(START, "evaluate")
    g.add_edge("evaluate", "propose")
    g.add_edge("propose", "reason")
    g.add_edge("reason", END)
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
