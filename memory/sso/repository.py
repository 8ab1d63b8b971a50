"""SSO and SCIM storage."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from memory.sso.models import ScimGroup, SsoConfig, SsoIdentity, SsoReplay, SsoRequest


class SsoRepository:
    def __init__(self, session: Session):
        self.session = session

    @classmethod
    def from_session(cls, session: Session) -> SsoRepository:
        return cls(session)

    def add(self, obj: SsoConfig | SsoRequest | SsoIdentity | ScimGroup) -> None:
        self.session.add(obj)
        self.session.flush()

    def config(self, org_id: int) -> SsoConfig | None:
        return self.session.get(SsoConfig, org_id)

    def config_by_scim_hash(self, token_hash: str) -> SsoConfig | None:
        return self.session.scalar(select(SsoConfig).where(SsoConfig.scim_token_hash == token_hash))

    def request(self, key: str) -> SsoRequest | None:
        return self.session.scalar(select(SsoRequest).where(SsoRequest.key == key))

    def remember(self, key: str, org_id: int, expires_at: dt.datetime, now: dt.datetime) -> bool:
        """Record a one-time value; False if it was already recorded and has not expired (a replay).

        A unique primary key makes this hold across API replicas: of two concurrent inserts one fails."""
        self.session.execute(delete(SsoReplay).where(SsoReplay.expires_at < now))
        if self.session.get(SsoReplay, key) is not None:
            return False
        try:
            with self.session.begin_nested():
                self.session.add(SsoReplay(key=key, org_id=org_id, expires_at=expires_at))
        except IntegrityError:
            return False
        return True

    def identity(self, org_id: int, protocol: str, subject: str) -> SsoIdentity | None:
        return self.session.scalar(select(SsoIdentity).where(
            SsoIdentity.org_id == org_id, SsoIdentity.protocol == protocol, SsoIdentity.subject == subject))

    def identities_of(self, user_id: int) -> list[SsoIdentity]:
        return list(self.session.scalars(select(SsoIdentity).where(SsoIdentity.user_id == user_id)))

    def scim_identity_by_user(self, org_id: int, user_id: int) -> SsoIdentity | None:
        return self.session.scalar(select(SsoIdentity).where(
            SsoIdentity.org_id == org_id, SsoIdentity.protocol == "scim", SsoIdentity.user_id == user_id))

    def scim_identities(self, org_id: int) -> list[SsoIdentity]:
        return list(self.session.scalars(select(SsoIdentity).where(
            SsoIdentity.org_id == org_id, SsoIdentity.protocol == "scim").order_by(SsoIdentity.user_id)))

    def group(self, org_id: int, group_id: int) -> ScimGroup | None:
        return self.session.scalar(select(ScimGroup).where(ScimGroup.org_id == org_id, ScimGroup.id == group_id))

    def group_by_name(self, org_id: int, name: str) -> ScimGroup | None:
        return self.session.scalar(select(ScimGroup).where(ScimGroup.org_id == org_id,
                                                           ScimGroup.display_name == name))

    def groups(self, org_id: int) -> list[ScimGroup]:
        return list(self.session.scalars(select(ScimGroup).where(ScimGroup.org_id == org_id).order_by(ScimGroup.id)))

    def delete(self, obj: ScimGroup) -> None:
        self.session.delete(obj)
        self.session.flush()
