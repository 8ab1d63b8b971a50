"""Recording outcomes in batches: fenced per run, completion events only as outbox work when watched,
and a batch that cannot be written falls back to one run at a time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import select, update

from memory.db import session_scope
from memory.events.models import Event
from memory.jobs.models import Job
from memory.jobs.repository import JobRepository
from tests.factories import jobs as js
from tests.factories.orgs import OrgFixture, make_org
from tools.events.service import Reaction, Reactions, emit_many
from tools.jobs.outcomes import record_successes
from tools.jobs.runner import Finished, RunResult

NOOP = [{"kind": "transform", "name": "echo", "expression": "input"}]
PARKED = dt.datetime(2999, 1, 1, tzinfo=dt.UTC)


@contextmanager
def only_queued(job_ids: list[int]) -> Iterator[None]:
    """Other tests' queued jobs (same database) parked in the future, so a claim takes ours."""
    with session_scope() as s:
        s.execute(update(Job).where(Job.state == "queued", Job.id.not_in(job_ids)).values(run_at=PARKED))
    try:
        yield
    finally:
        with session_scope() as s:
            s.execute(update(Job).where(Job.run_at == PARKED).values(run_at=dt.datetime.now(dt.UTC)))


def claimed(org: OrgFixture, n: int) -> list[Job]:
    js.grant(org.org_id, n)
    pid = js.pipeline(org.org_id, NOOP)
    ids = [js.submit(org.org_id, pid, {"i": i}) for i in range(n)]
    with only_queued(ids), session_scope() as s:
        jobs = JobRepository(s).claim("w-test", n, 30)
    assert sorted(j.id for j in jobs) == sorted(ids)
    return jobs


def _noop(_session: object, _event: object) -> None:
    return None


def test_events_nobody_watches_are_written_already_dispatched(org: OrgFixture) -> None:
    other = make_org()
    watched = {org.org_id}
    table = Reactions([Reaction("*", "t.watching", handle=_noop, watches=lambda _s, orgs: orgs & watched)])
    with session_scope() as s:
        work = emit_many(s, [("job_complete", {"k": 1}, org.org_id), ("job_complete", {"k": 2}, other.org_id),
                             ("job_complete", {"k": 3}, None)], table)
    assert work == 2  # the watched organisation's, and the platform-wide event
    with session_scope() as s:
        rows = {e.payload["k"]: e for e in s.scalars(select(Event).where(Event.name == "job_complete",
                                                                        Event.org_id.in_([org.org_id, other.org_id])))}
    assert rows[1].dispatched_at is None and rows[2].dispatched_at is not None
    # A reaction that says nothing about whom it watches watches everyone.
    everyone = Reactions([*[Reaction("*", "t.watching", handle=_noop, watches=lambda _s, orgs: set())],
                          Reaction("job_complete", "t.all", handle=_noop)])
    with session_scope() as s:
        assert emit_many(s, [("job_complete", {}, other.org_id)], everyone) == 1
        assert emit_many(s, [("job_failed", {}, other.org_id)], everyone) == 0


def test_a_batch_records_each_run_under_its_own_fence(org: OrgFixture) -> None:
    jobs = claimed(org, 3)
    stale = jobs[1]
    with session_scope() as s:  # someone else took the middle job over (its lease expired and it re-ran)
        s.execute(update(Job).where(Job.id == stale.id).values(fence=Job.fence + 1))
    with session_scope() as s:
        ok = record_successes(s, [(j, {"i": j.id}, []) for j in jobs])
    assert ok == [True, False, True]
    assert [js.job(j.id).state for j in jobs] == ["succeeded", "running", "succeeded"]
    assert [len(js.events_for("job_complete", j.id)) for j in jobs] == [1, 0, 1]
    with session_scope() as s:  # recording the same runs again writes nothing
        assert record_successes(s, [(j, {"again": True}, []) for j in jobs]) == [False, False, False]
    assert js.job(jobs[0].id).output == {"i": jobs[0].id}


def test_a_batch_that_cannot_be_written_is_recorded_one_run_at_a_time(org: OrgFixture) -> None:
    from workers.jobs import JobWorker

    good, bad = claimed(org, 2)
    w = JobWorker(2)
    for j in (good, bad):
        w.running[j.id] = (None, None)  # type: ignore[assignment]  # held, as the claim loop would
    runs = [Finished(good, RunResult(ok=True, output={"fine": 1}), 0.0, give_back=False),
            Finished(bad, RunResult(ok=True, output={"not json": object()}), 0.0, give_back=False)]
    w._record(runs)
    assert js.job(good.id).state == "succeeded" and js.job(good.id).output == {"fine": 1}
    bad_row = js.job(bad.id)
    assert bad_row.state == "running" and bad_row.lease_owner == "w-test"  # left to its lease, then the sweep
    assert w.running == {} and w.jobs_done == 2
