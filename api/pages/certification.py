"""Certification pages: take an exam (questions as a form, graded on submit, per-topic feedback),
download the certificate, the public verify page and the opt-in directory of certified experts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.deps import SessionDep, public, require
from api.pages.router import form_csrf, render
from tools.certification import cert_issue, scoring
from tools.certification.cert_issue import CertificateRef, ListingIn, NoInput
from tools.certification.scoring import AttemptRef, ExamStart, ExamSubmit
from tools.context import ToolContext
from tools.errors import AppError

router = APIRouter(tags=["pages"], include_in_schema=False)
AttemptId = Annotated[int, Path(ge=1, le=2**31 - 1)]
CertId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9a-f-]+$")]


@router.get("/certification")
def certification_page(request: Request, ctx: Annotated[ToolContext, require("certification:read")],
                       error: str | None = None) -> HTMLResponse:
    """Start an exam; the organisation's certificates."""
    certs = cert_issue.list_certificates(ctx, NoInput()).items
    return render(request, "certification.html", ctx, certificates=certs, error=error or "")


@router.post("/certification/exams", dependencies=[Depends(form_csrf)])
async def start_from_page(request: Request, ctx: Annotated[ToolContext, require("certification:write")]) -> Response:
    """Start (or resume) an exam for the candidate named in the form."""
    form = await request.form()
    try:
        params = ExamStart(candidate_name=str(form.get("candidate_name", "")),
                           candidate_email=str(form.get("candidate_email", "")))
        attempt = scoring.start_exam(ctx, params)
    except (AppError, ValueError) as exc:
        msg = exc.detail if isinstance(exc, AppError) else str(exc).splitlines()[0]
        return render(request, "certification.html", ctx, error=msg,
                      certificates=cert_issue.list_certificates(ctx, NoInput()).items)
    return RedirectResponse(f"/certification/exams/{attempt.id}", status_code=303)


@router.get("/certification/exams/{attempt_id}")
def exam_page(request: Request, attempt_id: AttemptId,
              ctx: Annotated[ToolContext, require("certification:read")]) -> HTMLResponse:
    """The exam form while open; the result with per-topic feedback once graded."""
    attempt = scoring.get_attempt(ctx, AttemptRef(attempt_id=attempt_id))
    return render(request, "certification_exam.html", ctx, a=attempt)


def answers_from_form(attempt: Any, form: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for q in attempt.questions:
        key = f"q-{q.id}"
        if q.type == "single" and form.get(key):
            out[q.id] = [str(form.get(key))]
        elif q.type == "multiple":
            chosen = [str(v) for v in form.getlist(key)]
            if chosen:
                out[q.id] = chosen
        elif q.type == "text" and str(form.get(key, "")).strip():
            out[q.id] = str(form.get(key))[:500]
        elif q.type == "ordering":
            ranks = {o.id: str(form.get(f"{key}-{o.id}", "")) for o in q.options}
            if all(r.isdigit() for r in ranks.values()):
                out[q.id] = [o for o, _ in sorted(ranks.items(), key=lambda kv: int(kv[1]))]
    return out


@router.post("/certification/exams/{attempt_id}/submit", dependencies=[Depends(form_csrf)])
async def submit_from_page(request: Request, attempt_id: AttemptId,
                           ctx: Annotated[ToolContext, require("certification:write")]) -> Response:
    """Grade the submitted form and show the result."""
    attempt = scoring.get_attempt(ctx, AttemptRef(attempt_id=attempt_id))
    form = await request.form()
    try:
        scoring.submit_exam(ctx, ExamSubmit(attempt_id=attempt_id, answers=answers_from_form(attempt, form)))
    except AppError as exc:
        if exc.status_code == 404:
            raise
        return render(request, "certification_exam.html", ctx, a=attempt, error=exc.detail)
    return RedirectResponse(f"/certification/exams/{attempt_id}", status_code=303)


@router.get("/certification/certificates/{certificate_id}.pdf")
def certificate_pdf_page(certificate_id: CertId,
                         ctx: Annotated[ToolContext, require("certification:read")]) -> Response:
    """Download the certificate PDF."""
    cert_issue.get_certificate(ctx, CertificateRef(certificate_id=certificate_id))
    c, data = cert_issue.pdf_for(ctx, certificate_id)
    return Response(data, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="levqor-certificate-{c.id}.pdf"'})


@router.post("/certification/certificates/{certificate_id}/listing", dependencies=[Depends(form_csrf)])
async def listing_from_page(request: Request, certificate_id: CertId,
                            ctx: Annotated[ToolContext, require("certification:write")]) -> Response:
    """Opt the certificate in to or out of the public directory."""
    form = await request.form()
    cert_issue.set_listing(ctx, ListingIn(certificate_id=certificate_id, listed=form.get("listed") == "1"))
    return RedirectResponse("/certification", status_code=303)


@router.get("/certification/verify/{certificate_id}", dependencies=[public()])
def verify_page(request: Request, certificate_id: CertId, session: SessionDep) -> HTMLResponse:
    """Public: is this certificate valid, expired or revoked; the signed credential and the key to check it."""
    status = cert_issue.public_status(session, certificate_id)
    return render(request, "certification_verify.html", c=status)


@router.get("/certification/experts", dependencies=[public()])
def experts_page(request: Request, session: SessionDep) -> HTMLResponse:
    """Public: certified experts who opted in to be listed."""
    return render(request, "certification_experts.html", experts=cert_issue.directory(session))
