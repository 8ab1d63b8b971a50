"""Pulse store: idempotent daily snapshots, "not available" with reasons, the provider registry,
uptime from real /readyz probes, the scheduled checks and the Prometheus gauges."""

from __future__ import annotations

import datetime as dt
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import func, select

from tests.factories.orgs import OrgFixture, make_org, org_ctx
from tests.factories.pulse import seeded_org
from tests.support import free_port


def _count(org_id: int, day: dt.date | None = None) -> int:
    from memory.db import session_scope
    from memory.pulse.models import PulseSnapshot
    from tools.pulse.kpis import KPIS

    with session_scope() as s:
        stmt = select(func.count(PulseSnapshot.id)).where(PulseSnapshot.org_id == org_id,
                                                          PulseSnapshot.kpi.in_(list(KPIS)))
        if day:
            stmt = stmt.where(PulseSnapshot.day == day)
        return int(s.scalar(stmt) or 0)


def test_snapshot_is_idempotent_per_day_and_names_missing_sources(client, org: OrgFixture) -> None:
    from sqlalchemy import delete, update

    from memory.db import session_scope
    from memory.ops.models import Incident
    from memory.pulse.models import ReadinessProbe
    from tools.pulse.kpis import KPIS, OUTAGE_DIAGNOSES
    from tools.registry import registry

    with session_scope() as s:  # probes and outages are platform-wide: start from none measured today
        s.execute(delete(ReadinessProbe))
        # other tests' outage incidents (db_outage, api_down) count as observed downtime: move them back
        back = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
        s.execute(update(Incident).where(Incident.diagnosis.in_(OUTAGE_DIAGNOSES))
                  .values(detected_at=back, last_seen_at=back, resolved_at=back, state="resolved"))
    r1 = client.post("/v1/pulse/snapshots", json={}, headers=org.headers())
    assert r1.status_code == 200, r1.text
    day = dt.date.fromisoformat(r1.json()["day"])
    assert _count(org.org_id, day) == len(KPIS)
    r2 = client.post("/v1/pulse/snapshots", json={}, headers=org.headers())
    assert r2.status_code == 200 and _count(org.org_id, day) == len(KPIS)
    items = {i["kpi"]: i for i in r2.json()["items"]}
    names = {t.name for t in registry.all()}
    for kpi, tool_name in (("jobs_run", "jobs.kpis"), ("certified_users", "certification.kpis"),
                           ("manual_incidents", "incidents.list")):
        if tool_name not in names:
            assert items[kpi]["value"] is None and not items[kpi]["available"]
            assert tool_name in items[kpi]["reason"]
    # Nothing measured yet: never a made-up zero.
    assert items["uptime"]["value"] is None and "probe" in items["uptime"]["reason"]
    assert items["spend"]["value"] is None and "cost" in items["spend"]["reason"].lower()
    assert items["suggestion_acceptance_rate"]["value"] is None
    future = (dt.date.today() + dt.timedelta(days=3)).isoformat()
    bad = client.post("/v1/pulse/snapshots", json={"day": future}, headers=org.headers())
    assert bad.status_code == 422 and bad.json()["field"] == "day"


def test_registered_provider_is_used_and_a_failing_one_degrades() -> None:
    from memory.db import session_scope
    from tools.pulse import kpis
    from tools.pulse.kpis import Reading, register_kpi
    from tools.pulse.store import snapshot_day

    org = make_org()
    before = kpis.providers()
    try:
        register_kpi("certified_users", lambda ctx, day: Reading(123.0, "test provider"))

        def broken(ctx: Any, day: dt.date) -> Reading:
            raise RuntimeError("partner db down")

        register_kpi("plugin_installs", broken)
        with session_scope() as s:
            snap = snapshot_day(org_ctx(s, org.org_id), dt.date.today())
        items = {i.kpi: i for i in snap.items}
        assert items["certified_users"].value == 123.0 and items["certified_users"].source == "test provider"
        assert items["plugin_installs"].value is None
        assert "partner db down" in (items["plugin_installs"].reason or "")
        assert items["active_orgs"].value is not None  # the rest of the snapshot still happened
    finally:
        kpis._providers.clear()
        kpis._providers.update(before)


class _Ready(BaseHTTPRequestHandler):
    status = 200

    def log_message(self, *_a: Any) -> None:
        return

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(type(self).status)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


def test_readyz_probe_records_success_and_failure() -> None:
    from tools.pulse.checks import probe_readiness

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ready)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/readyz"
        assert probe_readiness(url).ok
        _Ready.status = 503
        failed = probe_readiness(url)
        assert not failed.ok and failed.status_code == 503
    finally:
        server.shutdown()
        server.server_close()
        _Ready.status = 200
    down = probe_readiness(f"http://127.0.0.1:{free_port()}/readyz", timeout_s=2)
    assert not down.ok and down.status_code is None and down.detail


def _yesterday() -> tuple[dt.date, dt.datetime]:
    day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    return day, dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def _reset_probes_and_outages() -> None:
    from sqlalchemy import delete

    from memory.db import session_scope
    from memory.ops.models import Incident
    from memory.pulse.models import ReadinessProbe

    with session_scope() as s:
        s.execute(delete(ReadinessProbe))
        s.execute(delete(Incident).where(Incident.diagnosis == "api_down"))


def test_uptime_is_time_weighted_from_probes_and_counts_outage_incidents() -> None:
    """A day probed every minute: 10 failed minutes, then a 5-minute outage incident during a stretch
    where the prober itself was down, overlapping 2 more failed minutes; the rest up."""
    from memory.db import session_scope
    from memory.ops.models import Incident
    from memory.pulse.models import ReadinessProbe
    from tools.pulse.kpis import _uptime

    _reset_probes_and_outages()
    day, t0 = _yesterday()
    failed = set(range(600, 610)) | {901, 902}
    missing = set(range(903, 907))  # the prober was down too: only the incident saw these minutes
    with session_scope() as s:
        s.add_all(ReadinessProbe(ts=t0 + dt.timedelta(minutes=m), ok=m not in failed, status_code=200)
                  for m in range(1440) if m not in missing)
        s.add(Incident(cause="api", fingerprint="rule:api_down", kind="rule", diagnosis="api_down",
                       title="API down", severity="critical", state="resolved",
                       detected_at=t0 + dt.timedelta(minutes=901), opened_at=t0 + dt.timedelta(minutes=902),
                       last_seen_at=t0 + dt.timedelta(minutes=905),
                       resolved_at=t0 + dt.timedelta(hours=20)))  # resolved late by a person: the wait is not counted
    org = make_org()
    with session_scope() as s:
        reading = _uptime(org_ctx(s, org.org_id), day)
    # Down: minutes 600-610 (10) and 901-906 (the incident until last seen + one interval): 15. Observed: all
    # but 906-907 (the probe at 902 stands for two intervals at most; the incident ends at 906): 1439.
    assert reading.available and reading.value == round(100 * (1 - 15 / 1439), 4)
    assert "outage_incidents" in reading.source


def test_uptime_counts_an_open_outage_and_excludes_unobserved_time() -> None:
    from tools.pulse.kpis import uptime_percent

    t0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    end = t0 + dt.timedelta(days=1)
    minute = dt.timedelta(minutes=1)
    # Probes only in the first hour (the scheduler stopped), all up; an outage still open at 23:00.
    probes = [(t0 + i * minute, True) for i in range(60)]
    outage = (t0 + dt.timedelta(hours=23), None, end - minute)
    value, down, seen = uptime_percent(probes, [outage], t0, end, 60.0) or (0.0, 0.0, 0.0)
    assert (down, seen) == (3600.0, 7200.0) and value == 50.0
    assert uptime_percent([], [], t0, end, 60.0) is None


def test_failed_probes_open_an_api_down_outage_that_resolves_itself() -> None:
    from memory.db import session_scope, utcnow
    from memory.ops.models import Incident
    from memory.pulse.models import ReadinessProbe
    from tools.auto_intel.monitor import monitor_tick
    from tools.auto_intel.self_heal import heal

    _reset_probes_and_outages()
    now = utcnow()
    with session_scope() as s:
        s.add(ReadinessProbe(ts=now - dt.timedelta(seconds=100), ok=True, status_code=200))
        s.add(ReadinessProbe(ts=now - dt.timedelta(seconds=60), ok=False, status_code=503, detail="db down"))
        s.add(ReadinessProbe(ts=now - dt.timedelta(seconds=1), ok=False, status_code=None, detail="refused"))
    monitor_tick(now)
    with session_scope() as s:
        inc = s.scalars(select(Incident).where(Incident.diagnosis == "api_down")).one()
        assert inc.state == "open" and inc.severity == "critical" and inc.cause == "api"
        assert abs((inc.detected_at.replace(tzinfo=dt.UTC) - (now - dt.timedelta(seconds=60))).total_seconds()) < 1
        iid = inc.id
    assert heal(iid, now).outcome == "observed"  # the supervisor restarts the API; nobody is paged yet
    with session_scope() as s:
        s.add(ReadinessProbe(ts=now + dt.timedelta(seconds=5), ok=True, status_code=200))
    monitor_tick(now + dt.timedelta(seconds=120))
    with session_scope() as s:
        inc = s.get(Incident, iid)
        assert inc is not None and inc.state == "resolved" and not inc.manual


def test_a_long_api_outage_goes_to_a_person() -> None:
    from memory.db import session_scope, utcnow
    from memory.ops.models import Incident
    from tools.auto_intel.self_heal import heal

    _reset_probes_and_outages()
    now = utcnow()
    with session_scope() as s:
        inc = Incident(cause="api", fingerprint="rule:api_down", kind="rule", diagnosis="api_down",
                       title="API down", severity="critical", detected_at=now - dt.timedelta(minutes=11),
                       opened_at=now - dt.timedelta(minutes=11), last_seen_at=now)
        s.add(inc)
        s.flush()
        iid = inc.id
    assert heal(iid, now).outcome == "escalated"
    with session_scope() as s:
        inc = s.get(Incident, iid)
        assert inc is not None and inc.manual


def test_scheduled_checks_are_idempotent_and_make_the_monthly_pdf() -> None:
    from memory.db import session_scope
    from memory.pulse.repository import PulseRepository
    from tools.pulse.checks import run_checks as pulse_checks
    from workers.scheduler import start_requested

    def run_checks(now: dt.datetime, org_ids: list[int]) -> None:  # as the scheduler runs them
        start_requested(pulse_checks(now, org_ids).runs)

    org = seeded_org()
    total_before = _count(org.org_id)
    now = dt.datetime.now(dt.UTC)
    first_of_month = (now.replace(day=28) + dt.timedelta(days=5)).replace(day=1, hour=3, minute=0, second=0,
                                                                          microsecond=0)
    run_checks(first_of_month, [org.org_id])
    after_first = _count(org.org_id)
    run_checks(first_of_month + dt.timedelta(minutes=15), [org.org_id])
    assert _count(org.org_id) == after_first > total_before
    with session_scope() as s:
        repo = PulseRepository(s)
        runs = repo.runs(org.org_id)
        prev = (first_of_month.date() - dt.timedelta(days=1)).strftime("%Y-%m")
        assert len(runs) == 1 and runs[0].trigger == "schedule"  # weekly, not every check
        from memory.agents.repository import AgentRepository

        agent_runs = AgentRepository(s).runs(org.org_id, agent="planner")
        # The weekly planner is an agent run (policy-checked as agent:planner, listed with the agents' runs).
        assert [(r.trigger, r.status) for r in agent_runs] == [("schedule", "succeeded")]
        report = repo.report(org.org_id, prev)
        assert report is not None and report.pdf.startswith(b"%PDF")
        created = report.created_at
    run_checks(first_of_month + dt.timedelta(minutes=30), [org.org_id])
    with session_scope() as s:
        again = PulseRepository(s).report(org.org_id, prev)
        assert again is not None and again.created_at == created  # not regenerated
    run_checks(first_of_month + dt.timedelta(days=7), [org.org_id])  # the next ISO week: the planner runs again
    with session_scope() as s:
        from memory.agents.repository import AgentRepository

        assert len(AgentRepository(s).runs(org.org_id, agent="planner")) == 2


def test_seeded_history_is_not_overwritten_by_the_daily_check() -> None:
    from memory.db import session_scope, utcnow
    from memory.pulse.repository import PulseRepository
    from tools.pulse.checks import run_checks

    org = seeded_org()
    yesterday = utcnow().date() - dt.timedelta(days=1)
    run_checks(org_ids=[org.org_id])
    with session_scope() as s:
        rows = PulseRepository(s).snapshot_rows(org.org_id, yesterday)
    assert rows["revenue"].value is not None and rows["revenue"].source == "test"


def test_targets_publish_prometheus_gauges_only_when_the_setting_allows(client, set_settings) -> None:
    org = seeded_org()
    r = client.get("/v1/pulse/targets", headers=org.headers("viewer"))
    assert r.status_code == 200, r.text
    assert f'org="{org.org_id}"' not in client.get("/metrics").text  # off by default: no tenant figures
    set_settings(metrics_tenant_kpis=True)
    r = client.get("/v1/pulse/targets", headers=org.headers("viewer"))
    assert r.status_code == 200, r.text
    text = client.get("/metrics").text
    assert f'levqor_pulse_target_status{{kpi="uptime",org="{org.org_id}"}}' in text
    assert f'levqor_pulse_target{{kpi="spend",org="{org.org_id}"}} 1000.0' in text
    assert f'levqor_pulse_kpi{{kpi="revenue",org="{org.org_id}"}}' in text
    assert f'levqor_pulse_error_budget_remaining_seconds{{org="{org.org_id}"}}' in text


def test_kpis_history_and_pages(client) -> None:
    org = seeded_org()
    latest = client.get("/v1/pulse/kpis", headers=org.headers("viewer")).json()
    rev = next(i for i in latest["items"] if i["kpi"] == "revenue")
    assert rev["available"] and rev["value"] > 0
    h = client.get("/v1/pulse/history", params={"kpi": "revenue", "days": 14}, headers=org.headers("viewer"))
    assert h.status_code == 200 and len(h.json()["points"]) == 14 and h.json()["days"] == 14
    bad = client.get("/v1/pulse/history", params={"kpi": "happiness"}, headers=org.headers("viewer"))
    assert bad.status_code == 422 and bad.json()["field"] == "kpi"
    page = client.get("/pulse", headers=org.headers("viewer"))
    assert page.status_code == 200 and "Uptime" in page.text and "<polyline" in page.text
    assert "Run the planner now" not in page.text  # viewers cannot decide
    page = client.get("/advisor", headers=org.headers("viewer"))
    assert page.status_code == 200 and "Offline mode" in page.text


def test_daily_figures_from_a_tool_reporting_totals_to_date() -> None:
    from memory.db import session_scope, utcnow
    from memory.pulse.repository import PulseRepository
    from tools.pulse.store import snapshot_day
    from tools.registry import registry

    if "partners.kpis" not in {t.name for t in registry.all()}:
        import pytest

        pytest.fail("partners.kpis is registered by the partner area; this test reads it")
    org = make_org()
    today = utcnow().date()
    with session_scope() as s:
        items = {i.kpi: i for i in snapshot_day(org_ctx(s, org.org_id), today).items}
        assert items["plugin_installs"].value is None
        assert "previous day's total" in (items["plugin_installs"].reason or "")
        total = PulseRepository(s).snapshot_rows(org.org_id, today)["plugin_installs_total"].value
        assert total is not None
        PulseRepository(s).upsert_snapshot(org_id=org.org_id, day=today - dt.timedelta(days=1),
                                           kpi="plugin_installs_total", value=total - 3, available=True,
                                           reason=None, source="test")
    with session_scope() as s:
        items = {i.kpi: i for i in snapshot_day(org_ctx(s, org.org_id), today).items}
    assert items["plugin_installs"].value == 3.0 and "difference" in items["plugin_installs"].source
    # Incidents are platform-wide (other tests open some), so only the source and availability are fixed here.
    manual = items["manual_incidents"]
    assert manual.source == "incidents.list" and manual.available and manual.value is not None and manual.value >= 0


def test_the_check_pass_serves_the_least_recently_snapshotted_organisations_first() -> None:
    from memory.db import session_scope, utcnow
    from memory.pulse.repository import PulseRepository

    older, stale, fresh, new = (make_org().org_id for _ in range(4))
    today = utcnow().date()
    now = utcnow()
    with session_scope() as s:
        repo = PulseRepository(s)
        repo.upsert_snapshot(org_id=stale, day=today, kpi="uptime", value=99.0, available=True, reason=None,
                             source="test", now=now - dt.timedelta(hours=3))
        repo.upsert_snapshot(org_id=fresh, day=today, kpi="uptime", value=99.0, available=True, reason=None,
                             source="test", now=now)
        # a snapshot of a day before the window does not count as recent
        repo.upsert_snapshot(org_id=older, day=today - dt.timedelta(days=5), kpi="uptime", value=99.0,
                             available=True, reason=None, source="test", now=now)
    with session_scope() as s:
        order = [i for i in PulseRepository(s).org_ids_stalest_first(today - dt.timedelta(days=1))
                 if i in (older, stale, fresh, new)]
    assert order == [new, older, stale, fresh]


def test_a_check_pass_longer_than_its_interval_is_logged(set_settings, caplog) -> None:
    import logging

    from tools.pulse.checks import run_checks

    org = make_org()
    with caplog.at_level(logging.WARNING, logger="levqor.pulse"):
        run_checks(org_ids=[org.org_id])
    assert not [r for r in caplog.records if r.getMessage() == "pulse checks took longer than their interval"]
    set_settings(pulse_check_interval_s=0)  # any pass outruns an interval of 0 s
    with caplog.at_level(logging.WARNING, logger="levqor.pulse"):
        run_checks(org_ids=[org.org_id])
    late = [r for r in caplog.records if r.getMessage() == "pulse checks took longer than their interval"]
    assert len(late) == 1 and late[0].fields["orgs"] == 1 and late[0].fields["interval_s"] == 0  # type: ignore[attr-defined]
