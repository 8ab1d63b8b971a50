"""Agent runtime: policy-bound tools, recorded calls, runs, the janitor offline, approvals, triggers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from memory.agents.models import AgentApproval, AgentRun, AgentToolCall
from memory.audit.models import AuditEntry
from memory.db import session_scope
from tests.factories.agents import agent_run
from tests.factories.orgs import OrgFixture
from tests.fakes import jobs_tools as fj
from tools.registry import registry


def _calls(run_id: int) -> list[AgentToolCall]:
    with session_scope() as s:
        rows = list(s.scalars(select(AgentToolCall).where(AgentToolCall.run_id == run_id)
                              .order_by(AgentToolCall.id)))
        for r in rows:
            s.expunge(r)
        return rows


def _audit(action: str, org_id: int | None = None) -> list[AuditEntry]:
    with session_scope() as s:
        stmt = select(AuditEntry).where(AuditEntry.action == action)
        if org_id is not None:
            stmt = stmt.where(AuditEntry.org_id == org_id)
        rows = list(s.scalars(stmt.order_by(AuditEntry.seq)))
        for r in rows:
            s.expunge(r)
        return rows


def _approvals(run_id: int) -> list[AgentApproval]:
    with session_scope() as s:
        rows = list(s.scalars(select(AgentApproval).where(AgentApproval.run_id == run_id)))
        for r in rows:
            s.expunge(r)
        return rows


def _metric(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


# ---- tools offered to an agent -------------------------------------------------------------------

@pytest.mark.usefixtures("fake_jobs")
def test_janitor_is_offered_only_what_its_policy_allows() -> None:
    from agents.runtime import Toolbox, llm_name, offered_tools

    offered = offered_tools("janitor")
    assert {n: o for n, (_s, o) in offered.items()} == {
        "jobs.list": "allow", "jobs.get": "allow", "jobs.retry": "allow", "jobs.retry_failed": "needs_approval",
        "agents.recent_calls": "allow"}
    box = Toolbox("janitor", 1, 0)
    tools = {t.name: t for t in box.langchain_tools()}
    assert set(tools) == {llm_name(n) for n in offered} and "approvals__approve" not in tools
    retry = tools["jobs__retry"]
    assert retry.description == registry.get("jobs.retry").description
    assert retry.args_schema is registry.get("jobs.retry").input_model
    assert "approve" in tools["jobs__retry_failed"].description


@pytest.mark.usefixtures("fake_jobs")
def test_unoffered_tool_is_refused_recorded_audited_and_counted(org: OrgFixture) -> None:
    from agents.runtime import Toolbox, create_run
    from memory.db import session_scope

    with session_scope() as s:
        run_id = create_run(s, "janitor", org.org_id, "manual").id
    before = _metric("levqor_agent_tool_calls_total", agent="janitor", tool="approvals.approve", outcome="refused")
    box = Toolbox("janitor", org.org_id, run_id)
    res = box.call("approvals__approve", {"approval_id": 1}, call_key="k1")
    assert res.outcome == "refused" and not res.ok
    calls = _calls(run_id)
    assert [(c.tool, c.outcome, c.args) for c in calls] == [("approvals.approve", "refused", {"approval_id": 1})]
    refused = [e for e in _audit("agent.tool_refused", org.org_id) if e.detail and e.detail["run_id"] == run_id]
    assert refused and refused[0].actor == "agent:janitor" and refused[0].outcome == "denied"
    after = _metric("levqor_agent_tool_calls_total", agent="janitor", tool="approvals.approve", outcome="refused")
    assert after == before + 1
    # A replay of the same call (a resumed node) gets the recorded answer, not a second call.
    assert box.call("approvals__approve", {"approval_id": 1}, call_key="k1").outcome == "refused"
    assert len(_calls(run_id)) == 1


@pytest.mark.usefixtures("fake_jobs")
def test_args_over_the_policy_limit_are_denied_and_audited(org: OrgFixture) -> None:
    from agents.runtime import Toolbox, create_run

    with session_scope() as s:
        run_id = create_run(s, "janitor", org.org_id, "manual").id
    res = Toolbox("janitor", org.org_id, run_id).call("jobs.retry_failed", {"limit": 500}, call_key="big")
    assert res.outcome == "denied" and "limit" in res.message
    denied = [e for e in _audit("policy.denied", org.org_id) if e.target == "jobs.retry_failed"]
    assert denied and denied[-1].actor == "agent:janitor" and denied[-1].detail["args"]["limit"] == 500
    assert _approvals(run_id) == []


@pytest.mark.usefixtures("fake_jobs")
def test_rate_limit_on_retries_is_enforced(org: OrgFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    from agents.runtime import Toolbox, create_run
    from policies import engine as pe

    doc = pe.get_engine().doc.model_copy(deep=True)
    doc.actors["agent:janitor"].rate_limits[0].max = 2
    monkeypatch.setattr(pe, "_engine", pe.PolicyEngine(doc))
    ids = [fj.add_job(org.org_id) for _ in range(3)]
    with session_scope() as s:
        run_id = create_run(s, "janitor", org.org_id, "manual").id
    box = Toolbox("janitor", org.org_id, run_id)
    outcomes = [box.call("jobs.retry", {"job_id": i}, call_key=f"r{i}").outcome for i in ids]
    assert outcomes == ["ok", "ok", "denied"]
    assert fj.job(ids[2])["state"] == "failed"
    assert any("rate limit" in (e.detail or {}).get("reason", "") for e in _audit("policy.denied", org.org_id))


# ---- the janitor, offline ------------------------------------------------------------------------

@pytest.mark.usefixtures("fake_jobs")
def test_janitor_retries_retryable_failed_jobs(org: OrgFixture) -> None:
    from agents.runtime import start_run

    retryable = [fj.add_job(org.org_id) for _ in range(3)]
    permanent = fj.add_job(org.org_id, retryable=False, last_error="ValueError: bad input")
    ok_job = fj.add_job(org.org_id, state="succeeded")
    other_org = fj.add_job(org.org_id + 10_000)
    run_id = start_run("janitor", org.org_id, "manual")
    run = agent_run(run_id)
    assert run.status == "succeeded" and run.mode == "offline" and run.trigger == "manual"
    assert run.steps == 3 and run.tools_called == 5 and run.finished_at is not None
    assert all(fj.job(i)["state"] == "queued" and fj.job(i)["retried_by"] == "agent:janitor" for i in retryable)
    assert fj.job(permanent)["state"] == "failed" and fj.job(ok_job)["state"] == "succeeded"
    assert fj.job(other_org)["state"] == "failed"
    assert "Retried 3" in (run.summary or "")
    calls = _calls(run_id)
    assert [c.tool for c in calls] == ["jobs.list", "agents.recent_calls", "jobs.retry", "jobs.retry", "jobs.retry"]
    assert all(c.outcome == "ok" and c.duration_ms >= 0 for c in calls)
    assert calls[0].result_summary == "4 items" and calls[2].args == {"job_id": retryable[-1]}


@pytest.mark.usefixtures("fake_jobs")
def test_janitor_leaves_a_flapping_job_for_a_person(org: OrgFixture) -> None:
    """Each retry gives a job fresh attempts: after two retries in an hour the janitor stops."""
    from agents.runtime import start_run

    flapping = fj.add_job(org.org_id)
    for n in range(3):
        fj.set_state(flapping, "failed")
        run = agent_run(start_run("janitor", org.org_id, "event"))
        assert run.status == "succeeded"
        assert fj.job(flapping)["state"] == ("queued" if n < 2 else "failed"), n
    assert "retried 2 times in the last hour" in (run.summary or "")
    assert [c.tool for c in _calls(run.id)] == ["jobs.list", "agents.recent_calls"]


@pytest.mark.usefixtures("fake_jobs")
def test_janitor_with_nothing_to_do(org: OrgFixture) -> None:
    from agents.runtime import start_run

    fj.add_job(org.org_id, retryable=False)
    run = agent_run(start_run("janitor", org.org_id, "manual"))
    assert run.status == "succeeded" and "nothing to do" in (run.summary or "")


def test_janitor_nodes_against_a_test_only_registry(tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
                                                    org: OrgFixture) -> None:
    """The nodes work with any registry carrying the jobs tools (here one the test builds)."""
    from agents.runtime import start_run

    monkeypatch.setenv("LEVQOR_FAKE_JOBS", str(tmp_path / "jobs.json"))
    fj.reset()
    fj.clear_agent_decisions()
    reg = fj.fake_registry()
    ids = [fj.add_job(org.org_id) for _ in range(2)]
    run = agent_run(start_run("janitor", org.org_id, "manual", reg=reg))
    assert run.status == "succeeded"
    assert [fj.job(i)["state"] for i in ids] == ["queued", "queued"]


def _batch_run(org: OrgFixture, n: int = 8) -> tuple[int, list[int], AgentApproval]:
    from agents.runtime import start_run

    ids = [fj.add_job(org.org_id) for _ in range(n)]
    run_id = start_run("janitor", org.org_id, "schedule")
    run = agent_run(run_id)
    assert run.status == "waiting_approval", run.error
    aps = _approvals(run_id)
    assert len(aps) == 1 and aps[0].status == "pending" and aps[0].tool == "jobs.retry_failed"
    assert aps[0].args == {"limit": n, "pipeline_id": None}
    assert all(fj.job(i)["state"] == "failed" for i in ids)  # nothing retried before approval
    return run_id, ids, aps[0]


@pytest.mark.usefixtures("fake_jobs")
def test_batch_over_threshold_waits_for_approval_then_resumes(client, org: OrgFixture) -> None:
    run_id, ids, ap = _batch_run(org)
    listed = client.get("/v1/approvals", params={"status": "pending"}, headers=org.headers("viewer"))
    assert listed.status_code == 200 and [a["id"] for a in listed.json()["items"]] == [ap.id]
    assert client.post(f"/v1/approvals/{ap.id}/approve", headers=org.headers("viewer")).status_code == 403
    r = client.post(f"/v1/approvals/{ap.id}/approve", json={"note": "ok, go"}, headers=org.headers())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "approved" and body["decided_by"].startswith("api_key:")
    run = agent_run(run_id)
    assert run.status == "succeeded", run.error
    assert all(fj.job(i)["state"] == "queued" for i in ids)
    # Executed as a system call naming the approval, not as the agent.
    assert {fj.job(i)["retried_by"] for i in ids} == {f"system:approval-{ap.id}"}
    assert "approved by api_key:" in (run.summary or "")
    calls = _calls(run_id)
    batch = next(c for c in calls if c.tool == "jobs.retry_failed")
    assert batch.outcome == "approved" and batch.approved_by == body["decided_by"]
    assert [e.detail["approval_id"] for e in _audit("agent.approval_requested", org.org_id)][-1] == ap.id
    executed = [e for e in _audit("agent.approved_call", org.org_id) if e.detail["approval_id"] == ap.id]
    assert executed and executed[0].detail["approved_by"] == body["decided_by"]
    again = client.post(f"/v1/approvals/{ap.id}/approve", headers=org.headers())
    assert again.status_code == 409


@pytest.mark.usefixtures("fake_jobs")
def test_rejected_batch_retries_nothing(client, org: OrgFixture) -> None:
    run_id, ids, ap = _batch_run(org, 6)
    r = client.post(f"/v1/approvals/{ap.id}/reject", json={"note": "not now"}, headers=org.headers())
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    run = agent_run(run_id)
    assert run.status == "succeeded" and "rejected" in (run.summary or "")
    assert all(fj.job(i)["state"] == "failed" for i in ids)
    assert any(e.target == f"approval:{ap.id}" for e in _audit("approvals.rejected", org.org_id))


@pytest.mark.usefixtures("fake_jobs")
def test_edited_args_are_checked_against_the_policy(client, org: OrgFixture) -> None:
    run_id, ids, ap = _batch_run(org, 7)
    over = client.post(f"/v1/approvals/{ap.id}/approve", json={"args": {"limit": 51}}, headers=org.headers())
    assert over.status_code == 422 and over.json()["field"] == "args"
    bad = client.post(f"/v1/approvals/{ap.id}/approve", json={"args": {"limit": "x"}}, headers=org.headers())
    assert bad.status_code == 422 and bad.json()["field"] == "args.limit"
    r = client.post(f"/v1/approvals/{ap.id}/approve", json={"args": {"limit": 3}}, headers=org.headers())
    assert r.status_code == 200 and r.json()["edited_args"] == {"limit": 3, "pipeline_id": None}
    assert agent_run(run_id).status == "succeeded"
    assert sum(fj.job(i)["state"] == "queued" for i in ids) == 3


@pytest.mark.usefixtures("fake_jobs")
def test_agent_or_system_can_never_decide_an_approval(org: OrgFixture) -> None:
    from tools.context import Principal, ToolContext
    from tools.errors import Forbidden

    run_id, _ids, ap = _batch_run(org, 6)
    for principal in (Principal(kind="agent", id="janitor", org_id=org.org_id, role="admin"),
                      Principal(kind="system", id="cli", org_id=org.org_id, role="admin")):
        with pytest.raises(Forbidden):
            with session_scope() as s:
                # Straight to the tool function: even past the policy engine, the tool refuses.
                from tools.agents.service import ApprovalDecision, approve

                approve.run(ToolContext(s, principal), ApprovalDecision(approval_id=ap.id))
    refused = [e for e in _audit("approvals.decision_refused", org.org_id) if e.target == f"approval:{ap.id}"]
    assert {e.actor for e in refused} == {"agent:janitor", "system:cli"}
    assert _approvals(run_id)[0].status == "pending"


@pytest.mark.usefixtures("fake_jobs")
def test_expired_approval_counts_as_rejected_and_is_audited(org: OrgFixture) -> None:
    import datetime as dt

    from sqlalchemy import update

    from agents.runtime import expire_approvals

    run_id, ids, ap = _batch_run(org, 6)
    with session_scope() as s:
        s.execute(update(AgentApproval).where(AgentApproval.id == ap.id).values(
            expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
    assert expire_approvals() >= 1
    row = _approvals(run_id)[0]
    assert row.status == "expired" and row.decided_by == "system:expiry" and row.resumed_at is not None
    run = agent_run(run_id)
    assert run.status == "succeeded" and "expired" in (run.summary or "")
    assert all(fj.job(i)["state"] == "failed" for i in ids)
    assert any(e.detail["approval_id"] == ap.id for e in _audit("agent.approval_expired", org.org_id))


def test_approval_ttl_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from agents.runtime import approval_ttl_s
    from levqor.settings import get_settings

    assert approval_ttl_s() == 86400  # policy.json's approval_ttl_s
    monkeypatch.setenv("LEVQOR_APPROVAL_TTL_S", "120")
    get_settings.cache_clear()
    try:
        assert approval_ttl_s() == 120
    finally:
        monkeypatch.delenv("LEVQOR_APPROVAL_TTL_S")
        get_settings.cache_clear()


# ---- triggers, costs, schedules ------------------------------------------------------------------

@pytest.mark.usefixtures("fake_jobs", "janitor_on_job_failed")
def test_job_failed_event_triggers_the_janitor(org: OrgFixture) -> None:
    from tools.events.service import emit
    from workers.dispatcher import dispatch_pending

    job = fj.add_job(org.org_id)
    with session_scope() as s:
        emit(s, "job_failed", {"job_id": job}, org_id=org.org_id)
    deadline_runs: list[AgentRun] = []
    for _ in range(5):
        dispatch_pending()  # with the janitor's reaction to job_failed (janitor_on_job_failed)
        with session_scope() as s:
            deadline_runs = list(s.scalars(select(AgentRun).where(AgentRun.org_id == org.org_id,
                                                                  AgentRun.trigger == "event")))
            for r in deadline_runs:
                s.expunge(r)
        if deadline_runs and deadline_runs[0].status == "succeeded":
            break
    assert len(deadline_runs) == 1 and deadline_runs[0].status == "succeeded"
    assert deadline_runs[0].input["event"] == "job_failed"
    assert fj.job(job)["state"] == "queued"


def test_llm_usage_goes_to_the_run_and_the_cost_store(org: OrgFixture, client) -> None:
    from agents.runtime import create_run, record_llm_usage
    from levqor.llm import cost_micro_usd

    assert cost_micro_usd("gpt-4o-mini", 1_000_000, 0) == 150_000
    assert cost_micro_usd("gpt-4o-mini-2024-07-18", 1000, 2000) == 150 + 1200
    assert cost_micro_usd("unknown-model", 1000, 1000) == 0
    with session_scope() as s:
        run_id = create_run(s, "janitor", org.org_id, "manual").id
    record_llm_usage(run_id, org.org_id, "janitor", "gpt-4o-mini", 1000, 2000)
    record_llm_usage(run_id, org.org_id, "janitor", "gpt-4o-mini", 1000, 0)
    run = agent_run(run_id)
    assert (run.tokens_in, run.tokens_out, run.cost_micro_usd) == (2000, 2000, 1500)
    costs = client.get("/v1/agents/costs", headers=org.headers("viewer")).json()
    assert costs["items"][0]["calls"] == 2 and costs["items"][0]["tokens_in"] == 2000
    assert costs["total_usd"] == pytest.approx(0.0015)


def test_schedules_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from agents.runtime import parse_schedule, scheduled_jobs
    from levqor.settings import get_settings

    assert parse_schedule("interval:300") == ("interval", 300.0)
    kind, trig = parse_schedule("cron:*/5 * * * *")
    assert kind == "cron" and "*/5" in str(trig)
    with pytest.raises(ValueError):
        parse_schedule("every:5")
    monkeypatch.setenv("LEVQOR_AGENT_SCHEDULES", json.dumps({"janitor": "cron:*/10 * * * *"}))
    get_settings.cache_clear()
    try:
        jobs = {name: (kind, value) for name, kind, value, _fn in scheduled_jobs()}
        assert jobs["agent.janitor"][0] == "cron" and jobs["agents.sweep"] == ("interval", 30.0)
    finally:
        monkeypatch.delenv("LEVQOR_AGENT_SCHEDULES")
        get_settings.cache_clear()


# ---- API and CLI ---------------------------------------------------------------------------------

@pytest.mark.usefixtures("fake_jobs", "janitor_on_job_failed")
def test_agents_api_lists_agents_and_runs(client, org: OrgFixture) -> None:
    r = client.get("/v1/agents", headers=org.headers("viewer"))
    assert r.status_code == 200
    body = r.json()
    assert body["mode"]["mode"] == "offline"
    janitor = next(a for a in body["items"] if a["name"] == "janitor")
    assert janitor["tools"]["jobs.retry_failed"] == "needs_approval" and janitor["events"] == ["job_failed"]
    fj.add_job(org.org_id)
    assert client.post("/v1/agents/janitor/runs", headers=org.headers("viewer")).status_code == 403
    started = client.post("/v1/agents/janitor/runs", headers=org.headers())
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]
    runs = client.get("/v1/agents/runs", params={"agent": "janitor"}, headers=org.headers("viewer")).json()
    assert runs["items"][0]["id"] == run_id and runs["items"][0]["status"] == "succeeded"
    one = client.get(f"/v1/agents/runs/{run_id}", headers=org.headers("viewer")).json()
    assert [c["tool"] for c in one["tool_calls"]] == ["jobs.list", "agents.recent_calls", "jobs.retry"]
    assert client.post("/v1/agents/nobody/runs", headers=org.headers()).status_code == 404
    assert any(e.detail["run_id"] == run_id for e in _audit("agents.run_started", org.org_id))
    metrics = client.get("/metrics").text
    assert 'levqor_agent_tool_calls_total{agent="janitor",outcome="ok",tool="jobs.retry"}' in metrics
    assert 'levqor_agent_runs_total{agent="janitor",status="succeeded",trigger="manual"}' in metrics


@pytest.mark.usefixtures("fake_jobs")
def test_agents_page_shows_runs_and_mode(client, org: OrgFixture) -> None:
    from agents.runtime import start_run

    run_id = start_run("janitor", org.org_id, "manual")
    page = client.get("/agents", headers=org.headers("viewer"))
    assert page.status_code == 200 and "Offline mode" in page.text
    assert f"#{run_id}" in page.text and "janitor" in page.text and "succeeded" in page.text


def _sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        events.append((lines["event"], json.loads(lines["data"])))
    return events


@pytest.mark.usefixtures("fake_jobs")
def test_offline_chat_answers_status_from_templates(client, org: OrgFixture) -> None:
    for _ in range(7):
        fj.add_job(org.org_id)
    fj.add_job(org.org_id, retryable=False)
    r = client.post("/v1/agents/janitor/chat", json={"message": "status?"}, headers=org.headers())
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = _sse(r.text)
    assert [n for n, _d in events][:3] == ["start", "tool_call", "tool_result"] and events[-1][0] == "done"
    answer = "".join(d["text"] for n, d in events if n == "token").strip()
    assert "8 failed job(s); 7 have a retryable error" in answer and "approve one batch" in answer
    thread_id = events[-1][1]["thread_id"]
    assert events[-1][1]["mode"] == "offline"
    r2 = client.post("/v1/agents/janitor/chat", json={"message": "tell me a joke", "thread_id": thread_id},
                     headers=org.headers())
    answer2 = "".join(d["text"] for n, d in _sse(r2.text) if n == "token")
    assert "Offline mode" in answer2 and "status" in answer2
    thread = client.get(f"/v1/agents/janitor/threads/{thread_id}", headers=org.headers()).json()
    assert [m["role"] for m in thread["messages"]] == ["user", "assistant", "user", "assistant"]
    assert thread["messages"][1]["tool_calls"][0]["tool"] == "jobs.list"
    # Nothing was retried by a chat in offline mode.
    assert all(j["state"] == "failed" for j in fj.jobs(org.org_id))
    assert client.post("/v1/agents/janitor/chat", json={"message": "x", "thread_id": 999999},
                       headers=org.headers()).status_code == 404
    assert client.post("/v1/agents/janitor/chat", json={"message": ""}, headers=org.headers()).status_code == 422


@pytest.mark.usefixtures("fake_jobs")
def test_sweep_runs_stuck_queued_runs_and_fails_abandoned_ones(org: OrgFixture) -> None:
    import datetime as dt

    from sqlalchemy import update

    from agents.runtime import create_run, sweep

    job = fj.add_job(org.org_id)
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    with session_scope() as s:
        queued = create_run(s, "janitor", org.org_id, "event").id
        lost = create_run(s, "janitor", org.org_id, "manual").id
        s.execute(update(AgentRun).where(AgentRun.id == queued).values(created_at=old))
        s.execute(update(AgentRun).where(AgentRun.id == lost).values(status="running", started_at=old))
    sweep()
    assert agent_run(lost).status == "failed" and "abandoned" in (agent_run(lost).error or "")
    assert agent_run(queued).status == "succeeded" and fj.job(job)["state"] == "queued"
