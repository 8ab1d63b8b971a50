"""One KPI, one number: for the demo data, every surface shows a KPI for a period as tools.pulse.measure
computes it (targets via the API, pulse.history, the advisor, the monthly report and its PDF); a month in
progress says so."""

from __future__ import annotations

import datetime as dt
import subprocess

import pytest

from tests.factories.orgs import org_ctx
from tests.factories.pulse import seeded_org
from tools.pulse.report import fmt

MONTH_KPIS = ("uptime", "partner_revenue_share")  # the default targets with a month window


def test_every_surface_reads_the_same_month_to_date_value(client) -> None:
    from memory.db import session_scope
    from memory.pulse.repository import PulseRepository
    from tools.decision_engine.advisor import answer
    from tools.pulse.measure import measure
    from tools.pulse.report import month_summary

    org = seeded_org()
    with session_scope() as s:
        latest = PulseRepository(s).latest_day(org.org_id)
        assert latest is not None
        start = latest.replace(day=1)
        truth = {k: measure(s, org.org_id, k, start, latest) for k in (*MONTH_KPIS, "spend", "plugin_installs")}
        summary = month_summary(org_ctx(s, org.org_id), latest.strftime("%Y-%m"))
        said = {k: answer(org_ctx(s, org.org_id), f"What is our {w} this month?")
                for k, w in (("uptime", "uptime"), ("partner_revenue_share", "partner revenue share"))}
    targets = {t["kpi"]: t for t in client.get("/v1/pulse/targets", headers=org.headers()).json()["items"]}
    for kpi in MONTH_KPIS:
        m = truth[kpi]
        assert targets[kpi]["actual"] == pytest.approx(m.value, abs=1e-4), kpi
        assert targets[kpi]["partial"] is summary["in_progress"] and targets[kpi]["period_start"] == start.isoformat()
        assert summary["kpis"][kpi]["value"] == pytest.approx(m.value, abs=1e-4), kpi
        assert fmt(m.value, m.unit) in said[kpi].answer, (kpi, said[kpi].answer)
        h = client.get("/v1/pulse/history", params={"kpi": kpi, "days": latest.day}, headers=org.headers())
        assert h.status_code == 200 and h.json()["value"] == pytest.approx(m.value, abs=1e-4), kpi
    for kpi in ("spend", "plugin_installs"):
        assert summary["kpis"][kpi]["value"] == pytest.approx(truth[kpi].value, abs=1e-4), kpi
    month_days = ((start.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - start).days
    assert summary["in_progress"] == (latest.day < month_days) and summary["days_covered"] == latest.day


def test_a_past_month_is_whole_and_the_same_everywhere() -> None:
    from memory.db import session_scope
    from memory.pulse.repository import PulseRepository
    from tools.decision_engine.advisor import answer
    from tools.pulse.measure import measure
    from tools.pulse.report import month_summary
    from tools.pulse.targets import evaluate

    org = seeded_org()
    with session_scope() as s:
        latest = PulseRepository(s).latest_day(org.org_id)
        assert latest is not None
        end = latest.replace(day=1) - dt.timedelta(days=1)
        start = end.replace(day=1)
        m = measure(s, org.org_id, "uptime", start, end)
        assert not m.partial and m.days_with_data == m.days_in_period
        report = month_summary(org_ctx(s, org.org_id), end.strftime("%Y-%m"))
        target = next(t for t in evaluate(s, org.org_id, end).items if t.kpi == "uptime")
        said = answer(org_ctx(s, org.org_id), "What was our uptime last month?")
    assert report["in_progress"] is False
    assert report["kpis"]["uptime"]["value"] == pytest.approx(m.value)
    assert target.actual == pytest.approx(m.value, abs=1e-4) and target.partial is False
    assert fmt(m.value, "percent") in said.answer and "in progress" not in said.answer


@pytest.mark.needs_pkg("poppler-utils", binary="pdftotext")
def test_the_pdf_of_the_month_in_progress_says_so() -> None:
    from memory.db import session_scope
    from memory.pulse.repository import PulseRepository
    from tools.pulse.report import build_pdf

    org = seeded_org()
    with session_scope() as s:
        latest = PulseRepository(s).latest_day(org.org_id)
        assert latest is not None
        pdf, _pages = build_pdf(org_ctx(s, org.org_id), latest.strftime("%Y-%m"), "Demo")
        prev = (latest.replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")
        whole, _ = build_pdf(org_ctx(s, org.org_id), prev, "Demo")
    text = subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode()
    days = f"{latest.day} of "
    assert "Month in progress" in text and days in text and "to date" in text
    old = subprocess.run(["pdftotext", "-", "-"], input=whole, capture_output=True, check=True).stdout.decode()
    assert "Month in progress" not in old
