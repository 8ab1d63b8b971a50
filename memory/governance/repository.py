"""Queries for partner audits, audit keys and policy versions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from memory.governance.models import AuditKey, PartnerAudit, PolicyVersion


class GovernanceRepository:
    def __init__(self, session: Session):
        self.session = session

    @classmethod
    def from_session(cls, session: Session) -> GovernanceRepository:
        return cls(session)

    def add(self, row: PartnerAudit | AuditKey | PolicyVersion) -> None:
        self.session.add(row)
        self.session.flush()

    def audit(self, audit_id: int) -> PartnerAudit | None:
        return self.session.get(PartnerAudit, audit_id)

    def audits(self, *, partner_id: int | None = None, plugin_id: int | None = None, limit: int = 100,
               before_id: int | None = None) -> Sequence[PartnerAudit]:
        q = select(PartnerAudit).order_by(PartnerAudit.id.desc()).limit(limit)
        if partner_id is not None:
            q = q.where(PartnerAudit.partner_id == partner_id)
        if plugin_id is not None:
            q = q.where(PartnerAudit.plugin_id == plugin_id)
        if before_id is not None:
            q = q.where(PartnerAudit.id < before_id)
        return self.session.scalars(q).all()

    def open_audit(self, plugin_id: int, version: str) -> PartnerAudit | None:
        """A queued or running audit of this plugin version (one at a time)."""
        return self.session.scalars(select(PartnerAudit).where(
            PartnerAudit.plugin_id == plugin_id, PartnerAudit.version == version,
            PartnerAudit.status.in_(("queued", "running"))).limit(1)).first()

    def claim(self, now: dt.datetime, lease_until: dt.datetime, limit: int) -> list[PartnerAudit]:
        """Queued audits, and running ones whose runner died (lease expired), marked running for us."""
        q = (select(PartnerAudit)
             .where(or_(PartnerAudit.status == "queued",
                        (PartnerAudit.status == "running") & (PartnerAudit.lease_until < now)))
             .order_by(PartnerAudit.id).limit(limit).with_for_update(skip_locked=True))
        rows = list(self.session.scalars(q).all())
        for row in rows:
            row.status, row.lease_until, row.started_at = "running", lease_until, now
        self.session.flush()
        return rows

    def failed_open(self) -> Sequence[PartnerAudit]:
        """Failed audits not yet enforced nor resolved by a later passing audit."""
        return self.session.scalars(select(PartnerAudit).where(
            PartnerAudit.status == "done", PartnerAudit.result == "fail", PartnerAudit.enforced_at.is_(None),
            PartnerAudit.resolved_by_audit_id.is_(None)).order_by(PartnerAudit.id)).all()

    def key(self, plugin_id: int) -> AuditKey | None:
        return self.session.get(AuditKey, plugin_id)

    def latest_policy(self) -> PolicyVersion | None:
        return self.session.scalars(select(PolicyVersion).order_by(PolicyVersion.id.desc()).limit(1)).first()

    def policy_by_digest(self, digest: str) -> PolicyVersion | None:
        return self.session.scalars(select(PolicyVersion).where(PolicyVersion.digest == digest)).first()

    def policy_versions(self, limit: int = 50) -> Sequence[PolicyVersion]:
        return self.session.scalars(select(PolicyVersion).order_by(PolicyVersion.id.desc()).limit(limit)).all()

    def delivery_attempts(self, plugin_id: int, since: dt.datetime,
                          limit: int = 10_000) -> list[tuple[int | None, float]]:
        """(status code or None, latency ms) of the plugin's newest webhook delivery attempts since ``since``."""
        from memory.partner.models import WebhookAttempt, WebhookDelivery

        q = (select(WebhookAttempt.status_code, WebhookAttempt.latency_ms)
             .join(WebhookDelivery, WebhookDelivery.id == WebhookAttempt.delivery_id)
             .where(WebhookDelivery.plugin_id == plugin_id, WebhookAttempt.started_at >= since)
             .order_by(WebhookAttempt.id.desc()).limit(limit))
        return [(code, float(lat or 0.0)) for code, lat in self.session.execute(q).all()]

    def revenue_over_share(self, plugin_id: int, max_bps: int, since: dt.datetime) -> tuple[int, int]:
        """(entries, highest share in bps) of the plugin's revenue since ``since`` accrued above ``max_bps``."""
        from sqlalchemy import func

        from memory.partner.models import RevenueEntry

        n, top = self.session.execute(select(func.count(RevenueEntry.id), func.max(RevenueEntry.share_bps)).where(
            RevenueEntry.plugin_id == plugin_id, RevenueEntry.share_bps > max_bps,
            RevenueEntry.created_at >= since)).one()
        return int(n or 0), int(top or 0)

    def has_claimable(self, now: dt.datetime) -> bool:
        return self.session.scalars(select(PartnerAudit.id).where(or_(
            PartnerAudit.status == "queued",
            (PartnerAudit.status == "running") & (PartnerAudit.lease_until < now))).limit(1)).first() is not None

    def audits_between(self, start: dt.datetime, end: dt.datetime) -> Sequence[PartnerAudit]:
        return self.session.scalars(select(PartnerAudit).where(
            PartnerAudit.created_at >= start, PartnerAudit.created_at < end).order_by(PartnerAudit.id)).all()
