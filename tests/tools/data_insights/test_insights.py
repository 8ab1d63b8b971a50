"""Insights: the incremental rollup, k-anonymity with complementary pooling, the privacy of every
published surface (page, embed, JSON, PDF, the summary pushed to Notion), the report archive and its
stable URLs, Drive and Notion, and the per-day comparison of a partial quarter."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from memory.db import session_scope, utcnow
from memory.insights.models import InsightsOrgDay
from tests.factories.jobs import make_job, make_pipeline
from tests.factories.orgs import make_org, org_ctx
from tests.fakes.drive import FakeDrive, service_account
from tests.fakes.notion import FakeNotion
from tools.data_insights.aggregator import ProfileIn, coverage, quarter_bounds, quarter_of, rollup, set_profile
from tools.data_insights.privacy import pool_groups
from tools.data_insights.report_builder import build_pdf, summary_lines


def _profile(org_id: int, industry: str, size_band: str, **settings: Any) -> None:
    with session_scope() as s:
        set_profile(org_ctx(s, org_id), ProfileIn(industry=industry, size_band=size_band,
                                                  opt_out=settings.get("opt_out")))


def _activity(org_id: int, jobs: int = 3, failed: int = 1) -> None:
    pid = make_pipeline(org_id)
    now = utcnow()
    for i in range(jobs):
        make_job(org_id, pid, "failed" if i < failed else "succeeded", started_at=now - dt.timedelta(seconds=2),
                 finished_at=now)


def _pdf_text(pdf: bytes) -> str:
    if shutil.which("pdftotext") is None:
        pytest.fail("pdftotext (poppler-utils) is needed to read the PDF")
    return subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode()


def test_pool_groups_pools_small_groups_and_protects_them_from_subtraction() -> None:
    assert pool_groups({"a": 12, "b": 10, "c": 3}, 10) == (["a"], ["b", "c"])  # c alone could be subtracted
    assert pool_groups({"a": 12, "b": 10, "c": 3, "d": 8}, 10) == (["a", "b"], ["c", "d"])
    assert pool_groups({"a": 12, "b": 11}, 10) == (["a", "b"], [])
    assert pool_groups({"a": 4, "b": 3}, 10) == ([], ["a", "b"])


def test_quarters() -> None:
    assert quarter_bounds("2026-Q4") == (dt.date(2026, 10, 1), dt.date(2026, 12, 31))
    assert quarter_bounds("2027-Q1") == (dt.date(2027, 1, 1), dt.date(2027, 3, 31))
    assert quarter_of(dt.date(2026, 7, 1)) == "2026-Q3"
    noon = dt.datetime(2026, 10, 31, 12, tzinfo=dt.UTC)
    assert coverage("2026-Q4", noon) == (30.5, 92)  # a running quarter: the days so far
    assert coverage("2026-Q3", noon) == (92.0, 92) and coverage("2027-Q1", noon) == (0.0, 90)


def test_rollup_is_incremental_and_respects_opt_out() -> None:
    org, out = make_org(), make_org()
    _profile(out.org_id, "retail", "1-10", opt_out=True)
    _activity(org.org_id, jobs=3, failed=1)
    _activity(out.org_id, jobs=2, failed=0)
    later = utcnow() + dt.timedelta(seconds=10)
    with session_scope() as s:
        assert rollup(s, now=later) >= 5
    with session_scope() as s:
        assert rollup(s, now=later) == 0  # nothing new: no job is read twice
    _activity(org.org_id, jobs=2, failed=0)
    with session_scope() as s:
        assert rollup(s, now=utcnow() + dt.timedelta(seconds=10)) >= 2
    with session_scope() as s:
        row = s.query(InsightsOrgDay).filter_by(org_id=org.org_id).one()
        assert (row.jobs, row.succeeded, row.failed, row.latency_n) == (5, 4, 1, 5)
        assert 1900 <= row.latency_ms_sum / row.latency_n <= 2100
        assert s.query(InsightsOrgDay).filter_by(org_id=out.org_id).count() == 0


def test_profile_validation_names_the_field(client) -> None:
    org = make_org()
    r = client.patch("/v1/insights/profile", json={"industry": "astrology"}, headers=org.headers())
    assert r.status_code == 422 and "industry" in r.text
    r = client.patch("/v1/insights/profile", json={"industry": "finance", "size_band": "51-200"}, headers=org.headers())
    assert r.status_code == 200 and r.json() == {"industry": "finance", "size_band": "51-200", "opt_out": False}
    viewer = client.patch("/v1/insights/profile", json={"industry": "retail"}, headers=org.headers("viewer"))
    assert viewer.status_code == 403


def test_no_surface_shows_a_small_group_or_an_identifier(client, set_settings) -> None:
    """Known small groups (3 healthcare, 1 media over 1,000 people) never appear; 12 software orgs do. The
    10 retail orgs are the smallest published group: they join the pool so the small ones cannot be
    recovered by subtraction."""
    staff = make_org()
    set_settings(staff_orgs=[staff.slug], insights_k=10, insights_epsilon=0)
    marker = uuid.uuid4().hex[:6]
    big = [make_org() for _ in range(12)]
    small = [make_org() for _ in range(3)]
    lone = make_org()
    for o in [make_org() for _ in range(10)]:
        _profile(o.org_id, "retail", "51-200")
        _activity(o.org_id)
    for o in big:
        _profile(o.org_id, "software", "51-200")
        _activity(o.org_id)
    for o in small:
        _profile(o.org_id, "healthcare", "11-50")
        _activity(o.org_id)
    _profile(lone.org_id, "media", "1000+")
    _activity(lone.org_id, jobs=7)
    with session_scope() as s:
        rollup(s, now=utcnow() + dt.timedelta(seconds=10))

    assert client.post("/v1/insights/refresh", json={}, headers=big[0].headers()).status_code == 403
    snap = client.post("/v1/insights/refresh", json={}, headers=staff.headers())
    assert snap.status_code == 200, snap.text
    with FakeNotion(data_source_id="ds_privacy") as notion:  # the summary pushed to Notion is a surface too
        set_settings(notion_token=notion.token, notion_base_url=notion.base_url,
                     insights_notion_data_source_id="ds_privacy")
        rep = client.post("/v1/insights/reports", json={}, headers=staff.headers())
        assert rep.status_code == 201, rep.text
        assert len(notion.pages) == 1 and rep.json()["notion_page_id"] == notion.pages[0]["id"]
        pushed = json.dumps([body for _method, _path, body in notion.requests])
    report = rep.json()
    assert report["url"] == f"/insights/reports/{report['id']}.pdf"

    data = client.get("/v1/insights").json()["data"]
    assert data["published"] and data["overall"]["orgs"] >= 12
    for dim in ("by_industry", "by_size_band"):
        for g in data[dim]["groups"]:
            assert g["orgs"] >= 10, g
            for cells in ("pipelines_by_step_kind", "connectors", "plugin_categories"):
                assert all(c["orgs"] >= 10 for c in g[cells])
    assert "Software & SaaS" in [g["label"] for g in data["by_industry"]["groups"]]
    pdf = client.get(report["url"])
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    latest = client.get("/insights/reports/latest", follow_redirects=False)
    assert latest.status_code == 307 and latest.headers["location"] == report["url"]
    surfaces = {"json": json.dumps(data), "reports": client.get("/v1/insights/reports").text,
                "page": client.get("/insights").text, "embed": client.get("/insights/embed").text,
                "pdf": _pdf_text(pdf.content), "notion": pushed}
    assert "Software &amp; SaaS" in surfaces["page"] and "Software & SaaS" in surfaces["pdf"]
    # each surface really carries the published figures (so the absence checks below mean something)
    jobs = f"{data['overall']['jobs']:,}"
    assert 'id="ins-jobs"' in surfaces["embed"] and jobs in surfaces["embed"]
    # the pushed summary is the report's (its quarter; other tests' organisations may lead it): bullets with figures
    bullets = [b["bulleted_list_item"]["rich_text"][0]["text"]["content"]
               for _method, _path, body in notion.requests for b in (body or {}).get("children", [])]
    assert f"Levqor Insights Report {report['period']}" in pushed
    assert len(bullets) >= 3 and any(re.search(r"\d+(\.\d+)? ?%", b) for b in bullets), bullets
    identifiers = [marker]
    for o in [*big, *small, lone, staff]:
        identifiers += [o.slug, f"Org {o.slug}", o.admin_email, *o.keys.values()]
    for name, text in surfaces.items():
        for label in ("Healthcare", "Media &amp; marketing", "Media & marketing", "Over 1,000 people"):
            assert label not in text, (name, label)
        for ident in identifiers:
            assert ident not in text, (name, ident)
        assert '"org_id"' not in text and '"slug"' not in text


def test_embed_may_be_framed_by_notion_only(client) -> None:
    embed = client.get("/insights/embed")
    assert embed.status_code == 200
    assert "frame-ancestors https://www.notion.so" in embed.headers["content-security-policy"]
    assert "x-frame-options" not in embed.headers
    page = client.get("/insights")
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert client.get("/insights/reports/999999.pdf").status_code == 404


def _data() -> dict[str, Any]:
    g = {"orgs": 12, "jobs": 48_000, "succeeded": 46_500, "success_rate": 96.9, "latency_ms_median_org": 1400,
         "latency_ms_p90_org": 2600, "time_saved_hours": 5200, "time_saved_hours_per_org": 433.3,
         "jobs_per_org": 4000, "plugin_adoption_pct": 41.7,
         "pipelines_by_step_kind": [{"label": "Transform / check", "orgs": 12, "value": 30}],
         "connectors": [{"label": "Email", "orgs": 11, "value": 14}],
         "plugin_categories": [{"label": "crm", "orgs": 10, "value": 10}]}
    weekly = [{"week": (dt.date(2026, 10, 5) + dt.timedelta(weeks=i)).isoformat(), "orgs": 12,
               "jobs": 3000 + 100 * i, "success_rate": 96 + i % 3} for i in range(8)]
    return {"period": "2026-Q4", "start": "2026-10-01", "end": "2026-12-31", "k": 10, "epsilon": None,
            "published": True, "includes_demo_data": False, "overall": g,
            "previous": {"period": "2026-Q3", **g, "jobs": 40_000},
            "by_industry": {"groups": [{"label": "Software & SaaS", **g}, {"label": "Other (pooled)", **g}],
                            "suppressed_groups": 2},
            "by_size_band": {"groups": [{"label": "51–200 people", **g}], "suppressed_groups": 0},
            "weekly": weekly, "time_saved_per_step_s": {}, "privacy": "Laplace noise is off."}


@pytest.mark.needs_pkg("poppler-utils", binary="pdftoppm")
def test_pdf_has_every_section_and_renders_as_pages(tmp_path: Path) -> None:
    pdf, pages = build_pdf(_data(), generated=utcnow())
    assert pages == 6
    text = _pdf_text(pdf)
    for needle in ("Automation Insights", "Executive summary", "Weekly job volume", "How organisations automate",
                   "Benchmarks by industry", "Benchmarks by organisation size", "Methodology and privacy",
                   "k-anonymity", "Differential privacy", "48,000", "+20 %"):
        assert needle in text, needle
    (tmp_path / "r.pdf").write_bytes(pdf)
    subprocess.run(["pdftoppm", "-png", "-r", "30", str(tmp_path / "r.pdf"), str(tmp_path / "p")], check=True)
    assert len(list(tmp_path.glob("p-*.png"))) == 6


def test_a_partial_quarter_is_compared_per_day_and_every_chart_axis_is_labelled() -> None:
    """30 days of Q4 with 15,000 jobs (500 a day) against a full Q3 of 40,000 (435 a day): up 15 % per day,
    though its total is 62 % lower. The report says the quarter is partial and compares per day."""
    data = _data()
    data.update(days=30.0, quarter_days=92, partial=True, through="2026-10-30")
    data["overall"] = {**data["overall"], "jobs": 15_000, "succeeded": 14_500, "jobs_per_day": 500.0,
                       "time_saved_hours": 1500, "time_saved_hours_per_day": 50.0}
    data["previous"] = {**data["previous"], "days": 92.0, "jobs_per_day": 434.8, "time_saved_hours_per_day": 56.5}
    summary = " ".join(summary_lines(data))
    assert "so far (30 of 92 days)" in summary and "Jobs per day changed +15 % on 2026-Q3" in summary
    assert "-62" not in summary
    text = " ".join(_pdf_text(build_pdf(data, generated=utcnow())[0]).split())
    for needle in ("Q4 2026 so far", "PARTIAL QUARTER · 30 of 92 days", "Partial quarter: 2026-Q4 so far",
                   "Days covered 30 of 92 92", "Jobs per day 500.0 434.8 +15.0 %", "see per day",
                   "Hours saved per day (est.)", "50.0 56.5 -11.5 %",
                   # axis titles with units
                   "Jobs run per week", "Week starting", "Success rate (% of finished jobs)",
                   "Live pipelines (count)", "Step kind", "Organisations (count)", "Plugin category",
                   "Jobs per organisation so far this quarter", "Succeeded, % of finished jobs", "Industry",
                   "Size band", "Hours per organisation so far this quarter (estimate)"):
        assert needle in text, needle
    full = " ".join(_pdf_text(build_pdf(_data(), generated=utcnow())[0]).split())
    assert "Q4 2026 so far" not in full and "PARTIAL" not in full and "Partial quarter:" not in full
    assert "Jobs per day 521.7 434.8 +20.0 %" in full


def test_report_is_uploaded_to_drive_and_summarised_in_notion(client, set_settings, tmp_path: Path) -> None:
    staff = make_org()
    with FakeDrive(tmp_path) as drive, FakeNotion(data_source_id="ds_insights") as notion:
        sa = service_account(tmp_path, drive.base_url + "/token")
        set_settings(staff_orgs=[staff.slug], google_drive_service_account_file=str(sa),
                     google_drive_base_url=drive.base_url, google_drive_ca_file=str(drive.cert),
                     google_drive_folder_id="folder-1", notion_token=notion.token,
                     notion_base_url=notion.base_url, insights_notion_data_source_id="ds_insights")
        r = client.post("/v1/insights/reports", json={}, headers=staff.headers())
        assert r.status_code == 201, r.text
        out = r.json()
        assert len(drive.files) == 1
        f = drive.files[0]
        assert f["meta"]["parents"] == ["folder-1"] and f["meta"]["name"].endswith(".pdf")
        assert f["content"].startswith(b"%PDF") and "uploadType=multipart" in f["query"]
        assert out["drive_link"] == f"https://drive.google.com/file/d/{f['id']}/view"
        assert len(notion.pages) == 1 and out["notion_page_id"] == notion.pages[0]["id"]
        assert "uploaded to Google Drive" in out["publish_note"]
        pdf = client.get(out["url"]).content
        assert pdf == f["content"]


@pytest.mark.needs_pkg("chromium")
def test_insights_page_renders_in_chromium(client, set_settings, live_server: str) -> None:
    staff = make_org()
    set_settings(staff_orgs=[staff.slug], insights_k=2)
    for _ in range(3):
        o = make_org()
        _profile(o.org_id, "finance", "11-50")
        _activity(o.org_id)
    with session_scope() as s:
        rollup(s, now=utcnow() + dt.timedelta(seconds=10))
    assert client.post("/v1/insights/reports", json={}, headers=staff.headers()).status_code == 201
    from tests.support.browser import chromium_page

    errors: list[str] = []
    with chromium_page(errors) as page:
        page.goto(f"{live_server}/insights")
        assert page.get_by_role("heading", name="Automation Insights").is_visible()
        assert page.locator("#ins-jobs").inner_text().replace(",", "").isdigit()
        assert page.get_by_role("img", name="Weekly job volume").count() == 1
        assert page.get_by_role("heading", name="Benchmarks by industry").is_visible()
        href = page.get_by_role("link", name="Latest report").get_attribute("href")
        got = page.request.get(f"{live_server}{href}")
        assert got.ok and got.headers["content-type"] == "application/pdf" and got.body().startswith(b"%PDF")
    assert errors == []


def test_sign_up_sets_industry_and_size_band_and_refuses_unknown_ones() -> None:
    from pydantic import ValidationError

    from memory.identity.models import Organization
    from tools.dev_portal.accounts import SignUp, sign_up

    email = f"founder-{uuid.uuid4().hex[:8]}@example.com"
    with session_scope() as s:
        res = sign_up(s, SignUp(email=email, password="a long enough password", org_name=f"Insights {email[:15]}",
                                industry="healthcare", size_band="11-50"), ip=f"10.9.{uuid.uuid4().int % 250}.1")
    with session_scope() as s:
        org = s.get(Organization, res.org_id)
        assert org is not None and (org.industry, org.size_band) == ("healthcare", "11-50")
    with pytest.raises(ValidationError, match="industry"):
        SignUp(email=email, password="a long enough password", org_name="x", industry="astrology")


def test_laplace_noise_has_the_documented_scale_and_is_off_at_epsilon_zero() -> None:
    import random
    import statistics

    from tools.data_insights.privacy import epsilon_note, noisy_count

    assert noisy_count(1234, sensitivity=50, epsilon=0) == 1234
    rng = random.Random(7)
    draws = [noisy_count(10_000, sensitivity=10, epsilon=0.5, rng=rng) - 10_000 for _ in range(20_000)]
    # Laplace(b) has mean 0 and mean absolute deviation b = sensitivity / epsilon = 20
    assert abs(statistics.fmean(draws)) < 1.0
    assert 19.0 < statistics.fmean(abs(d) for d in draws) < 21.0
    assert "0.5-differentially private" in epsilon_note(0.5, 1000)
