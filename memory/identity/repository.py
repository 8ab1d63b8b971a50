"""Identity storage: organisations, users, API keys, browser sessions."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from memory.identity.models import ApiKey, BrowserSession, Organization, User


class IdentityRepository:
    def __init__(self, session: Session):
        self.session = session

    @classmethod
    def from_session(cls, session: Session) -> IdentityRepository:
        return cls(session)

    def add(self, obj: Organization | User | ApiKey | BrowserSession) -> None:
        self.session.add(obj)
        self.session.flush()

    def org(self, org_id: int) -> Organization | None:
        return self.session.get(Organization, org_id)

    def org_by_slug(self, slug: str) -> Organization | None:
        return self.session.scalar(select(Organization).where(Organization.slug == slug))

    def user(self, user_id: int) -> User | None:
        return self.session.get(User, user_id)

    def user_by_email(self, email: str) -> User | None:
        return self.session.scalar(select(User).where(User.email == email.lower()))

    def users(self, org_id: int) -> list[User]:
        return list(self.session.scalars(select(User).where(User.org_id == org_id).order_by(User.id)))

    def key_by_hash(self, key_hash: str) -> ApiKey | None:
        return self.session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))

    def key(self, org_id: int, key_id: int) -> ApiKey | None:
        return self.session.scalar(select(ApiKey).where(ApiKey.org_id == org_id, ApiKey.id == key_id))

    def key_by_prefix(self, org_id: int, prefix: str) -> ApiKey | None:
        return self.session.scalar(select(ApiKey).where(ApiKey.org_id == org_id, ApiKey.prefix == prefix))

    def keys(self, org_id: int) -> list[ApiKey]:
        return list(self.session.scalars(select(ApiKey).where(ApiKey.org_id == org_id).order_by(ApiKey.id)))

    def touch_key(self, key_id: int, when: dt.datetime, *, if_before: dt.datetime | None = None) -> bool:
        """Set the key's ``last_used_at`` to ``when``; with ``if_before``, only if it is older (or unset).

        Returns whether the row changed.
        """
        stmt = update(ApiKey).where(ApiKey.id == key_id)
        if if_before is not None:
            stmt = stmt.where(or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < if_before))
        return bool(self.session.execute(stmt.values(last_used_at=when)).rowcount)  # type: ignore[attr-defined]

    def browser_session(self, token_hash: str) -> BrowserSession | None:
        return self.session.scalar(select(BrowserSession).where(BrowserSession.token_hash == token_hash))
