"""The healer on the agent runtime: runs, approvals that pause and resume it, a crash in between, the LLM path.

The policy here asks a person to approve the healer's destructive actions (``jobs.dead_letter``,
``workers.restart``); the shipped policy allows them, so each test writes its own copy.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.factories.agents import agent_run
from tests.factories.jobs import make_job, make_pipeline
from tests.factories.ops import clean_ops, dead_worker, incident
from tests.factories.orgs import OrgFixture, make_org
from tests.factories.settings import override_settings
from tests.support import ROOT, wait_for
from tests.support.database import TEST_DB_URL, TMP


@pytest.fixture()
def approval_policy(tmp_path: Path) -> Iterator[Path]:
    from policies.engine import reset_engine

    doc = json.loads((ROOT / "policies" / "policy.json").read_text())
    doc["actors"]["agent:healer"]["needs_approval"] = ["risk:financial", "jobs.dead_letter", "workers.restart"]
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(doc, indent=2))
    with override_settings(policy_path=str(path)):
        reset_engine()
        try:
            yield path
        finally:
            reset_engine()
    reset_engine()


# ---- helpers -------------------------------------------------------------------------------------

def _poison_incident(org: OrgFixture) -> tuple[int, int]:
    """A failed job suspected of crashing workers, and its incident (the playbook dead-letters it)."""
    from memory.db import session_scope, utcnow
    from tools.auto_intel.findings import Finding
    from tools.auto_intel.lifecycle import open_or_update

    clean_ops()
    pid = make_pipeline(org.org_id)
    jid = make_job(org.org_id, pid, "failed", attempts=3, max_attempts=3, last_error="worker lost")
    with session_scope() as s:
        inc, _ = open_or_update(s, Finding(cause=f"job:{jid}", fingerprint=f"rule:poison_job:{jid}", kind="rule",
                                           diagnosis="poison_job", title=f"Job {jid} lost its worker 3 times",
                                           severity="high", subject={"job_id": jid}, org_id=org.org_id),
                                utcnow())
        return inc.id, jid


def _timeline(iid: int) -> list[str]:
    from memory.db import session_scope
    from memory.ops.repository import IncidentRepository

    with session_scope() as s:
        return [e.message for e in IncidentRepository(s).events(iid)]


def _job_state(jid: int) -> str:
    from memory.db import session_scope
    from memory.jobs.models import Job

    with session_scope() as s:
        job = s.get(Job, jid)
        assert job is not None
        return job.state



def _healer_runs(iid: int) -> list[Any]:
    from memory.agents.models import AgentRun
    from memory.db import session_scope

    with session_scope() as s:
        rows = [r for r in s.scalars(select(AgentRun).where(AgentRun.agent == "healer").order_by(AgentRun.id))
                if (r.input or {}).get("incident_id") == iid]
        for r in rows:
            s.expunge(r)
        return rows


def _approval(run_id: int) -> Any:
    from memory.agents.models import AgentApproval
    from memory.db import session_scope

    with session_scope() as s:
        rows = list(s.scalars(select(AgentApproval).where(AgentApproval.run_id == run_id)))
        assert len(rows) == 1, rows
        s.expunge(rows[0])
        return rows[0]


def _pause(org: OrgFixture, trigger: str = "event") -> tuple[int, int, int, Any]:
    """Open a poison-job incident and run the healer until it pauses on the dead-letter approval."""
    from agents.healer.graph import run_healer

    iid, jid = _poison_incident(org)
    out = run_healer(iid, trigger=trigger)
    assert out["step"]["outcome"] == "needs_approval", out
    run_id = out["run_id"]
    return iid, jid, run_id, _approval(run_id)


def _assert_paused(iid: int, jid: int, run_id: int, ap: Any) -> None:
    run = agent_run(run_id)
    assert run.agent == "healer" and run.status == "waiting_approval"
    assert ap.status == "pending" and ap.tool == "jobs.dead_letter" and ap.args == {"job_id": jid}
    # The request names the incident, the playbook and the call.
    assert f"incident #{iid}" in ap.reason and "dead_letter_poison_job" in ap.reason
    assert f'{{"job_id": {jid}}}' in ap.reason
    assert _job_state(jid) == "failed"  # nothing done before a person decides
    inc = incident(iid)
    assert inc.state == "open" and not inc.manual and inc.heal_pending["awaiting_approval"]
    assert any("awaiting approval" in m and f"healer run {run_id}" in m for m in _timeline(iid))


# ---- tests ---------------------------------------------------------------------------------------

@pytest.mark.usefixtures("approval_policy")
def test_approval_pauses_the_run_then_approve_executes_verifies_and_resolves(client, org: OrgFixture) -> None:
    from agents.healer.graph import run_healer

    iid, jid, run_id, ap = _pause(org)
    _assert_paused(iid, jid, run_id, ap)
    assert agent_run(run_id).trigger == "event" and agent_run(run_id).mode == "offline"
    # While it waits, the monitor's steps neither act again nor start another run.
    again = run_healer(iid)
    assert (again["step"]["outcome"], again["step"]["detail"]) == ("waiting", "awaiting approval")
    assert [r.id for r in _healer_runs(iid)] == [run_id]

    listed = client.get("/v1/agents/runs", params={"agent": "healer"}, headers=org.headers("viewer"))
    assert listed.status_code == 200
    item = next(i for i in listed.json()["items"] if i["id"] == run_id)
    assert item["status"] == "waiting_approval" and item["trigger"] == "event"
    assert f"incident #{iid}" in item["summary"]
    pending = client.get("/v1/approvals", params={"status": "pending"}, headers=org.headers())
    assert ap.id in [a["id"] for a in pending.json()["items"]]
    page = client.get("/agents", headers=org.headers("viewer"))
    assert page.status_code == 200 and f"#{run_id}" in page.text and "healer" in page.text
    assert "Pending approvals" in page.text and f"Healer, incident #{iid}" in page.text

    r = client.post(f"/v1/approvals/{ap.id}/approve", json={"note": "it is poison"}, headers=org.headers())
    assert r.status_code == 200, r.text
    approver = r.json()["decided_by"]
    run = agent_run(run_id)
    assert run.status == "succeeded", run.error
    assert _job_state(jid) == "dead"
    inc = incident(iid)
    assert inc.state == "resolved" and not inc.manual and inc.resolved_by == "agent:healer"
    assert inc.heal_attempts == 1 and inc.heal_pending is None
    timeline = _timeline(iid)
    assert any(m.startswith(f"dead_letter_poison_job: acted (approved by {approver}, approval {ap.id}")
               for m in timeline), timeline
    assert "dead_letter_poison_job: verified" in timeline
    assert "approved by" in (run.summary or "") and "resolved" in (run.summary or "")

    detail = client.get(f"/v1/agents/runs/{run_id}", headers=org.headers()).json()
    call = next(c for c in detail["tool_calls"] if c["tool"] == "jobs.dead_letter")
    assert call["outcome"] == "approved" and call["approved_by"] == approver
    from memory.audit.models import AuditEntry
    from memory.db import session_scope

    with session_scope() as s:
        executed = s.scalars(select(AuditEntry).where(AuditEntry.action == "jobs.dead_lettered",
                                                      AuditEntry.target == f"job:{jid}")).all()
        heal_audit = [e for e in s.scalars(select(AuditEntry).where(AuditEntry.action == "ops.self_heal",
                                                                    AuditEntry.target == f"incident:{iid}"))]
    # The approved call ran as a system call naming the approval, not as the agent.
    assert [e.actor for e in executed] == [f"system:approval-{ap.id}"]
    assert heal_audit and heal_audit[-1].detail["approved_by"] == approver


@pytest.mark.usefixtures("approval_policy")
def test_rejected_approval_escalates_to_a_person(client, org: OrgFixture) -> None:
    iid, jid, run_id, ap = _pause(org, trigger="schedule")
    r = client.post(f"/v1/approvals/{ap.id}/reject", json={"note": "not this job"}, headers=org.headers())
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    run = agent_run(run_id)
    assert run.status == "succeeded" and run.trigger == "schedule" and "rejected" in (run.summary or "")
    assert _job_state(jid) == "failed"
    inc = incident(iid)
    assert inc.manual and inc.state != "resolved" and inc.heal_pending is None and inc.heal_attempts == 0
    timeline = _timeline(iid)
    assert any(m.startswith("dead_letter_poison_job: rejected (by ") and "not this job" in m for m in timeline)
    assert any(m.startswith("escalated to a person: jobs.dead_letter was rejected") for m in timeline)
    from agents.healer.graph import run_healer

    assert run_healer(iid)["step"]["outcome"] == "skipped"  # with a person now: the healer leaves it


@pytest.mark.usefixtures("approval_policy")
def test_expired_approval_escalates(org: OrgFixture) -> None:
    import datetime as dt

    from sqlalchemy import update

    from agents.runtime import expire_approvals
    from memory.agents.models import AgentApproval
    from memory.db import session_scope

    iid, jid, run_id, ap = _pause(org)
    with session_scope() as s:
        s.execute(update(AgentApproval).where(AgentApproval.id == ap.id).values(
            expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
    assert expire_approvals() >= 1
    assert agent_run(run_id).status == "succeeded" and _job_state(jid) == "failed"
    assert incident(iid).manual
    assert any(m.startswith("dead_letter_poison_job: expired (by system:expiry") for m in _timeline(iid))


@pytest.mark.usefixtures("approval_policy")
def test_symptom_gone_while_waiting_resolves_and_a_late_approval_does_nothing(client, org: OrgFixture) -> None:
    from agents.healer.graph import run_healer
    from memory.db import session_scope
    from memory.jobs.models import Job

    iid, jid, run_id, ap = _pause(org)
    with session_scope() as s:
        job = s.get(Job, jid)
        assert job is not None
        job.state = "succeeded"  # the job came right by itself
    assert run_healer(iid)["step"]["outcome"] == "healed"
    assert incident(iid).state == "resolved"
    r = client.post(f"/v1/approvals/{ap.id}/approve", headers=org.headers())
    assert r.status_code == 200
    run = agent_run(run_id)
    assert run.status == "succeeded" and "resolved" in (run.summary or "")
    assert _job_state(jid) == "succeeded"  # the late approval did not dead-letter it


CRASH = """
import json, os, signal, sys
from agents.healer.graph import run_healer
out = run_healer(int(sys.argv[1]), trigger="event")
print(json.dumps({"run_id": out.get("run_id"), "step": out.get("step")}), flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # crash between the pause and the approval
"""


def test_a_crash_between_pause_and_approval_resumes_from_the_checkpoint(client, org: OrgFixture,
                                                                       approval_policy: Path) -> None:
    from agents.runtime import reset_checkpointers

    iid, jid = _poison_incident(org)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEVQOR_", "OPENAI_"))}
    env.update({"LEVQOR_VAR_DIR": str(TMP), "LEVQOR_DATABASE_URL": TEST_DB_URL, "LEVQOR_LOG_JSON": "true",
                "LEVQOR_POLICY_PATH": str(approval_policy), "LEVQOR_AGENT_SCHEDULES": "{}"})
    proc = subprocess.run([sys.executable, "-c", CRASH, str(iid)], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["step"]["outcome"] == "needs_approval"
    run_id = out["run_id"]
    ap = _approval(run_id)
    _assert_paused(iid, jid, run_id, ap)
    # This process never ran it: fresh checkpointer connections, the run state only in the checkpoint store.
    reset_checkpointers()
    r = client.post(f"/v1/approvals/{ap.id}/approve", headers=org.headers())
    assert r.status_code == 200, r.text
    run = agent_run(run_id)
    assert run.status == "succeeded", run.error
    assert _job_state(jid) == "dead" and incident(iid).state == "resolved"
    # Resumed, not restarted: one diagnosis call, recorded by the first process, and one approval.
    from memory.agents.models import AgentToolCall
    from memory.db import session_scope

    with session_scope() as s:
        tools = list(s.scalars(select(AgentToolCall.tool).where(AgentToolCall.run_id == run_id)
                               .order_by(AgentToolCall.id)))
    assert tools == ["incidents.get", "jobs.dead_letter"]
    assert [r.id for r in _healer_runs(iid)] == [run_id]


@pytest.mark.usefixtures("approval_policy")
def test_llm_summary_and_proposal_then_approval(client, org: OrgFixture, fake_llm) -> None:  # type: ignore[no-untyped-def]
    script = fake_llm([{"content": json.dumps({
        "summary": "A job keeps killing the workers that run it; moving it to the dead-letter list.",
        "playbook": "dead_letter_poison_job"}), "usage": (300, 40)}])
    iid, jid, run_id, ap = _pause(org)
    _assert_paused(iid, jid, run_id, ap)
    run = agent_run(run_id)
    assert run.mode == "llm" and run.tokens_in == 300 and run.tokens_out == 40 and run.cost_micro_usd > 0
    assert len(script.requests) == 1 and "allowed_playbooks" in json.dumps(script.requests[0])
    assert incident(iid).summary.startswith("A job keeps killing")
    r = client.post(f"/v1/approvals/{ap.id}/approve", headers=org.headers())
    assert r.status_code == 200, r.text
    assert agent_run(run_id).status == "succeeded"
    assert _job_state(jid) == "dead" and incident(iid).state == "resolved"
    assert len(script.requests) == 1  # resumed from the checkpoint: the model is not asked again


@pytest.mark.usefixtures("approval_policy")
def test_llm_proposal_outside_the_playbooks_is_dropped_and_policy_still_applies(org: OrgFixture,
                                                                              fake_llm) -> None:  # type: ignore[no-untyped-def]
    fake_llm([{"content": json.dumps({"summary": "Poison job.", "playbook": "purge_everything"})}])
    iid, jid, run_id, ap = _pause(org)
    from agents.runtime import run_values

    values = run_values(run_id)
    assert values["proposal"] is None and values["step"]["action"] == "dead_letter_poison_job"
    assert ap.tool == "jobs.dead_letter" and _job_state(jid) == "failed"


@pytest.mark.usefixtures("approval_policy")
def test_platform_incident_runs_in_the_staff_organisation(client, org: OrgFixture) -> None:
    """A dead worker (no organisation): the staff organisation owns the run and decides its approval."""
    from agents.healer.graph import run_healer
    from memory.db import session_scope, utcnow
    from memory.jobs.models import Worker
    from tools.auto_intel.rules import rule_findings

    other = make_org()
    clean_ops()
    wid = dead_worker("heal-approve")
    try:
        with override_settings(staff_orgs=[org.slug]):
            from tools.auto_intel.lifecycle import open_or_update

            with session_scope() as s:
                found = [f for f in rule_findings(s, utcnow(), []) if f.cause == f"worker:{wid}"]
                assert [f.diagnosis for f in found] == ["worker_dead"] and found[0].org_id is None
                iid = open_or_update(s, found[0], utcnow())[0].id
            out = run_healer(iid)
            assert out["step"]["outcome"] == "needs_approval"
            run_id = out["run_id"]
            assert agent_run(run_id).org_id == org.org_id
            ap = _approval(run_id)
            assert ap.tool == "workers.restart" and ap.args == {"worker_id": wid}
            mine = client.get("/v1/agents/runs", params={"agent": "healer"}, headers=org.headers()).json()
            theirs = client.get("/v1/agents/runs", params={"agent": "healer"}, headers=other.headers()).json()
            assert run_id in [i["id"] for i in mine["items"]]
            assert run_id not in [i["id"] for i in theirs["items"]]
            assert client.post(f"/v1/approvals/{ap.id}/approve", headers=other.headers()).status_code == 404
            r = client.post(f"/v1/approvals/{ap.id}/approve", headers=org.headers())
            assert r.status_code == 200, r.text
            assert agent_run(run_id).status == "succeeded"
            inc = incident(iid)
            assert inc.state == "resolved", _timeline(iid)
            with session_scope() as s:
                w = s.get(Worker, wid)
                assert w is None or w.command == "restart"
    finally:
        with session_scope() as s:
            s.execute(Worker.__table__.delete().where(Worker.id == wid))


def test_without_approval_the_healer_run_acts_and_the_monitor_flow_still_heals(client, org: OrgFixture) -> None:
    """Shipped policy: a poison job is dead-lettered in one run (trigger event) with no person."""
    from workers.dispatcher import dispatch_pending

    iid, jid = _poison_incident(org)

    def healed() -> bool:
        dispatch_pending()
        return incident(iid).state == "resolved"

    wait_for(healed, 30, what="the event-triggered healer run")
    runs = _healer_runs(iid)
    assert runs and runs[0].trigger == "event" and runs[0].status == "succeeded"
    assert _job_state(jid) == "dead"
    assert "verified" in (runs[0].summary or "").lower() or "resolved" in (runs[0].summary or "")


def test_chat_with_the_platform_healer_is_refused(client, org: OrgFixture) -> None:
    r = client.post("/v1/agents/healer/chat", json={"message": "restart every worker"}, headers=org.headers())
    assert r.status_code == 422 and "does not chat" in r.json()["detail"]


def test_manual_run_heals_the_organisations_oldest_due_incident(client, org: OrgFixture) -> None:

    iid, jid = _poison_incident(org)
    other = make_org()
    r = client.post("/v1/agents/healer/runs", headers=other.headers())
    assert r.status_code == 202, r.text
    idle = wait_for(lambda: (run := agent_run(r.json()["id"])).status == "succeeded" and run, 30, what="the idle run")
    assert "No incident of this organisation is due" in (idle.summary or "")
    assert incident(iid).state == "open"  # another organisation's run never touches this incident

    r = client.post("/v1/agents/healer/runs", headers=org.headers())
    assert r.status_code == 202, r.text
    run = wait_for(lambda: (run := agent_run(r.json()["id"])).status == "succeeded" and run, 30, what="the manual run")
    assert run.trigger == "manual" and run.requested_by and f"#{iid} (poison job" in (run.summary or "")
    assert incident(iid).state == "resolved" and _job_state(jid) == "dead"


@pytest.mark.usefixtures("approval_policy")
def test_a_run_that_died_while_waiting_hands_the_incident_to_a_person(org: OrgFixture) -> None:
    from agents.healer.graph import run_healer
    from memory.agents.repository import AgentRepository
    from memory.db import session_scope

    iid, jid, run_id, _ap = _pause(org)
    with session_scope() as s:  # what the runtime's sweep does to a run whose process vanished
        AgentRepository(s).set_status(run_id, "failed", error="abandoned", finished=True)
    step = run_healer(iid)["step"]
    assert (step["outcome"], step["detail"]) == ("escalated", "approval run ended")
    assert incident(iid).manual and _job_state(jid) == "failed"
