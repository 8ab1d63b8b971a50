"""The demo trickle of ``make run``: its warehouse outage (so a fresh install shows the monitor and healer
at work), orders only while the stock sync is paused, and the demo resuming the sync after the outage."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select


def _demo_org() -> int:
    from memory.db import session_scope
    from memory.identity.models import Organization
    from tools.context import SYSTEM, Principal, ToolContext
    from tools.jobs.demo import seed_jobs_demo
    from tools.registry import registry

    with session_scope() as s:
        org = s.scalar(select(Organization).where(Organization.slug == "demo"))
        if org is None:
            registry.invoke("org.create", ToolContext(s, SYSTEM), {"name": "Acme Demo", "slug": "demo",
                                                                    "plan": "pro"})
            org = s.scalar(select(Organization).where(Organization.slug == "demo"))
            assert org is not None
            seed_jobs_demo(ToolContext(s, Principal(kind="system", id="seed", org_id=org.id, role="admin")))
        return org.id


def _seeded_ago(org_id: int, seconds: float) -> None:
    from memory.db import session_scope, utcnow
    from memory.identity.models import Organization

    with session_scope() as s:
        org = s.get(Organization, org_id)
        assert org is not None
        org.created_at = utcnow() - dt.timedelta(seconds=seconds)


def _jobs(org_id: int) -> list[tuple[str, dict[str, object]]]:
    from memory.db import session_scope
    from memory.jobs.models import Job, Pipeline

    with session_scope() as s:
        rows = s.execute(select(Pipeline.name, Job.input).join(Pipeline, Pipeline.id == Job.pipeline_id)
                         .where(Job.org_id == org_id).order_by(Job.id))
        return [(name, dict(inp or {})) for name, inp in rows]


def _stock_paused(org_id: int, paused: bool | None = None) -> bool:
    from memory.db import session_scope
    from memory.jobs.repository import PipelineRepository
    from tools.jobs.demo import STOCK

    with session_scope() as s:
        p = PipelineRepository(s).by_name(org_id, STOCK)
        assert p is not None
        if paused is not None:
            p.paused = paused
        return bool(p.paused)


def test_outage_phases() -> None:
    from tools.jobs.demo import OUTAGE_CYCLE_S, outage_phase

    assert outage_phase(30) == "normal"
    assert outage_phase(130) == "outage" and outage_phase(299) == "outage"
    assert outage_phase(301) == "recovering" and outage_phase(599) == "recovering"
    assert outage_phase(601) == "normal" and outage_phase(OUTAGE_CYCLE_S + 130) == "outage"


def test_trickle_fails_every_stock_sync_in_an_outage_then_the_demo_resumes_the_paused_sync() -> None:
    from memory.audit.models import AuditEntry
    from memory.db import session_scope
    from tools.jobs.demo import ORDERS, STOCK, trickle

    org_id = _demo_org()
    _seeded_ago(org_id, 150)  # inside the outage
    before = len(_jobs(org_id))
    for _ in range(6):
        trickle()
    new = _jobs(org_id)[before:]
    stock = [inp for name, inp in new if name == STOCK]
    assert len(new) == 6 and len(stock) == 3 and all(inp["warehouse_online"] is False for inp in stock)

    _stock_paused(org_id, True)  # what the healer does once the failure rate passes its limit
    before = len(_jobs(org_id))
    for _ in range(4):
        trickle()
    assert [name for name, _ in _jobs(org_id)[before:]] == [ORDERS] * 4  # orders only; the sync stays paused
    assert _stock_paused(org_id)

    _seeded_ago(org_id, 400)  # outage over, failure-rate window not yet: still paused
    trickle()
    assert _stock_paused(org_id)

    _seeded_ago(org_id, 700)  # the warehouse team fixed it: the demo resumes the sync, audited
    trickle()
    assert not _stock_paused(org_id)
    with session_scope() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "queues.resumed")
                          .order_by(AuditEntry.seq.desc())).first()
        assert entry is not None and entry.actor == "system:demo"
    before = len(_jobs(org_id))
    for _ in range(4):
        trickle()
    stock = [inp for name, inp in _jobs(org_id)[before:] if name == STOCK]
    assert len(stock) == 2 and any(inp["warehouse_online"] is True for inp in stock)
