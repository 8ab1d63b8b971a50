"""The janitor against the real jobs runtime's tools (jobs.list, jobs.retry, jobs.retry_failed)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from memory.agents.models import AgentApproval, AgentRun
from memory.audit.models import AuditEntry
from memory.db import session_scope
from memory.jobs.models import Job, Pipeline
from tests.factories.orgs import OrgFixture
from tests.fakes import jobs_tools as agents_fakes


def _jobs(org_id: int, specs: list[tuple[str, bool]]) -> list[int]:
    now = dt.datetime.now(dt.UTC)
    with session_scope() as s:
        p = Pipeline(org_id=org_id, name="nightly import", trigger={"type": "manual"},
                     steps=[{"name": "fetch", "kind": "http", "url": "https://example.com"}])
        s.add(p)
        s.flush()
        jobs = [Job(org_id=org_id, pipeline_id=p.id, state=state, attempts=3, max_attempts=3, retryable=retryable,
                    last_error="ConnectTimeout: upstream" if retryable else "ValueError: bad row",
                    finished_at=now) for state, retryable in specs]
        s.add_all(jobs)
        s.flush()
        return [j.id for j in jobs]


def _states(ids: list[int]) -> list[str]:
    with session_scope() as s:
        return [s.get(Job, i).state for i in ids]  # type: ignore[union-attr]


def test_janitor_retries_real_failed_jobs(org: OrgFixture) -> None:
    from agents.runtime import start_run

    agents_fakes.clear_agent_decisions()
    ids = _jobs(org.org_id, [("failed", True), ("failed", True), ("failed", False), ("succeeded", False)])
    run_id = start_run("janitor", org.org_id, "manual")
    with session_scope() as s:
        run = s.get(AgentRun, run_id)
        assert run is not None and run.status == "succeeded", run.error if run else None
        retried = list(s.scalars(select(AuditEntry.target).where(AuditEntry.action == "jobs.retried",
                                                                 AuditEntry.actor == "agent:janitor",
                                                                 AuditEntry.org_id == org.org_id)))
    assert _states(ids) == ["queued", "queued", "failed", "succeeded"]
    assert sorted(retried) == sorted(f"job:{i}" for i in ids[:2])


def test_janitor_batch_on_real_jobs_needs_approval(client, org: OrgFixture) -> None:
    from agents.runtime import start_run

    agents_fakes.clear_agent_decisions()
    ids = _jobs(org.org_id, [("failed", True)] * 7)
    run_id = start_run("janitor", org.org_id, "schedule")
    with session_scope() as s:
        ap = s.scalar(select(AgentApproval).where(AgentApproval.run_id == run_id))
        assert ap is not None and ap.tool == "jobs.retry_failed" and ap.args["limit"] == 7
        ap_id = ap.id
    assert set(_states(ids)) == {"failed"}
    r = client.post(f"/v1/approvals/{ap_id}/approve", headers=org.headers())
    assert r.status_code == 200, r.text
    assert set(_states(ids)) == {"queued"}
    with session_scope() as s:
        assert s.get(AgentRun, run_id).status == "succeeded"  # type: ignore[union-attr]
        entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "jobs.retried_failed",
                                                  AuditEntry.org_id == org.org_id))
        assert entry is not None and entry.actor == f"system:approval-{ap_id}" and entry.detail["count"] == 7
