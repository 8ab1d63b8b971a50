"""Identity tools: organisations, users, roles, API keys, browser sessions, org settings."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import re
import secrets
import string
import threading
import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, EmailStr, Field, StringConstraints, WithJsonSchema

from levqor.logging import request_id_var
from levqor.settings import get_settings
from memory.db import after_close, session_scope, utcnow
from memory.identity.models import ApiKey, BrowserSession, Organization, User
from memory.identity.repository import IdentityRepository
from memory.sso.repository import SsoRepository
from tools.context import Principal, ToolContext
from tools.enterprise import audit_log
from tools.errors import BadRequest, Conflict, Forbidden, NotFound, RateLimited, Unauthorized
from tools.events.service import emit
from tools.identity import keycache
from tools.identity.throttle import LoginThrottle
from tools.registry import tool

log = logging.getLogger(__name__)
_ALPHABET = string.ascii_letters + string.digits
KEY_PREFIXES = {"live": "lvq_live_", "test": "lvq_test_"}
_KEY_RE = re.compile(r"^lvq_(live|test)_[A-Za-z0-9]{40}$")
RoleName = Literal["admin", "viewer", "auditor", "partner"]


def _hasher() -> Any:
    from argon2 import PasswordHasher

    return PasswordHasher()


def hash_password(password: str) -> str:
    return str(_hasher().hash(password))


def check_password(stored: str | None, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

    if not stored:
        # Same work as a real check, so unknown users cost as much as wrong passwords.
        _hasher().hash(password)
        return False
    try:
        return bool(_hasher().verify(stored, password))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _random(n: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


# ---- schemas -------------------------------------------------------------------------------

class OrgRead(BaseModel):
    id: int
    slug: str
    name: str
    plan: str
    settings: dict[str, Any]
    created_at: dt.datetime

    @classmethod
    def of(cls, o: Organization) -> OrgRead:
        return cls(id=o.id, slug=o.slug, name=o.name, plan=o.plan, settings=dict(o.settings or {}),
                   created_at=o.created_at)


class UserRead(BaseModel):
    id: int
    org_id: int
    email: str
    name: str
    role: str
    active: bool
    created_at: dt.datetime
    last_login_at: dt.datetime | None

    @classmethod
    def of(cls, u: User) -> UserRead:
        return cls(id=u.id, org_id=u.org_id, email=u.email, name=u.name, role=u.role, active=u.active,
                   created_at=u.created_at, last_login_at=u.last_login_at)


class ApiKeyRead(BaseModel):
    id: int
    name: str
    prefix: str
    role: str
    mode: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None

    @classmethod
    def of(cls, k: ApiKey) -> ApiKeyRead:
        return cls(id=k.id, name=k.name, prefix=k.prefix, role=k.role, mode=k.mode, created_at=k.created_at,
                   expires_at=k.expires_at, revoked_at=k.revoked_at, last_used_at=k.last_used_at)


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The full key. Shown once: only its hash is stored.")


# ---- organisations and users ------------------------------------------------------------------

class OrgCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    slug: str = Field(min_length=2, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")
    plan: Literal["free", "pro", "business", "enterprise"] = "free"


@tool("org.create", risk="write")
def create_org(ctx: ToolContext, params: OrgCreate) -> OrgRead:
    """Create an organisation."""
    repo = IdentityRepository(ctx.session)
    if repo.org_by_slug(params.slug):
        raise Conflict(f"organisation {params.slug!r} exists", field="slug")
    org = Organization(slug=params.slug, name=params.name, plan=params.plan, settings={})
    repo.add(org)
    audit_log.record(ctx, "org.created", f"org:{org.id}", org_id=org.id, after=OrgRead.of(org).model_dump())
    emit(ctx.session, "org_created", {"org_id": org.id, "slug": org.slug}, org_id=org.id)
    return OrgRead.of(org)


class NoInput(BaseModel):
    pass


@tool("org.get", risk="read")
def get_org(ctx: ToolContext, params: NoInput) -> OrgRead:
    """Show the caller's organisation and its settings."""
    org = IdentityRepository(ctx.session).org(ctx.org_id)
    if org is None:
        raise NotFound("organisation not found")
    return OrgRead.of(org)


SettingName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]

SettingsDict = Annotated[
    dict[SettingName, str | int | float | bool | None],
    WithJsonSchema({
        "type": "object", "maxProperties": 100, "additionalProperties": False,
        "patternProperties": {"^[a-z][a-z0-9_]{0,63}$": {"type": ["string", "number", "boolean", "null"]}},
    }),
]


class OrgSettingsUpdate(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    settings: SettingsDict | None = Field(
        None, description="Keys (lower_snake_case) to set; null removes a key.", max_length=100
    )


@tool("org.update_settings", risk="write")
def update_settings(ctx: ToolContext, params: OrgSettingsUpdate) -> OrgRead:
    """Change the organisation's name or settings (audited with before and after)."""
    org = IdentityRepository(ctx.session).org(ctx.org_id)
    if org is None:
        raise NotFound("organisation not found")
    before = OrgRead.of(org).model_dump(mode="json")
    if params.name is not None:
        org.name = params.name
    if params.settings is not None:
        merged = dict(org.settings or {})
        for k, v in params.settings.items():
            if v is None:
                merged.pop(k, None)
            else:
                merged[k] = v
        org.settings = merged
    ctx.session.flush()
    after = OrgRead.of(org).model_dump(mode="json")
    audit_log.record(ctx, "org.settings_changed", f"org:{org.id}", before=before, after=after)
    return OrgRead.of(org)


class UserCreate(BaseModel):
    email: EmailStr
    name: str = Field("", max_length=200)
    role: RoleName = "viewer"
    password: str | None = Field(None, min_length=12, max_length=256)


@tool("users.create", risk="write")
def create_user(ctx: ToolContext, params: UserCreate) -> UserRead:
    """Add a user to the caller's organisation with a role."""
    repo = IdentityRepository(ctx.session)
    email = str(params.email).lower()
    if repo.user_by_email(email):
        raise Conflict(f"a user with email {email} exists", field="email")
    user = User(org_id=ctx.org_id, email=email, name=params.name, role=params.role,
                password_hash=hash_password(params.password) if params.password else None)
    repo.add(user)
    audit_log.record(ctx, "users.created", f"user:{user.id}", after={"email": email, "role": params.role})
    emit(ctx.session, "user_signup", {"user_id": user.id, "org_id": user.org_id, "role": user.role},
         org_id=user.org_id)
    return UserRead.of(user)


class UserList(BaseModel):
    items: list[UserRead]


@tool("users.list", risk="read")
def list_users(ctx: ToolContext, params: NoInput) -> UserList:
    """List the organisation's users and their roles."""
    return UserList(items=[UserRead.of(u) for u in IdentityRepository(ctx.session).users(ctx.org_id)])


class RoleChange(BaseModel):
    user_id: int = Field(ge=1)
    role: RoleName


@tool("users.set_role", risk="write")
def set_role(ctx: ToolContext, params: RoleChange) -> UserRead:
    """Change a user's role (audited with the old and new role)."""
    repo = IdentityRepository(ctx.session)
    user = repo.user(params.user_id)
    if user is None or user.org_id != ctx.org_id:
        raise NotFound(f"user {params.user_id} not found", field="user_id")
    before = user.role
    if before == "admin" and params.role != "admin":
        admins = [u for u in repo.users(ctx.org_id) if u.role == "admin" and u.active]
        if len(admins) <= 1:
            raise Conflict("cannot demote the organisation's last admin", field="role")
    user.role = params.role
    ctx.session.flush()
    audit_log.record(ctx, "users.role_changed", f"user:{user.id}", before={"role": before},
                     after={"role": params.role})
    return UserRead.of(user)


# ---- API keys --------------------------------------------------------------------------------

class ApiKeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    role: RoleName = "viewer"
    mode: Literal["live", "test"] = "live"
    expires_in_days: int | None = Field(None, ge=1, le=3650)


def new_key(mode: str) -> tuple[str, str]:
    """Return ``(full key, visible prefix)``."""
    visible = _random(8)
    full = f"{KEY_PREFIXES[mode]}{visible}{_random(32)}"
    return full, f"{KEY_PREFIXES[mode]}{visible}"


def issue_key(ctx: ToolContext, org_id: int, params: ApiKeyCreate, user_id: int | None) -> ApiKeyCreated:
    repo = IdentityRepository(ctx.session)
    full, prefix = new_key(params.mode)
    expires = utcnow() + dt.timedelta(days=params.expires_in_days) if params.expires_in_days else None
    key = ApiKey(org_id=org_id, user_id=user_id, name=params.name, prefix=prefix, key_hash=sha256(full),
                 role=params.role, mode=params.mode, expires_at=expires)
    repo.add(key)
    audit_log.append(ctx.session, actor=ctx.principal.actor, action="keys.created", target=f"key:{prefix}",
                     org_id=org_id, request_id=ctx.request_id,
                     after={"name": params.name, "role": params.role, "mode": params.mode,
                            "expires_at": expires.isoformat() if expires else None})
    return ApiKeyCreated(**ApiKeyRead.of(key).model_dump(), key=full)


@tool("keys.create", risk="write")
def create_key(ctx: ToolContext, params: ApiKeyCreate) -> ApiKeyCreated:
    """Create an API key for the organisation; the full key is returned once."""
    return issue_key(ctx, ctx.org_id, params, ctx.principal.user_id)


class ApiKeyList(BaseModel):
    items: list[ApiKeyRead]


@tool("keys.list", risk="read")
def list_keys(ctx: ToolContext, params: NoInput) -> ApiKeyList:
    """List the organisation's API keys (prefix, role, last use, expiry; never the key)."""
    return ApiKeyList(items=[ApiKeyRead.of(k) for k in IdentityRepository(ctx.session).keys(ctx.org_id)])


class ApiKeyRevoke(BaseModel):
    key_id: int | None = Field(None, ge=1)
    prefix: str | None = Field(None, max_length=32)


@tool("keys.revoke", risk="destructive")
def revoke_key(ctx: ToolContext, params: ApiKeyRevoke) -> ApiKeyRead:
    """Revoke an API key by id or visible prefix; it stops working at once."""
    repo = IdentityRepository(ctx.session)
    if params.key_id is not None:
        key = repo.key(ctx.org_id, params.key_id)
    elif params.prefix:
        key = repo.key_by_prefix(ctx.org_id, params.prefix)
    else:
        raise BadRequest("give key_id or prefix", field="key_id")
    if key is None:
        raise NotFound("API key not found", field="key_id" if params.key_id else "prefix")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        ctx.session.flush()
        audit_log.record(ctx, "keys.revoked", f"key:{key.prefix}", before={"revoked_at": None},
                         after={"revoked_at": key.revoked_at.isoformat()})
    return ApiKeyRead.of(key)


# ---- authentication (not tools: used by api.deps) -------------------------------------------

def authenticate_key(ctx_session: Any, raw: str) -> Principal:
    """Resolve a presented API key. Unknown, malformed, revoked and expired keys fail alike.

    A key this process verified within ``LEVQOR_API_KEY_CACHE_S`` is not read again
    (``tools/identity/keycache.py``); :func:`cached_key_principal` is that half alone."""
    principal = cached_key_principal(ctx_session, raw)
    if principal is not None:
        return principal
    digest = sha256(raw)
    stamped = keycache.cache.clock()  # before the read: the entry never outlives what the read saw by more
    key = IdentityRepository(ctx_session).key_by_hash(digest)
    now = utcnow()
    valid = (
        key is not None
        and hmac.compare_digest(key.key_hash, digest)
        and _KEY_RE.match(raw) is not None
        and key.revoked_at is None
        and (key.expires_at is None or key.expires_at > now)
    )
    if not valid or key is None:
        raise Unauthorized("invalid or revoked API key")
    principal = Principal(kind="api_key", id=key.prefix, org_id=key.org_id, role=key.role, name=key.name,
                          user_id=key.user_id, key_mode=key.mode)
    if get_settings().api_key_cache_s > 0:
        keycache.cache.put(digest, keycache.CachedKey(principal, key.id, key.expires_at, key.last_used_at,
                                                      stamped))
    _note_use(ctx_session, key.id, digest, key.last_used_at, now)
    return principal


def cached_key_principal(ctx_session: Any, raw: str) -> Principal | None:
    """The principal of ``raw`` if this process verified it recently (no I/O), else None: read it."""
    ttl = get_settings().api_key_cache_s
    if ttl <= 0:
        return None
    digest = sha256(raw)
    now = utcnow()
    entry = keycache.cache.get(digest, ttl, now)
    if entry is None:
        return None
    _note_use(ctx_session, entry.key_id, digest, entry.last_used_at, now)
    return entry.principal


_touched: dict[str, float] = {}  # key hash -> when (monotonic) this process last wrote its last_used_at
_touched_lock = threading.Lock()


def _note_use(session: Any, key_id: int, key_hash: str, last_used_at: dt.datetime | None,
              now: dt.datetime) -> None:
    """Record that the key was used, at most once per ``LEVQOR_API_KEY_TOUCH_S`` per key and process.

    Not in the request's transaction (a GET's is read-only): a conditional update (only when the stored
    value is older than the window) in its own short transaction once the request's session has closed,
    so concurrent requests of one key write once and a read never holds the write lock.
    """
    window = get_settings().api_key_touch_s
    if last_used_at is not None and (now - last_used_at).total_seconds() < window:
        return
    mono = time.monotonic()
    with _touched_lock:
        last = _touched.get(key_hash)
        if last is not None and mono - last < window:
            return
        _touched[key_hash] = mono

    def write() -> None:
        try:
            with session_scope() as s:
                s.info[keycache.TOUCH_ONLY] = True  # last use is not what authentication reads
                IdentityRepository(s).touch_key(key_id, now, if_before=now - dt.timedelta(seconds=window))
        except Exception:  # last use is a convenience: never fail the request, try again on the next one
            with _touched_lock:
                _touched.pop(key_hash, None)
            log.warning("could not record API key use", exc_info=True, extra={"fields": {"key_id": key_id}})

    after_close(session, write)


def login(session: Any, email: str, password: str, ttl_hours: int, ip: str = "unknown",
          throttle: LoginThrottle | None = None) -> tuple[str, BrowserSession, User]:
    """Check a password and open a browser session; returns the raw session token.

    Throttled per account and per IP address (``tools/identity/throttle.py``): while either is locked
    out, raises :class:`RateLimited` (``Retry-After``) without checking the password. A failure raises
    :class:`Unauthorized` after counting it and auditing it (``auth.login_failed``, and
    ``auth.lockout`` when it starts a lock): the caller must commit its session in both cases."""
    email = email.strip().lower()
    throttle = throttle or LoginThrottle(session)
    lock = throttle.locked(email, ip)
    if lock is not None:
        raise RateLimited(f"too many failed sign-ins; try again in {lock.retry_after} s", field="email",
                          extra={"retry_after": lock.retry_after}, headers={"Retry-After": str(lock.retry_after)})
    repo = IdentityRepository(session)
    user = repo.user_by_email(email)
    ok = check_password(user.password_hash if user else None, password)
    if not ok or user is None or not user.active:
        reason = "unknown_email" if user is None else "wrong_password" if not ok else "inactive_user"
        _login_failed(session, throttle, email, ip, user, reason)
        raise Unauthorized("wrong email or password")
    throttle.succeeded(email)
    _sso_gate(session, user, ip)
    token, bs = open_session(session, user, ttl_hours)
    return token, bs, user


def _sso_gate(session: Any, user: User, ip: str) -> None:
    """An organisation that requires single sign-on refuses passwords, except its break-glass admins
    (audited ``auth.break_glass_login``); a refusal is audited ``auth.sso_required``."""
    cfg = SsoRepository(session).config(user.org_id)
    if cfg is None or not cfg.enforce_sso:
        return
    org = IdentityRepository(session).org(user.org_id)
    slug = org.slug if org else ""
    if user.role == "admin" and user.email in (cfg.break_glass or []):
        audit_log.append(session, actor=f"user:{user.id}", action="auth.break_glass_login", target=f"user:{user.id}",
                         org_id=user.org_id, request_id=request_id_var.get(), detail={"ip": ip})
        return
    audit_log.append(session, actor=f"ip:{ip}", action="auth.sso_required", target=f"user:{user.id}",
                     org_id=user.org_id, request_id=request_id_var.get(), outcome="refused",
                     detail={"email": user.email, "ip": ip})
    raise Forbidden("your organisation signs in through single sign-on", field="email",
                    extra={"sso_url": f"/sso/{slug}"})


def open_session(session: Any, user: User, ttl_hours: int, *, how: str = "password") -> tuple[str, BrowserSession]:
    """Open a browser session for ``user`` (after a password, or a one-time email link); the raw token."""
    token = secrets.token_urlsafe(32)
    bs = BrowserSession(token_hash=sha256(token), user_id=user.id, csrf_token=secrets.token_urlsafe(24),
                        expires_at=utcnow() + dt.timedelta(hours=ttl_hours))
    IdentityRepository(session).add(bs)
    user.last_login_at = utcnow()
    audit_log.append(session, actor=f"user:{user.id}", action="auth.login", target=f"user:{user.id}",
                     org_id=user.org_id, detail=None if how == "password" else {"via": how})
    return token, bs


def _login_failed(session: Any, throttle: LoginThrottle, email: str, ip: str, user: User | None,
                  reason: str) -> None:
    """Count and audit a failed sign-in: in the user's organisation's log, else the platform's."""
    org_id = user.org_id if user is not None else None
    account = f"user:{user.id}" if user is not None else f"email:{email}"
    actor, rid = f"ip:{ip}", request_id_var.get()
    audit_log.append(session, actor=actor, action="auth.login_failed", target=account, org_id=org_id,
                     request_id=rid, outcome="failed", detail={"email": email, "ip": ip, "reason": reason})
    for lock in throttle.failed(email, ip):
        on_account = lock.scope == "account"
        audit_log.append(session, actor=actor, action="auth.lockout", target=account if on_account else actor,
                         org_id=org_id if on_account else None, request_id=rid, outcome="locked",
                         detail={"scope": lock.scope, "email": email, "ip": ip, "seconds": lock.duration_s,
                                 "lockout": lock.strike})


def session_principal(session: Any, token: str) -> tuple[Principal, BrowserSession]:
    repo = IdentityRepository(session)
    bs = repo.browser_session(sha256(token))
    if bs is None or bs.revoked_at is not None or bs.expires_at <= utcnow():
        raise Unauthorized("session expired; log in again")
    user = repo.user(bs.user_id)
    if user is None or not user.active:
        raise Unauthorized("session expired; log in again")
    return Principal(kind="user", id=str(user.id), org_id=user.org_id, role=user.role, name=user.email,
                     user_id=user.id), bs


def end_session(session: Any, token: str) -> None:
    """Revoke the browser session behind ``token`` (logout); an unknown token is a no-op."""
    bs = IdentityRepository(session).browser_session(sha256(token)) if token else None
    if bs is not None:
        bs.revoked_at = utcnow()


# ---- contexts for the command line (not tools: used by api.cli) ----------------------------------

def org_context(session: Any, org_slug: str, *, actor: str = "cli", name: str = "levqor CLI") -> ToolContext:
    """A system principal acting inside the organisation ``org_slug`` (the CLI's own context)."""
    org = IdentityRepository(session).org_by_slug(org_slug)
    if org is None:
        raise NotFound(f"no organisation {org_slug!r}", field="org")
    return ToolContext(session=session, principal=Principal(kind="system", id=actor, org_id=org.id, role="admin",
                                                            name=name))


def person_context(session: Any, org_slug: str, email: str) -> ToolContext:
    """The active user ``email`` of ``org_slug`` as the principal (decisions that need a person)."""
    repo = IdentityRepository(session)
    org = repo.org_by_slug(org_slug)
    user = repo.user_by_email(email)
    if org is None or user is None or user.org_id != org.id or not user.active:
        raise NotFound(f"no active user {email!r} in organisation {org_slug!r}", field="by")
    return ToolContext(session=session, principal=Principal(kind="user", id=str(user.id), org_id=org.id,
                                                            role=user.role, name=user.name, user_id=user.id))
