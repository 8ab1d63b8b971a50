"""Queries for partner audits, audit keys and policy versions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session

from memory.governance.models import AuditKey, PartnerAudit, PolicyVersion


def claimable(now: dt.datetime) -> ColumnElement[bool]:
    """Queued audits, and running ones whose auditor died (lease expired)."""
    return or_(PartnerAudit.status == "queued",
               (PartnerAudit.status == "running") & (PartnerAudit.lease_until < now))


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

    def claim(self, now: dt.datetime, lease_until: dt.datetime, owner: str, limit: int,
              audit_id: int | None = None) -> list[int]:
        """Lease claimable audits (queued, or running with an expired lease) to ``owner``; their ids.

        Each row is taken by a conditional UPDATE, so of two auditors racing for it (also on SQLite, or
        between the candidates' read and the update) exactly one wins."""
        q = (select(PartnerAudit.id).where(claimable(now)).order_by(PartnerAudit.id).limit(limit)
             .with_for_update(skip_locked=True))
        if audit_id is not None:
            q = q.where(PartnerAudit.id == audit_id)
        won = []
        for row_id in self.session.scalars(q).all():
            res = self.session.execute(
                update(PartnerAudit).where(PartnerAudit.id == row_id, claimable(now))
                .values(status="running", lease_until=lease_until, lease_owner=owner, started_at=now)
                .execution_options(synchronize_session=False))
            if getattr(res, "rowcount", 0) == 1:
                won.append(int(row_id))
        return won

    def leased(self, audit_id: int, owner: str) -> PartnerAudit | None:
        """The audit when it is still running under ``owner``'s lease (else another auditor has it)."""
        a = self.session.get(PartnerAudit, audit_id, populate_existing=True)
        return a if a is not None and a.status == "running" and a.lease_owner == owner else None

    def settle(self, audit_id: int, owner: str, status: str, now: dt.datetime) -> PartnerAudit | None:
        """End ``owner``'s lease of a running audit with ``status``, atomically; None when it no longer holds it."""
        res = self.session.execute(
            update(PartnerAudit).where(PartnerAudit.id == audit_id, PartnerAudit.status == "running",
                                       PartnerAudit.lease_owner == owner)
            .values(status=status, lease_until=None, finished_at=now).execution_options(synchronize_session=False))
        if getattr(res, "rowcount", 0) != 1:
            return None
        return self.session.get(PartnerAudit, audit_id, populate_existing=True)

    def failed_open(self, *, enforceable: bool = False) -> Sequence[PartnerAudit]:
        """Failed audits not yet enforced nor resolved by a later passing audit (``enforceable``: not of
        demo partners, whose failed audits are shown but never followed up)."""
        from memory.partner.models import Partner

        q = select(PartnerAudit).where(
            PartnerAudit.status == "done", PartnerAudit.result == "fail", PartnerAudit.enforced_at.is_(None),
            PartnerAudit.resolved_by_audit_id.is_(None)).order_by(PartnerAudit.id)
        if enforceable:
            q = q.join(Partner, Partner.id == PartnerAudit.partner_id).where(Partner.demo.is_(False))
        return self.session.scalars(q).all()

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
        return self.session.scalars(select(PartnerAudit.id).where(claimable(now)).limit(1)).first() is not None

    def audits_between(self, start: dt.datetime, end: dt.datetime) -> Sequence[PartnerAudit]:
        return self.session.scalars(select(PartnerAudit).where(
            PartnerAudit.created_at >= start, PartnerAudit.created_at < end).order_by(PartnerAudit.id)).all()
