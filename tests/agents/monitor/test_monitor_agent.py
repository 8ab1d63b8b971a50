"""The monitor is an agent on the runtime: each tick a run, its tool calls policy-checked, recorded, audited."""

from __future__ import annotations

import pytest

from memory.db import session_scope
from tests.factories.jobs import ago, make_job, make_pipeline
from tests.factories.ops import clean_ops
from tests.factories.orgs import OrgFixture
from tests.factories.settings import override_settings


def test_a_monitor_tick_is_a_run_of_the_platform_owner_with_its_calls_recorded(
        org: OrgFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    from agents.monitor.graph import run_monitor
    from memory.agents.repository import AgentRepository
    from memory.audit.models import AuditEntry

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    clean_ops()
    pid = make_pipeline(org.org_id)
    make_job(org.org_id, pid, "running", attempts=1, max_attempts=3, lease_owner="ghost:mon2",
             lease_until=ago(20))
    with override_settings(staff_orgs=[org.slug]):
        out = run_monitor()
    assert out.get("run_id"), out
    assert out["error"] is None and out["sampled"] > 0 and out["opened"]
    with session_scope() as s:
        repo = AgentRepository(s)
        run = repo.run(out["run_id"], org.org_id)
        assert run is not None and run.agent == "monitor" and run.status == "succeeded"
        assert run.summary and "signals sampled" in run.summary and "incidents opened" in run.summary
        calls = {c.tool: c.outcome for c in repo.tool_calls(run.id)}
        assert calls == {"ops.monitor_tick": "ok", "ops.send_notifications": "ok"}
        audited = s.query(AuditEntry).filter(AuditEntry.actor == "agent:monitor",
                                             AuditEntry.action == "ops.monitor_tick").count()
        assert audited >= 1


def test_the_monitor_policy_entry_is_live() -> None:
    from tools.agents.catalog import offered_tools

    offered = offered_tools("monitor")
    assert offered["ops.monitor_tick"][1] == "allow"
    assert "ops.send_notifications" in offered
    assert "workers.restart" not in offered  # acting on the platform is the healer's, not the monitor's


def test_without_an_owner_organisation_the_monitor_still_ticks(org: OrgFixture) -> None:
    from agents.monitor.graph import run_monitor

    clean_ops()
    with override_settings(staff_orgs=[]):
        out = run_monitor()
    assert "run_id" not in out and out["error"] is None and out["sampled"] > 0
