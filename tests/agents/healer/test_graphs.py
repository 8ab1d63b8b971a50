"""The monitor and healer graphs: offline (templates, the diagnosis' playbook) and with an LLM."""

from __future__ import annotations

import json

import pytest

from memory.db import session_scope, utcnow
from tests.factories.jobs import ago, make_job, make_pipeline
from tests.factories.ops import clean_ops
from tests.factories.orgs import OrgFixture
from tools.auto_intel.findings import Finding
from tools.auto_intel.lifecycle import open_or_update


def test_monitor_graph_offline_detects_and_heals_expired_leases(org: OrgFixture,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from memory.jobs.models import Job
    from memory.ops.repository import IncidentRepository

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    from agents.monitor.graph import run_monitor

    clean_ops()
    pid = make_pipeline(org.org_id)
    jid = make_job(org.org_id, pid, "running", attempts=1, max_attempts=3, lease_owner="ghost:mon",
                   lease_until=ago(20))
    out = run_monitor()
    assert out["error"] is None and out["sampled"] > 0 and out["opened"]
    with session_scope() as s:
        assert s.get(Job, jid).state == "queued"  # type: ignore[union-attr]
        inc = IncidentRepository(s).open_for_cause("queue:leases")
        healed = [h for h in out["healed"] if h.get("action") == "requeue_expired"]
        assert healed and (inc is None or inc.heal_pending)
        # The template summary stays (offline): no LLM note in the timeline.
        iid = healed[0]["incident_id"]
        events = IncidentRepository(s).events(iid)
        assert not [e for e in events if e.kind == "note"]


def _failing_pipeline_incident(org: OrgFixture) -> tuple[int, int]:
    """A pipeline with a failed, retryable job and an open failure-rate incident about it (nothing else open)."""
    clean_ops()
    pid = make_pipeline(org.org_id)
    make_job(org.org_id, pid, "failed", retryable=True, last_error="timeout")
    with session_scope() as s:
        inc, _ = open_or_update(s, Finding(cause=f"pipeline:{pid}", fingerprint="rule:failure_rate", kind="rule",
                                           diagnosis="failure_rate", title="failing", subject={"pipeline_id": pid},
                                           org_id=org.org_id), utcnow())
        return pid, inc.id


def test_healer_llm_writes_the_summary_and_its_proposal_still_goes_through_policy(
        org: OrgFixture, fake_llm) -> None:  # type: ignore[no-untyped-def]
    from memory.jobs.models import Pipeline
    from memory.ops.models import Incident

    pid, iid = _failing_pipeline_incident(org)
    script = fake_llm([{"content": json.dumps({
        "summary": "Pipeline keeps failing on timeouts; pausing it until the endpoint recovers.",
        "playbook": "pause_pipeline"})}])
    from agents.healer.graph import run_healer

    out = run_healer(iid)
    assert out["proposal"] == "pause_pipeline" and out["step"]["action"] == "pause_pipeline"
    assert script.requests and "allowed_playbooks" in json.dumps(script.requests[0])
    with session_scope() as s:
        assert s.get(Pipeline, pid).paused  # type: ignore[union-attr]
        assert s.get(Incident, iid).summary.startswith("Pipeline keeps failing")  # type: ignore[union-attr]
    from sqlalchemy import select

    from memory.policy.models import PolicyDecision

    with session_scope() as s:
        d = s.scalars(select(PolicyDecision.decision).where(PolicyDecision.actor == "agent:healer",
                                                            PolicyDecision.tool == "queues.pause")).all()
    assert d and d[-1] == "allow"


def test_healer_ignores_an_unknown_playbook_from_the_llm(org: OrgFixture, fake_llm) -> None:  # type: ignore[no-untyped-def]

    pid, iid = _failing_pipeline_incident(org)
    fake_llm([{"content": json.dumps({"summary": "x", "playbook": "delete_everything"})}])
    from agents.healer.graph import run_healer

    out = run_healer(iid)
    assert out["proposal"] is None and out["step"]["action"] == "retry_transient_failures"
