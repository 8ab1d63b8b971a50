"""How partner audits run and what starts them: claimed under a lease (one auditor per audit, a crashed
auditor's claim taken over), probed with no database transaction open, recorded only by the lease
holder; a submitted version (``plugin_version_submitted``) and a monitor incident about a plugin's
deliveries each audit that plugin; demo partners are audited for real but never enforced against."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.factories.partners import World, emit_event, install, make_world, manifest, publish
from tests.factories.settings import override_settings
from tests.fakes.tls_partner import TlsPartner, make_certs
from tests.tools.governance.test_audit import GOOD_HEADERS, fast_policy  # noqa: F401


@contextmanager
def open_transactions() -> Iterator[set[int]]:
    """The database connections of this process inside a transaction, kept up to date; not those of the
    usage tiers' background sync thread, which writes its counts every ``rate_limit_sync_s`` whatever the
    test does (on PostgreSQL, on a slow machine, one of its transactions was once open at a probe)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    open_: set[int] = set()

    def begin(conn: Any) -> None:
        if threading.current_thread().name != "levqor-tiers-sync":
            open_.add(id(conn))

    def end(conn: Any) -> None:
        open_.discard(id(conn))

    hooks = (("begin", begin), ("commit", end), ("rollback", end))
    for name, fn in hooks:
        event.listen(Engine, name, fn)
    try:
        yield open_
    finally:
        for name, fn in hooks:
            event.remove(Engine, name, fn)


def _audits(slug: str) -> list[dict[str, Any]]:
    from memory.db import session_scope
    from memory.governance.models import PartnerAudit
    from memory.partner.repository import PartnerRepository

    with session_scope() as s:
        plugin = PartnerRepository(s).plugin_by_slug(slug)
        assert plugin is not None
        rows = s.query(PartnerAudit).filter(PartnerAudit.plugin_id == plugin.id).order_by(PartnerAudit.id).all()
        return [{"id": a.id, "trigger": a.trigger, "status": a.status, "result": a.result, "owner": a.lease_owner,
                 "requested_by": a.requested_by, "deadline_at": a.deadline_at, "notified_at": a.notified_at,
                 "enforced_at": a.enforced_at, "explanation": a.explanation,
                 "findings": {f["code"] for f in a.findings or [] if f["severity"] != "info"}} for a in rows]


def _submitted_audit(w: World, slug: str) -> int:
    """The audit the version's ``plugin_version_submitted`` event queued (the outbox dispatched)."""
    from workers.dispatcher import dispatch_pending

    for _ in range(1000):  # until nothing is due: events other tests left may fill the first claims
        if dispatch_pending() == 0:
            break
    [queued] = _audits(slug)
    assert queued["trigger"] == "version_submitted" and queued["status"] == "queued"
    assert queued["requested_by"].startswith("api_key:")  # the partner who submitted it
    return int(queued["id"])


def test_an_audit_is_leased_to_one_auditor_and_probed_with_no_transaction_open(
        app: Any, set_settings: Any, tmp_path: Path, fast_policy: None) -> None:  # noqa: F811
    from fastapi.testclient import TestClient
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    from memory.db import session_scope
    from memory.governance.models import PartnerAudit
    from tools.governance import audit_runs
    from tools.governance.review_cycle import AUDITOR

    certs = make_certs(tmp_path)
    with TestClient(app) as client, open_transactions() as open_tx, \
            TlsPartner(certs["good"], certs["good_key"], headers=GOOD_HEADERS) as good:
        w = make_world(client, set_settings, tls_ca_file=str(certs["ca"]))
        slug = f"{w.partner.slug}.leased"
        publish(client, w, manifest(slug, good.url("/events"), privacy_url=good.url("/privacy"),
                                    support_url=good.url("/support")))
        good.secret = client.get(f"/v1/governance/plugins/{slug}/audit-key",
                                 headers=w.partner.headers("partner")).json()["secret"]
        audit_id = _submitted_audit(w, slug)
        seen: list[int] = []
        good.on_post = lambda: seen.append(len(open_tx))
        with session_scope() as s:
            s.execute(text("SELECT 1"))
            assert open_tx, "the tracker sees an open transaction"

        # Two auditors race for the queued audit: exactly one gets it.
        barrier, won = threading.Barrier(2), []

        def race() -> None:
            barrier.wait()
            with session_scope() as s:
                won.append(audit_runs.claim(s, 5, audit_id=audit_id))

        threads = [threading.Thread(target=race) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert sorted(len(c) for c in won) == [0, 1], won
        [first] = next(c for c in won if c)
        with session_scope() as s:
            assert audit_runs.claim(s, 5, audit_id=audit_id) == []  # leased: nobody else takes it
            # The first auditor crashes; once its lease has expired another takes the audit over.
            row = s.get(PartnerAudit, audit_id)
            assert row is not None and row.lease_owner == first.owner
            row.lease_until = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        with session_scope() as s:
            [second] = audit_runs.claim(s, 5, audit_id=audit_id)
        assert second.owner != first.owner
        assert audit_runs.run([first], AUDITOR) == [] and good.posts == []  # lost its lease: probes nothing
        assert audit_runs.run([second], AUDITOR) == [audit_id]
        assert audit_runs.run([second], AUDITOR) == []  # recorded once (a replayed step does nothing)
        [done] = _audits(slug)
        assert done["status"] == "done" and done["result"] == "pass" and done["owner"] == second.owner
        assert len(seen) == 3 and seen == [0, 0, 0], seen  # unsigned, forged, signed: no transaction open

        # A partner's request runs the same way: queued and committed, then probed outside any transaction.
        seen.clear()
        r = client.post(f"/v1/governance/plugins/{slug}/audits", json={}, headers=w.partner.headers("partner"))
        assert r.status_code == 200, r.text
        assert r.json()["trigger"] == "manual" and r.json()["result"] == "pass" and r.json()["status"] == "done"
        assert seen == [0, 0, 0], seen

        # One open audit per plugin version: a second trigger gets the open one, a raw duplicate is refused.
        from memory.partner.repository import PartnerRepository
        from tools.governance import partner_audit

        with session_scope() as s:
            plugin = PartnerRepository(s).plugin_by_slug(slug)
            assert plugin is not None
            a = partner_audit.queue(s, plugin, "1.0.0", "quarterly", "scheduler")
            assert partner_audit.queue(s, plugin, "1.0.0", "incident", "incident:1").id == a.id
            with pytest.raises(IntegrityError), s.begin_nested():
                s.add(PartnerAudit(plugin_id=plugin.id, partner_id=plugin.partner_id, version="1.0.0",
                                   trigger="manual", status="queued"))
                s.flush()
            a.status = "error"  # leave nothing queued for other tests' cycles


def test_a_monitor_incident_about_a_plugins_deliveries_audits_that_plugin(
        app: Any, set_settings: Any, tmp_path: Path, fast_policy: None) -> None:  # noqa: F811
    from fastapi.testclient import TestClient

    from tools.auto_intel.monitor import monitor_tick
    from tools.governance import review_cycle
    from workers.dispatcher import dispatch_pending
    from workers.hooks import deliver_due

    certs = make_certs(tmp_path)
    with TestClient(app) as client, \
            TlsPartner(certs["good"], certs["good_key"], headers=GOOD_HEADERS) as good, \
            TlsPartner(certs["weak"], certs["weak_key"]) as weak:
        w = make_world(client, set_settings, tls_ca_file=str(certs["ca"]))
        slug = f"{w.partner.slug}.flaky"
        publish(client, w, manifest(slug, weak.url("/events"), privacy_url=good.url("/privacy"),
                                    support_url=good.url("/support")))
        inst = install(client, w.customer, slug)
        _submitted_audit(w, slug)
        review_cycle.run_cycle()  # the submitted version's audit (offline steps as agent:auditor)
        assert [a["trigger"] for a in _audits(slug)] == ["version_submitted"]

        # Real deliveries fail (the endpoint's self-signed certificate); the monitor sees the pattern.
        with override_settings(ops_failure_min_jobs=3):
            for i in range(4):
                emit_event("job_complete", {"job_id": 10_000 + i, "status": "succeeded"}, w.customer.org_id)
            assert deliver_due(timeout_s=20) >= 4
            tick = monitor_tick()
        assert tick.error is None, tick.error
        assert any(f.cause == f"partner:{inst['id']}" and f.diagnosis == "partner_errors" for f in tick.findings), \
            [(f.cause, f.diagnosis) for f in tick.findings]
        for _ in range(1000):  # incident_opened: the review cycle (and the healer) react; until nothing is due
            if dispatch_pending() == 0:
                break
        audits = _audits(slug)
        assert [a["trigger"] for a in audits] == ["version_submitted", "incident"], audits
        assert audits[-1]["requested_by"].startswith("incident:") and audits[-1]["status"] == "queued"
        review_cycle.run_cycle()
        incident_audit = _audits(slug)[-1]
        assert incident_audit["status"] == "done" and incident_audit["result"] == "fail"
        assert "endpoint.certificate" in incident_audit["findings"]


def test_demo_partners_are_audited_for_real_but_never_enforced(
        app: Any, client: Any, set_settings: Any, tmp_path: Path, fast_policy: None) -> None:  # noqa: F811
    from memory.db import session_scope
    from memory.partner.models import Partner
    from memory.partner.repository import PartnerRepository
    from tests.factories.orgs import page_login
    from tools.governance import review_cycle

    certs = make_certs(tmp_path)
    with TlsPartner(certs["good"], certs["good_key"], headers=GOOD_HEADERS) as good, \
            TlsPartner(certs["weak"], certs["weak_key"]) as weak:
        w = make_world(client, set_settings, tls_ca_file=str(certs["ca"]))
        slug = f"{w.partner.slug}.demo"
        publish(client, w, manifest(slug, weak.url("/events"), privacy_url=good.url("/privacy"),
                                    support_url=good.url("/support")))
        with session_scope() as s:
            partner = PartnerRepository(s).partner_for_org(w.partner.org_id)
            assert partner is not None
            partner.demo = True
        _submitted_audit(w, slug)
        review_cycle.run_cycle()
    [audit] = _audits(slug)
    assert audit["result"] == "fail" and {"endpoint.certificate", "endpoint.unsigned_accepted"} <= audit["findings"]
    assert audit["deadline_at"] is None and audit["notified_at"] is None  # no deadline, no notice
    assert "never enforced" in audit["explanation"]
    with session_scope() as s:  # even a failed audit long past any deadline stays unenforced
        from memory.governance.models import PartnerAudit

        row = s.get(PartnerAudit, audit["id"])
        assert row is not None
        row.deadline_at = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    out = review_cycle.run_cycle()
    assert audit["id"] not in [e["audit_id"] for e in out["enforced"]] and audit["id"] not in out["notified"]
    assert _audits(slug)[0]["enforced_at"] is None
    assert client.get(f"/v1/plugins/{slug}", headers=w.customer.headers()).status_code == 200  # still listed
    with session_scope() as s:
        p = s.query(Partner).filter(Partner.org_id == w.partner.org_id).one()
        assert p.status == "active" and p.demo

    # Pages and the API label them demo.
    got = client.get(f"/v1/governance/audits/{audit['id']}", headers=w.partner.headers("partner")).json()
    assert got["demo"] is True
    assert page_login(client, w.partner.admin_email, w.partner.admin_password).status_code == 303
    assert 'badge off demo">demo</span>' in client.get("/governance").text
    assert 'id="demo-label"' in client.get(f"/governance/audits/{audit['id']}").text


def test_the_demo_seed_flags_its_partners_demo() -> None:
    from memory.db import session_factory
    from memory.partner.models import Partner
    from tools.context import SYSTEM, ToolContext
    from tools.demo.community import DEMO_PARTNERS, seed_community

    s = session_factory()()
    try:  # rolled back: the seeded plugins' submissions never reach other tests' review cycles
        seed_community(ToolContext(s, SYSTEM))
        s.flush()
        names = {p.display_name: p.demo for p in s.query(Partner).all()}
        assert {spec["name"]: True for spec in DEMO_PARTNERS}.items() <= names.items()
    finally:
        s.rollback()
        s.close()
