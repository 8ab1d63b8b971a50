"""Single sign-on and SCIM: per-organisation configuration, pending sign-ins, the replay cache, the
IdP identities of users and SCIM groups."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from memory.db import Base, UTCDateTime, utcnow


class SsoConfig(Base):
    """One organisation's SAML, OIDC and SCIM settings, group mappings and enforcement."""

    __tablename__ = "sso_configs"

    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True)
    saml_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    saml_idp_entity_id: Mapped[str] = mapped_column(String(1024), default="")
    saml_idp_sso_url: Mapped[str] = mapped_column(String(2048), default="")
    saml_idp_cert: Mapped[str] = mapped_column(Text, default="")
    saml_metadata_url: Mapped[str] = mapped_column(String(2048), default="")
    saml_allow_unsolicited: Mapped[bool] = mapped_column(Boolean, default=False)
    oidc_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    oidc_issuer: Mapped[str] = mapped_column(String(1024), default="")
    oidc_client_id: Mapped[str] = mapped_column(String(255), default="")
    oidc_client_secret: Mapped[str] = mapped_column(String(512), default="")
    oidc_groups_claim: Mapped[str] = mapped_column(String(64), default="groups")
    group_roles: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    default_role: Mapped[str | None] = mapped_column(String(32), nullable=True, default="viewer")
    jit: Mapped[bool] = mapped_column(Boolean, default=True)
    enforce_sso: Mapped[bool] = mapped_column(Boolean, default=False)
    break_glass: Mapped[list[str]] = mapped_column(JSON, default=list)
    scim_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    scim_token_prefix: Mapped[str | None] = mapped_column(String(32), nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SsoRequest(Base):
    """A sign-in we started (SAML AuthnRequest id, or OIDC state): used once, before it expires."""

    __tablename__ = "sso_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    protocol: Mapped[str] = mapped_column(String(8))
    key: Mapped[str] = mapped_column(String(128), unique=True)
    return_to: Mapped[str] = mapped_column(String(2048), default="/")
    nonce: Mapped[str] = mapped_column(String(128), default="")
    code_verifier: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    consumed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SsoReplay(Base):
    """An assertion (or id_token) already used, kept until it could no longer be accepted anyway."""

    __tablename__ = "sso_replay"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)


class SsoIdentity(Base):
    """A user as an identity provider knows them: SAML NameID, OIDC ``sub`` or SCIM ``userName``."""

    __tablename__ = "sso_identities"
    __table_args__ = (UniqueConstraint("org_id", "protocol", "subject"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    protocol: Mapped[str] = mapped_column(String(8))
    subject: Mapped[str] = mapped_column(String(512))
    external_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ScimGroup(Base):
    """A group pushed by the IdP through SCIM; its display name maps to a role like an assertion's group."""

    __tablename__ = "scim_groups"
    __table_args__ = (UniqueConstraint("org_id", "display_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    display_name: Mapped[str] = mapped_column(String(255))
    external_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    member_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
