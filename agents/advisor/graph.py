"""The advisor agent: chat about the business with numbers from tools.

Offline, :mod:`tools.decision_engine.advisor` understands a documented set of question types and calls
the tools through this run's toolbox (policy-checked as ``agent:advisor``, recorded). With an LLM the
runtime's chat loop plans tool use freely over the same tools. A manual run answers ``input.question``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph

from agents.runtime import AgentDef, ChatEvent, RunDeps, register_agent
from tools.decision_engine.advisor import ToolCaller, answer
from tools.errors import BadRequest

SYSTEM_PROMPT = (
    "You are Levqor's business advisor. Answer questions about KPIs, targets, trends, costs, incidents and "
    "what-ifs (pricing, partner share, new partners, LLM model or schedule changes). Use the tools: every "
    "number you give must come from a tool result in this conversation turn; never estimate one yourself. "
    "Name the tool calls you relied on and state simulation assumptions and intervals (p10/p50/p90)."
)


class AdvisorState(TypedDict, total=False):
    question: str
    answer: str
    in_scope: bool
    declined: bool  # not answered (out of scope, or a question back): the run ends "declined"
    summary: str


def toolbox_caller(deps: RunDeps) -> ToolCaller:
    """Tool calls through the run's toolbox; a refused or failed call becomes an error the answer names."""

    def call(name: str, args: dict[str, Any]) -> dict[str, Any]:
        res = deps.toolbox.call(name, dict(args))
        if not res.ok or res.data is None:
            raise BadRequest(f"{name} {res.outcome}: {res.message}")
        return res.data

    return call


def build(deps: RunDeps) -> StateGraph[Any]:
    def respond(state: AdvisorState) -> dict[str, Any]:
        out = answer(None, state.get("question", ""), caller=toolbox_caller(deps))
        return {"answer": out.answer, "in_scope": out.in_scope, "declined": out.declined is not None,
                "summary": out.answer[:2000]}

    g: StateGraph[Any] = StateGraph(AdvisorState)
    g.add_node("respond", respond)
    g.add_edge(START, "respond")
    g.add_edge("respond", END)
    return g


def initial_state(deps: RunDeps, run_input: dict[str, Any]) -> dict[str, Any]:
    return {"question": str(run_input.get("question") or "Are we meeting our targets?")}


def offline_chat(deps: RunDeps, message: str) -> Iterator[ChatEvent]:
    """Answer one chat message offline, showing each tool call and its result; a follow-up question
    ("and spend?", "what about the last 7 days?") is read with the thread's earlier questions."""
    earlier = [content for role, content in deps.history if role == "user"]
    out = answer(None, message, caller=toolbox_caller(deps), earlier=earlier)
    for c in out.tool_calls:
        yield ChatEvent("tool_call", {"tool": c.tool, "args": c.args})
        yield ChatEvent("tool_result", {"tool": c.tool, "outcome": "error" if c.error else "ok",
                                        "summary": c.error or "", "data": c.result})
    for word in out.answer.split(" "):
        yield ChatEvent("token", {"text": word + " "})
    if out.declined is not None:
        yield ChatEvent("outcome", {"status": "declined", "reason": out.declined})


AGENT = register_agent(AgentDef(
    name="advisor",  # described in tools/agents/catalog.py
    build=build, initial_state=initial_state, offline_chat=offline_chat, system_prompt=SYSTEM_PROMPT,
))
