"""Chat with an agent: answer the last message of a thread as a stream of events, and store the answer.

Offline, the agent's own ``offline_chat`` answers from templates and tools; with an LLM, the model
plans tool use over the agent's toolbox for up to ``MAX_CHAT_TURNS`` turns. A chat cannot wait for a
person: a call that needs approval is refused in a chat (the toolbox is not interruptible).
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator
from typing import Any

from agents.runtime.definitions import ChatEvent, RunDeps, get_agent, run_deps
from agents.runtime.toolbox import summary
from levqor.metrics import AGENT_RUNS
from tools.agents import runs as store
from tools.errors import NotFound
from tools.registry import ToolRegistry

log = logging.getLogger("levqor.agents")

MAX_CHAT_TURNS = 8


def chat_stream(run_id: int, thread_id: int, reg: ToolRegistry | None = None) -> Iterator[ChatEvent]:
    """Answer the thread's last user message as events; store the answer; the history feeds the model."""
    claimed, run = store.claim_run(run_id, "queued")
    if not claimed or run is None:
        yield ChatEvent("error", {"detail": f"run {run_id} is not waiting to start"})
        return
    history = store.thread_history(thread_id)
    agent = get_agent(run.agent)
    if agent.platform:
        yield ChatEvent("error", {"detail": f"agent {agent.name} acts on the whole platform and does not chat"})
        store.end_run(run_id, "failed", error="platform agents do not chat")
        return
    deps = run_deps(run, reg, interruptible=False)
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    steps = 0
    status = "succeeded"
    try:
        if deps.mode == "offline" or deps.model is None:
            if agent.offline_chat is None:
                raise NotFound(f"agent {agent.name} has no offline chat", field="agent")
            user = next((c for r, c in reversed(history) if r == "user"), "")
            deps.history = history[:-1] if history and history[-1] == ("user", user) else history
            for ev in agent.offline_chat(deps, user):
                if ev.event == "outcome":  # the agent declined the question: the run says so, not "succeeded"
                    status = str(ev.data.get("status") or "succeeded")
                    continue
                if ev.event == "token":
                    text.append(str(ev.data.get("text", "")))
                elif ev.event == "tool_call":
                    calls.append(ev.data)
                yield ev
            steps = 1
        else:
            steps = yield from _llm_turns(deps, agent.system_prompt, history, text, calls)
        answer = "".join(text).strip()
        message_id = store.save_answer(run_id, thread_id, answer, calls, steps, status=status)
        AGENT_RUNS.labels(agent=run.agent, trigger="chat", status=status).inc()
        yield ChatEvent("done", {"thread_id": thread_id, "run_id": run_id, "message_id": message_id,
                                 "mode": deps.mode})
    except Exception as exc:
        log.exception("chat failed", extra={"fields": {"run": run_id}})
        store.end_run(run_id, "failed", error=f"{type(exc).__name__}: {exc}")
        AGENT_RUNS.labels(agent=run.agent, trigger="chat", status="failed").inc()
        yield ChatEvent("error", {"detail": "the agent could not answer; the error was logged", "run_id": run_id})


def _llm_turns(deps: RunDeps, system_prompt: str, history: list[tuple[str, str]], text: list[str],
               calls: list[dict[str, Any]]) -> Generator[ChatEvent, None, int]:
    """The model's turns: stream its tokens, run the tool calls it asks for, feed back the results.

    Appends the answer's pieces to ``text`` and the tool calls to ``calls``; returns the turns taken."""
    # kept lazy: start-up time (the API imports the runtime; only LLM mode needs LangChain's messages)
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

    assert deps.model is not None
    msgs: list[Any] = [SystemMessage(system_prompt)]
    for role, content in history:
        msgs.append(HumanMessage(content) if role == "user" else AIMessage(content))
    bound = deps.model.bind_tools(deps.toolbox.langchain_tools())
    steps = 0
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
                                            "summary": res.message or summary(res.data)})
            msgs.append(ToolMessage(content=res.for_model(), tool_call_id=tc["id"] or "", name=tc["name"]))
    return steps
