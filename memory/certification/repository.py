"""Certification store: attempts and certificates, always read within one organisation (but the public
verify lookup by credential id, which reveals only what the certificate itself shows)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from memory.certification.models import BankQuestion, Certificate, DocPage, ExamAttempt, QuestionProposal


class CertificationRepository:
    def __init__(self, session: Session):
        self.session = session

    @classmethod
    def from_session(cls, session: Session) -> CertificationRepository:
        return cls(session)

    def add(self, row: Any) -> None:
        self.session.add(row)
        self.session.flush()

    def attempt(self, org_id: int, attempt_id: int, *, lock: bool = False) -> ExamAttempt | None:
        q = select(ExamAttempt).where(ExamAttempt.org_id == org_id, ExamAttempt.id == attempt_id)
        if lock:
            q = q.with_for_update()
        return self.session.scalars(q).first()

    def attempts_of(self, org_id: int, email: str, *, status: str | None = None) -> list[ExamAttempt]:
        q = select(ExamAttempt).where(ExamAttempt.org_id == org_id, ExamAttempt.candidate_email == email)
        if status:
            q = q.where(ExamAttempt.status == status)
        return list(self.session.scalars(q.order_by(ExamAttempt.id)))

    def attempts(self, org_id: int, limit: int = 100) -> list[ExamAttempt]:
        q = select(ExamAttempt).where(ExamAttempt.org_id == org_id).order_by(ExamAttempt.id.desc()).limit(limit)
        return list(self.session.scalars(q))

    def same_text_answers(self, org_id: int, attempt_id: int, email: str, qid: str, text: str) -> list[int]:
        """Other candidates' submitted attempts that gave exactly this free text to ``qid``."""
        q = select(ExamAttempt).where(ExamAttempt.org_id == org_id, ExamAttempt.id != attempt_id,
                                      ExamAttempt.candidate_email != email, ExamAttempt.submitted_at.is_not(None))
        norm = " ".join(text.lower().split())
        out: list[int] = []
        for a in self.session.scalars(q):
            given = (a.answers or {}).get(qid)
            if isinstance(given, str) and " ".join(given.lower().split()) == norm:
                out.append(a.id)
        return out

    def certificate(self, cert_id: str, org_id: int | None = None) -> Certificate | None:
        q = select(Certificate).where(Certificate.id == cert_id)
        if org_id is not None:
            q = q.where(Certificate.org_id == org_id)
        return self.session.scalars(q).first()

    def certificate_for_attempt(self, attempt_id: int) -> Certificate | None:
        return self.session.scalars(select(Certificate).where(Certificate.attempt_id == attempt_id)).first()

    def certificates(self, org_id: int, limit: int = 200) -> list[Certificate]:
        q = select(Certificate).where(Certificate.org_id == org_id).order_by(Certificate.issued_at.desc())
        return list(self.session.scalars(q.limit(limit)))

    def listed(self, now: dt.datetime, limit: int = 500) -> list[Certificate]:
        q = select(Certificate).where(Certificate.listed.is_(True), Certificate.revoked_at.is_(None),
                                      Certificate.expires_at > now).order_by(Certificate.issued_at.desc())
        return list(self.session.scalars(q.limit(limit)))

    def certified_count_all(self, at: dt.datetime) -> int:
        """Distinct people holding a valid certificate at ``at``, in every organisation (a platform count)."""
        q = select(func.count(func.distinct(Certificate.email))).where(
            Certificate.issued_at <= at, Certificate.expires_at > at,
            (Certificate.revoked_at.is_(None)) | (Certificate.revoked_at > at))
        return int(self.session.scalar(q) or 0)

    def certified_count(self, org_id: int, at: dt.datetime) -> int:
        """Distinct people holding a valid (issued, unexpired, unrevoked) certificate at ``at``."""
        q = select(func.count(func.distinct(Certificate.email))).where(
            Certificate.org_id == org_id, Certificate.issued_at <= at, Certificate.expires_at > at,
            (Certificate.revoked_at.is_(None)) | (Certificate.revoked_at > at))
        return int(self.session.scalar(q) or 0)

    # ---- the examiner's docs watch and the bank overlay ---------------------------------------

    def doc_pages(self) -> dict[str, DocPage]:
        return {p.path: p for p in self.session.scalars(select(DocPage))}

    def set_doc_page(self, path: str, digest: str, sections: dict[str, str], now: dt.datetime) -> None:
        row = self.session.get(DocPage, path)
        if row is None:
            self.session.add(DocPage(path=path, digest=digest, sections=sections, updated_at=now))
        else:
            row.digest, row.sections, row.updated_at = digest, sections, now
        self.session.flush()

    def proposal(self, proposal_id: int, *, lock: bool = False) -> QuestionProposal | None:
        q = select(QuestionProposal).where(QuestionProposal.id == proposal_id)
        if lock:
            q = q.with_for_update()
        return self.session.scalars(q).first()

    def proposal_for(self, path: str, digest: str) -> QuestionProposal | None:
        return self.session.scalars(select(QuestionProposal).where(
            QuestionProposal.path == path, QuestionProposal.digest == digest)).first()

    def proposals(self, status: str | None = None, limit: int = 200) -> list[QuestionProposal]:
        q = select(QuestionProposal).order_by(QuestionProposal.id.desc()).limit(limit)
        if status:
            q = q.where(QuestionProposal.status == status)
        return list(self.session.scalars(q))

    def reserved_question_ids(self) -> set[str]:
        """Question ids of pending proposals (reserved until they are decided)."""
        q = select(QuestionProposal.question_id).where(QuestionProposal.status == "pending",
                                                      QuestionProposal.question_id.is_not(None))
        return {str(i) for i in self.session.scalars(q)}

    def bank_questions(self) -> list[BankQuestion]:
        return list(self.session.scalars(select(BankQuestion).order_by(BankQuestion.added_at, BankQuestion.id)))

    def org_ids_to_review(self, since: dt.datetime) -> set[int]:
        """Organisations with an attempt waiting for a review, or one flagged and submitted since ``since``."""
        q = select(ExamAttempt.org_id, ExamAttempt.status, ExamAttempt.flags).where(
            (ExamAttempt.status == "review") | (ExamAttempt.submitted_at >= since))
        return {int(org) for org, status, flags in self.session.execute(q) if status == "review" or flags}
