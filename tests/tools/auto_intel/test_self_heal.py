"""Self-heal: playbooks through the policy engine as agent:healer, verification, back-off, escalation."""

from __future__ import annotations

import datetime as dt

from tests.factories.jobs import ago, make_job, make_pipeline
from tests.factories.ops import clean_ops, dead_worker, incident
from tests.factories.orgs import OrgFixture
from tests.factories.settings import override_settings
from tests.support import wait_for


def _open(f_kwargs: dict[str, object]) -> int:
    from memory.db import session_scope, utcnow
    from tools.auto_intel.findings import Finding
    from tools.auto_intel.lifecycle import open_or_update

    with session_scope() as s:
        inc, _ = open_or_update(s, Finding(**f_kwargs), utcnow())  # type: ignore[arg-type]
        return inc.id


def _healer_decisions(tool: str) -> list[str]:
    from sqlalchemy import select

    from memory.db import session_scope
    from memory.policy.models import PolicyDecision

    with session_scope() as s:
        return list(s.scalars(select(PolicyDecision.decision).where(PolicyDecision.actor == "agent:healer",
                                                                    PolicyDecision.tool == tool)))


def _audited(action: str, target: str) -> bool:
    from sqlalchemy import select

    from memory.audit.models import AuditEntry
    from memory.db import session_scope

    with session_scope() as s:
        return s.scalar(select(AuditEntry.seq).where(AuditEntry.action == action, AuditEntry.target == target)
                        .limit(1)) is not None


def test_expired_leases_are_requeued_through_policy_verified_and_audited(org: OrgFixture) -> None:
    from memory.db import session_scope, utcnow
    from memory.jobs.models import Job
    from tools.auto_intel.rules import rule_findings
    from tools.auto_intel.self_heal import heal

    clean_ops()
    pid = make_pipeline(org.org_id)
    jid = make_job(org.org_id, pid, "running", attempts=1, max_attempts=3, lease_owner="ghost:1",
                   lease_until=ago(60), started_at=ago(90))
    with session_scope() as s:
        found = [f for f in rule_findings(s, utcnow(), []) if f.diagnosis == "expired_leases"]
    assert found and jid in found[0].subject["job_ids"]
    iid = _open(found[0].__dict__)
    before = len(_healer_decisions("jobs.requeue_expired"))
    step = heal(iid)
    assert step.outcome in ("acted", "healed"), step
    with session_scope() as s:
        assert s.get(Job, jid).state == "queued"  # type: ignore[union-attr]
    if step.outcome == "acted":
        assert heal(iid).outcome == "healed"
    inc = incident(iid)
    assert inc.state == "resolved" and inc.resolved_by == "agent:healer" and not inc.manual  # type: ignore[attr-defined]
    assert _healer_decisions("jobs.requeue_expired")[before:] == ["allow"]
    assert _audited("ops.self_heal", f"incident:{iid}")


def test_dead_worker_is_restarted_and_the_incident_resolves() -> None:
    from memory.db import session_scope, utcnow
    from memory.jobs.models import Worker
    from tools.auto_intel.rules import rule_findings
    from tools.auto_intel.self_heal import heal

    clean_ops()
    wid = dead_worker("dead01")
    try:
        with session_scope() as s:
            found = [f for f in rule_findings(s, utcnow(), []) if f.cause == f"worker:{wid}"]
        assert [f.diagnosis for f in found] == ["worker_dead"]
        iid = _open(found[0].__dict__)
        step = heal(iid)
        assert (step.outcome, step.action) == ("acted", "restart_worker")
        assert heal(iid).outcome == "healed"
        assert incident(iid).state == "resolved"  # type: ignore[attr-defined]
        with session_scope() as s:  # retired: the rule no longer fires for it
            assert not [f for f in rule_findings(s, utcnow(), []) if f.cause == f"worker:{wid}"]
    finally:
        with session_scope() as s:
            s.execute(Worker.__table__.delete().where(Worker.id == wid))


def test_symptom_that_stays_backs_off_then_escalates_never_loops(org: OrgFixture) -> None:
    from memory.db import utcnow
    from tools.auto_intel import self_heal
    from tools.auto_intel.self_heal import heal

    clean_ops()
    pid = make_pipeline(org.org_id)
    iid = _open(dict(cause=f"pipeline:{pid}", fingerprint="rule:failure_rate", kind="rule",
                     diagnosis="failure_rate", title="failing", subject={"pipeline_id": pid}, org_id=org.org_id))
    # Retryable failures keep coming back: retry, verify fails, back off, retry, then a person.
    t = utcnow()
    outcomes = []
    with override_settings(ops_heal_max_attempts=2, ops_heal_verify_s=10):
        for _ in range(12):
            make_job(org.org_id, pid, "failed", retryable=True, last_error="timeout")
            outcomes.append(heal(iid, t).outcome)
            t += dt.timedelta(seconds=60)
            if outcomes[-1] in ("escalated", "skipped"):
                break
    assert outcomes[:4] == ["acted", "retry_later", "acted", "escalated"], outcomes
    inc = incident(iid)
    assert inc.manual and inc.heal_attempts == 2 and inc.state == "open"  # type: ignore[attr-defined]
    assert heal(iid, t).outcome == "skipped"  # with a person now: the healer stays away
    assert self_heal.SELF_HEALS.labels(action="retry_transient_failures", result="not_verified")._value.get() >= 1


def test_non_transient_failures_pause_the_pipeline(org: OrgFixture) -> None:
    from memory.db import session_scope
    from memory.jobs.models import Pipeline
    from tools.auto_intel.self_heal import heal

    clean_ops()
    pid = make_pipeline(org.org_id)
    make_job(org.org_id, pid, "failed", retryable=False, last_error="bad template")
    iid = _open(dict(cause=f"pipeline:{pid}", fingerprint="rule:failure_rate", kind="rule",
                     diagnosis="failure_rate", title="failing", subject={"pipeline_id": pid}, org_id=org.org_id))
    step = heal(iid)
    assert (step.outcome, step.action) == ("acted", "pause_pipeline")
    with session_scope() as s:
        assert s.get(Pipeline, pid).paused  # type: ignore[union-attr]
    assert heal(iid).outcome == "healed"
    assert _audited("queues.paused", f"pipeline:{pid}")


def test_a_paused_pipeline_does_not_reopen_its_failure_rate_incident(org: OrgFixture) -> None:
    """Once paused (by the healer or a person), the pipeline's failures still in the rate window must not
    reopen the incident until it flaps to a person (seen in the make run demo)."""
    from memory.db import session_scope, utcnow
    from memory.jobs.models import Pipeline
    from tools.auto_intel.rules import rule_findings

    clean_ops()
    pid = make_pipeline(org.org_id)
    points = [(f"jobs.failure_rate{{pipeline={pid}}}", 0.9), (f"jobs.finished{{pipeline={pid}}}", 20.0)]

    def failing() -> bool:
        with session_scope() as s:
            return any(f.diagnosis == "failure_rate" and f.cause == f"pipeline:{pid}"
                       for f in rule_findings(s, utcnow(), points))

    assert failing()
    with session_scope() as s:
        s.get(Pipeline, pid).paused = True  # type: ignore[union-attr]
    assert not failing()


def test_poison_job_is_dead_lettered(org: OrgFixture) -> None:
    from sqlalchemy import update

    from memory.db import session_scope, utcnow
    from memory.jobs.models import Job
    from tools.auto_intel.rules import rule_findings
    from tools.auto_intel.self_heal import heal

    clean_ops()
    with session_scope() as s:  # jobs that lost their worker in earlier tests (kill -9) and were left live would
        # be suspects too: two suspects with the same count are not told apart, so none would be poison
        s.execute(update(Job).where(Job.state.in_(("queued", "running")),
                                    Job.last_error.like("lease expired on attempt %")).values(state="dead"))
    pid = make_pipeline(org.org_id)
    jid = make_job(org.org_id, pid, "queued", attempts=2, max_attempts=5,
                   last_error="lease expired on attempt 2 (worker w stopped heartbeating)")
    with session_scope() as s:
        found = [f for f in rule_findings(s, utcnow(), []) if f.cause == f"job:{jid}"]
    assert [f.diagnosis for f in found] == ["poison_job"]
    iid = _open(found[0].__dict__)
    assert heal(iid).action == "dead_letter_poison_job"
    with session_scope() as s:
        assert s.get(Job, jid).state == "dead"  # type: ignore[union-attr]
    assert heal(iid).outcome == "healed"


def test_denied_by_policy_or_over_the_per_target_limit_escalates(org: OrgFixture, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from memory.db import session_scope, utcnow
    from memory.ops.repository import IncidentRepository
    from tools.auto_intel import playbooks
    from tools.auto_intel.playbooks import Playbook
    from tools.auto_intel.self_heal import heal

    clean_ops()
    grab = Playbook("grant_credits", "credits.grant", lambda i: {"amount": 10}, lambda s, i: True,
                    lambda s, i: False)
    monkeypatch.setitem(playbooks.PLAYBOOKS, "queue_age", (grab,))
    iid = _open(dict(cause="queue:deny", fingerprint="rule:queue_age", kind="rule", diagnosis="queue_age",
                     title="old queue"))
    step = heal(iid)
    assert (step.outcome, step.detail) == ("escalated", "denied")
    assert incident(iid).manual  # type: ignore[attr-defined]
    assert _audited("policy.denied", "credits.grant")  # the engine's own audit of the denial

    # Three restarts of one worker in ten minutes: the fourth goes to a person, not to the tool.
    wid = "w-limit-1"
    iid2 = _open(dict(cause=f"worker:{wid}", fingerprint="rule:worker_hung", kind="rule", diagnosis="worker_hung",
                      title="hung", subject={"worker_id": wid}))
    with session_scope() as s:
        for _ in range(3):
            IncidentRepository(s).add_event(iid2, "action", "restart_worker: acted", data={"worker_id": wid},
                                            at=utcnow())
    monkeypatch.setattr(playbooks, "_worker_fine", lambda s, i: False)
    step = heal(iid2)
    assert (step.outcome, step.detail) == ("escalated", "per-target limit")


def test_incident_opened_event_triggers_the_healer(org: OrgFixture) -> None:
    from memory.db import session_scope
    from memory.jobs.models import Job
    from workers.dispatcher import dispatch_pending

    clean_ops()
    pid = make_pipeline(org.org_id)
    jid = make_job(org.org_id, pid, "running", attempts=1, max_attempts=3, lease_owner="ghost:2",
                   lease_until=ago(30))
    iid = _open(dict(cause="queue:leases", fingerprint="rule:expired_leases", kind="rule",
                     diagnosis="expired_leases", title="expired", subject={"job_ids": [jid]}))

    def healed() -> bool:
        dispatch_pending()
        with session_scope() as s:
            return s.get(Job, jid).state == "queued"  # type: ignore[union-attr]

    wait_for(healed, 20, what="the healer to requeue the job")
    assert incident(iid).heal_attempts >= 1 or incident(iid).state == "resolved"  # type: ignore[attr-defined]


def test_leaking_worker_is_recycled_once_its_rss_keeps_growing() -> None:
    from memory.db import session_scope, utcnow
    from memory.jobs.models import Worker
    from tools.auto_intel import signals
    from tools.auto_intel.rules import rule_findings
    from tools.auto_intel.self_heal import heal

    clean_ops()
    wid = "elsewhere:4242:leaky1"
    series = f"worker.rss_bytes{{worker={wid}}}"
    now = utcnow()
    with session_scope() as s:
        for i in range(10):  # +30 MB per sample, never down
            signals.store(s, now - dt.timedelta(seconds=5 * (10 - i)), [(series, 100e6 + 30e6 * i, None)])
        s.add(Worker(id=wid, host="elsewhere", pid=4242, concurrency=1, rss_bytes=int(100e6 + 30e6 * 10),
                     heartbeat_at=now))
    try:
        with override_settings(ops_rss_growth_bytes=200_000_000):
            with session_scope() as s:
                found = [f for f in rule_findings(s, now, []) if f.cause == f"worker:{wid}"]
        assert [f.diagnosis for f in found] == ["worker_leak"]
        iid = _open(found[0].__dict__)
        step = heal(iid)
        assert (step.outcome, step.action) == ("acted", "recycle_worker")
        with session_scope() as s:
            assert s.get(Worker, wid).command == "restart"  # type: ignore[union-attr]
        assert heal(iid).outcome == "waiting"  # still registered: not verified yet
        with session_scope() as s:  # the worker obeys: it finishes and deregisters
            s.execute(Worker.__table__.delete().where(Worker.id == wid))
        assert heal(iid).outcome == "healed"
    finally:
        with session_scope() as s:
            s.execute(Worker.__table__.delete().where(Worker.id == wid))


def test_ops_metrics_are_exported(client, org: OrgFixture) -> None:
    from memory.db import session_scope
    from tools.auto_intel.lifecycle import refresh_gauges

    clean_ops()
    pid = make_pipeline(org.org_id)
    make_job(org.org_id, pid, "failed", retryable=False, last_error="x")
    iid = _open(dict(cause=f"pipeline:{pid}", fingerprint="rule:failure_rate", kind="rule",
                     diagnosis="failure_rate", title="failing", subject={"pipeline_id": pid}, org_id=org.org_id))
    from tools.auto_intel.self_heal import heal

    heal(iid)
    with session_scope() as s:
        refresh_gauges(s)
    text = client.get("/metrics").text
    assert 'levqor_ops_incidents{state="open"}' in text
    assert 'levqor_ops_self_heals_total{action="pause_pipeline",result="acted"}' in text
    assert "levqor_ops_time_to_detect_seconds_count" in text and "levqor_ops_anomalies_total" in text
