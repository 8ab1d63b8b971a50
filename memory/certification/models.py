"""Certification: exam attempts (the drawn questions, shuffled options, deadline and answers, all kept
server-side), the certificates issued from passed attempts (the signed credential, revocation), and the
examiner's docs watch: the docs pages' last accounted-for state, its question proposals and the questions
approved proposals added to the bank (the overlay on top of ``exam.yaml``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from memory.db import Base, UTCDateTime, utcnow


class ExamAttempt(Base):
    """One candidate's attempt: what was drawn, by when it must be submitted, and how it was graded."""

    __tablename__ = "cert_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    candidate_email: Mapped[str] = mapped_column(String(320), index=True)
    candidate_name: Mapped[str] = mapped_column(String(200))
    actor: Mapped[str] = mapped_column(String(200))
    question_ids: Mapped[list[str]] = mapped_column(JSON)
    option_order: Mapped[dict[str, Any]] = mapped_column(JSON)  # question id -> option ids as shown
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | graded | review | expired
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    deadline: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    submitted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    answers: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    marks: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # question id -> correct|wrong|undecided
    score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    total: Mapped[int] = mapped_column(Integer, default=0)
    passed: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    per_topic: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    flags: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    demo: Mapped[bool] = mapped_column(Boolean, default=False)


class Certificate(Base):
    """A credential issued for a passed attempt: the signed Open Badges 3.0 credential (VC-JWT) as issued."""

    __tablename__ = "cert_certificates"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # urn:uuid tail, public
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("cert_attempts.id", ondelete="CASCADE"), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320), index=True)
    level: Mapped[str] = mapped_column(String(32))
    score_percent: Mapped[int] = mapped_column(Integer)
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    credential_jwt: Mapped[str] = mapped_column(Text)
    key_id: Mapped[str] = mapped_column(String(64))  # RFC 7638 thumbprint (43 characters)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    revoke_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    listed: Mapped[bool] = mapped_column(Boolean, default=False)  # opted in to the public directory
    notion_page_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    demo: Mapped[bool] = mapped_column(Boolean, default=False)


class DocPage(Base):
    """A docs page as the examiner last accounted for it (the first scan's baseline, or a proposal)."""

    __tablename__ = "cert_doc_pages"

    path: Mapped[str] = mapped_column(String(300), primary_key=True)  # docs/dev_portal/pipelines.md
    digest: Mapped[str] = mapped_column(String(64))  # sha256 of the page
    sections: Mapped[dict[str, Any]] = mapped_column(JSON)  # heading anchor -> sha256 of its section
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class QuestionProposal(Base):
    """A question the examiner drafted from one version of a docs page; one per (page, digest), ever."""

    __tablename__ = "cert_question_proposals"
    __table_args__ = (UniqueConstraint("path", "digest", name="uq_cert_question_proposals_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(300))
    digest: Mapped[str] = mapped_column(String(64))
    anchor: Mapped[str] = mapped_column(String(200), default="")
    question_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    question: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    source: Mapped[str] = mapped_column(String(16))  # llm | offline
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | approved | rejected | skipped
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class BankQuestion(Base):
    """A question an approved proposal added to the bank (validated like ``exam.yaml``'s on adding)."""

    __tablename__ = "cert_bank_questions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # the question id, e.g. auto-101
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    proposal_id: Mapped[int | None] = mapped_column(ForeignKey("cert_question_proposals.id", ondelete="SET NULL"),
                                                    nullable=True)
    added_by: Mapped[str] = mapped_column(String(200))
    added_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
