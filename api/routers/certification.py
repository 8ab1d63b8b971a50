"""Certification: exams (start, read, submit), certificates (list, PDF, revoke, directory opt-in), the
public verification API and JWK set, the public directory of certified experts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from api.deps import SessionDep, public, require
from tools.certification import cert_issue, scoring
from tools.certification.cert_issue import (
    CertificateList,
    CertificateRead,
    CertificateRef,
    DirectoryEntry,
    KpiIn,
    KpiOut,
    ListingIn,
    NoInput,
    PublicStatus,
    RevokeIn,
    VerifyIn,
    VerifyOut,
)
from tools.certification.scoring import AttemptRead, AttemptRef, ExamStart, ExamSubmit
from tools.context import ToolContext

router = APIRouter(prefix="/v1/certification", tags=["certification"])

CertId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9a-f-]+$")]


@router.post("/exams", response_model=AttemptRead, status_code=201)
def start_exam(body: ExamStart, ctx: Annotated[ToolContext, require("certification:write")]) -> AttemptRead:
    """Start an exam for a candidate (or resume the open one): questions and shuffled options, no answers."""
    return scoring.start_exam(ctx, body)


@router.get("/exams/{attempt_id}", response_model=AttemptRead)
def get_exam(attempt_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
             ctx: Annotated[ToolContext, require("certification:read")]) -> AttemptRead:
    """Show an attempt: its questions while open, its result and per-topic feedback once graded."""
    return scoring.get_attempt(ctx, AttemptRef(attempt_id=attempt_id))


@router.post("/exams/{attempt_id}/submit", response_model=AttemptRead)
def submit_exam(attempt_id: Annotated[int, Path(ge=1, le=2**31 - 1)], body: dict[str, Any],
                ctx: Annotated[ToolContext, require("certification:write")]) -> AttemptRead:
    """Submit the answers ({"answers": {question id: option ids or text}}) and grade them."""
    return scoring.submit_exam(ctx, ExamSubmit.model_validate({**body, "attempt_id": attempt_id}))


@router.get("/certificates", response_model=CertificateList)
def list_certificates(ctx: Annotated[ToolContext, require("certification:read")]) -> CertificateList:
    """List the organisation's certificates with their status."""
    return cert_issue.list_certificates(ctx, NoInput())


@router.get("/certificates/{certificate_id}", response_model=CertificateRead)
def get_certificate(certificate_id: CertId,
                    ctx: Annotated[ToolContext, require("certification:read")]) -> CertificateRead:
    """Show one certificate with its signed Open Badges 3.0 credential (vc+jwt)."""
    return cert_issue.get_certificate(ctx, CertificateRef(certificate_id=certificate_id))


@router.get("/certificates/{certificate_id}/pdf", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}}})
def certificate_pdf(certificate_id: CertId, ctx: Annotated[ToolContext, require("certification:read")]) -> Response:
    """Download the certificate PDF (name, level, dates, id and a QR code to the verify page)."""
    cert_issue.get_certificate(ctx, CertificateRef(certificate_id=certificate_id))  # policy-checked read
    c, data = cert_issue.pdf_for(ctx, certificate_id)
    return Response(data, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="levqor-certificate-{c.id}.pdf"'})


@router.post("/certificates/{certificate_id}/revoke", response_model=CertificateRead)
def revoke_certificate(certificate_id: CertId, body: dict[str, Any],
                       ctx: Annotated[ToolContext, require("certification:admin")]) -> CertificateRead:
    """Revoke a certificate ({"reason": ...}); its verification then says revoked. Audited."""
    return cert_issue.revoke(ctx, RevokeIn.model_validate({**body, "certificate_id": certificate_id}))


@router.post("/certificates/{certificate_id}/listing", response_model=CertificateRead)
def set_listing(certificate_id: CertId, body: dict[str, Any],
                ctx: Annotated[ToolContext, require("certification:write")]) -> CertificateRead:
    """Opt a certificate in to or out of the public directory ({"listed": true|false})."""
    return cert_issue.set_listing(ctx, ListingIn.model_validate({**body, "certificate_id": certificate_id}))


@router.get("/kpis", response_model=KpiOut)
def certification_kpis(ctx: Annotated[ToolContext, require("certification:read")]) -> KpiOut:
    """Count the organisation's certified people today (the certified_users KPI)."""
    return cert_issue.kpis(ctx, KpiIn())


@router.get("/verify/{certificate_id}", response_model=PublicStatus, dependencies=[public()])
def verify_status(certificate_id: CertId, session: SessionDep) -> PublicStatus:
    """Public: a certificate's status (valid, expired, revoked), holder name, level and signed credential."""
    return cert_issue.public_status(session, certificate_id)


@router.post("/verify", response_model=VerifyOut, dependencies=[public()])
def verify_presented(body: VerifyIn, session: SessionDep) -> VerifyOut:
    """Public: check a presented credential's signature (these exact bytes) and its current status."""
    return cert_issue.verify_credential(session, body.credential)


@router.get("/jwks.json", dependencies=[public()])
def jwks() -> dict[str, Any]:
    """Public: the certificate signing key (Ed25519 JWK) for offline verification."""
    return {"keys": [cert_issue.public_jwk()]}


@router.get("/directory", response_model=list[DirectoryEntry], dependencies=[public()])
def directory(session: SessionDep) -> list[DirectoryEntry]:
    """Public: certified experts who opted in to be listed, with a valid certificate."""
    return cert_issue.directory(session)
