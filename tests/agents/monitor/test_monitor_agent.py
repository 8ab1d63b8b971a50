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
        assert calls == {"ops.monitor_tick": "ok", "ops.send_notifications": "ok", "ops.prune_monitor_history": "ok"}
        audited = s.query(AuditEntry).filter(AuditEntry.actor == "agent:monitor",
                                             AuditEntry.action == "ops.monitor_tick").count()
        assert audited >= 1


def test_the_monitor_policy_entry_is_live() -> None:
    from tools.agents.catalog import offered_tools

    offered = offered_tools("monitor")
    assert offered["ops.monitor_tick"][1] == "allow"
    assert "ops.send_notifications" in offered and offered["ops.prune_monitor_history"][1] == "allow"
    assert "workers.restart" not in offered  # acting on the platform is the healer's, not the monitor's


def test_without_an_owner_organisation_the_monitor_still_ticks(org: OrgFixture) -> None:
    from agents.monitor.graph import run_monitor

    clean_ops()
    with override_settings(staff_orgs=[]):
        out = run_monitor()
    assert "run_id" not in out and out["error"] is None and out["sampled"] > 0


def test_a_tick_where_nothing_happened_is_a_heartbeat() -> None:
    from agents.monitor.graph import _summary

    assert _summary({"sampled": 7, "opened": [], "resolved": [], "healed": [{"incident_id": 1}], "notified": 0}) \
        == "heartbeat: 7 signals sampled; nothing opened, resolved, healed or notified"
    for busy in ({"opened": [3]}, {"resolved": [3]}, {"healed": [{"action": "workers.restart"}]}, {"notified": 1}):
        assert not _summary({"sampled": 7, **busy}).startswith("heartbeat:"), busy  # type: ignore[typeddict-item]
    assert _summary({"error": "db down"}).startswith("tick failed")


def test_heartbeat_runs_are_pruned_to_the_newest_few_and_eventful_runs_kept(org: OrgFixture) -> None:
    from agents.monitor.graph import run_monitor
    from agents.runtime import checkpointer
    from memory.agents.models import AgentRun, AgentToolCall
    from memory.agents.repository import AgentRepository
    from tools.agents.runs import end_run, open_run

    def fake_run(summary: str) -> int:
        run_id = open_run("monitor", org.org_id, "schedule")
        end_run(run_id, "succeeded", summary=summary)
        return run_id

    clean_ops()
    with override_settings(staff_orgs=[org.slug], monitor_heartbeats_kept=2):
        first = run_monitor()["run_id"]  # a real run: tool calls and a checkpoint
        with session_scope() as s:
            AgentRepository(s).set_status(first, "succeeded", summary="heartbeat: 5 signals sampled; nothing ...")
            thread = s.get(AgentRun, first).thread_id  # type: ignore[union-attr]
        assert checkpointer().get_tuple({"configurable": {"thread_id": thread}}) is not None
        eventful = fake_run("5 signals sampled; 1 incidents opened, 0 resolved; 0 healing actions; "
                            "1 notifications sent")
        beats = [fake_run("heartbeat: 5 signals sampled; nothing opened, resolved, healed or notified")
                 for _ in range(3)]
        last = run_monitor()["run_id"]
    with session_scope() as s:
        left = {r.id for r in AgentRepository(s).runs(org.org_id, agent="monitor", limit=100)}
        pruned = next(c for c in AgentRepository(s).tool_calls(last) if c.tool == "ops.prune_monitor_history")
        orphan_calls = s.query(AgentToolCall).filter(AgentToolCall.run_id == first).count()
    # The newest two heartbeats stay (the run that pruned was still running), the eventful run stays.
    assert left == {eventful, beats[1], beats[2], last}, left
    assert pruned.outcome == "ok" and pruned.result == {"pruned": 2, "kept": 2}
    assert orphan_calls == 0
    assert checkpointer().get_tuple({"configurable": {"thread_id": thread}}) is None
