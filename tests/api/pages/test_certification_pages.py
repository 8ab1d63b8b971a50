"""Certification in a browser: a candidate takes and passes the exam, downloads the certificate, follows
its QR code to the verify page; the credential verifies independently, a changed byte fails, a revoked
certificate shows revoked. Also the directory opt-in."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.api.test_certification import independent_verify, qr_url_from_pdf
from tests.factories.orgs import OrgFixture
from tests.support.browser import chromium_page
from tools.certification.bank import load


@pytest.mark.needs_pkg("chromium")
@pytest.mark.needs_pkg("poppler-utils", binary="pdftoppm")
def test_candidate_passes_downloads_follows_qr_and_the_credential_verifies(
        client, org: OrgFixture, set_settings, live_server: str, tmp_path: Path) -> None:
    set_settings(public_url=live_server)
    errors: list[str] = []
    bank = load().by_id()
    with chromium_page(errors) as page:
        page.goto(f"{live_server}/login")
        page.get_by_label("Email").fill(org.admin_email)
        page.get_by_label("Password").fill(org.admin_password)
        page.get_by_role("button", name="Log in", exact=True).click()
        page.wait_for_url(f"{live_server}/")
        page.get_by_role("link", name="Certification").click()
        page.get_by_label("Candidate name").fill("Grace Hopper")
        page.get_by_label("Candidate email").fill("grace@acme-test.io")
        page.get_by_role("button", name="Start the exam").click()
        page.wait_for_url(re.compile(r"/certification/exams/\d+$"))
        fieldsets = page.locator("fieldset")
        assert fieldsets.count() == 40
        for i in range(40):
            fs = fieldsets.nth(i)
            q = bank[fs.get_attribute("id") or ""]
            if q.type == "text":
                fs.locator("input").fill(q.rubric.accept[0] if q.rubric else "")
            elif q.type == "ordering":
                for pos, opt in enumerate(q.answer, start=1):
                    fs.locator(f"select[name='q-{q.id}-{opt}']").select_option(str(pos))
            else:
                for opt in q.answer:
                    fs.locator(f"input[value='{opt}']").check()
        page.get_by_role("button", name="Submit the exam").click()
        page.wait_for_load_state()
        assert "Passed" in page.get_by_role("status").inner_text()
        assert "40 / 40" in page.locator("main").inner_text()
        with page.expect_download() as dl:
            page.get_by_role("link", name="Download the certificate (PDF)").click()
        pdf = Path(dl.value.path()).read_bytes()
        url = qr_url_from_pdf(pdf, tmp_path)
        assert url.startswith(f"{live_server}/certification/verify/")
        page.goto(url)  # following the QR code
        assert page.locator("#status h2").inner_text() == "Valid"
        assert "Grace Hopper" in page.locator("#status").inner_text()
        token = page.locator("#credential").inner_text().strip()
        jwks_url = page.get_by_role("link", name=re.compile(r"jwks\.json$")).get_attribute("href")
        jwks = page.request.get(jwks_url or "").json()
        vc = independent_verify(token, jwks)
        assert vc["credentialSubject"]["name"] == "Grace Hopper"
        head, payload, sig = token.split(".")
        flipped = payload[:-3] + ("x" if payload[-3] != "x" else "y") + payload[-2:]
        with pytest.raises(Exception):  # noqa: B017 - any failure of the outside verifier counts
            independent_verify(f"{head}.{flipped}.{sig}", jwks)
        cid = url.rsplit("/", 1)[1]
        r = client.post(f"/v1/certification/certificates/{cid}/revoke", headers=org.headers(),
                        json={"reason": "test revocation"})
        assert r.status_code == 200
        page.reload()
        assert page.locator("#status h2").inner_text() == "Revoked"
        assert page.evaluate("window.__csp") == []
    assert errors == []


def test_directory_lists_only_opted_in_valid_certificates(client, org: OrgFixture) -> None:
    from tests.api.test_certification import right_answers, start

    a = start(client, org, "linus@acme-test.io")
    cid = client.post(f"/v1/certification/exams/{a['id']}/submit", headers=org.headers(),
                      json={"answers": right_answers(a)}).json()["certificate_id"]
    assert "Ada Lovelace" not in client.get("/certification/experts").text
    assert client.post(f"/v1/certification/certificates/{cid}/listing", headers=org.headers(),
                       json={"listed": True}).json()["listed"] is True
    assert "Ada Lovelace" in client.get("/certification/experts").text
    assert any(e["name"] == "Ada Lovelace" for e in client.get("/v1/certification/directory").json())
    client.post(f"/v1/certification/certificates/{cid}/revoke", headers=org.headers(), json={"reason": "gone"})
    assert "Ada Lovelace" not in client.get("/certification/experts").text
    page = client.get(f"/certification/verify/{cid}")
    assert page.status_code == 200 and "Revoked" in page.text
    assert client.get("/certification/verify/0000-dead").status_code == 404
