"""Community storage: applications, messages, unsubscribes, announcements and deliveries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from memory.community.models import (
    Announcement,
    AnnouncementDelivery,
    CommunityMessage,
    CommunityUnsubscribe,
    EarlyAccessApplication,
)


class CommunityRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: Session) -> CommunityRepository:
        return cls(session)

    def add(self, row: object) -> None:
        self.session.add(row)
        self.session.flush()

    # applications
    def application(self, app_id: int) -> EarlyAccessApplication | None:
        return self.session.get(EarlyAccessApplication, app_id)

    def application_by_email(self, email: str) -> EarlyAccessApplication | None:
        return self.session.scalar(select(EarlyAccessApplication).where(EarlyAccessApplication.email == email))

    def applications(self, status: str | None, limit: int = 200) -> Sequence[EarlyAccessApplication]:
        q = select(EarlyAccessApplication).order_by(EarlyAccessApplication.created_at, EarlyAccessApplication.id)
        if status:
            q = q.where(EarlyAccessApplication.status == status)
        return self.session.scalars(q.limit(limit)).all()

    def application_counts(self) -> dict[str, int]:
        rows = self.session.execute(select(EarlyAccessApplication.status, func.count())
                                    .group_by(EarlyAccessApplication.status)).all()
        return {str(s): int(n) for s, n in rows}

    def applicant_emails(self, statuses: tuple[str, ...]) -> list[str]:
        return list(self.session.scalars(select(EarlyAccessApplication.email)
                                         .where(EarlyAccessApplication.status.in_(statuses))))

    # messages
    def messages(self, *, to: str | None = None, kind: str | None = None,
                 limit: int = 200) -> Sequence[CommunityMessage]:
        q = select(CommunityMessage).order_by(CommunityMessage.id.desc())
        if to:
            q = q.where(CommunityMessage.to_email == to)
        if kind:
            q = q.where(CommunityMessage.kind == kind)
        return self.session.scalars(q.limit(limit)).all()

    def message_count(self, kind: str, status: str = "sent") -> int:
        return int(self.session.scalar(select(func.count()).select_from(CommunityMessage)
                                       .where(CommunityMessage.kind == kind, CommunityMessage.status == status)) or 0)

    # unsubscribes
    def unsubscribed(self, email: str) -> bool:
        return self.session.get(CommunityUnsubscribe, email) is not None

    def unsubscribed_set(self, emails: list[str]) -> set[str]:
        if not emails:
            return set()
        return set(self.session.scalars(select(CommunityUnsubscribe.email)
                                        .where(CommunityUnsubscribe.email.in_(emails))))

    # announcements
    def announcement(self, ann_id: int) -> Announcement | None:
        return self.session.get(Announcement, ann_id)

    def announcement_by_slug(self, slug: str) -> Announcement | None:
        return self.session.scalar(select(Announcement).where(Announcement.slug == slug))

    def announcements(self, *, published_only: bool, limit: int = 100) -> Sequence[Announcement]:
        q = select(Announcement)
        if published_only:
            q = q.where(Announcement.status == "published").order_by(Announcement.published_at.desc(),
                                                                     Announcement.id.desc())
        else:
            q = q.order_by(Announcement.id.desc())
        return self.session.scalars(q.limit(limit)).all()

    def delivery_keys(self, ann_id: int) -> set[tuple[str, str]]:
        return {(c, r) for c, r in self.session.execute(
            select(AnnouncementDelivery.channel, AnnouncementDelivery.recipient)
            .where(AnnouncementDelivery.announcement_id == ann_id)).all()}

    def delivery_counts(self, ann_id: int) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for ch, st, n in self.session.execute(
                select(AnnouncementDelivery.channel, AnnouncementDelivery.state, func.count())
                .where(AnnouncementDelivery.announcement_id == ann_id)
                .group_by(AnnouncementDelivery.channel, AnnouncementDelivery.state)).all():
            out.setdefault(str(ch), {})[str(st)] = int(n)
        return out

    def claim_due(self, now: dt.datetime, lease_until: dt.datetime, limit: int,
                  ann_id: int | None = None) -> list[AnnouncementDelivery]:
        """Claim up to ``limit`` due deliveries (pending, or ``sending`` whose lease ran out: a crashed sender)."""
        q = select(AnnouncementDelivery).where(
            ((AnnouncementDelivery.state == "pending") & (AnnouncementDelivery.next_attempt_at <= now))
            | ((AnnouncementDelivery.state == "sending") & (AnnouncementDelivery.lease_until < now)))
        if ann_id is not None:
            q = q.where(AnnouncementDelivery.announcement_id == ann_id)
        q = q.order_by(AnnouncementDelivery.id).limit(limit)
        if self.session.get_bind().dialect.name == "postgresql":
            q = q.with_for_update(skip_locked=True)
        rows = list(self.session.scalars(q))
        if rows:
            self.session.execute(update(AnnouncementDelivery)
                                 .where(AnnouncementDelivery.id.in_([r.id for r in rows]))
                                 .values(state="sending", lease_until=lease_until))
            for r in rows:
                self.session.refresh(r)
        return rows

    def delivery(self, delivery_id: int) -> AnnouncementDelivery | None:
        return self.session.get(AnnouncementDelivery, delivery_id)
