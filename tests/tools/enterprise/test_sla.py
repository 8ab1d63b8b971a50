"""The SLA: uptime measured from probes and outage incidents less maintenance (edge cases), the
credit table, credit notes issued once per organisation and month (repeated and concurrent runs), the
report through the API (scoped to the caller's organisation, staff for all) and its PDF."""

from __future__ import annotations

import datetime as dt
import subprocess
import threading
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from memory.audit.models import AuditEntry
from memory.billing.models import CreditNote, RevenueEntry
from memory.db import session_scope
from memory.identity.repository import IdentityRepository
from memory.ops.models import Incident
from memory.pulse.models import ReadinessProbe
from tests.factories.orgs import make_org
from tools.context import Principal, ToolContext
from tools.enterprise import sla
from tools.enterprise.sla import Outage, commitments, measure

UTC = dt.UTC
T0 = dt.datetime(2021, 3, 1, tzinfo=UTC)
T1 = dt.datetime(2021, 4, 1, tzinfo=UTC)
MONTH_S = 31 * 86400


def probes_every(start: dt.datetime, end: dt.datetime, down: list[tuple[dt.datetime, dt.datetime]] = (),
                 step: int = 60) -> list[tuple[dt.datetime, bool]]:
    out = []
    t = start
    while t < end:
        out.append((t, not any(a <= t < b for a, b in down)))
        t += dt.timedelta(seconds=step)
    return out


# ---- measuring ------------------------------------------------------------------------------------

def test_all_probes_ok_is_full_uptime_and_failed_probes_count() -> None:
    m = measure(T0, T1, probes_every(T0, T1), [], [], 60)
    assert m.uptime_pct == 100.0 and m.downtime_s == 0 and m.observed_s == MONTH_S and m.probes == 31 * 1440
    down = [(T0 + dt.timedelta(days=3), T0 + dt.timedelta(days=3, minutes=10))]
    m = measure(T0, T1, probes_every(T0, T1, down), [], [], 60)
    assert m.failed_probes == 10 and m.downtime_s == 600
    assert m.uptime_pct == round(100 * (1 - 600 / MONTH_S), 4)
    assert [e.kind for e in m.events] == ["probe_failures"] and m.events[0].counted_s == 600


def test_missing_probes_are_unobserved_gaps_not_downtime_and_nothing_observed_is_not_measured() -> None:
    gap = (T0 + dt.timedelta(days=10), T0 + dt.timedelta(days=12))
    probes = [p for p in probes_every(T0, T1) if not gap[0] <= p[0] < gap[1]]
    m = measure(T0, T1, probes, [], [], 60)
    assert m.uptime_pct == 100.0
    # The last probe before the gap speaks for two intervals (one more than usual).
    assert m.observed_s == pytest.approx(MONTH_S - 2 * 86400 + 60)
    assert len(m.gaps) == 1 and m.gaps[0][0] == pytest.approx(gap[0].timestamp() + 60)
    empty = measure(T0, T1, [], [], [], 60)
    assert empty.uptime_pct is None and empty.observed_s == 0
    # An outage incident counts even where the prober itself was down.
    inc = Outage("incident:1", "down", gap[0], gap[0] + dt.timedelta(hours=1), gap[0] + dt.timedelta(hours=1))
    m = measure(T0, T1, probes, [inc], [], 60)
    assert m.downtime_s == 3600 and m.uptime_pct == round(100 * (1 - 3600 / MONTH_S), 4)


def test_an_incident_spanning_the_month_boundary_counts_only_inside_each_month() -> None:
    start, end = T1 - dt.timedelta(minutes=10), T1 + dt.timedelta(minutes=20)
    inc = Outage("incident:7", "boundary", start, end, end - dt.timedelta(seconds=60))
    march = measure(T0, T1, probes_every(T0, T1, [(start, end)]), [inc], [], 60)
    assert march.downtime_s == 600 and march.events[0].counted_s == 600
    april_end = dt.datetime(2021, 5, 1, tzinfo=UTC)
    april = measure(T1, april_end, probes_every(T1, april_end, [(start, end)]), [inc], [], 60)
    assert april.downtime_s == 1200 and april.events[0].start == pytest.approx(T1.timestamp())
    # Unresolved and still being seen: it lasts one interval past the last evidence.
    open_inc = Outage("incident:8", "open", start, None, T1 - dt.timedelta(minutes=2))
    m = measure(T0, T1, [], [open_inc], [], 60)
    assert m.downtime_s == 9 * 60 and m.uptime_pct is not None


def test_announced_maintenance_is_excluded_from_downtime_and_from_the_month() -> None:
    w0 = T0 + dt.timedelta(days=20, hours=2)
    window = (w0, w0 + dt.timedelta(hours=1))
    inside = [(w0 + dt.timedelta(minutes=5), w0 + dt.timedelta(minutes=25))]
    m = measure(T0, T1, probes_every(T0, T1, inside), [], [window], 60)
    assert m.uptime_pct == 100.0 and m.downtime_s == 0 and m.excluded_downtime_s == 1200
    assert m.eligible_s == MONTH_S - 3600 and m.maintenance_s == 3600
    assert m.events[0].counted_s == 0 and m.events[0].excluded_s == 1200
    # An incident that outlasts the window: only the part outside it counts.
    inc = Outage("incident:9", "overran", w0 + dt.timedelta(minutes=50), w0 + dt.timedelta(minutes=80),
                 w0 + dt.timedelta(minutes=80))
    m = measure(T0, T1, probes_every(T0, T1), [inc], [window], 60)
    assert m.downtime_s == 20 * 60 and m.excluded_downtime_s == 10 * 60
    assert (m.events[0].counted_s, m.events[0].excluded_s) == (1200, 600)


def test_credit_table_per_plan_and_the_enterprise_target_from_pulse(set_settings) -> None:
    ent = commitments()["enterprise"]
    assert ent.uptime_pct == 99.98
    assert [ent.credit_percent(u) for u in (100.0, 99.98, 99.979, 99.9, 99.89, 99.0, 98.9, 95.0, 94.0, None)] == \
        [0, 0, 10, 10, 25, 25, 50, 50, 100, 0]
    biz, pro = commitments()["business"], commitments()["pro"]
    assert (biz.uptime_pct, biz.credit_percent(99.95), biz.credit_percent(99.5), biz.credit_percent(90)) == \
        (99.9, 0, 10, 50)
    assert (pro.uptime_pct, pro.credit_percent(99.4), pro.credit_percent(98.0)) == (99.5, 10, 25)
    assert "free" not in commitments()
    set_settings(pulse_targets='{"uptime": {"op": ">=", "value": 99.95, "window": "month"}}')
    assert commitments()["enterprise"].uptime_pct == 99.95 and commitments()["enterprise"].credit_percent(99.96) == 0


# ---- credit notes ---------------------------------------------------------------------------------

def _month_with_outage(org_id: int, year: int, month: int, minutes: int, tag: str) -> str:
    """An enterprise invoice for the month, one probe a minute, and an outage of ``minutes``."""
    start = dt.datetime(year, month, 1, tzinfo=UTC)
    end = dt.datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    out0 = start + dt.timedelta(days=5, hours=3)
    out1 = out0 + dt.timedelta(minutes=minutes)
    with session_scope() as s:
        s.add(RevenueEntry(org_id=org_id, kind="subscription", amount_minor=4900 * 10, stripe_object_id=f"in_{tag}",
                           event_id=f"evt_{tag}", plan="enterprise", interval="month", seats=10,
                           period_start=start, period_end=end, occurred_at=start))
        s.execute(ReadinessProbe.__table__.insert(), [
            {"ts": t, "ok": ok, "status_code": 200 if ok else 503, "latency_ms": 5.0, "detail": None}
            for t, ok in probes_every(start, end, [(out0, out1)])])
        s.add(Incident(org_id=None, cause=f"api:{tag}", fingerprint="rule:api_down", kind="rule",
                       diagnosis="api_down", title=f"outage {tag}", severity="critical", state="resolved",
                       detected_at=out0, opened_at=out0, last_seen_at=out1 - dt.timedelta(minutes=1),
                       resolved_at=out1))
    return start.strftime("%Y-%m")


def _platform(s) -> ToolContext:  # type: ignore[no-untyped-def]
    return ToolContext(s, Principal(kind="system", id="sla-test", org_id=None, role="admin", name="test"))


def test_a_missed_month_gets_one_audited_credit_note_however_often_it_runs() -> None:
    org = make_org(plan="enterprise")
    month = _month_with_outage(org.org_id, 2019, 4, 30, uuid.uuid4().hex[:8])  # 30 min of 30 days: 99.93 %
    for _ in range(3):
        with session_scope() as s:
            o = IdentityRepository(s).org(org.org_id)
            assert o is not None
            sla.issue_credit(_platform(s), o, month)
    with session_scope() as s:
        notes = list(s.scalars(select(CreditNote).where(CreditNote.org_id == org.org_id)))
        assert len(notes) == 1
        n = notes[0]
        assert (n.period, n.percent, n.fee_minor, n.amount_minor) == (month, 10, 49000, 4900)
        audits = list(s.scalars(select(AuditEntry).where(AuditEntry.action == "billing.credit_note_issued",
                                                         AuditEntry.org_id == org.org_id)))
        assert len(audits) == 1 and audits[0].target == f"credit_note:{n.id}"
        o = IdentityRepository(s).org(org.org_id)
        assert o is not None
        r = sla.build_report(s, o, month)
        assert r.credit_status == "issued" and r.credit_note is not None and r.met is False
        assert [e.status for e in r.events] == ["counted"] and r.events[0].counted_s == 1800


def test_concurrent_credit_runs_write_one_note() -> None:
    org = make_org(plan="enterprise")
    month = _month_with_outage(org.org_id, 2019, 6, 120, uuid.uuid4().hex[:8])
    barrier = threading.Barrier(3)
    wrote: list[bool] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait(timeout=10)
            with session_scope() as s:
                o = IdentityRepository(s).org(org.org_id)
                assert o is not None
                wrote.append(sla.issue_credit(_platform(s), o, month)[1])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    # SQLite serialises writers (a loser may see "database is locked" and roll back, writing nothing).
    assert wrote.count(True) == 1, (wrote, errors)
    with session_scope() as s:
        assert len(list(s.scalars(select(CreditNote).where(CreditNote.org_id == org.org_id)))) == 1
        assert len(list(s.scalars(select(AuditEntry).where(AuditEntry.action == "billing.credit_note_issued",
                                                           AuditEntry.org_id == org.org_id)))) == 1


def test_a_met_month_and_a_month_in_progress_owe_nothing() -> None:
    org = make_org(plan="enterprise")
    month = _month_with_outage(org.org_id, 2019, 8, 2, uuid.uuid4().hex[:8])  # 2 min: 99.995 %
    with session_scope() as s:
        o = IdentityRepository(s).org(org.org_id)
        assert o is not None
        note, wrote = sla.issue_credit(_platform(s), o, month)
        assert note is None and not wrote
        now = sla.utcnow()
        live = sla.build_report(s, o, now.strftime("%Y-%m"))
        assert live.in_progress and live.credit_minor == 0 and live.credit_status in ("pending", "not_measured")
        with pytest.raises(sla.BadRequest):
            sla.issue_credit(_platform(s), o, now.strftime("%Y-%m"))


# ---- API, scoping, PDF ----------------------------------------------------------------------------

@pytest.mark.needs_pkg("poppler-utils", binary="pdftoppm")
def test_report_api_is_scoped_and_the_pdf_renders(client, set_settings, tmp_path: Path) -> None:
    org = make_org(plan="enterprise")
    other = make_org(plan="enterprise")
    month = _month_with_outage(org.org_id, 2019, 10, 90, uuid.uuid4().hex[:8])
    r = client.get("/v1/sla/report", params={"month": month}, headers=org.headers())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["org_slug"] == org.slug and body["met"] is False and body["credit_status"] == "owed"
    assert body["credit_percent"] == 25 and body["credit_minor"] == 49000 * 25 // 100
    assert client.get("/v1/sla/report", params={"month": month}, headers=org.headers("auditor")).status_code == 200
    assert client.get("/v1/sla/report", headers=org.headers("viewer")).status_code == 403
    refused = client.get("/v1/sla/report", params={"month": month, "org": org.slug}, headers=other.headers())
    assert refused.status_code == 403 and org.slug not in refused.text
    bad = client.get("/v1/sla/report", params={"month": "2019-13"}, headers=org.headers())
    assert bad.status_code == 422 and "month" in bad.text
    set_settings(staff_orgs=[other.slug])
    assert client.get("/v1/sla/report", params={"month": month, "org": org.slug},
                      headers=other.headers()).json()["uptime_pct"] == body["uptime_pct"]
    # On demand: staff issue the month's credits; a second run finds them issued.
    run = client.post("/v1/sla/credits", json={"month": month, "org": org.slug}, headers=other.headers())
    assert run.status_code == 200 and len(run.json()["issued"]) == 1, run.text
    again = client.post("/v1/sla/credits", json={"month": month, "org": org.slug}, headers=other.headers())
    assert again.json()["issued"] == [] and again.json()["already_issued"] == 1
    assert client.post("/v1/sla/credits", json={"month": month}, headers=org.headers()).status_code == 403
    pdf = client.get("/v1/sla/report.pdf", params={"month": month}, headers=org.headers())
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    (tmp_path / "r.pdf").write_bytes(pdf.content)
    subprocess.run(["pdftoppm", "-png", "-r", "50", str(tmp_path / "r.pdf"), str(tmp_path / "p")], check=True)
    assert list(tmp_path.glob("p*.png"))
    text = subprocess.run(["pdftotext", str(tmp_path / "r.pdf"), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "Service Level Report" in text and "Missed" in text and "$122.50" in text


def test_maintenance_is_announced_by_staff_ahead_and_audited(client, set_settings) -> None:
    staff = make_org()
    org = make_org(plan="enterprise")
    set_settings(staff_orgs=[staff.slug])
    start = sla.utcnow() + dt.timedelta(days=5)
    body = {"starts_at": start.isoformat(), "ends_at": (start + dt.timedelta(hours=1)).isoformat(),
            "title": "Database upgrade"}
    assert client.post("/v1/sla/maintenance", json=body, headers=org.headers()).status_code == 403
    soon = sla.utcnow() + dt.timedelta(hours=1)
    late = {**body, "starts_at": soon.isoformat(), "ends_at": (soon + dt.timedelta(hours=1)).isoformat()}
    r = client.post("/v1/sla/maintenance", json=late, headers=staff.headers())
    assert r.status_code == 400 and "starts_at" in r.text
    long = {**body, "ends_at": (start + dt.timedelta(hours=13)).isoformat()}
    r = client.post("/v1/sla/maintenance", json=long, headers=staff.headers())
    assert r.status_code == 422 and "ends_at" in r.text
    r = client.post("/v1/sla/maintenance", json=body, headers=staff.headers())
    assert r.status_code == 201, r.text
    wid = r.json()["id"]
    listed = client.get("/v1/sla/maintenance", headers=org.headers()).json()["windows"]
    assert any(w["id"] == wid for w in listed)
    with session_scope() as s:
        assert s.scalars(select(AuditEntry).where(AuditEntry.action == "sla.maintenance_announced",
                                                  AuditEntry.target == f"maintenance:{wid}")).first() is not None
    assert client.post(f"/v1/sla/maintenance/{wid}/cancel", headers=staff.headers()).json()["cancelled"] is True


def test_the_scheduled_monthly_run_issues_last_months_credit_on_the_leader() -> None:
    from workers.wiring import schedules

    assert any(s.name == "sla.credits" for s in schedules())
    org = make_org(plan="enterprise")
    month = _month_with_outage(org.org_id, 2019, 12, 60, uuid.uuid4().hex[:8])
    sla.run_monthly(now=dt.datetime(2020, 1, 9, tzinfo=UTC))  # after the third: nothing
    with session_scope() as s:
        assert s.scalars(select(CreditNote).where(CreditNote.org_id == org.org_id)).first() is None
    for _ in range(2):
        sla.run_monthly(now=dt.datetime(2020, 1, 1, 0, 30, tzinfo=UTC))
    with session_scope() as s:
        notes = list(s.scalars(select(CreditNote).where(CreditNote.org_id == org.org_id)))
        assert [(n.period, n.percent, n.created_by) for n in notes] == [(month, 25, "system:sla")]


CHILD = """
import sys
from memory.db import session_scope
from memory.identity.repository import IdentityRepository
from tools.context import Principal, ToolContext
from tools.enterprise import sla
with session_scope() as s:
    org = IdentityRepository(s).org(int(sys.argv[1]))
    ctx = ToolContext(s, Principal(kind="system", id="sla", org_id=None, role="admin", name="child"))
    note, wrote = sla.issue_credit(ctx, org, sys.argv[2])
    print("written" if wrote else "nothing", flush=True)
    sys.stdin.readline()  # hold the transaction open until killed
"""


def test_a_run_killed_before_commit_leaves_nothing_and_the_next_run_issues_the_note() -> None:
    import os
    import signal
    import sys

    from tests.support.processes import child_env

    org = make_org(plan="enterprise")
    month = _month_with_outage(org.org_id, 2019, 2, 60, uuid.uuid4().hex[:8])
    p = subprocess.Popen([sys.executable, "-c", CHILD, str(org.org_id), month], env=child_env(),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         cwd=Path(__file__).resolve().parents[3])
    try:
        assert p.stdout is not None
        line = p.stdout.readline().decode().strip()
        assert line == "written", (line, p.stderr.read().decode()[-2000:] if p.stderr else "")
        os.kill(p.pid, signal.SIGKILL)
        assert p.wait(timeout=30) == -signal.SIGKILL
    finally:
        if p.poll() is None:
            p.kill()
    with session_scope() as s:
        assert s.scalars(select(CreditNote).where(CreditNote.org_id == org.org_id)).first() is None
        assert s.scalars(select(AuditEntry).where(AuditEntry.action == "billing.credit_note_issued",
                                                  AuditEntry.org_id == org.org_id)).first() is None
        o = IdentityRepository(s).org(org.org_id)
        assert o is not None
        assert sla.issue_credit(_platform(s), o, month)[1] is True
    with session_scope() as s:
        assert len(list(s.scalars(select(CreditNote).where(CreditNote.org_id == org.org_id)))) == 1
