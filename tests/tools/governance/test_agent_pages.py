"""The auditor agent with a model (the local fake OpenAI server) writes the partner's explanation; the
audit pages show partners their plugins' audits and staff all, in headless Chromium; the quarterly
governance report is a real PDF; policy changes are recorded with their diff."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.factories.partners import make_world, manifest, publish
from tests.fakes.tls_partner import TlsPartner, make_certs
from tests.support.browser import chromium_page
from tests.tools.governance.test_audit import GOOD_HEADERS, fast_policy  # noqa: F401

EXPLAINED = ("Your plugin's endpoint is not safe yet. Its certificate is self-signed and it accepts unsigned "
             "requests. Install a real certificate and check signatures.")


def _weak_world(client: Any, set_settings: Any, certs: dict[str, Path], good: TlsPartner,
                weak: TlsPartner) -> tuple[Any, str]:
    w = make_world(client, set_settings, tls_ca_file=str(certs["ca"]))
    slug = f"{w.partner.slug}.weak"
    publish(client, w, manifest(slug, weak.url("/events"), privacy_url=good.url("/privacy"),
                                support_url=good.url("/support")))
    return w, slug


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def test_the_auditor_agent_explains_with_the_model_and_falls_back_offline(
        app: Any, set_settings: Any, tmp_path: Path, fast_policy: None, fake_llm: Any) -> None:  # noqa: F811
    from fastapi.testclient import TestClient

    from tools.governance import review_cycle
    from workers.dispatcher import dispatch_pending
    from workers.scheduler import start_requested

    certs = make_certs(tmp_path)
    # one reply per explanation: audits other tests queued on this database are explained in the same cycle
    script = fake_llm([{"content": EXPLAINED}] * 50)
    with TestClient(app) as client, TlsPartner(certs["good"], certs["good_key"], headers=GOOD_HEADERS) as good, \
            TlsPartner(certs["weak"], certs["weak_key"], ack_delay=0.8) as weak:
        w, slug = _weak_world(client, set_settings, certs, good, weak)
        for _ in range(1000):  # plugin_version_submitted: the review cycle queues an audit (until nothing is due)
            if dispatch_pending() == 0:
                break
        [run_id] = start_requested(review_cycle.tick())
        [audit] = client.get("/v1/governance/audits", headers=w.partner.headers("partner")).json()["items"]
        assert audit["trigger"] == "version_submitted" and audit["result"] == "fail"
        assert audit["explained_by"] == "llm" and audit["explanation"].startswith(EXPLAINED)
        assert audit["deadline_at"][:10] in audit["explanation"]  # the deadline is always stated
        # other agents whose work other tests queued on this database (the healer) may ask the model in the
        # same cycle: only the auditor's requests carry findings
        sent = [_json_or_none(r["messages"][-1]["content"]) for r in script.requests]
        audits = [s for s in sent if isinstance(s, dict) and "findings" in s]
        assert any({f["code"] for f in s["findings"]} >= {"endpoint.certificate", "endpoint.unsigned_accepted"}
                   for s in audits), sent
        run = client.get(f"/v1/agents/runs/{run_id}", headers=w.staff.headers()).json()
        assert run["status"] == "succeeded", run


def test_pages_show_partner_and_staff_audits_and_the_report_pdf(
        app: Any, client: Any, set_settings: Any, tmp_path: Path, live_server: str,
        fast_policy: None) -> None:  # noqa: F811
    if not shutil.which("chromium") and not Path("/usr/bin/chromium").exists():
        pytest.fail("chromium is required for the page tests")
    certs = make_certs(tmp_path)
    with TlsPartner(certs["good"], certs["good_key"], headers=GOOD_HEADERS) as good, \
            TlsPartner(certs["weak"], certs["weak_key"], ack_delay=0.8) as weak:
        w, slug = _weak_world(client, set_settings, certs, good, weak)
        r = client.post(f"/v1/governance/plugins/{slug}/audits", json={}, headers=w.staff.headers())
        audit_id = r.json()["id"]
    errors: list[str] = []
    with chromium_page(errors) as page:
        for org, staff in ((w.partner, False), (w.staff, True)):
            page.context.clear_cookies()
            page.goto(f"{live_server}/login")
            page.get_by_label("Email").fill(org.admin_email)
            page.get_by_label("Password").fill(org.admin_password)
            page.get_by_role("button", name="Log in", exact=True).click()
            page.wait_for_url(f"{live_server}/")
            page.goto(f"{live_server}/governance")
            rows = page.locator("#audits tbody tr").all_inner_texts()
            assert any(slug in r and "Fail" in r for r in rows), rows
            assert (page.get_by_text("Governance report").count() > 0) is staff
            page.locator(f'a[href="/governance/audits/{audit_id}"]').first.click()
            page.wait_for_url(f"{live_server}/governance/audits/{audit_id}")
            findings = page.locator("#findings tbody tr").all_inner_texts()
            assert len(findings) == 6 and any("self-signed" in f for f in findings), findings  # 5 + 1 info
            assert "failed" in page.locator("#explanation").inner_text()
            assert page.locator("#history tbody tr").count() == 1
        page.screenshot(path=str(tmp_path / "audit.png"), full_page=True)
    assert not errors, errors
    quarter = "2026-Q4"
    r = client.get(f"/v1/governance/reports/{quarter}/pdf", headers=w.staff.headers())
    assert r.status_code == 200 and r.content.startswith(b"%PDF")
    assert client.get(f"/v1/governance/reports/{quarter}/pdf", headers=w.partner.headers()).status_code == 403
    assert client.get("/v1/governance/reports/2026-Q9", headers=w.staff.headers()).status_code == 422
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(r.content)
    subprocess.run(["pdftoppm", "-png", "-r", "60", str(pdf), str(tmp_path / "report")], check=True)
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    print("sample governance report (pdftotext):", text, sep="\n")
    assert "Governance report 2026-Q4" in text and "self-signed" not in text  # figures, not raw evidence
    assert re.search(r"Failed\s+1", text) or "Fail" in text


def test_a_policy_change_is_recorded_once_with_its_diff(app: Any, client: Any, set_settings: Any,
                                                       tmp_path: Path) -> None:
    from sqlalchemy import delete, select

    from memory.audit.models import AuditEntry
    from memory.db import session_scope
    from memory.governance.models import PolicyVersion
    from policies.engine import reset_engine
    from tests.factories.orgs import make_org
    from tests.support import ROOT
    from tools.governance import review_cycle

    staff = make_org()
    set_settings(staff_orgs=[staff.slug])
    with session_scope() as s:  # the policy history is platform-wide: other tests' policies start it afresh here
        s.execute(delete(PolicyVersion))
    reset_engine()  # the shipped policy is the first version, whatever an earlier test left loaded
    review_cycle.tick()
    doc = json.loads((ROOT / "policies" / "policy.json").read_text())
    doc["version"] += 1
    doc["code_of_conduct"]["retention"]["max_days"] = 14
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(doc))
    set_settings(policy_path=str(path))
    reset_engine()
    try:
        review_cycle.tick()
        review_cycle.tick()  # the same policy again: nothing new
        r = client.get("/v1/governance/policy-versions", headers=staff.headers())
        body = r.json()
        assert body["in_force"] == doc["version"] and body["items"][0]["in_force"]
        assert body["items"][0]["changes"] == [
            {"path": "code_of_conduct.retention.max_days", "before": 30, "after": 14},
            {"path": "version", "before": doc["version"] - 1, "after": doc["version"]}]
        assert client.get("/v1/policy", headers=staff.headers()).json()["version"] == doc["version"]
        with session_scope() as s:
            entries = s.scalars(select(AuditEntry).where(AuditEntry.action == "policy.changed")
                               .order_by(AuditEntry.seq)).all()
            last = entries[-1]
            assert last.actor == "agent:auditor" and last.detail["changes"] == body["items"][0]["changes"]
            assert sum(1 for e in entries if e.after and e.after.get("version") == doc["version"]) == 1
    finally:
        reset_engine()
