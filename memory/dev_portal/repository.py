"""Developer portal storage: verification and invitation tokens."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from memory.dev_portal.models import PortalToken


class PortalRepository:
    def __init__(self, session: Session):
        self.session = session

    @classmethod
    def from_session(cls, session: Session) -> PortalRepository:
        return cls(session)

    def add(self, token: PortalToken) -> PortalToken:
        self.session.add(token)
        self.session.flush()
        return token

    def by_hash(self, kind: str, token_hash: str) -> PortalToken | None:
        return self.session.scalar(select(PortalToken).where(PortalToken.kind == kind,
                                                             PortalToken.token_hash == token_hash))

    def pending_verification(self, user_id: int) -> PortalToken | None:
        """The user's newest unused verification token (any expiry): their email is not verified yet."""
        return self.session.scalar(
            select(PortalToken).where(PortalToken.kind == "verify", PortalToken.user_id == user_id,
                                      PortalToken.used_at.is_(None))
            .order_by(PortalToken.id.desc()).limit(1))

    def invites(self, org_id: int, now: dt.datetime) -> list[PortalToken]:
        """The organisation's invitations not yet accepted and not expired, newest first."""
        return list(self.session.scalars(
            select(PortalToken).where(PortalToken.org_id == org_id, PortalToken.kind == "invite",
                                      PortalToken.used_at.is_(None), PortalToken.expires_at > now)
            .order_by(PortalToken.id.desc())))

    def invite(self, org_id: int, invite_id: int) -> PortalToken | None:
        return self.session.scalar(select(PortalToken).where(PortalToken.org_id == org_id,
                                                             PortalToken.kind == "invite",
                                                             PortalToken.id == invite_id))
