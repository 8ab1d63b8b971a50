"""The advisor and planner as agents of the runtime: chat over the agent chat API (offline mode) and a
planner run, with every tool call policy-checked as the agent."""

from __future__ import annotations

import json
import re

from tests.factories.pulse import seeded_org
from tests.fakes.openai import FakeOpenAI, Script


def _events(text: str) -> list[tuple[str, dict[str, object]]]:
    out = []
    for block in text.strip().split("\n\n"):
        name = re.search(r"^event: (.*)$", block, re.M)
        data = re.search(r"^data: (.*)$", block, re.M)
        if name and data:
            out.append((name.group(1), json.loads(data.group(1))))
    return out


def test_advisor_chat_through_the_agent_chat_api(client) -> None:
    org = seeded_org()
    r = client.post("/v1/agents/advisor/chat", json={"message": "What if Pro goes from $29 to $35?"},
                    headers=org.headers())
    assert r.status_code == 200, r.text
    ev = _events(r.text)
    names = [n for n, _ in ev]
    assert names[-1] == "done", ev[-1]
    call = next(d for n, d in ev if n == "tool_call")
    assert call["tool"] == "decision.simulate_price"
    result = next(d for n, d in ev if n == "tool_result")
    assert result["outcome"] == "ok"
    text = "".join(str(d["text"]) for n, d in ev if n == "token")
    assert "Simulation: pro price 29.00 -> 35.00 USD" in text
    p50 = result["data"]["outcomes"]["revenue_cents"]["p50"]  # type: ignore[index]
    assert f"${p50 / 100:,.2f}" in text
    done = ev[-1][1]
    thread = client.get(f"/v1/agents/advisor/threads/{done['thread_id']}", headers=org.headers())
    assert thread.status_code == 200
    msgs = thread.json()["messages"]
    assert msgs[-1]["role"] == "assistant" and "Simulation" in msgs[-1]["content"]
    # Second turn in the same thread.
    r2 = client.post("/v1/agents/advisor/chat", json={"message": "Write me a poem",
                                                      "thread_id": done["thread_id"]}, headers=org.headers())
    text2 = "".join(str(d["text"]) for n, d in _events(r2.text) if n == "token")
    assert "outside what I can answer" in text2


def _ask(client, org, message: str, thread_id: object = None) -> tuple[list[tuple[str, dict[str, object]]], str]:
    r = client.post("/v1/agents/advisor/chat", json={"message": message, "thread_id": thread_id},
                    headers=org.headers())
    assert r.status_code == 200, r.text
    ev = _events(r.text)
    return ev, "".join(str(d["text"]) for n, d in ev if n == "token")


def test_offline_advisor_remembers_the_thread_for_follow_ups(client) -> None:
    org = seeded_org()
    ev, _ = _ask(client, org, "How has revenue changed over the last 30 days?")
    thread = ev[-1][1]["thread_id"]
    # "and spend?" alone is outside every question type; in the thread it is the same trend for spend.
    ev, text = _ask(client, org, "and spend?", thread)
    calls = [d for n, d in ev if n == "tool_call"]
    assert [(c["tool"], c["args"]) for c in calls] == [("pulse.history", {"kpi": "spend", "days": 30})]
    assert "spend" in text.lower()
    ev, _ = _ask(client, org, "what about the last 7 days?", thread)
    assert [d["args"] for n, d in ev if n == "tool_call"] == [{"kpi": "spend", "days": 7}]
    ev, text = _ask(client, org, "What if Pro goes from $29 to $35?", thread)
    ev, text = _ask(client, org, "and at $39?", thread)
    call = next(d for n, d in ev if n == "tool_call")
    assert call["tool"] == "decision.simulate_price" and call["args"]["new_price_cents"] == 3900
    assert "29.00 -> 39.00" in text
    # A new thread has no memory: the same follow-up is a question back there, not a guess.
    _, text = _ask(client, org, "and spend?")
    assert "not sure what you are asking" in text


def test_planner_agent_run_proposes_suggestions() -> None:
    from agents.runtime import start_run
    from memory.agents.repository import AgentRepository
    from memory.db import session_scope
    from memory.pulse.repository import PulseRepository

    org = seeded_org()
    run_id = start_run("planner", org.org_id, "manual", requested_by="test")
    with session_scope() as s:
        run = AgentRepository(s).run(run_id)
        assert run is not None and run.status == "succeeded", (run.status if run else None, run.error if run else "")
        assert run.summary and "new suggestions" in run.summary
        tools = [c.tool for c in AgentRepository(s).tool_calls(run_id)]
        assert tools == ["pulse.targets", "planner.run"]
        assert PulseRepository(s).suggestions(org.org_id)
    from policies.engine import get_engine
    from tools.registry import registry

    denied = get_engine().evaluate("agent:planner", "agent", registry.get("suggestions.decide"), {})
    assert denied.outcome == "deny"  # the planner proposes; only people decide


def test_advisor_llm_mode_plans_tool_use_against_a_fake_server(client, monkeypatch) -> None:

    org = seeded_org()

    def step(body: dict[str, object]) -> dict[str, object]:
        msgs = body["messages"]  # type: ignore[index]
        tool_msgs = [m for m in msgs if m.get("role") == "tool"]  # type: ignore[union-attr]
        if not tool_msgs:
            return {"content": None, "tool_calls": [{"name": "decision__simulate_price", "args": {
                "plan": "pro", "current_price_cents": 2900, "new_price_cents": 3500}}]}
        result = json.loads(tool_msgs[-1]["content"])  # type: ignore[index]
        p50 = result["outcomes"]["revenue_cents"]["p50"]
        return {"content": f"Median 30-day revenue would be ${p50 / 100:,.2f} (decision.simulate_price)."}

    script = Script(step)
    with FakeOpenAI(script) as url:
        monkeypatch.setenv("OPENAI_BASE_URL", url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-fake")
        monkeypatch.setenv("LEVQOR_LLM_MAX_RETRIES", "0")
        r = client.post("/v1/agents/advisor/chat", json={"message": "What if Pro goes from $29 to $35?"},
                        headers=org.headers())
    assert r.status_code == 200, r.text
    ev = _events(r.text)
    assert ev[-1][0] == "done" and ev[-1][1]["mode"] == "llm"
    call = next(d for n, d in ev if n == "tool_call")
    assert call["tool"] == "decision.simulate_price"
    assert next(d for n, d in ev if n == "tool_result")["outcome"] == "ok"
    offered = {t["function"]["name"] for t in script.requests[0]["tools"]}
    assert "decision__simulate_price" in offered and "pulse__targets" in offered
    assert "suggestions__decide" not in offered and "costs__import_csv" not in offered  # policy: read only
    text = "".join(str(d["text"]) for n, d in ev if n == "token")
    assert text.startswith("Median 30-day revenue would be $")
