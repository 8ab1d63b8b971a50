"""The LLM guard (issue 23, llm_outage) against the local fake OpenAI server: one failed call (5xx or a
timeout) opens the endpoint's circuit breaker in the database, so every process's agents go offline
without calling it; a half-open probe closes it once the endpoint answers; an agent that loops is stopped
by its daily cost cap from policy.json; the monitor opens incidents for both. (The scenario is
``levqor chaos run llm_outage``.)"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import openai
import pytest
from langchain_core.messages import HumanMessage
from sqlalchemy import delete, update

from agents.llm import chat_model
from agents.runtime import start_run
from memory.agents.models import AgentRun, LlmBreaker
from memory.db import session_scope, utcnow
from tests.factories.ops import clean_ops
from tests.factories.orgs import OrgFixture
from tests.fakes.openai import Script, Step
from tools.agents import llm_guard
from tools.auto_intel.rules import rule_findings

FAILED_CALL = (openai.APIStatusError, openai.APITimeoutError)
Llm = Callable[[list[Step] | Callable[[dict[str, Any]], Step]], Script]


@pytest.fixture()
def llm(fake_llm: Llm, monkeypatch: pytest.MonkeyPatch) -> Llm:
    monkeypatch.setenv("LEVQOR_LLM_TIMEOUT_S", "0.5")
    return fake_llm


def _breaker() -> LlmBreaker | None:
    with session_scope() as s:
        row = s.get(LlmBreaker, llm_guard.endpoint())
        if row is not None:
            s.expunge(row)
        return row


def _due_for_a_probe() -> None:
    with session_scope() as s:
        s.execute(update(LlmBreaker).where(LlmBreaker.endpoint == llm_guard.endpoint())
                  .values(retry_at=utcnow() - dt.timedelta(seconds=1)))


def _ask(org_id: int, agent: str = "healer") -> Any:
    return chat_model(agent=agent, org_id=org_id).invoke([HumanMessage("status?")])


def _findings(diagnosis: str) -> list[Any]:
    with session_scope() as s:
        return [f for f in rule_findings(s, utcnow(), []) if f.diagnosis == diagnosis]


@pytest.mark.parametrize("outage", [{"status": 503}, {"delay": 3}], ids=["5xx", "timeout"])
def test_one_failed_call_opens_the_breaker_and_a_probe_closes_it(llm: Llm, org: OrgFixture,
                                                                  outage: Step) -> None:
    clean_ops()
    mode = {"down": True}
    script = llm(lambda body: dict(outage) if mode["down"] else {"content": "fine"})
    with pytest.raises(FAILED_CALL) as failed:
        _ask(org.org_id)
    assert llm_guard.is_outage(failed.value)
    b = _breaker()
    assert b is not None and b.state == "open" and b.failures == 1
    asked = len(script.requests)

    # every process reads the same breaker: calls are refused without reaching the endpoint, runs go offline
    with pytest.raises(llm_guard.LlmUnavailable):
        _ask(org.org_id, agent="planner")
    assert len(script.requests) == asked
    assert "circuit breaker open" in llm_guard.offline_now(org.org_id, "janitor")
    run_id = start_run("janitor", org.org_id, "manual")
    with session_scope() as s:
        run = s.get(AgentRun, run_id)
        assert run is not None and run.status == "succeeded"
    assert len(script.requests) == asked, "an offline run called the failing endpoint"
    (inc,) = [f for f in _findings("llm_outage") if f.subject["endpoint"] == llm_guard.endpoint()]
    assert inc.cause == f"llm:{llm_guard.endpoint()}" and inc.evidence["state"] == "open"

    _due_for_a_probe()  # still failing: the probe fails and the breaker opens again at once
    with pytest.raises(FAILED_CALL):
        _ask(org.org_id)
    b = _breaker()
    assert b is not None and b.state == "open" and b.failures == 2 and len(script.requests) == asked + 1

    mode["down"] = False  # the endpoint answers again: one probe goes, closes the breaker, agents return
    _due_for_a_probe()
    assert llm_guard.offline_now(org.org_id, "janitor") == ""
    assert _ask(org.org_id).content == "fine"
    b = _breaker()
    assert b is not None and b.state == "closed" and b.failures == 0
    assert _ask(org.org_id, agent="planner").content == "fine"
    assert not [f for f in _findings("llm_outage") if f.subject["endpoint"] == llm_guard.endpoint()]


def test_a_run_that_meets_the_outage_at_its_first_call_runs_offline(llm: Llm, org: OrgFixture) -> None:
    script = llm(lambda body: {"status": 502})
    run_id = start_run("janitor", org.org_id, "manual")
    with session_scope() as s:
        run = s.get(AgentRun, run_id)
        assert run is not None and run.status == "succeeded" and run.mode == "offline" and run.model is None
    assert len(script.requests) == 1  # the one call that found the endpoint down
    b = _breaker()
    assert b is not None and b.state == "open"


def test_only_one_probe_goes_while_half_open(llm: Llm, org: OrgFixture) -> None:
    llm([{"status": 500}])
    with pytest.raises(FAILED_CALL):
        _ask(org.org_id)
    _due_for_a_probe()
    first = llm_guard.check(org.org_id, "healer")
    second = llm_guard.check(org.org_id, "planner")
    assert first.allowed and first.probe
    assert not second.allowed and "half_open" in second.reason


def test_a_client_error_is_not_an_outage(llm: Llm, org: OrgFixture) -> None:
    llm([{"status": 400}])
    with pytest.raises(FAILED_CALL) as failed:
        _ask(org.org_id)
    assert not llm_guard.is_outage(failed.value)
    b = _breaker()
    assert b is None or b.state == "closed"


def test_daily_cost_cap_stops_a_looping_agent(llm: Llm, org: OrgFixture, caplog: pytest.LogCaptureFixture) -> None:
    """The janitor's model asks for a tool again and again, each answer costing $1.35 (gpt-4o-mini
    prices): the policy's $5 cap (agent:* llm_daily_cost_cap_usd) refuses the fifth call. The stop is
    logged as a warning with its reason, not as a crash with a traceback."""
    clean_ops()
    script = llm(lambda body: {"tool_calls": [{"name": "jobs.list", "args": {}}], "usage": (5_000_000, 1_000_000)})
    with caplog.at_level(logging.INFO, logger="levqor"):
        run_id = start_run("janitor", org.org_id, "manual")
    stops = [r for r in caplog.records if r.getMessage() in ("agent run stopped", "agent run failed")]
    assert [(r.getMessage(), r.levelno, r.exc_info) for r in stops] == [("agent run stopped", logging.WARNING, None)]
    assert "daily LLM cost cap" in stops[0].fields["reason"]  # type: ignore[attr-defined]
    with session_scope() as s:
        run = s.get(AgentRun, run_id)
        assert run is not None and run.status == "failed" and "daily LLM cost cap" in (run.error or "")
        assert run.cost_micro_usd == 4 * 1_350_000
    assert len(script.requests) == 4
    assert "daily LLM cost cap" in llm_guard.offline_now(org.org_id, "janitor")
    assert llm_guard.offline_now(org.org_id, "planner") == ""  # per agent: the others still call the model
    (inc,) = [f for f in _findings("llm_cost_cap") if f.org_id == org.org_id]
    assert inc.cause == f"llm_cost:{org.org_id}:janitor" and inc.evidence["cap_micro_usd"] == 5_000_000
    # the next run of the runaway agent goes offline (no call), and succeeds
    again = start_run("janitor", org.org_id, "manual")
    with session_scope() as s:
        run = s.get(AgentRun, again)
        assert run is not None and run.status == "succeeded"
    assert len(script.requests) == 4


@pytest.fixture(autouse=True)
def _no_breakers() -> Any:
    yield
    with session_scope() as s:
        s.execute(delete(LlmBreaker).where(LlmBreaker.endpoint == llm_guard.endpoint()))
