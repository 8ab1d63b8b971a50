"""The jobs area's daily KPIs, and the Pulse store reading them through the registry."""

from __future__ import annotations

from sqlalchemy import update

from memory.db import session_scope, utcnow
from memory.jobs.models import Job
from tests.factories import jobs as js
from tests.factories.orgs import make_org, org_ctx


def _finish(job_id: int, state: str) -> None:
    with session_scope() as s:
        s.execute(update(Job).where(Job.id == job_id).values(state=state, finished_at=utcnow()))


def test_job_and_credit_kpis_count_the_day() -> None:
    org = make_org()
    js.grant(org.org_id, 50)
    pid = js.pipeline(org.org_id, [{"kind": "transform", "check": "input.ok", "message": "bad order"}])
    ids = [js.submit(org.org_id, pid, {"ok": True}) for _ in range(4)]
    for job_id, state in zip(ids, ("succeeded", "succeeded", "succeeded", "dead"), strict=True):
        _finish(job_id, state)
    today = utcnow().date().isoformat()
    jobs = js.invoke(org.org_id, "jobs.kpis", {"day": today})
    assert (jobs.jobs_run, jobs.succeeded, jobs.dead, jobs.job_success_rate) == (4, 3, 1, 75.0)
    spent_per_job = -js.ledger_rows(ids[0])[0][1]
    credits = js.invoke(org.org_id, "credits.kpis", {"day": today})
    assert credits.credits_sold == 50 and credits.credits_spent == 4 * spent_per_job
    other_day = js.invoke(org.org_id, "jobs.kpis", {"day": "2020-01-01"})
    assert other_day.jobs_run == 0 and other_day.job_success_rate is None


def test_pulse_snapshot_reads_jobs_kpis() -> None:
    from tools.pulse.store import snapshot_day

    org = make_org()
    js.grant(org.org_id, 10)
    pid = js.pipeline(org.org_id, [{"kind": "transform", "check": "input.ok", "message": "bad order"}])
    _finish(js.submit(org.org_id, pid, {"ok": True}), "succeeded")
    with session_scope() as s:
        items = {i.kpi: i for i in snapshot_day(org_ctx(s, org.org_id), utcnow().date()).items}
    assert items["jobs_run"].value == 1.0 and items["jobs_run"].source == "jobs.kpis"
    assert items["job_success_rate"].value == 100.0
    assert items["credits_sold"].value == 10.0
    # Revenue is read from the billing ledger: this organisation paid nothing that day (a measured zero).
    assert items["revenue"].value == 0.0 and items["revenue"].source == "billing.kpis"
