"""Certification: exam attempts (the drawn questions, shuffled options, deadline and answers, all kept
server-side) and the certificates issued from passed attempts (the signed credential, revocation)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text
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
