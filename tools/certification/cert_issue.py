"""Certificates: an Open Badges 3.0 credential (a W3C Verifiable Credential 2.0, secured as VC-JOSE
``vc+jwt`` with EdDSA/Ed25519), a PDF with a QR code to the public verify page, verification (valid,
expired, revoked), revocation by admins (audited), the KPI of certified people and the opt-in directory.

The signing key is the certificates' own (``LEVQOR_CERT_KEY_PATH``, default ``VAR_DIR/cert_ed25519.pem``,
created 0600 on first use like the audit key, never the audit key). Its public half is published as a
JWK set at ``/v1/certification/jwks.json`` and inside the issuer profile, so anyone can verify a
credential offline with any JOSE library.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from levqor.settings import get_settings
from memory.certification.models import Certificate, ExamAttempt
from memory.certification.repository import CertificationRepository
from memory.db import aware, utcnow
from tools.context import Principal, ToolContext
from tools.enterprise import audit_log
from tools.enterprise.rbac import is_platform
from tools.errors import Conflict, NotFound, Unprocessable
from tools.registry import tool

OB_CONTEXT = ["https://www.w3.org/ns/credentials/v2",
              "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"]
ACHIEVEMENT_NAME = "Levqor Certified Automation Practitioner"
EXPERT_PERCENT = 90


# ---- the key ---------------------------------------------------------------------------------

def _load_or_create_key() -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = get_settings().resolved_cert_key_path
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pem)
        tmp.chmod(0o600)
        tmp.replace(path)
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def _b64u(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _b64u_dec(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def public_jwk() -> dict[str, str]:
    """The certificates' public key as an OKP/Ed25519 JWK with its kid (the RFC 7638 thumbprint)."""
    from cryptography.hazmat.primitives import serialization

    raw = _load_or_create_key().public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    x = _b64u(raw)
    thumb = _b64u(hashlib.sha256(json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x},
                                            separators=(",", ":"), sort_keys=True).encode()).digest())
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": thumb, "alg": "EdDSA", "use": "sig"}


def issuer_id() -> str:
    return f"{get_settings().base_url}/v1/certification/issuer"


def verify_url(cert_id: str) -> str:
    return f"{get_settings().base_url}/certification/verify/{cert_id}"


def sign(payload: dict[str, Any]) -> tuple[str, str]:
    """A compact JWS (``vc+jwt``, EdDSA) of ``payload``; returns (token, kid)."""
    jwk = public_jwk()
    header = {"alg": "EdDSA", "typ": "vc+jwt", "cty": "vc", "kid": f"{issuer_id()}#{jwk['kid']}"}
    signing_input = (_b64u(json.dumps(header, separators=(",", ":")).encode()) + "."
                     + _b64u(json.dumps(payload, separators=(",", ":")).encode()))
    sig = _load_or_create_key().sign(signing_input.encode())
    return f"{signing_input}.{_b64u(sig)}", jwk["kid"]


def check_signature(token: str) -> dict[str, Any] | None:
    """The credential of ``token`` when our key signed it exactly as it is, else None."""
    from cryptography.exceptions import InvalidSignature

    parts = token.strip().split(".")
    if len(parts) != 3:
        return None
    try:
        header = json.loads(_b64u_dec(parts[0]))
        if header.get("alg") != "EdDSA":
            return None
        _load_or_create_key().public_key().verify(_b64u_dec(parts[2]), f"{parts[0]}.{parts[1]}".encode())
        payload = json.loads(_b64u_dec(parts[1]))
    except (InvalidSignature, ValueError, UnicodeDecodeError):
        return None
    return payload if isinstance(payload, dict) else None


def credential(c: Certificate) -> dict[str, Any]:
    """The Open Badges 3.0 ``OpenBadgeCredential`` of certificate ``c`` (what is signed)."""
    base = get_settings().base_url
    return {
        "@context": OB_CONTEXT,
        "id": f"urn:uuid:{c.id}",
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "name": f"{ACHIEVEMENT_NAME} ({c.level})",
        "issuer": {"id": issuer_id(), "type": ["Profile"], "name": "Levqor", "url": base},
        "validFrom": aware(c.issued_at).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "validUntil": aware(c.expires_at).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "credentialSubject": {
            "type": ["AchievementSubject"],
            "name": c.name,
            "identifier": [{"type": "IdentityObject", "identityHash": _email_hash(c.email, c.id),
                            "identityType": "emailAddress", "hashed": True, "salt": c.id}],
            "achievement": {
                "id": f"{base}/certification#achievement",
                "type": ["Achievement"],
                "name": ACHIEVEMENT_NAME,
                "description": "Passed the Levqor certification exam on automation (pipelines, triggers, "
                               "retries, idempotency, schedules, webhooks), integrity and pipeline templates.",
                "criteria": {"narrative": f"Score of at least {get_settings().cert_pass_percent}% on a "
                                          "stratified exam drawn from the 100-question Levqor bank."},
                "achievementType": "Certificate",
            },
            "result": [{"type": ["Result"], "value": f"{c.score_percent}%", "status": "Completed"}],
        },
        "credentialStatus": {"id": f"{base}/v1/certification/verify/{c.id}", "type": "LevqorStatusCheck"},
    }


def _email_hash(email: str, salt: str) -> str:
    return "sha256$" + hashlib.sha256((email.lower() + salt).encode()).hexdigest()


def issue_for(ctx: ToolContext, a: ExamAttempt) -> Certificate:
    """Issue (once) the certificate of a passed attempt, signed, and audit it."""
    repo = CertificationRepository(ctx.session)
    existing = repo.certificate_for_attempt(a.id)
    if existing is not None:
        return existing
    now = utcnow().replace(microsecond=0)
    percent = round(100 * (a.score or 0) / max(1, a.total))
    c = Certificate(id=str(uuid.uuid4()), org_id=a.org_id, attempt_id=a.id, name=a.candidate_name,
                    email=a.candidate_email, level="Expert" if percent >= EXPERT_PERCENT else "Practitioner",
                    score_percent=percent, issued_at=now,
                    expires_at=now + dt.timedelta(days=get_settings().cert_validity_days),
                    credential_jwt="", key_id="", demo=a.demo)
    c.credential_jwt, c.key_id = sign(credential(c))
    repo.add(c)
    audit_log.record(ctx, "certification.issued", f"certificate:{c.id}",
                     after={"name": c.name, "level": c.level, "attempt": a.id})
    push_badge(ctx, c)
    return c


def push_badge(ctx: ToolContext, c: Certificate) -> str | None:
    """Add the badge as a page of the configured Notion data source; the page id, or None (not configured
    or Notion failed: the failure is audited and ``certificates.push_notion`` tries again)."""
    s = get_settings()
    if not (s.notion_token and s.notion_badges_data_source_id) or c.notion_page_id:
        return c.notion_page_id
    from notion_client import Client  # kept lazy: only with Notion configured

    opts: dict[str, Any] = {"auth": s.notion_token, "timeout_ms": 10_000}
    if s.notion_base_url:
        opts["base_url"] = s.notion_base_url.rstrip("/")
    props = {"Name": {"title": [{"text": {"content": c.name}}]},
             "Level": {"select": {"name": c.level}},
             "Issued": {"date": {"start": aware(c.issued_at).date().isoformat()}},
             "Valid until": {"date": {"start": aware(c.expires_at).date().isoformat()}},
             "Certificate ID": {"rich_text": [{"text": {"content": c.id}}]},
             "Verify": {"url": verify_url(c.id)}}
    try:
        page: Any = Client(**opts).pages.create(parent={"data_source_id": s.notion_badges_data_source_id},
                                           properties=props)
    except Exception as exc:  # noqa: BLE001 - any Notion failure leaves the certificate issued
        audit_log.record(ctx, "certification.notion_failed", f"certificate:{c.id}",
                         after={"error": f"{type(exc).__name__}: {exc}"[:300]})
        return None
    c.notion_page_id = str(page.get("id", ""))[:100]
    audit_log.record(ctx, "certification.notion_pushed", f"certificate:{c.id}", after={"page": c.notion_page_id})
    return c.notion_page_id


# ---- reading, verifying, revoking --------------------------------------------------------------

Status = Literal["valid", "expired", "revoked"]


class CertificateRead(BaseModel):
    id: str
    name: str
    level: str
    score_percent: int
    issued_at: dt.datetime
    expires_at: dt.datetime
    status: Status
    revoked_at: dt.datetime | None = None
    revoke_reason: str | None = None
    listed: bool
    verify_url: str
    credential: str = Field(description="The signed Open Badges 3.0 credential (VC-JOSE compact JWS, vc+jwt)")


def status_of(c: Certificate, now: dt.datetime | None = None) -> Status:
    now = now or utcnow()
    if c.revoked_at is not None:
        return "revoked"
    return "expired" if aware(c.expires_at) <= now else "valid"


def read(c: Certificate) -> CertificateRead:
    return CertificateRead(id=c.id, name=c.name, level=c.level, score_percent=c.score_percent,
                           issued_at=c.issued_at, expires_at=c.expires_at, status=status_of(c),
                           revoked_at=c.revoked_at, revoke_reason=c.revoke_reason, listed=c.listed,
                           verify_url=verify_url(c.id), credential=c.credential_jwt)


class CertificateRef(BaseModel):
    certificate_id: str = Field(min_length=1, max_length=64)


class CertificateList(BaseModel):
    items: list[CertificateRead]


class NoInput(BaseModel):
    model_config = ConfigDict(extra="forbid")


@tool("certificates.list", risk="read")
def list_certificates(ctx: ToolContext, params: NoInput) -> CertificateList:
    """List the organisation's certificates, newest first, with their status."""
    return CertificateList(items=[read(c) for c in CertificationRepository(ctx.session).certificates(ctx.org_id)])


def _own(ctx: ToolContext, cert_id: str) -> Certificate:
    c = CertificationRepository(ctx.session).certificate(cert_id, ctx.org_id)
    if c is None:
        raise NotFound(f"no certificate {cert_id}", field="certificate_id")
    return c


@tool("certificates.get", risk="read")
def get_certificate(ctx: ToolContext, params: CertificateRef) -> CertificateRead:
    """Show one of the organisation's certificates with its signed credential."""
    return read(_own(ctx, params.certificate_id))


class RevokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    certificate_id: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=3, max_length=500)


@tool("certificates.revoke", risk="destructive")
def revoke(ctx: ToolContext, params: RevokeIn) -> CertificateRead:
    """Revoke a certificate of the organisation (its verify page and API then say revoked); audited."""
    c = _own(ctx, params.certificate_id)
    if c.revoked_at is not None:
        raise Conflict(f"certificate {c.id} is already revoked", field="certificate_id")
    c.revoked_at, c.revoked_by, c.revoke_reason = utcnow(), ctx.principal.actor, params.reason
    audit_log.record(ctx, "certification.revoked", f"certificate:{c.id}", after={"reason": params.reason})
    return read(c)


class ListingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    certificate_id: str = Field(min_length=1, max_length=64)
    listed: bool


@tool("certificates.set_listing", risk="write")
def set_listing(ctx: ToolContext, params: ListingIn) -> CertificateRead:
    """Opt a certificate in to (or out of) the public directory of certified experts; audited."""
    c = _own(ctx, params.certificate_id)
    c.listed = params.listed
    audit_log.record(ctx, "certification.listing", f"certificate:{c.id}", after={"listed": params.listed})
    return read(c)


class PublicStatus(BaseModel):
    id: str
    status: Status
    name: str
    level: str
    issued_at: dt.datetime
    expires_at: dt.datetime
    revoked_at: dt.datetime | None = None
    issuer: str = "Levqor"
    credential: str
    jwks_url: str


def public_status(session: Any, cert_id: str) -> PublicStatus:
    """What the public verify page and API show of one certificate (no email, no organisation)."""
    c = CertificationRepository(session).certificate(cert_id)
    if c is None:
        raise NotFound(f"no certificate {cert_id}", field="certificate_id")
    return PublicStatus(id=c.id, status=status_of(c), name=c.name, level=c.level, issued_at=c.issued_at,
                        expires_at=c.expires_at, revoked_at=c.revoked_at, credential=c.credential_jwt,
                        jwks_url=f"{get_settings().base_url}/v1/certification/jwks.json")


class VerifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    credential: str = Field(min_length=10, max_length=20_000, description="A compact vc+jwt credential")


class VerifyOut(BaseModel):
    verified: bool = Field(description="The signature is Levqor's and the credential is unchanged")
    status: Literal["valid", "expired", "revoked", "invalid"]
    id: str | None = None
    name: str | None = None
    level: str | None = None


def verify_credential(session: Any, token: str) -> VerifyOut:
    """Check a presented credential: our signature over these exact bytes, then its current status."""
    payload = check_signature(token)
    if payload is None:
        return VerifyOut(verified=False, status="invalid")
    cid = str(payload.get("id", "")).removeprefix("urn:uuid:")
    c = CertificationRepository(session).certificate(cid)
    if c is None:
        raise Unprocessable("the credential is signed by Levqor but unknown here", field="credential")
    return VerifyOut(verified=True, status=status_of(c), id=c.id, name=c.name, level=c.level)


# ---- the PDF -------------------------------------------------------------------------------------

def qr_png(url: str) -> bytes:
    import segno

    buf = io.BytesIO()
    segno.make(url, error="m").save(buf, kind="png", scale=8, border=4)
    return buf.getvalue()


def pdf(c: Certificate) -> bytes:
    """The certificate as a one-page landscape A4 PDF with a QR code to the public verify page."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.units import mm
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    w, h = landscape(A4)
    cv = canvas.Canvas(buf, pagesize=(w, h))
    cv.setTitle(f"Levqor certificate {c.id}")
    navy = colors.HexColor("#1f2a44")
    cv.setStrokeColor(navy)
    cv.setLineWidth(3)
    cv.rect(12 * mm, 12 * mm, w - 24 * mm, h - 24 * mm)
    cv.setLineWidth(0.8)
    cv.rect(15 * mm, 15 * mm, w - 30 * mm, h - 30 * mm)
    cv.setFillColor(navy)
    cv.setFont("Helvetica-Bold", 14)
    cv.drawCentredString(w / 2, h - 35 * mm, "LEVQOR")
    cv.setFont("Helvetica", 26)
    cv.drawCentredString(w / 2, h - 55 * mm, "Certificate of Achievement")
    cv.setFont("Helvetica", 12)
    cv.drawCentredString(w / 2, h - 70 * mm, "This certifies that")
    cv.setFont("Helvetica-Bold", 30)
    cv.drawCentredString(w / 2, h - 88 * mm, c.name)
    cv.setFont("Helvetica", 12)
    cv.drawCentredString(w / 2, h - 102 * mm, "has passed the Levqor certification exam and is a")
    cv.setFont("Helvetica-Bold", 18)
    cv.drawCentredString(w / 2, h - 116 * mm, f"{ACHIEVEMENT_NAME} — {c.level}")
    cv.setFont("Helvetica", 11)
    cv.drawCentredString(w / 2, h - 128 * mm, f"Score {c.score_percent}%  ·  automation, integrity, pipeline templates")
    cv.setFont("Helvetica", 10)
    left = 25 * mm
    cv.drawString(left, 40 * mm, f"Issued: {aware(c.issued_at).date().isoformat()}")
    cv.drawString(left, 34 * mm, f"Valid until: {aware(c.expires_at).date().isoformat()}")
    cv.drawString(left, 28 * mm, f"Certificate ID: {c.id}")
    cv.setFont("Helvetica", 8)
    cv.drawString(left, 22 * mm,
                  f"Verify: {verify_url(c.id)}  (Open Badges 3.0 credential, Ed25519 key {c.key_id[:16]})")
    size = 38 * mm
    cv.drawImage(ImageReader(io.BytesIO(qr_png(verify_url(c.id)))), w - 25 * mm - size, 22 * mm, size, size)
    cv.setFont("Helvetica", 7)
    cv.drawCentredString(w - 25 * mm - size / 2, 19 * mm, "Scan to verify")
    cv.showPage()
    cv.save()
    return buf.getvalue()


def pdf_for(ctx: ToolContext, cert_id: str) -> tuple[Certificate, bytes]:
    c = _own(ctx, cert_id)
    return c, pdf(c)


# ---- KPI and directory ---------------------------------------------------------------------------

class KpiIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    day: dt.date | None = Field(None, description="UTC day (default today)")


class KpiOut(BaseModel):
    day: dt.date
    certified_users: int = Field(description="People holding a valid certificate at the end of the day")
    issued: int
    revoked: int


@tool("certification.kpis", risk="read")
def kpis(ctx: ToolContext, params: KpiIn) -> KpiOut:
    """Count the organisation's certified people (valid certificates) at the end of a day."""
    day = params.day or utcnow().date()
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    repo = CertificationRepository(ctx.session)
    certs = repo.certificates(ctx.org_id, limit=100_000)
    return KpiOut(day=day, certified_users=repo.certified_count(ctx.org_id, end),
                  issued=sum(1 for c in certs if aware(c.issued_at) < end),
                  revoked=sum(1 for c in certs if c.revoked_at is not None and aware(c.revoked_at) < end))


class DirectoryEntry(BaseModel):
    name: str
    level: str
    issued_at: dt.datetime
    verify_url: str


class ExpertsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int = Field(500, ge=1, le=10_000)


class Expert(BaseModel):
    name: str
    level: str
    issued_at: dt.datetime
    verify_url: str
    email: str | None = Field(None, description="Only for the platform's own callers (the announcement "
                                                "segment 'certified experts'); never for a tenant or the public")


class ExpertList(BaseModel):
    items: list[Expert]


@tool("certification.experts", risk="read")
def experts(ctx: ToolContext, params: ExpertsIn) -> ExpertList:
    """List the certified experts who opted in to the public directory (valid certificates, newest first)."""
    # Listed certificates are public across organisations by the holder's choice, but only what the
    # directory shows: the email (for announcements) goes to the platform's own processes (no agent, no
    # tenant), and demo people have none.
    platform = is_platform(ctx.principal) and ctx.principal.kind == "system"
    seen: set[str] = set()
    items: list[Expert] = []
    for c in CertificationRepository(ctx.session).listed(utcnow(), limit=params.limit):
        if c.email in seen:  # one entry per person: their newest listed certificate
            continue
        seen.add(c.email)
        items.append(Expert(name=c.name, level=c.level, issued_at=c.issued_at, verify_url=verify_url(c.id),
                            email=c.email if platform and not c.demo else None))
    return ExpertList(items=items)


# Who reads the public directory page and API: nobody signed in (policy: a person's read).
VISITOR = Principal(kind="user", id="public", org_id=None, role="viewer", name="public visitor")


def directory(session: Session) -> list[DirectoryEntry]:
    """The public directory: certified people who opted in, with a valid certificate."""
    out = experts(ToolContext(session, VISITOR), ExpertsIn())
    return [DirectoryEntry(name=e.name, level=e.level, issued_at=e.issued_at, verify_url=e.verify_url)
            for e in out.items]


class NotionPushOut(BaseModel):
    certificate_id: str
    notion_page_id: str | None


@tool("certificates.push_notion", risk="write")
def push_notion(ctx: ToolContext, params: CertificateRef) -> NotionPushOut:
    """Push a certificate's badge to the configured Notion data source (again, after a failure)."""
    c = _own(ctx, params.certificate_id)
    return NotionPushOut(certificate_id=c.id, notion_page_id=push_badge(ctx, c))


def platform_certified_count(session: Session) -> int:
    """People holding a valid certificate now, across the platform (the Partner Network's public count)."""
    return CertificationRepository(session).certified_count_all(utcnow())
