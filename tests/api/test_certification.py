"""Certification through the API: an exam drawn, answered and graded; the certificate's PDF, QR code,
signed credential (checked by an independent JOSE verifier with only the public key), revocation."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.factories.orgs import OrgFixture
from tools.certification.bank import load


def right_answers(attempt: dict[str, Any]) -> dict[str, Any]:
    """The key's answers for the drawn questions (the test reads the bank; the API never sends it)."""
    qs = load().by_id()
    out: dict[str, Any] = {}
    for q in attempt["questions"]:
        b = qs[q["id"]]
        out[q["id"]] = b.rubric.accept[0] if b.type == "text" and b.rubric else list(b.answer)
    return out


def independent_verify(token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    """An outside verifier: joserfc and the published public key only, no Levqor code."""
    from joserfc import jws
    from joserfc.jwk import OKPKey

    key = OKPKey.import_key(jwks["keys"][0])
    obj = jws.deserialize_compact(token, key, algorithms=["EdDSA"])
    assert obj.protected["typ"] == "vc+jwt"
    return json.loads(obj.payload)


def start(client: Any, org: OrgFixture, email: str = "ada@acme-test.io") -> dict[str, Any]:
    r = client.post("/v1/certification/exams", headers=org.headers(),
                    json={"candidate_name": "Ada Lovelace", "candidate_email": email})
    assert r.status_code == 201, r.text
    return r.json()


def test_exam_draw_is_stratified_shuffled_and_hides_answers(client, org: OrgFixture) -> None:
    a = start(client, org)
    assert a["status"] == "open" and a["total"] == 40 == len(a["questions"])
    assert len({q["id"] for q in a["questions"]}) == 40
    topics = Counter(q["topic"] for q in a["questions"])
    assert topics == {"automation": 16, "integrity": 14, "templates": 10}, topics
    text = json.dumps(a)
    assert '"answer"' not in text and "explanation" not in text and "rubric" not in text
    bank = load().by_id()
    shuffled = sum(1 for q in a["questions"] if [o["id"] for o in q["options"]] != list(bank[q["id"]].options))
    assert shuffled > 10  # options come in a per-attempt order (the stored one)
    again = client.get(f"/v1/certification/exams/{a['id']}", headers=org.headers("viewer")).json()
    assert [q["options"] for q in again["questions"]] == [q["options"] for q in a["questions"]]
    # Starting again resumes the open attempt instead of drawing a new one.
    assert start(client, org)["id"] == a["id"]


def test_bad_input_is_a_4xx_naming_the_field(client, org: OrgFixture) -> None:
    r = client.post("/v1/certification/exams", headers=org.headers(), json={"candidate_name": "A"})
    assert r.status_code == 422 and "candidate_email" in r.text
    a = start(client, org)
    url = f"/v1/certification/exams/{a['id']}/submit"
    q = a["questions"][0]
    for answers, field in (({"auto-999": ["a"]}, "answers.auto-999"), ({q["id"]: ["zz"]}, f"answers.{q['id']}")):
        r = client.post(url, headers=org.headers(), json={"answers": answers})
        assert r.status_code == 422 and r.json()["field"] == field, r.text
    r = client.post(url, headers=org.headers(), json={"answers": "nope"})
    assert r.status_code == 422
    assert client.get("/v1/certification/exams/999999", headers=org.headers()).status_code == 404
    assert client.post(url, headers=org.headers("viewer"), json={"answers": {}}).status_code == 403


def test_fail_then_cooldown_then_limit(client, org: OrgFixture, set_settings) -> None:
    set_settings(cert_attempt_limit=2, cert_retake_cooldown_s=0)
    a = start(client, org, "bob@acme-test.io")
    r = client.post(f"/v1/certification/exams/{a['id']}/submit", headers=org.headers(), json={"answers": {}})
    body = r.json()
    assert r.status_code == 200 and body["passed"] is False and body["score"] == 0
    assert body["certificate_id"] is None and set(body["per_topic"]) == {"automation", "integrity", "templates"}
    assert all(t["revisit"] for t in body["per_topic"].values())
    assert client.post(f"/v1/certification/exams/{a['id']}/submit", headers=org.headers(),
                       json={"answers": {}}).status_code == 409
    set_settings(cert_attempt_limit=2, cert_retake_cooldown_s=3600)
    r = client.post("/v1/certification/exams", headers=org.headers(),
                    json={"candidate_name": "Bob", "candidate_email": "bob@acme-test.io"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 3500
    set_settings(cert_attempt_limit=2, cert_retake_cooldown_s=0)
    b = start(client, org, "bob@acme-test.io")
    client.post(f"/v1/certification/exams/{b['id']}/submit", headers=org.headers(), json={"answers": {}})
    r = client.post("/v1/certification/exams", headers=org.headers(),
                    json={"candidate_name": "Bob", "candidate_email": "bob@acme-test.io"})
    assert r.status_code == 409 and r.json()["field"] == "candidate_email"


def test_pass_certificate_pdf_qr_credential_and_revocation(client, org: OrgFixture, tmp_path: Path) -> None:
    a = start(client, org)
    r = client.post(f"/v1/certification/exams/{a['id']}/submit", headers=org.headers(),
                    json={"answers": right_answers(a)})
    res = r.json()
    assert r.status_code == 200 and res["passed"] is True and res["score"] == 40, res
    assert "fast" in " ".join(res["flags"])  # answered in well under 5 s a question
    cid = res["certificate_id"]
    cert = client.get(f"/v1/certification/certificates/{cid}", headers=org.headers("viewer")).json()
    assert cert["status"] == "valid" and cert["level"] == "Expert" and cert["name"] == "Ada Lovelace"

    pdf = client.get(f"/v1/certification/certificates/{cid}/pdf", headers=org.headers())
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    url = qr_url_from_pdf(pdf.content, tmp_path)
    assert url.endswith(f"/certification/verify/{cid}")

    jwks = client.get("/v1/certification/jwks.json").json()
    token = client.get(f"/v1/certification/verify/{cid}").json()["credential"]
    vc = independent_verify(token, jwks)
    assert vc["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
    assert vc["id"] == f"urn:uuid:{cid}" and vc["credentialSubject"]["name"] == "Ada Lovelace"
    assert "https://www.w3.org/ns/credentials/v2" in vc["@context"]
    assert "ada@" not in token  # the email is only a salted hash in the credential

    from joserfc.errors import BadSignatureError
    head, payload, sig = token.split(".")
    tampered_payload = payload[:10] + ("A" if payload[10] != "A" else "B") + payload[11:]
    for bad in (f"{head}.{tampered_payload}.{sig}", f"{head}.{payload}.{sig[:-2]}{'AA' if sig[-2:] != 'AA' else 'BA'}"):
        with pytest.raises((BadSignatureError, ValueError)):
            independent_verify(bad, jwks)
        assert client.post("/v1/certification/verify", json={"credential": bad}).json()["verified"] is False
    assert client.post("/v1/certification/verify", json={"credential": token}).json() == {
        "verified": True, "status": "valid", "id": cid, "name": "Ada Lovelace", "level": "Expert"}

    assert client.post(f"/v1/certification/certificates/{cid}/revoke", headers=org.headers("viewer"),
                       json={"reason": "shared answers"}).status_code == 403
    r = client.post(f"/v1/certification/certificates/{cid}/revoke", headers=org.headers(),
                    json={"reason": "shared answers"})
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    assert client.get(f"/v1/certification/verify/{cid}").json()["status"] == "revoked"
    assert client.post("/v1/certification/verify", json={"credential": token}).json()["status"] == "revoked"
    audit = client.get("/v1/audit", headers=org.headers()).json()["items"]
    assert {"certification.issued", "certification.revoked"} <= {e["action"] for e in audit}


def qr_url_from_pdf(data: bytes, tmp_path: Path) -> str:
    """Render the PDF (pdftoppm) and decode its QR code (zxing-cpp) as a phone would."""
    if shutil.which("pdftoppm") is None:
        pytest.skip("needs the Debian package 'poppler-utils' (pdftoppm)")
    import zxingcpp
    from PIL import Image

    (tmp_path / "c.pdf").write_bytes(data)
    subprocess.run(["pdftoppm", "-png", "-r", "150", str(tmp_path / "c.pdf"), str(tmp_path / "page")], check=True)
    page = next(tmp_path.glob("page*.png"))
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(page.read_bytes())))
    assert found, "no QR code found on the certificate"
    return str(found[0].text)


def test_kpi_counts_valid_certificates_through_the_registered_tool(client, org: OrgFixture) -> None:
    from memory.db import session_scope, utcnow
    from tests.factories.orgs import org_ctx
    from tools.pulse.kpis import providers

    day = utcnow().date()
    with session_scope() as s:
        before = providers()["certified_users"](org_ctx(s, org.org_id), day)
    assert before.available and before.value == 0.0 and before.source == "certification.kpis"
    a = start(client, org)
    client.post(f"/v1/certification/exams/{a['id']}/submit", headers=org.headers(), json={"answers": right_answers(a)})
    with session_scope() as s:
        assert providers()["certified_users"](org_ctx(s, org.org_id), day).value == 1.0
    assert client.get("/v1/certification/kpis", headers=org.headers("viewer")).json()["certified_users"] == 1


def test_badge_is_pushed_to_notion_when_configured(client, org: OrgFixture, set_settings) -> None:
    from tests.fakes.notion import FakeNotion

    with FakeNotion(data_source_id="ds_badges") as notion:
        notion.fail_with = 503
        set_settings(notion_token=notion.token, notion_base_url=notion.base_url,
                     notion_badges_data_source_id="ds_badges")
        a = start(client, org, "nora@acme-test.io")
        cid = client.post(f"/v1/certification/exams/{a['id']}/submit", headers=org.headers(),
                          json={"answers": right_answers(a)}).json()["certificate_id"]
        assert cid and notion.pages == []  # Notion down: the certificate is issued anyway, the failure audited
        actions = [e["action"] for e in client.get("/v1/audit", headers=org.headers()).json()["items"]]
        assert "certification.notion_failed" in actions
        notion.fail_with = None
        from memory.db import session_scope
        from tests.factories.orgs import org_ctx
        from tools.certification.cert_issue import CertificateRef, push_notion
        with session_scope() as s:
            out = push_notion(org_ctx(s, org.org_id), CertificateRef(certificate_id=cid))
        assert out.notion_page_id == notion.pages[0]["id"]
        props = notion.pages[0]["properties"]
        assert props["Name"]["title"][0]["text"]["content"] == "Ada Lovelace"
        assert props["Verify"]["url"].endswith(f"/certification/verify/{cid}")
