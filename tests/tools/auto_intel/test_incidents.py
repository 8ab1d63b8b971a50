"""Incidents: de-duplication, grouping, flapping, auto-resolve, anomalies, notifications, API, monitor."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.factories.jobs import make_job, make_pipeline
from tests.factories.ops import clean_ops, incident
from tests.factories.orgs import OrgFixture, make_org
from tests.factories.settings import override_settings


def _finding(cause: str, fp: str, org_id: int | None = None, diagnosis: str = "queue_age") -> object:
    from tools.auto_intel.findings import Finding

    return Finding(cause=cause, fingerprint=fp, kind="rule", diagnosis=diagnosis, title=f"{fp} breached",
                   severity="high", org_id=org_id)


def _record(f: object, now: dt.datetime) -> tuple[int, str]:
    from memory.db import session_scope
    from tools.auto_intel.lifecycle import open_or_update

    with session_scope() as s:
        inc, what = open_or_update(s, f, now)  # type: ignore[arg-type]
        return inc.id, what


def test_same_cause_updates_one_incident_groups_signals_and_emits_once() -> None:
    from sqlalchemy import func, select

    from memory.db import session_scope, utcnow
    from memory.events.models import Event

    clean_ops()
    now = utcnow()
    with session_scope() as s:
        before = s.scalar(select(func.count()).select_from(Event).where(Event.name == "incident_opened"))
    with override_settings(ops_notify_emails=["ops@acme-test.io"]):
        a, what_a = _record(_finding("queue", "rule:queue_age"), now)
        b, what_b = _record(_finding("queue", "rule:queue_age"), now + dt.timedelta(seconds=5))
        c, what_c = _record(_finding("queue", "anomaly:jobs.queue.depth"), now + dt.timedelta(seconds=10))
    assert (what_a, what_b, what_c) == ("opened", "updated", "updated") and a == b == c
    inc = incident(a)
    assert inc.occurrences == 3 and inc.signals == ["rule:queue_age", "anomaly:jobs.queue.depth"]  # type: ignore[attr-defined]
    with session_scope() as s:
        after = s.scalar(select(func.count()).select_from(Event).where(Event.name == "incident_opened"))
        from memory.ops.repository import IncidentRepository

        notes = IncidentRepository(s).notifications(a)
    assert after == before + 1
    assert [n.channel for n in notes] == ["email"] and notes[0].target == "ops@acme-test.io"


def test_quiet_incident_resolves_then_flapping_escalates() -> None:
    from memory.db import session_scope, utcnow
    from tools.auto_intel.lifecycle import resolve_quiet

    clean_ops()
    t = utcnow()
    with override_settings(ops_resolve_quiet_s=30, ops_flap_window_s=600, ops_flap_max=3):
        iid, _ = _record(_finding("worker:w-flap", "rule:worker_hung", diagnosis="worker_hung"), t)
        for n in range(1, 4):
            with session_scope() as s:
                assert resolve_quiet(s, t + dt.timedelta(seconds=10), set()) == []  # not quiet long enough
                assert resolve_quiet(s, t + dt.timedelta(seconds=31), set()) == [iid]
            t += dt.timedelta(seconds=40)
            again, what = _record(_finding("worker:w-flap", "rule:worker_hung", diagnosis="worker_hung"), t)
            assert (again, what) == (iid, "reopened")
            assert incident(iid).reopens == n  # type: ignore[attr-defined]
    inc = incident(iid)
    assert inc.flapping and inc.manual and inc.state == "open"  # type: ignore[attr-defined]
    with session_scope() as s:  # a person's incident does not resolve by itself
        assert resolve_quiet(s, t + dt.timedelta(hours=1), set()) == []


def test_anomalous_series_opens_an_incident_scored_by_the_detector() -> None:
    from memory.db import session_scope, utcnow
    from tools.auto_intel.anomalies import anomaly_findings, detectors

    clean_ops()
    t0 = utcnow() - dt.timedelta(hours=1)
    series = "api.latency_s.p95{route=/v1/slow}"
    scores = []
    with override_settings(ops_detector_warmup=60, ops_anomaly_threshold=0.5):
        with session_scope() as s:
            for i in range(200):
                v = 0.05 + 0.002 * (i % 5)
                scores.append(detectors.score(s, t0 + dt.timedelta(seconds=5 * i), [(series, v)])[0][2])
            spike = detectors.score(s, t0 + dt.timedelta(seconds=1000), [(series, 3.0)])
        found = anomaly_findings(spike, t0)
    assert max(x for x in scores if x is not None) < 0.5
    assert len(found) == 1 and found[0].cause == "api:/v1/slow" and found[0].evidence["score"] >= 0.5
    iid, what = _record(found[0], utcnow())
    assert what == "opened" and incident(iid).diagnosis == "anomaly"  # type: ignore[attr-defined]


def test_incident_api_permissions_scoping_ack_and_resolve(client, org: OrgFixture) -> None:
    from memory.db import utcnow

    clean_ops()
    other = make_org()
    iid, _ = _record(_finding(f"pipeline:api-{org.org_id}", "rule:failure_rate", org_id=org.org_id,
                              diagnosis="failure_rate"), utcnow())
    platform, _ = _record(_finding("queue", "rule:queue_age"), utcnow())
    listed = client.get("/v1/incidents", headers=org.headers("viewer"))
    assert listed.status_code == 200
    ids = [i["id"] for i in listed.json()["items"]]
    assert iid in ids and platform not in ids  # platform incidents are for staff
    assert client.get(f"/v1/incidents/{iid}", headers=other.headers()).status_code == 404
    assert client.get(f"/v1/incidents/{platform}", headers=org.headers()).status_code == 404
    assert client.post(f"/v1/incidents/{iid}/ack", headers=org.headers("viewer")).status_code == 403
    r = client.post(f"/v1/incidents/{iid}/ack", headers=org.headers())
    assert r.status_code == 200 and r.json()["state"] == "acknowledged"
    r = client.post(f"/v1/incidents/{iid}/resolve", json={"note": "fixed the endpoint"}, headers=org.headers())
    assert r.status_code == 200 and r.json()["state"] == "resolved"
    assert client.post(f"/v1/incidents/{iid}/resolve", json={}, headers=org.headers()).status_code == 409
    detail = client.get(f"/v1/incidents/{iid}", headers=org.headers("viewer")).json()
    assert [e["kind"] for e in detail["timeline"]] == ["evidence", "state", "state"]
    assert "fixed the endpoint" in detail["timeline"][-1]["message"]
    assert client.get("/v1/incidents", params={"state": "bogus"}, headers=org.headers()).status_code == 422
    assert client.post(f"/v1/incidents/{iid}/resolve", json={"note": "x" * 2000},
                       headers=org.headers()).status_code == 422


def test_notifications_email_logged_webhook_through_ssrf_guard() -> None:
    from memory.db import session_scope, utcnow
    from memory.ops.repository import IncidentRepository
    from tools.auto_intel.notifications import send_notifications

    clean_ops()
    with override_settings(ops_notify_emails=["oncall@acme-test.io"], ops_notify_webhook="http://127.0.0.1:9/hook"):
        iid, _ = _record(_finding("queue:notify", "rule:queue_age"), utcnow())
        assert send_notifications() >= 1
    with session_scope() as s:
        by = {n.channel: n for n in IncidentRepository(s).notifications(iid)}
    assert by["email"].status == "sent" and by["email"].sent_at is not None
    assert by["webhook"].status == "blocked" and "loopback" in (by["webhook"].error or "")


def test_monitor_tick_opens_rule_incidents_and_survives_a_dead_database(org: OrgFixture,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.exc import OperationalError

    from memory.db import utcnow
    from tools.auto_intel import signals
    from tools.auto_intel.monitor import monitor_tick

    clean_ops()
    pid = make_pipeline(org.org_id)
    for _ in range(6):
        make_job(org.org_id, pid, "failed", last_error="boom", started_at=utcnow())
    real = signals.collect
    calls = {"n": 0}

    def flaky(*a: object, **k: object) -> object:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))
        return real(*a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(signals, "collect", flaky)
    with override_settings(ops_failure_min_jobs=5, ops_failure_rate_max=0.5):
        first = monitor_tick()
        assert first.error and "OperationalError" in first.error
        second = monitor_tick()
    assert second.error is None and second.sampled > 0
    found = [f for f in second.findings if f.cause == f"pipeline:{pid}"]
    assert found and found[0].diagnosis == "failure_rate" and found[0].org_id == org.org_id
    from memory.db import session_scope
    from memory.ops.repository import IncidentRepository

    with session_scope() as s:
        inc = IncidentRepository(s).open_for_cause(f"pipeline:{pid}")
        assert inc is not None and inc.id in second.opened and inc.org_id == org.org_id and inc.state == "open"


def test_ops_page_shows_incidents_and_charts_with_anomalies(client, org: OrgFixture, set_settings) -> None:
    from memory.db import session_scope, utcnow
    from tools.auto_intel import signals

    clean_ops()
    now = utcnow()
    with session_scope() as s:
        for i in range(30):
            ts = now - dt.timedelta(minutes=30 - i)
            signals.store(s, ts, [("jobs.queue.depth", float(i % 3), 0.95 if i == 20 else 0.1),
                                  ("jobs.finished", float(10 + i % 4), None)])
    iid, _ = _record(_finding(f"pipeline:page-{org.org_id}", "rule:failure_rate", org_id=org.org_id,
                              diagnosis="failure_rate"), now)
    r = client.get("/ops", headers=org.headers("viewer"))
    assert r.status_code == 200, r.text
    assert f'data-incident="{iid}"' in r.text
    # The queue is the platform's: an organisation sees its own pipelines' series, staff the platform's.
    assert 'data-series="jobs.queue.depth"' not in r.text and "shown to Levqor staff" in r.text
    set_settings(staff_orgs=[org.slug])
    r = client.get("/ops", headers=org.headers("viewer"))
    queue = r.text.split('data-series="jobs.queue.depth"')[1].split("</svg>")[0]
    assert queue.count('class="anomaly"') == 1
    finished = r.text.split('data-series="jobs.finished"')[1].split("</svg>")[0]
    assert "<polygon" in finished  # the forecast interval band
    assert client.get("/ops", headers=org.headers("partner")).status_code == 403
