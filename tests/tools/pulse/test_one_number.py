"""One KPI, one number: for the demo data, every surface shows a KPI for a period as tools.pulse.measure
computes it (the pages, targets via the API, pulse.history, the advisor, the monthly report and its PDF, the
metrics feed over a Notion Pulse data source, the Prometheus month gauges); a month in progress says so.
Partner revenue share over a period is the ratio of its parts' sums, never a mean of daily ratios."""

from __future__ import annotations

import datetime as dt
import html
import subprocess

import pytest

from tests.factories.orgs import make_org, org_ctx
from tests.factories.pulse import seeded_org
from tests.fakes.notion import FakeNotion
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
    from tools.pulse.measure import measure
    from tools.pulse.report import build_pdf

    org = seeded_org()
    with session_scope() as s:
        latest = PulseRepository(s).latest_day(org.org_id)
        assert latest is not None
        pdf, _pages = build_pdf(org_ctx(s, org.org_id), latest.strftime("%Y-%m"), "Demo")
        share = measure(s, org.org_id, "partner_revenue_share", latest.replace(day=1), latest)
        prev = (latest.replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")
        whole, _ = build_pdf(org_ctx(s, org.org_id), prev, "Demo")
    text = subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode()
    days = f"{latest.day} of "
    assert "Month in progress" in text and days in text and "month to date" in text
    assert fmt(share.value, "percent") in text  # the tile and tables show the ratio of the month's sums
    assert "Change per day" in text  # a month to date's totals are compared per day, not with a whole month
    old = subprocess.run(["pdftotext", "-", "-"], input=whole, capture_output=True, check=True).stdout.decode()
    assert "Month in progress" not in old and "month to date" not in old and "Change per day" not in old


def _gauges(text: str, name: str, org_id: int) -> dict[str, dict[str, float]]:
    """{kpi: {month: value}} of one gauge family for one organisation, parsed from /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, dict[str, float]] = {}
    for fam in text_string_to_metric_families(text):
        for sample in fam.samples:
            if sample.name == name and sample.labels.get("org") == str(org_id):
                out.setdefault(sample.labels["kpi"], {})[sample.labels["month"]] = sample.value
    return out


def test_partner_share_pages_notion_and_prometheus_agree(client, notion: FakeNotion, set_settings) -> None:
    from memory.db import session_scope
    from memory.pulse.repository import PulseRepository
    from tools.pulse.measure import measure

    org = seeded_org()
    kpis = (*MONTH_KPIS, "spend", "plugin_installs", "revenue", "partner_revenue")
    with session_scope() as s:
        repo = PulseRepository(s)
        latest = repo.latest_day(org.org_id)
        assert latest is not None
        start = latest.replace(day=1)
        truth = {k: measure(s, org.org_id, k, start, latest) for k in kpis}
        rows = repo.history(org.org_id, since=start, until=latest, kpis=["partner_revenue", "revenue",
                                                                          "partner_revenue_share"])
    # A ratio of the month's sums, which a mean of the daily shares is not.
    part = {k: [r.value or 0.0 for r in rows if r.kpi == k] for k in ("partner_revenue", "revenue")}
    share = truth["partner_revenue_share"]
    assert share.value == pytest.approx(100 * sum(part["partner_revenue"]) / sum(part["revenue"]), abs=1e-4)
    daily = [r.value for r in rows if r.kpi == "partner_revenue_share" and r.value is not None]
    if len(daily) > 1:
        assert share.value != pytest.approx(sum(daily) / len(daily), abs=1e-4)
    month_end = (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
    in_progress = latest < month_end

    # The advisor's what-ifs start from the last 30 days' share, the same ratio of sums over that window.
    from tools.decision_engine.simulator import AddPartnersIn, simulate_add_partners

    with session_scope() as s:
        last30 = measure(s, org.org_id, "partner_revenue_share", latest - dt.timedelta(days=29), latest)
        sim = simulate_add_partners(org_ctx(s, org.org_id), AddPartnersIn(partners=1, runs=100))
    base = next(k.baseline for k in sim.kpi_impact if k.kpi == "partner_revenue_share")
    assert base == pytest.approx(last30.value, abs=0.01)
    shown = {k: fmt(truth[k].value, truth[k].unit) for k in MONTH_KPIS}

    # Pages: /pulse and the dashboard show the month's value and say when it is to date.
    for path in ("/pulse", "/"):
        page = client.get(path, headers=org.headers("viewer"))
        assert page.status_code == 200, page.text
        text = html.unescape(page.text)
        for kpi in MONTH_KPIS:
            row = text.split(f'data-kpi="{kpi}"', 1)[1].split("</tr>", 1)[0]
            assert shown[kpi] in row, (path, kpi, row)
            assert ("to date" in row) is in_progress, (path, kpi, row)

    # The Notion feed: the month's days pushed to Notion, read back by an organisation with no local history.
    day = start
    while day <= latest:
        r = client.post("/v1/pulse/notion", json={"day": day.isoformat()}, headers=org.headers())
        assert r.status_code == 200, r.text
        day += dt.timedelta(days=1)
    other = make_org()
    for who in (org, other):
        r = client.get("/v1/pulse/feed", params={"days": latest.day, "until": latest.isoformat()},
                       headers=who.headers("viewer"))
        assert r.status_code == 200 and r.json()["notion"] == "ok", r.text
        fed = {m["kpi"]: m for m in r.json()["measures"]}
        for kpi in kpis:
            assert fed[kpi]["value"] == pytest.approx(truth[kpi].value, abs=1e-4), (who.org_id, kpi)
            assert fed[kpi]["partial"] is truth[kpi].partial and fed[kpi]["days_with_data"] == latest.day
        sources = {p["source"] for p in r.json()["points"]}
        assert sources == ({"pulse"} if who is org else {"notion"}), sources

    # Prometheus: the month gauges (org, kpi, month) hold the same values and say whether they are to date.
    set_settings(metrics_tenant_kpis=True)
    assert client.get("/v1/pulse/targets", headers=org.headers("viewer")).status_code == 200
    text = client.get("/metrics").text
    month = start.strftime("%Y-%m")
    values = _gauges(text, "levqor_pulse_kpi_month", org.org_id)
    partial = _gauges(text, "levqor_pulse_kpi_month_partial", org.org_id)
    days = _gauges(text, "levqor_pulse_kpi_month_days", org.org_id)
    for kpi in kpis:
        assert values[kpi][month] == pytest.approx(truth[kpi].value, abs=1e-4), kpi
        assert partial[kpi][month] == (1.0 if in_progress else 0.0) and days[kpi][month] == latest.day
