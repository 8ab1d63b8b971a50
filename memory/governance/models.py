"""Governance: partner audits (with their findings and enforcement state), the audit signing key of each
plugin, and every policy version that has been in force."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from memory.db import Base, UTCDateTime, utcnow

AUDIT_STATUSES: tuple[str, ...] = ("queued", "running", "done", "error")
AUDIT_RESULTS: tuple[str, ...] = ("pass", "pass_with_warnings", "fail")
# An open audit (the predicate of its unique partial index; migration 1810): one per plugin version at a time.
OPEN_AUDIT = "status IN ('queued', 'running')"


class PartnerAudit(Base):
    """One audit of one plugin version: queued by a trigger, run, its findings and what followed."""

    __tablename__ = "governance_audits"
    __table_args__ = (Index("ix_governance_audits_plugin_created", "plugin_id", "created_at"),
                      Index("uq_governance_audits_open", "plugin_id", "version", unique=True,
                            postgresql_where=text(OPEN_AUDIT), sqlite_where=text(OPEN_AUDIT)))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plugin_id: Mapped[int] = mapped_column(ForeignKey("plugins.id", ondelete="CASCADE"))
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id", ondelete="CASCADE"), index=True)
    version: Mapped[str] = mapped_column(String(64))
    trigger: Mapped[str] = mapped_column(String(32))  # listing | version_submitted | quarterly | incident | manual
    requested_by: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    result: Mapped[str | None] = mapped_column(String(24), nullable=True)
    policy_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    checks: Mapped[list[str]] = mapped_column(JSON, default=list)  # every check that ran
    explanation: Mapped[str] = mapped_column(Text, default="")
    explained_by: Mapped[str] = mapped_column(String(16), default="")  # template | llm
    error: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    deadline_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    notified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    enforced_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved_by_audit_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Who holds the lease of a running audit: only that auditor records its outcome (migration 1810).
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AuditKey(Base):
    """The secret Levqor signs a plugin's audit test events with (the partner verifies them with it)."""

    __tablename__ = "governance_audit_keys"

    plugin_id: Mapped[int] = mapped_column(ForeignKey("plugins.id", ondelete="CASCADE"), primary_key=True)
    secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PolicyVersion(Base):
    """A policy document as it was when first seen in force (its digest), with the diff from the previous."""

    __tablename__ = "governance_policy_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    diff: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    recorded_by: Mapped[str] = mapped_column(String(200), default="")
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
