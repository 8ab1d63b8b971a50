"""The janitor graph, offline (scan -> retry_each | retry_batch -> report) or LLM (model <-> tools)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from langchain_core.messages import HumanMessage
from langgraph.graph import END, START, StateGraph

from agents.janitor import nodes, prompts
from agents.janitor.state import JanitorState
from agents.runtime import AgentDef, ChatEvent, RunDeps, register_agent


def build(deps: RunDeps) -> StateGraph[Any]:
    g: StateGraph[Any] = StateGraph(JanitorState)
    if deps.mode == "llm":
        for name, fn in nodes.llm_nodes(deps).items():
            g.add_node(name, fn)
        g.add_edge(START, "model")
        g.add_edge("finish", END)
    else:
        for name, fn in nodes.offline_nodes(deps).items():
            g.add_node(name, fn)
        g.add_edge(START, "scan")
        g.add_edge("report", END)
    return g


def initial_state(deps: RunDeps, run_input: dict[str, Any]) -> dict[str, Any]:
    pipeline_id = run_input.get("pipeline_id")
    state: dict[str, Any] = {"org_id": deps.org_id, "pipeline_id": pipeline_id,
                             "trigger": str(run_input.get("event") or "run"), "retried": [], "skipped": []}
    if deps.mode == "llm":
        pipe = f", pipeline {pipeline_id}" if pipeline_id is not None else ""
        state["messages"] = [HumanMessage(prompts.TASK.format(org_id=deps.org_id, pipeline=pipe,
                                                              trigger=state["trigger"]))]
    return state


def offline_chat(deps: RunDeps, message: str) -> Iterator[ChatEvent]:
    """Answer "status" (what the janitor would do now) and "help" from templates."""
    text = message.strip().lower()
    if "status" in text or "what would you do" in text or "failed" in text:
        yield ChatEvent("tool_call", {"tool": "jobs.list", "args": {"state": "failed"}})
        failed, retryable, error = nodes.list_failed(deps, None, "chat-status")
        yield ChatEvent("tool_result", {"tool": "jobs.list", "outcome": "error" if error else "ok",
                                        "summary": error or f"{failed} failed, {len(retryable)} retryable"})
        answer = (f"I could not list failed jobs: {error}" if error else
                  prompts.status_answer(failed, retryable, nodes.threshold(), nodes.BATCH_CAP))
    else:
        answer = prompts.OFFLINE_HELP
    for word in answer.split(" "):
        yield ChatEvent("token", {"text": word + " "})


AGENT = register_agent(AgentDef(
    name="janitor",  # described in tools/agents/catalog.py
    build=build, initial_state=initial_state, offline_chat=offline_chat,
    system_prompt=prompts.CHAT_SYSTEM,
))
