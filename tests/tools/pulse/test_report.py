"""Monthly Ecosystem Pulse PDF: generated on demand (API, CLI), archived, downloadable, rendered."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
import sys

import pytest

from tests.factories.orgs import org_ctx
from tests.factories.pulse import seeded_org
from tests.support import ROOT
from tests.support.processes import levqor_env


def test_generate_list_download(client) -> None:
    org = seeded_org()
    month = (dt.date.today().replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")
    r = client.post("/v1/pulse/reports", json={"month": month}, headers=org.headers())
    assert r.status_code == 201, r.text
    assert r.json()["pages"] == 4 and r.json()["download_url"] == f"/v1/pulse/reports/{month}.pdf"
    lst = client.get("/v1/pulse/reports", headers=org.headers("viewer")).json()["items"]
    assert [x["month"] for x in lst] == [month]
    pdf = client.get(f"/v1/pulse/reports/{month}.pdf", headers=org.headers("viewer"))
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF") and len(pdf.content) == r.json()["size_bytes"]
    assert client.get("/v1/pulse/reports/2020-01.pdf", headers=org.headers()).status_code == 404
    assert client.post("/v1/pulse/reports", json={"month": "2026-13"}, headers=org.headers()).status_code == 422
    assert client.post("/v1/pulse/reports", json={"month": month}, headers=org.headers("viewer")).status_code == 403


def test_report_content_has_every_section() -> None:
    from memory.db import session_scope
    from tools.pulse.report import build_pdf, month_summary

    org = seeded_org()
    month = dt.date.today().strftime("%Y-%m")
    with session_scope() as s:
        data = month_summary(org_ctx(s, org.org_id), month)
        assert data["kpis"]["revenue"]["value"] > 0 and data["kpis"]["partner_revenue_share"]["value"] > 0
        pdf, pages = build_pdf(org_ctx(s, org.org_id), month, "Test Org")
    assert pages == 4
    if shutil.which("pdftotext"):
        out = subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode()
        for heading in ("Ecosystem Pulse", "KPIs against targets", "Trends", "Incidents and self-heals",
                        "Partner and certification highlights", "Planner suggestions and outcomes",
                        "Targets at a glance", "Missed"):
            assert heading in out, heading


@pytest.mark.needs_pkg("poppler-utils", binary="pdftoppm")
def test_report_renders_to_images(tmp_path) -> None:
    from memory.db import session_scope
    from tools.pulse.report import build_pdf

    org = seeded_org()
    with session_scope() as s:
        pdf, _ = build_pdf(org_ctx(s, org.org_id), dt.date.today().strftime("%Y-%m"), "Test Org")
    (tmp_path / "r.pdf").write_bytes(pdf)
    subprocess.run(["pdftoppm", "-png", "-r", "60", str(tmp_path / "r.pdf"), str(tmp_path / "p")], check=True)
    pngs = sorted(tmp_path.glob("p-*.png"))
    assert len(pngs) == 4 and all(p.stat().st_size > 5000 for p in pngs)


def test_cli_pulse_report(tmp_path) -> None:
    org = seeded_org()
    month = dt.date.today().strftime("%Y-%m")
    out = tmp_path / "pulse.pdf"
    narrow = {**levqor_env(), "COLUMNS": "60", "PYTHONPATH": str(ROOT)}
    # a relative --out from another directory: the line names the absolute path, unbroken at 60 columns
    r = subprocess.run([sys.executable, "-m", "api.cli", "pulse", "report", "--month", month, "--org", org.slug,
                        "--out", "pulse.pdf"], env=narrow, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    assert f"Pulse report {month}" in r.stdout and out.read_bytes().startswith(b"%PDF")
    assert r.stdout.strip().count("\n") == 0 and r.stdout.strip().endswith(f"written to {out}"), r.stdout
    r = subprocess.run([sys.executable, "-m", "api.cli", "pulse", "report", "--month", month, "--org", org.slug],
                       env=narrow, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0 and r.stdout.strip().count("\n") == 0, r.stdout
    assert re.search(r"; download https?://\S+/v1/pulse/reports/\S+$", r.stdout.strip()), r.stdout
    bad = subprocess.run([sys.executable, "-m", "api.cli", "pulse", "report", "--month", "2026-10-01",
                          "--org", org.slug], env=levqor_env(), capture_output=True, text=True, timeout=180)
    assert bad.returncode == 2 and "YYYY-MM" in bad.stderr


@pytest.mark.needs_pkg("poppler-utils", binary="pdftotext")
def test_report_revenue_is_the_ledgers_for_the_month() -> None:
    """The PDF's revenue figure is the revenue ledger's for the month (money in less refunds), even when
    a refund is recorded after the day's Pulse snapshot."""
    from memory.billing.models import RevenueEntry
    from memory.db import session_scope, utcnow
    from tools.billing import ledger
    from tools.pulse.report import build_pdf, month_summary

    org = seeded_org()
    now = utcnow()
    month = now.strftime("%Y-%m")
    with session_scope() as s:
        ledger.append(s, RevenueEntry(org_id=org.org_id, kind="credit_pack", amount_minor=1_234_567, currency="usd",
                                      stripe_object_id=f"pi_pdf_{org.org_id}", event_id="evt_pdf_1",
                                      plan="medium", occurred_at=now))
        ledger.append(s, RevenueEntry(org_id=org.org_id, kind="refund", amount_minor=-1_500, currency="usd",
                                      stripe_object_id=f"re_pdf_{org.org_id}", event_id="evt_pdf_2", occurred_at=now))
    with session_scope() as s:
        assert month_summary(org_ctx(s, org.org_id), month)["kpis"]["revenue"]["value"] == 1_233_067
        pdf, _ = build_pdf(org_ctx(s, org.org_id), month, "Test Org")
    out = subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode()
    assert "$12,330.67" in out
