"""The planner agent: never proposes again what was proposed, accepted or rejected (and says so), its page
runs are agent runs listed on /agents, and with an LLM configured it adds its reasoning in prose."""

from __future__ import annotations

import re

import pytest

from tests.factories.orgs import page_login
from tests.factories.pulse import seeded_org
from tests.fakes.openai import FakeOpenAI, Script


def _run(org_id: int) -> tuple[str, str, list[int]]:
    from agents.runtime import run_values, start_run
    from memory.agents.repository import AgentRepository
    from memory.db import session_scope

    run_id = start_run("planner", org_id, "manual", requested_by="test")
    with session_scope() as s:
        run = AgentRepository(s).run(run_id)
        assert run is not None and run.status == "succeeded", (run.status, run.error) if run else None
        summary, mode = run.summary or "", run.mode
    return summary, mode, list(run_values(run_id).get("suggestions", []))


def test_a_second_run_does_not_recreate_decided_or_open_suggestions_and_says_so(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from memory.db import session_scope
    from memory.pulse.repository import PulseRepository
    from tests.factories.orgs import org_ctx
    from tools.decision_engine.planner import DecideIn, decide

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    org = seeded_org()
    first, mode, made = _run(org.org_id)
    assert mode == "offline" and made and "new suggestion" in first
    with session_scope() as s:
        ctx = org_ctx(s, org.org_id)
        decide(ctx, DecideIn(suggestion_id=made[0], decision="accepted"))
        if len(made) > 1:
            decide(ctx, DecideIn(suggestion_id=made[1], decision="rejected"))
    second, _mode, again = _run(org.org_id)
    assert again == []
    assert second.startswith("0 new suggestions") and f"{len(made)} not proposed again" in second
    assert "1 accepted" in second and f"#{made[0]} " in second
    if len(made) > 1:
        assert "1 rejected" in second
    with session_scope() as s:
        titles = [(x.kpi, x.title) for x in PulseRepository(s).suggestions(org.org_id)]
    assert len(titles) == len(set(titles)) == len(made)


def test_run_the_planner_now_on_the_page_is_an_agent_run_listed_on_agents(client, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    org = seeded_org()
    assert page_login(client, org.admin_email, org.admin_password).status_code == 303
    page = client.get("/pulse")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = client.post("/pulse/planner", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and "planner_run=" in r.headers["location"]
    shown = client.get(r.headers["location"])
    assert "new suggestion" in shown.text and 'id="planner-run"' in shown.text
    r = client.post("/pulse/planner", data={"csrf_token": token}, follow_redirects=True)
    assert "0 new suggestions" in r.text and "not proposed again (already" in r.text
    runs = client.get("/agents", params={"agent": "planner"})
    assert runs.status_code == 200 and "No runs yet" not in runs.text
    assert runs.text.count("not proposed again") >= 1


def test_with_an_llm_the_planner_adds_its_reasoning(monkeypatch: pytest.MonkeyPatch) -> None:
    org = seeded_org()

    def step(body: dict[str, object]) -> dict[str, object]:
        msgs = body["messages"]  # type: ignore[index]
        asked = str(msgs[-1]["content"])  # type: ignore[index]
        assert "findings" in asked and "new_suggestions" in asked
        return {"content": "Partner revenue slipped because fewer partners joined; act on the partner "
                           "recruitment suggestion first."}

    script = Script(step)
    with FakeOpenAI(script) as url:
        monkeypatch.setenv("OPENAI_BASE_URL", url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-fake")
        monkeypatch.setenv("LEVQOR_LLM_MAX_RETRIES", "0")
        summary, mode, made = _run(org.org_id)
    assert mode == "llm" and made and script.requests
    assert "new suggestion" in summary and "Why: Partner revenue slipped" in summary
