"""Developer accounts: sign up (an organisation and its first admin), verify the email, invite teammates.

Sign-up and invitation links are one-time tokens (``portal_tokens``, only a hash stored) sent through the
shared mailer (SMTP, or ``.eml`` files in ``VAR_DIR/mail`` with no ``LEVQOR_SMTP_URL``). Sign-ups and
invitation acceptances are counted per client IP with the shared limiter (``LEVQOR_SIGNUP_MAX_PER_IP`` per
``LEVQOR_SIGNUP_WINDOW_S``); sign-ins go through ``tools.identity.service.login`` and its throttle. A
sign-up with an email that already has an account creates nothing and answers the same way (the owner
gets an email saying so), so the form does not tell who has an account.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, EmailStr, Field, ValidationInfo, field_validator
from sqlalchemy.orm import Session

from levqor.settings import get_settings
from memory.db import utcnow
from memory.dev_portal.models import PortalToken
from memory.dev_portal.repository import PortalRepository
from memory.identity.models import User
from memory.identity.repository import IdentityRepository
from tools.context import Principal, ToolContext
from tools.data_insights.aggregator import INDUSTRIES, SIZE_BANDS, ProfileIn, set_profile
from tools.enterprise import audit_log
from tools.errors import BadRequest, Conflict, Forbidden, NotFound, RateLimited
from tools.identity.service import OrgCreate, UserCreate, create_org, create_user, sha256
from tools.registry import tool
from tools.shared import mail
from tools.shared.ratelimit import per_seconds, rate_limiter

log = logging.getLogger(__name__)
SIGNUP_NAMESPACE = "LEVQOR_SIGNUP"
InviteRole = Literal["admin", "viewer", "auditor"]


class SignUp(BaseModel):
    email: EmailStr
    password: str = Field(min_length=12, max_length=256)
    org_name: str = Field(min_length=1, max_length=200)
    name: str = Field("", max_length=200)
    industry: str = Field("", max_length=32, description="Optional, for the anonymised Insights benchmarks")
    size_band: str = Field("", max_length=16, description="Optional, for the anonymised Insights benchmarks")

    @field_validator("industry", "size_band")
    @classmethod
    def _known(cls, v: str, info: ValidationInfo) -> str:
        allowed = INDUSTRIES if info.field_name == "industry" else SIZE_BANDS
        if v and v not in allowed:
            raise ValueError(f"choose one of {', '.join(allowed)}")
        return v


@dataclass(frozen=True)
class SignUpResult:
    """What a sign-up did: ``user_id`` is None when the email already had an account (nothing created)."""

    email: str
    user_id: int | None
    org_id: int | None


def check_signup_rate(session: Session, ip: str, clock: Any = time.time) -> None:
    """Count one sign-up (or invitation acceptance) from ``ip``; 429 with Retry-After beyond the limit.

    The count is written in ``session``: the caller commits it even when it refuses the request."""
    s = get_settings()
    limiter = rate_limiter(session, clock)
    item = per_seconds(s.signup_max_per_ip, s.signup_window_s, SIGNUP_NAMESPACE)
    if not limiter.hit(item, "ip", ip):
        reset = limiter.get_window_stats(item, "ip", ip).reset_time
        wait = max(1, int(reset - clock() + 0.999))
        raise RateLimited(f"too many sign-ups from this address; try again in {wait} s", field="email",
                          extra={"retry_after": wait}, headers={"Retry-After": str(wait)})


def _slug(org_name: str) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", org_name.lower()).strip("-")[:40] or "org"
    if not base[0].isalnum():
        base = "org-" + base
    return f"{base}-{secrets.token_hex(3)}"


def _link(path: str, token: str) -> str:
    return f"{get_settings().base_url.rstrip('/')}{path}?token={token}"


def _new_token(session: Session, *, kind: str, org_id: int, email: str, role: str, user_id: int | None,
               created_by: str, ttl_h: int) -> tuple[str, PortalToken]:
    raw = secrets.token_urlsafe(32)
    row = PortalRepository(session).add(PortalToken(
        kind=kind, token_hash=sha256(raw), org_id=org_id, email=email, role=role, user_id=user_id,
        created_by=created_by[:200], expires_at=utcnow() + dt.timedelta(hours=ttl_h)))
    return raw, row


def _send(to: str, subject: str, body: str, uid: str) -> None:
    # A name in a subject may hold a line break (sent by a crafted form): one line, or the header is refused.
    mail.deliver(mail.compose(to, " ".join(subject.split()), body, uid=uid), uid)


def sign_up(session: Session, params: SignUp, *, ip: str) -> SignUpResult:
    """Create an organisation and its admin (email not yet verified) and email the verification link."""
    check_signup_rate(session, ip)
    email = str(params.email).lower()
    if IdentityRepository(session).user_by_email(email) is not None:
        _send(email, "Someone tried to sign up to Levqor with your email",
              "Someone (perhaps you) tried to create a Levqor developer account with this email address, which "
              "already has one. Log in at " + get_settings().base_url.rstrip("/") + "/developer/login instead.\n"
              "If it was not you, you can ignore this message.\n", uid=f"portal-signup-exists-{secrets.token_hex(8)}")
        log.info("sign-up for an existing email", extra={"fields": {"ip": ip}})
        return SignUpResult(email, None, None)
    signup = Principal(kind="system", id="signup", org_id=None, role="admin", name="developer sign-up")
    org = create_org(ToolContext(session, signup), OrgCreate(name=params.org_name, slug=_slug(params.org_name)))
    in_org = ToolContext(session, Principal(kind="system", id="signup", org_id=org.id, role="admin",
                                            name="developer sign-up"))
    user = create_user(in_org, UserCreate(email=email, name=params.name, role="admin", password=params.password))
    if params.industry or params.size_band:
        set_profile(in_org, ProfileIn(industry=params.industry or None, size_band=params.size_band or None))
    send_verification(session, user.id, ip=ip)
    audit_log.append(session, actor=f"ip:{ip}", action="devportal.signup", target=f"user:{user.id}",
                     org_id=org.id, detail={"email": email, "org": org.slug})
    return SignUpResult(email, user.id, org.id)


def send_verification(session: Session, user_id: int, *, ip: str = "") -> None:
    """(Re)send the verification link of ``user_id``; earlier links stay valid until they expire."""
    user = IdentityRepository(session).user(user_id)
    if user is None:
        raise NotFound("user not found", field="user_id")
    raw, row = _new_token(session, kind="verify", org_id=user.org_id, email=user.email, role=user.role,
                          user_id=user.id, created_by=f"ip:{ip}" if ip else f"user:{user.id}",
                          ttl_h=get_settings().email_verify_ttl_h)
    _send(user.email, "Verify your email for Levqor",
          "Welcome to Levqor.\n\nConfirm this email address to create API keys:\n\n"
          f"{_link('/developer/verify', raw)}\n\nThe link works once, for {get_settings().email_verify_ttl_h} "
          "hours. If you did not sign up, ignore this message.\n", uid=f"portal-verify-{row.id}-{secrets.token_hex(4)}")


def email_verified(session: Session, user_id: int) -> bool:
    """False while the user has a sign-up verification link not yet used (users added otherwise: True)."""
    return PortalRepository(session).pending_verification(user_id) is None


def require_verified(ctx: ToolContext) -> None:
    """Refuse (403) a signed-up person whose email is not verified yet; API keys and other users pass."""
    uid = ctx.principal.user_id
    if ctx.principal.kind == "user" and uid is not None and not email_verified(ctx.session, uid):
        raise Forbidden("verify your email first: open the link we sent you (or send a new one)", field="email")


def verify_email(session: Session, token: str) -> tuple[User, bool]:
    """Use a verification link: the email is verified (every pending link of that user is used up).

    Returns the user and whether this call verified it (False: the link was used before, by a second
    click or a mail scanner; it proves nothing more and must not sign anyone in)."""
    repo = PortalRepository(session)
    row = repo.by_hash("verify", sha256(token))
    if row is None or row.user_id is None:
        raise BadRequest("this verification link is not valid", field="token")
    user = IdentityRepository(session).user(row.user_id)
    if user is None or not user.active:
        raise BadRequest("this verification link is not valid", field="token")
    if row.used_at is not None:
        if email_verified(session, user.id):
            return user, False  # a second click on the same link: already verified
        raise BadRequest("this verification link was already used", field="token")
    if row.expires_at <= utcnow():
        raise BadRequest("this verification link has expired; log in and send a new one", field="token")
    now = utcnow()
    while (pending := repo.pending_verification(user.id)) is not None:
        pending.used_at = now
        session.flush()
    audit_log.append(session, actor=f"user:{user.id}", action="devportal.email_verified", target=f"user:{user.id}",
                     org_id=user.org_id, detail={"email": user.email})
    return user, True


# ---- invitations ------------------------------------------------------------------------------

class InviteCreate(BaseModel):
    email: EmailStr
    role: InviteRole = "viewer"


class InviteRead(BaseModel):
    id: int
    email: str
    role: str
    created_by: str
    created_at: dt.datetime
    expires_at: dt.datetime

    @classmethod
    def of(cls, t: PortalToken) -> InviteRead:
        return cls(id=t.id, email=t.email, role=t.role, created_by=t.created_by, created_at=t.created_at,
                   expires_at=t.expires_at)


class InviteList(BaseModel):
    items: list[InviteRead]


class InviteId(BaseModel):
    invite_id: int = Field(ge=1, le=2**31 - 1)


class NoInput(BaseModel):
    pass


@tool("users.invite", risk="write")
def invite(ctx: ToolContext, params: InviteCreate) -> InviteRead:
    """Invite a teammate by email into the organisation with a role; the link works once."""
    require_verified(ctx)
    email = str(params.email).lower()
    if IdentityRepository(ctx.session).user_by_email(email) is not None:
        raise Conflict(f"a user with email {email} exists", field="email")
    org = IdentityRepository(ctx.session).org(ctx.org_id)
    if org is None:
        raise NotFound("organisation not found")
    raw, row = _new_token(ctx.session, kind="invite", org_id=ctx.org_id, email=email, role=params.role,
                          user_id=None, created_by=ctx.principal.actor, ttl_h=get_settings().invite_ttl_h)
    audit_log.record(ctx, "users.invited", f"invite:{row.id}", after={"email": email, "role": params.role})
    _send(email, f"You are invited to {org.name} on Levqor",
          f"{ctx.principal.name or 'A teammate'} invited you to the organisation {org.name} on Levqor as "
          f"{params.role}.\n\nAccept (choose your password):\n\n{_link('/developer/invite', raw)}\n\n"
          f"The link works once, for {get_settings().invite_ttl_h} hours.\n", uid=f"portal-invite-{row.id}")
    return InviteRead.of(row)


@tool("users.invites", risk="read")
def list_invites(ctx: ToolContext, params: NoInput) -> InviteList:
    """List the organisation's pending invitations (not accepted, not expired)."""
    return InviteList(items=[InviteRead.of(t) for t in PortalRepository(ctx.session).invites(ctx.org_id, utcnow())])


@tool("users.cancel_invite", risk="write")
def cancel_invite(ctx: ToolContext, params: InviteId) -> InviteRead:
    """Cancel a pending invitation: its link stops working."""
    row = PortalRepository(ctx.session).invite(ctx.org_id, params.invite_id)
    if row is None:
        raise NotFound(f"invitation {params.invite_id} not found", field="invite_id")
    if row.used_at is None:
        row.used_at = utcnow()
        row.expires_at = row.used_at
        ctx.session.flush()
        audit_log.record(ctx, "users.invite_cancelled", f"invite:{row.id}", before={"email": row.email})
    return InviteRead.of(row)


def pending_invite(session: Session, token: str) -> PortalToken:
    """The invitation behind a link, if it can still be accepted (else 400 naming ``token``)."""
    row = PortalRepository(session).by_hash("invite", sha256(token))
    if row is None or row.used_at is not None:
        raise BadRequest("this invitation link is not valid or was already used", field="token")
    if row.expires_at <= utcnow():
        raise BadRequest("this invitation has expired; ask for a new one", field="token")
    return row


class InviteAccept(BaseModel):
    name: str = Field("", max_length=200)
    password: str = Field(min_length=12, max_length=256)


def accept_invite(session: Session, token: str, params: InviteAccept, *, ip: str) -> User:
    """Join the invitation's organisation with its role (the link proves the email)."""
    check_signup_rate(session, ip)
    row = pending_invite(session, token)
    if IdentityRepository(session).user_by_email(row.email) is not None:
        raise Conflict("this email already has an account; log in instead", field="token")
    ctx = ToolContext(session, Principal(kind="system", id="invite", org_id=row.org_id, role="admin",
                                         name="invitation"))
    created = create_user(ctx, UserCreate(email=row.email, name=params.name, role=row.role,  # type: ignore[arg-type]
                                          password=params.password))
    row.used_at = utcnow()
    row.user_id = created.id
    session.flush()
    audit_log.append(session, actor=f"user:{created.id}", action="users.invite_accepted", target=f"invite:{row.id}",
                     org_id=row.org_id, detail={"email": row.email, "role": row.role, "invited_by": row.created_by,
                                                "ip": ip})
    user = IdentityRepository(session).user(created.id)
    assert user is not None
    return user
