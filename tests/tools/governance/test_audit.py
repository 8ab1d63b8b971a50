"""Partner audits against real TLS endpoints on loopback: a weak endpoint (self-signed certificate, no
HSTS or security headers, accepts unsigned requests, slow acknowledgements) fails with exactly those
findings; a good one passes. The quarterly cycle runs from the scheduler as the auditor agent, and a failed
partner past its deadline is suspended with payouts held."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.factories.partners import World, make_world, manifest, publish
from tests.factories.settings import override_settings
from tests.fakes.tls_partner import TlsPartner, make_certs
from tests.support import ROOT

GOOD_HEADERS = {"Strict-Transport-Security": "max-age=31536000; includeSubDomains",
                "X-Content-Type-Options": "nosniff"}


@pytest.fixture()
def fast_policy(tmp_path: Path) -> Iterator[None]:
    """The shipped policy with a 400 ms acknowledgement limit (so a slow endpoint is quick to test)."""
    from policies.engine import reset_engine

    doc = json.loads((ROOT / "policies" / "policy.json").read_text())
    doc["code_of_conduct"]["floors"]["ack_within_ms"] = 400
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(doc))
    with override_settings(policy_path=str(path)):
        reset_engine()
        try:
            yield
        finally:
            reset_engine()
    reset_engine()


@pytest.fixture()
def certs(tmp_path: Path) -> dict[str, Path]:
    return make_certs(tmp_path)


def _world(client: Any, set_settings: Any, certs: dict[str, Path]) -> World:
    return make_world(client, set_settings, tls_ca_file=str(certs["ca"]))


def _secret(client: Any, w: World, slug: str) -> str:
    r = client.get(f"/v1/governance/plugins/{slug}/audit-key", headers=w.partner.headers("partner"))
    assert r.status_code == 200, r.text
    return str(r.json()["secret"])


def _publish(client: Any, w: World, slug: str, site: TlsPartner, pages: TlsPartner) -> None:
    publish(client, w, manifest(slug, site.url("/events"), privacy_url=pages.url("/privacy"),
                                support_url=pages.url("/support")))


def test_weak_endpoint_fails_with_exactly_its_findings_and_good_one_passes(
        app: Any, set_settings: Any, certs: dict[str, Path], fast_policy: None) -> None:
    from fastapi.testclient import TestClient

    with TestClient(app) as client, \
            TlsPartner(certs["good"], certs["good_key"], headers=GOOD_HEADERS) as good, \
            TlsPartner(certs["weak"], certs["weak_key"], ack_delay=0.8) as weak:
        w = _world(client, set_settings, certs)
        good_slug, weak_slug = f"{w.partner.slug}.good", f"{w.partner.slug}.weak"
        _publish(client, w, good_slug, good, good)
        _publish(client, w, weak_slug, weak, good)  # its privacy and support pages are fine
        good.secret = _secret(client, w, good_slug)

        r = client.post(f"/v1/governance/plugins/{weak_slug}/audits", json={}, headers=w.partner.headers("partner"))
        assert r.status_code == 200, r.text
        weak_audit = r.json()
        assert weak_audit["result"] == "fail"
        codes = {f["code"] for f in weak_audit["findings"] if f["severity"] != "info"}
        assert codes == {"endpoint.certificate", "endpoint.hsts_missing", "endpoint.security_headers",
                         "endpoint.unsigned_accepted", "endpoint.ack_slow"}
        by = {f["code"]: f for f in weak_audit["findings"]}
        assert "self-signed" in by["endpoint.certificate"]["evidence"]
        assert "unsigned POST answered 200" in by["endpoint.unsigned_accepted"]["evidence"]
        assert "x-content-type-options" in by["endpoint.security_headers"]["evidence"]
        assert "limit 400 ms" in by["endpoint.ack_slow"]["evidence"]
        assert all(f["remedy"] for f in weak_audit["findings"])
        assert weak_audit["deadline_at"] is not None and weak_audit["explained_by"] == "template"
        assert "failed" in weak_audit["explanation"] and "self-signed" in weak_audit["explanation"]
        print("sample audit report:", weak_audit["explanation"], sep="\n")

        r = client.post(f"/v1/governance/plugins/{good_slug}/audits", json={}, headers=w.staff.headers())
        good_audit = r.json()
        assert good_audit["result"] == "pass", good_audit["findings"]
        assert [f["code"] for f in good_audit["findings"]] == ["behaviour.sample"]  # info: too few deliveries
        # The good endpoint saw an unsigned, a forged and a signed test event; only the signed one got 200.
        assert [p["headers"].get("webhook-signature") is not None for p in good.posts] == [False, True, True]

        # History: the partner sees its own audits; staff see all; another org sees none.
        mine = client.get("/v1/governance/audits", headers=w.partner.headers("partner")).json()["items"]
        assert {a["plugin"] for a in mine} == {good_slug, weak_slug}
        assert client.get("/v1/governance/audits", headers=w.customer.headers()).json()["items"] == []
        assert client.get(f"/v1/governance/audits/{weak_audit['id']}", headers=w.customer.headers()).status_code == 404


def test_quarterly_cycle_from_the_scheduler_suspends_a_failed_partner_past_its_deadline(
        app: Any, set_settings: Any, certs: dict[str, Path], fast_policy: None) -> None:
    from fastapi.testclient import TestClient

    from memory.db import session_scope
    from memory.governance.models import PartnerAudit
    from tools.governance import review_cycle
    from workers.scheduler import start_requested
    from workers.wiring import schedules

    sched = {s.name: s for s in schedules()}
    assert sched["governance.quarterly"].every == "cron:0 4 1 1,4,7,10 *"
    with TestClient(app) as client, \
            TlsPartner(certs["good"], certs["good_key"], headers=GOOD_HEADERS) as good, \
            TlsPartner(certs["weak"], certs["weak_key"], ack_delay=0.8) as weak:
        w = _world(client, set_settings, certs)
        slug = f"{w.partner.slug}.weak"
        _publish(client, w, slug, weak, good)
        # The quarterly job (what the scheduler leader runs) asks for an auditor agent run; the edge starts it.
        runs = sched["governance.quarterly"].run()
        assert runs and runs[0].agent == "auditor" and runs[0].input["report"] is True
        [run_id] = start_requested(runs)
        r = client.get("/v1/governance/audits", params={"plugin": slug}, headers=w.staff.headers())
        [audit] = [a for a in r.json()["items"] if a["trigger"] == "quarterly"]
        assert audit["result"] == "fail" and audit["notified_at"] is not None and audit["enforced_at"] is None
        assert client.get(f"/v1/plugins/{slug}", headers=w.customer.headers()).status_code == 200  # still listed
        # Past the deadline, the next tick's auditor run suspends the listing and holds payouts.
        with session_scope() as s:
            row = s.get(PartnerAudit, audit["id"])
            assert row is not None
            row.deadline_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        start_requested(review_cycle.tick())
        after = client.get(f"/v1/governance/audits/{audit['id']}", headers=w.partner.headers("partner")).json()
        assert after["enforced_at"] is not None
        assert client.get(f"/v1/plugins/{slug}", headers=w.customer.headers()).status_code == 404
        me = client.get("/v1/partners/me", headers=w.partner.headers("partner")).json()
        assert me["status"] == "suspended"
        with session_scope() as s:
            from sqlalchemy import select

            from memory.audit.models import AuditEntry
            actions = set(s.execute(select(AuditEntry.actor, AuditEntry.action)).tuples().all())
        assert ("agent:auditor", "plugins.state_changed") in actions
        assert ("agent:auditor", "partners.status_changed") in actions
        assert ("agent:auditor", "governance.enforced") in actions
        assert ("agent:auditor", "policy.changed") in actions or any(a == "policy.changed" for _, a in actions)
        assert run_id > 0
