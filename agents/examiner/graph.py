"""The examiner graph: scan -> propose -> resolve (approved by a person) -> report; offline or LLM marks."""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph

from agents.examiner import nodes
from agents.examiner.state import ExaminerState
from agents.runtime import AgentDef, RunDeps, register_agent


def build(deps: RunDeps) -> StateGraph[Any]:
    g: StateGraph[Any] = StateGraph(ExaminerState)
    for name, fn in nodes.nodes(deps).items():
        g.add_node(name, fn)
    g.add_edge(START, "scan")
    g.add_edge("report", END)
    return g


def initial_state(deps: RunDeps, run_input: dict[str, Any]) -> dict[str, Any]:
    return {"org_id": deps.org_id, "trigger": str(run_input.get("event") or "run"), "items": [], "flagged": [],
            "outcomes": []}


AGENT = register_agent(AgentDef(
    name="examiner",  # described in tools/agents/catalog.py
    build=build, initial_state=initial_state,
))
