"""The demo seed's invented figures are labelled as demo data wherever they are shown: targets (API and
/pulse), the KPI table, the advisor's answers and the monthly report."""

from __future__ import annotations

import datetime as dt
import subprocess

import pytest

from tests.factories.orgs import make_org, org_ctx, page_login


def test_seeded_figures_are_labelled_demo_data(client) -> None:
    from memory.db import session_scope
    from tools.decision_engine.advisor import DEMO_NOTE, answer
    from tools.demo.pulse import seed_pulse
    from tools.pulse.report import month_summary

    org = make_org()
    with session_scope() as s:
        seed_pulse(org_ctx(s, org.org_id))
    with session_scope() as s:
        said = answer(org_ctx(s, org.org_id), "What is our uptime?")
        month = month_summary(org_ctx(s, org.org_id), said.tool_calls[0].result["day"][:7])  # type: ignore[index]
    assert DEMO_NOTE in said.answer
    assert month["kpis"]["revenue"]["demo"] and month["kpis"]["uptime"]["demo"]
    targets = client.get("/v1/pulse/targets", headers=org.headers()).json()["items"]
    real = {"certified_users"}  # read live from certification.kpis (real certificates), not from the seed
    assert all(t["demo"] for t in targets if t["actual"] is not None and t["kpi"] not in real), targets
    assert page_login(client, org.admin_email, org.admin_password).status_code == 303
    page = client.get("/pulse").text
    assert page.count("demo data</span>") >= len([t for t in targets if t["demo"]])
    assert "demo data</span>" in client.get("/").text


def test_real_figures_are_not_labelled(client) -> None:
    from tests.factories.pulse import seeded_org

    org = seeded_org()  # snapshots written as real ones (source "test")
    targets = client.get("/v1/pulse/targets", headers=org.headers()).json()["items"]
    assert not any(t["demo"] for t in targets)


@pytest.mark.needs_pkg("poppler-utils", binary="pdftotext")
def test_the_monthly_pdf_marks_the_demo_figures() -> None:
    from memory.db import session_scope, utcnow
    from tools.demo.pulse import seed_pulse
    from tools.pulse.report import build_pdf

    org = make_org()
    with session_scope() as s:
        seed_pulse(org_ctx(s, org.org_id))
    with session_scope() as s:
        last_month = utcnow().date().replace(day=1) - dt.timedelta(days=1)  # wholly in the seeded 90 days
        pdf, _ = build_pdf(org_ctx(s, org.org_id), last_month.strftime("%Y-%m"), "Demo")
    text = subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode()
    assert "Demo data." in text and "demo seed's invented figures" in text
    assert "Uptime *" in text  # the targets' rows of seeded figures are marked
