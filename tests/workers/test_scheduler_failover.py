"""A scheduler leader killed mid-tick (issue 23, scheduler_kill9): the tick is recorded finished only when
its work is done; the next leader takes an unfinished one over exactly once; effects keyed by the tick
(scheduled agent runs) happen once across the re-run; the monitor sees the failover. (The process-level
lease tests are tests/workers/test_scheduler_lease.py; the scenario is ``levqor chaos run scheduler_kill9``.)"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import delete, update

from memory.agents.models import AgentRun
from memory.agents.repository import AgentRepository
from memory.db import session_scope, utcnow
from memory.leases.models import Lease
from memory.scheduler.models import SchedulerTick
from memory.scheduler.repository import TickRepository
from tests.factories.ops import clean_ops
from tests.factories.orgs import OrgFixture
from tools.agents import runs as store
from tools.auto_intel.rules import rule_findings
from tools.schedules import SCHEDULER_LEASE, claim_tick, complete_tick, failover, unfinished_ticks


def _fresh(job: str) -> None:
    with session_scope() as s:
        s.execute(delete(Lease).where(Lease.name == SCHEDULER_LEASE))
        s.execute(delete(SchedulerTick).where(SchedulerTick.job == job))


def _expire_lease_and_age(job: str, seconds: float) -> None:
    """The leader died: its lease ran out, its tick started ``seconds`` ago."""
    with session_scope() as s:
        s.execute(update(Lease).where(Lease.name == SCHEDULER_LEASE).values(expires_at=utcnow()))
        s.execute(update(SchedulerTick).where(SchedulerTick.job == job)
                  .values(started_at=utcnow() - dt.timedelta(seconds=seconds)))


def test_an_unfinished_tick_of_a_dead_leader_is_taken_over_once() -> None:
    job = f"test.failover.{uuid.uuid4().hex[:6]}"
    _fresh(job)
    with session_scope() as s:
        epoch_a = claim_tick(s, job, 7, "host:1:a", 5)
    assert epoch_a is not None
    with session_scope() as s:  # A leads and holds the tick: nobody else claims or takes it
        assert claim_tick(s, job, 7, "host:2:b", 5) is None
        assert claim_tick(s, job, 7, "host:2:b", 5, take_over=True) is None
        assert unfinished_ticks(s, epoch_a + 1, 5, [job]) == []  # started under the lease's length ago
    _expire_lease_and_age(job, 10)  # A was killed mid-tick
    with session_scope() as s:
        epoch_b = claim_tick(s, job, 8, "host:2:b", 5)  # B leads (its own next tick) under a new epoch
        assert epoch_b == epoch_a + 1
        assert unfinished_ticks(s, epoch_b, 5, [job]) == [(job, 7)]
        assert unfinished_ticks(s, epoch_b, 5, ["another.job"]) == []
    with session_scope() as s:
        assert claim_tick(s, job, 7, "host:2:b", 5, take_over=True) == epoch_b
    with session_scope() as s:  # once: neither B again nor A (if it came back) runs it
        assert claim_tick(s, job, 7, "host:2:b", 5, take_over=True) is None
        assert not complete_tick(s, job, 7, "host:1:a", epoch_a)
        assert complete_tick(s, job, 7, "host:2:b", epoch_b)
        assert unfinished_ticks(s, epoch_b + 5, 0, [job]) == [(job, 8)]  # B's own tick 8 is still open
        tick = next(t for t in TickRepository(s).ticks(job) if t.slot == 7)
        assert tick.holder == "host:2:b" and tick.taken_over_from == "host:1:a" and tick.completed_at is not None
    with session_scope() as s:  # a finished tick is never taken over
        assert not TickRepository(s).take_over(job, 7, "host:3:c", epoch_b + 1)
    _fresh(job)


def _scheduler_findings() -> list[object]:
    with session_scope() as s:
        return [f for f in rule_findings(s, utcnow(), []) if f.cause == "scheduler"]


def test_monitor_sees_the_failover_until_the_tick_is_re_run_and_the_window_passes() -> None:
    clean_ops()
    job = f"test.failover.{uuid.uuid4().hex[:6]}"
    _fresh(job)
    with session_scope() as s:
        s.execute(update(SchedulerTick).where(SchedulerTick.completed_at.is_(None))
                  .values(completed_at=utcnow()))  # other tests' open ticks are not this test's failover
        epoch = claim_tick(s, job, 1, "host:1:a", 5)
    assert epoch is not None and _scheduler_findings() == []  # a live leader's tick in progress
    _expire_lease_and_age(job, 60)  # over the lease's length (LEVQOR_SCHEDULER_LEASE_S) ago
    (left,) = _scheduler_findings()
    assert left.diagnosis == "scheduler_failover" and left.evidence["unfinished"] == [f"{job}:1"]
    with session_scope() as s:
        new = claim_tick(s, job, 2, "host:2:b", 5)
        assert new is not None and complete_tick(s, job, 2, "host:2:b", new)
        assert claim_tick(s, job, 1, "host:2:b", 5, take_over=True) == new
        assert complete_tick(s, job, 1, "host:2:b", new)
    (taken,) = _scheduler_findings()
    assert taken.evidence == {"unfinished": [], "taken_over": [f"{job}:1"]}
    with session_scope() as s:
        s.execute(update(SchedulerTick).where(SchedulerTick.job == job)
                  .values(taken_over_at=utcnow() - dt.timedelta(hours=1)))
        assert failover(s, 5, 30).taken == []
    assert _scheduler_findings() == []
    _fresh(job)


def test_scheduled_agent_runs_happen_once_per_tick_across_a_re_run(org: OrgFixture) -> None:
    tick = f"agent.janitor:{uuid.uuid4().int % 10**9}"
    with session_scope() as s:  # other tests' janitor runs must not count as active here
        s.execute(update(AgentRun).where(AgentRun.agent == "janitor", AgentRun.status.in_(
            ("queued", "running", "waiting_approval"))).values(status="failed"))
        orgs = len(AgentRepository(s).org_ids())
    first = store.queue_for_all_orgs("janitor", "schedule", tick=tick)
    assert len(first) == orgs
    # the leader died before starting them: the re-run returns the same queued runs, adds none
    assert sorted(store.queue_for_all_orgs("janitor", "schedule", tick=tick)) == sorted(first)
    with session_scope() as s:
        s.execute(update(AgentRun).where(AgentRun.id.in_(first)).values(status="succeeded"))
    # ...and after they ran, a re-run of the tick starts nothing; the next tick runs again
    assert store.queue_for_all_orgs("janitor", "schedule", tick=tick) == []
    with session_scope() as s:
        runs = AgentRepository(s).runs_of_tick("janitor", tick)
        assert sorted(r.id for r in runs) == sorted(first) and {r.org_id for r in runs} >= {org.org_id}
    nxt = store.queue_for_all_orgs("janitor", "schedule", tick=tick + "1")
    assert len(nxt) == orgs
    with session_scope() as s:
        s.execute(update(AgentRun).where(AgentRun.id.in_(nxt)).values(status="failed"))
