"""SCIM 2.0 provisioning (RFC 7643/7644, the subset Okta and Entra ID use): Users and Groups of one
organisation, authenticated by that organisation's SCIM bearer token.

Users are Levqor users linked by an ``sso_identities`` row (protocol ``scim``, subject = ``userName``).
Deactivating one (``active: false``, or DELETE) turns the user off and revokes their browser sessions and
API keys in the same transaction, so their next request is refused. Group membership maps to roles with
the organisation's group mappings (``tools.enterprise.sso.role_for``). Every change is audited.
"""

from __future__ import annotations

import hmac
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import update

from levqor.logging import request_id_var
from memory.db import utcnow
from memory.identity.models import BrowserSession, User
from memory.identity.repository import IdentityRepository
from memory.sso.models import ScimGroup, SsoConfig, SsoIdentity
from memory.sso.repository import SsoRepository
from tools.enterprise import audit_log
from tools.enterprise.sso import SCIM_PREFIX, role_for, sha256
from tools.errors import AppError, Unauthorized

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
MAX_PAGE = 200


class ScimError(AppError):
    """A SCIM refusal: problem details that also carry SCIM's ``schemas`` and ``scimType``."""

    title = "SCIM request refused"

    def __init__(self, status: int, detail: str, scim_type: str | None = None, *, field: str | None = None):
        super().__init__(detail, field=field, extra={"schemas": [ERROR_SCHEMA], "scimType": scim_type})
        self.status_code = status
        self.type_slug = f"scim-{scim_type or status}"


class ScimCaller(BaseModel):
    org_id: int
    token_prefix: str

    @property
    def actor(self) -> str:
        return f"scim:{self.token_prefix}"


def authenticate(session: Any, authorization: str | None) -> ScimCaller:
    """The organisation whose SCIM token is presented as ``Authorization: Bearer scim_...``."""
    scheme, _, raw = (authorization or "").partition(" ")
    raw = raw.strip()
    if scheme.lower() != "bearer" or not raw.startswith(SCIM_PREFIX):
        raise Unauthorized("send the organisation's SCIM token as 'Authorization: Bearer scim_...'")
    digest = sha256(raw)
    cfg = SsoRepository(session).config_by_scim_hash(digest)
    if cfg is None or not cfg.scim_token_hash or not hmac.compare_digest(cfg.scim_token_hash, digest):
        raise Unauthorized("invalid SCIM token")
    return ScimCaller(org_id=cfg.org_id, token_prefix=cfg.scim_token_prefix or "scim")


def _audit(session: Any, caller: ScimCaller, action: str, target: str, **kwargs: Any) -> None:
    audit_log.append(session, actor=caller.actor, action=action, target=target, org_id=caller.org_id,
                     request_id=request_id_var.get(), **kwargs)


# ---- schemas ---------------------------------------------------------------------------------------

class ScimName(BaseModel):
    model_config = ConfigDict(extra="allow")
    givenName: str | None = Field(None, max_length=200)  # noqa: N815 (SCIM's names)
    familyName: str | None = Field(None, max_length=200)  # noqa: N815
    formatted: str | None = Field(None, max_length=400)


class ScimEmail(BaseModel):
    model_config = ConfigDict(extra="allow")
    value: str = Field(max_length=320)
    primary: bool | None = None
    type: str | None = Field(None, max_length=32)


class ScimUserIn(BaseModel):
    """A SCIM User as Okta and Entra ID send it (unknown attributes are kept out, not refused)."""

    model_config = ConfigDict(extra="allow")
    userName: str = Field(min_length=3, max_length=320)  # noqa: N815
    externalId: str | None = Field(None, max_length=255)  # noqa: N815
    name: ScimName | None = None
    displayName: str | None = Field(None, max_length=200)  # noqa: N815
    emails: list[ScimEmail] = Field(default_factory=list, max_length=20)
    active: bool = True


class ScimMember(BaseModel):
    model_config = ConfigDict(extra="allow")
    value: str = Field(max_length=64)


class ScimGroupIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    displayName: str = Field(min_length=1, max_length=255)  # noqa: N815
    externalId: str | None = Field(None, max_length=255)  # noqa: N815
    members: list[ScimMember] = Field(default_factory=list, max_length=10_000)


class ScimPatchOp(BaseModel):
    model_config = ConfigDict(extra="allow")
    op: str = Field(pattern=r"^(?i:add|remove|replace)$")
    path: str | None = Field(None, max_length=300)
    value: Any = None


class ScimPatch(BaseModel):
    model_config = ConfigDict(extra="allow")
    Operations: list[ScimPatchOp] = Field(min_length=1, max_length=1000)


# ---- users -----------------------------------------------------------------------------------------

def _email_of(body: ScimUserIn) -> str:
    primary = next((e.value for e in body.emails if e.primary), None) or (body.emails[0].value if body.emails else None)
    email = (primary or body.userName).strip().lower()
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
        raise ScimError(400, "userName or emails[0].value must be an email address", "invalidValue", field="userName")
    return email


def _display(body: ScimUserIn) -> str:
    if body.displayName:
        return body.displayName
    if body.name:
        return body.name.formatted or " ".join(p for p in (body.name.givenName, body.name.familyName) if p)
    return ""


def user_resource(user: User, ident: SsoIdentity | None, base: str) -> dict[str, Any]:
    """A user as a SCIM resource."""
    given, _, family = user.name.partition(" ")
    return {"schemas": [USER_SCHEMA], "id": str(user.id), "externalId": ident.external_id if ident else None,
            "userName": ident.subject if ident else user.email,
            "name": {"formatted": user.name, "givenName": given, "familyName": family},
            "displayName": user.name, "emails": [{"value": user.email, "primary": True, "type": "work"}],
            "active": user.active, "groups": [],
            "meta": {"resourceType": "User", "created": user.created_at.isoformat(),
                     "lastModified": (user.last_login_at or user.created_at).isoformat(),
                     "location": f"{base}/Users/{user.id}"}}


def _user(session: Any, caller: ScimCaller, user_id: str) -> tuple[User, SsoIdentity | None]:
    user = IdentityRepository(session).user(int(user_id)) if user_id.isdigit() and len(user_id) < 10 else None
    if user is None or user.org_id != caller.org_id:
        raise ScimError(404, f"user {user_id} not found", field="id")
    return user, SsoRepository(session).scim_identity_by_user(caller.org_id, user.id)


def _eq_filter(flt: str | None, allowed: tuple[str, ...]) -> tuple[str, str] | None:
    if not flt:
        return None
    m = re.fullmatch(r'\s*(\w+)\s+eq\s+"([^"]*)"\s*', flt)
    if not m or m.group(1) not in allowed:
        raise ScimError(400, f"only '{' | '.join(allowed)} eq \"...\"' filters are supported", "invalidFilter",
                        field="filter")
    return m.group(1), m.group(2)


def _page(items: list[dict[str, Any]], start: int, count: int) -> dict[str, Any]:
    start, count = max(1, start), max(0, min(count, MAX_PAGE))
    chunk = items[start - 1:start - 1 + count]
    return {"schemas": [LIST_SCHEMA], "totalResults": len(items), "startIndex": start, "itemsPerPage": len(chunk),
            "Resources": chunk}


def list_users(session: Any, caller: ScimCaller, base: str, *, flt: str | None, start: int,
               count: int) -> dict[str, Any]:
    """The organisation's SCIM-provisioned users, filtered by ``userName eq``/``externalId eq``."""
    repo = IdentityRepository(session)
    cond = _eq_filter(flt, ("userName", "externalId"))
    out = []
    for ident in SsoRepository(session).scim_identities(caller.org_id):
        if cond and ((cond[0] == "userName" and ident.subject.lower() != cond[1].lower())
                     or (cond[0] == "externalId" and ident.external_id != cond[1])):
            continue
        user = repo.user(ident.user_id)
        if user is not None:
            out.append(user_resource(user, ident, base))
    if cond and cond[0] == "userName" and not out:  # a user made before SCIM (e.g. by SSO) is linked by email
        user = repo.user_by_email(cond[1])
        if user is not None and user.org_id == caller.org_id:
            out.append(user_resource(user, None, base))
    return _page(out, start, count)


def get_user(session: Any, caller: ScimCaller, base: str, user_id: str) -> dict[str, Any]:
    """One user as a SCIM resource."""
    user, ident = _user(session, caller, user_id)
    return user_resource(user, ident, base)


def create_user(session: Any, caller: ScimCaller, base: str, body: ScimUserIn) -> dict[str, Any]:
    """Provision a user (role from the default role until a group maps one); 409 if the userName exists."""
    repo, srepo = IdentityRepository(session), SsoRepository(session)
    email = _email_of(body)
    if srepo.identity(caller.org_id, "scim", body.userName):
        raise ScimError(409, f"userName {body.userName} exists", "uniqueness", field="userName")
    user = repo.user_by_email(email)
    if user is not None and user.org_id != caller.org_id:
        raise ScimError(409, "this email is taken", "uniqueness", field="userName")
    cfg = srepo.config(caller.org_id) or SsoConfig(default_role="viewer", group_roles={})
    if user is None:
        user = User(org_id=caller.org_id, email=email, name=_display(body)[:200], role=cfg.default_role or "viewer",
                    active=body.active, password_hash=None)
        repo.add(user)
    ident = SsoIdentity(org_id=caller.org_id, user_id=user.id, protocol="scim", subject=body.userName,
                        external_id=body.externalId, groups=[])
    srepo.add(ident)
    _audit(session, caller, "scim.user_created", f"user:{user.id}",
           after={"email": email, "userName": body.userName, "role": user.role, "active": user.active})
    if not body.active:
        deactivate(session, caller, user)
    return user_resource(user, ident, base)


def replace_user(session: Any, caller: ScimCaller, base: str, user_id: str, body: ScimUserIn) -> dict[str, Any]:
    """PUT: replace name, email, userName, externalId and active."""
    user, ident = _user(session, caller, user_id)
    before = user_resource(user, ident, base)
    email = _email_of(body)
    other = IdentityRepository(session).user_by_email(email)
    if other is not None and other.id != user.id:
        raise ScimError(409, "this email is taken", "uniqueness", field="emails")
    user.email, user.name = email, _display(body)[:200]
    ident = _link(session, caller, user, ident, body.userName, body.externalId)
    _set_active(session, caller, user, body.active)
    after = user_resource(user, ident, base)
    _audit(session, caller, "scim.user_updated", f"user:{user.id}", before=_brief(before), after=_brief(after))
    return after


def _brief(r: dict[str, Any]) -> dict[str, Any]:
    out = {k: r.get(k) for k in ("userName", "displayName", "active", "externalId")}
    return out | {"email": r["emails"][0]["value"]}


def _link(session: Any, caller: ScimCaller, user: User, ident: SsoIdentity | None, user_name: str,
          external_id: str | None) -> SsoIdentity:
    if ident is None:
        ident = SsoIdentity(org_id=caller.org_id, user_id=user.id, protocol="scim", subject=user_name,
                            external_id=external_id, groups=[])
        SsoRepository(session).add(ident)
    ident.subject = user_name
    if external_id is not None:
        ident.external_id = external_id
    return ident


def patch_user(session: Any, caller: ScimCaller, base: str, user_id: str, body: ScimPatch) -> dict[str, Any]:
    """PATCH (Okta/Entra style): ``active``, ``userName``, ``externalId``, ``displayName``, ``name.*``, emails."""
    user, ident = _user(session, caller, user_id)
    before = user_resource(user, ident, base)
    for op in body.Operations:
        kind = op.op.lower()
        whole = op.path is None and isinstance(op.value, dict)
        values: dict[str, Any] = op.value if whole else {op.path or "": op.value}
        for path, value in values.items():
            key = path.split("[")[0]
            if kind == "remove":
                continue  # nothing we keep may be removed; removing is not refusing
            if key == "active":
                if isinstance(value, str) and value.lower() in ("true", "false"):
                    value = value.lower() == "true"  # Entra ID sends "False"
                if not isinstance(value, bool):
                    raise ScimError(400, "active must be a boolean", "invalidValue", field="active")
                _set_active(session, caller, user, value)
            elif key in ("userName", "externalId"):
                if not isinstance(value, str) or not value or len(value) > 320:
                    raise ScimError(400, f"{key} must be a non-empty string", "invalidValue", field=key)
                name = value if key == "userName" else (ident.subject if ident else user.email)
                ident = _link(session, caller, user, ident, name, value if key == "externalId" else None)
            elif key in ("displayName", "name.formatted") and isinstance(value, str):
                user.name = value[:200]
            elif key == "emails" or path.startswith("emails[") or key == "emails.value":
                listed = isinstance(value, list) and value and isinstance(value[0], dict)
                addr = value[0].get("value") if listed else value
                if not isinstance(addr, str) or "@" not in addr:
                    raise ScimError(400, "emails value must be an email address", "invalidValue", field="emails")
                user.email = addr.strip().lower()
            elif key in ("name.givenName", "name.familyName", "name"):
                continue  # displayName carries the name we show
            elif key not in ("", "title", "preferredLanguage", "locale", "timezone", "nickName", "userType"):
                if not key.startswith("urn:"):
                    raise ScimError(400, f"unsupported attribute {key!r}", "invalidPath", field=key)
    session.flush()
    after = user_resource(user, ident, base)
    _audit(session, caller, "scim.user_updated", f"user:{user.id}", before=_brief(before), after=_brief(after))
    return after


def _set_active(session: Any, caller: ScimCaller, user: User, active: bool) -> None:
    if active and not user.active:
        user.active = True
        _audit(session, caller, "scim.user_reactivated", f"user:{user.id}", before={"active": False},
               after={"active": True})
    elif not active and user.active:
        deactivate(session, caller, user)


def deactivate(session: Any, caller: ScimCaller, user: User) -> None:
    """Turn the user off and revoke their browser sessions and API keys now (one transaction)."""
    now = utcnow()
    user.active = False
    sessions = session.execute(update(BrowserSession).where(
        BrowserSession.user_id == user.id, BrowserSession.revoked_at.is_(None)).values(revoked_at=now)).rowcount
    keys = [k for k in IdentityRepository(session).keys(user.org_id) if k.user_id == user.id and k.revoked_at is None]
    for key in keys:  # through the ORM, so every process's key cache forgets them (tools/identity/keycache.py)
        key.revoked_at = now
    session.flush()
    _audit(session, caller, "scim.user_deactivated", f"user:{user.id}", before={"active": True},
           after={"active": False}, detail={"sessions_revoked": sessions, "keys_revoked": [k.prefix for k in keys]})


def delete_user(session: Any, caller: ScimCaller, user_id: str) -> None:
    """DELETE: deactivate (the account and its audit trail stay) and unlink the SCIM identity."""
    user, ident = _user(session, caller, user_id)
    if user.active:
        deactivate(session, caller, user)
    if ident is not None:
        session.delete(ident)
    for group in SsoRepository(session).groups(caller.org_id):
        if user.id in group.member_ids:
            group.member_ids = [m for m in group.member_ids if m != user.id]
    session.flush()
    _audit(session, caller, "scim.user_deleted", f"user:{user.id}")


# ---- groups ----------------------------------------------------------------------------------------

def group_resource(session: Any, group: ScimGroup, base: str) -> dict[str, Any]:
    """A group as a SCIM resource."""
    repo = IdentityRepository(session)
    members = []
    for uid in group.member_ids:
        u = repo.user(uid)
        if u is not None:
            members.append({"value": str(uid), "display": u.email, "$ref": f"{base}/Users/{uid}"})
    return {"schemas": [GROUP_SCHEMA], "id": str(group.id), "displayName": group.display_name,
            "externalId": group.external_id, "members": members,
            "meta": {"resourceType": "Group", "created": group.created_at.isoformat(),
                     "lastModified": group.updated_at.isoformat(), "location": f"{base}/Groups/{group.id}"}}


def _group(session: Any, caller: ScimCaller, group_id: str) -> ScimGroup:
    group = SsoRepository(session).group(caller.org_id, int(group_id)) \
        if group_id.isdigit() and len(group_id) < 10 else None
    if group is None:
        raise ScimError(404, f"group {group_id} not found", field="id")
    return group


def _member_ids(session: Any, caller: ScimCaller, values: list[Any]) -> list[int]:
    out: list[int] = []
    repo = IdentityRepository(session)
    for v in values:
        raw = v.get("value") if isinstance(v, dict) else getattr(v, "value", v)
        uid = int(raw) if isinstance(raw, str) and raw.isdigit() and len(raw) < 10 else None
        user = repo.user(uid) if uid else None
        if user is None or user.org_id != caller.org_id:
            raise ScimError(400, f"member {raw!r} is not a user of this organisation", "invalidValue", field="members")
        out.append(user.id)
    return out


def _sync_roles(session: Any, caller: ScimCaller, user_ids: set[int]) -> None:
    """Give each user the role their SCIM groups map to (users without a mapped group keep the default)."""
    srepo, repo = SsoRepository(session), IdentityRepository(session)
    cfg = srepo.config(caller.org_id)
    if cfg is None:
        return
    groups = srepo.groups(caller.org_id)
    for uid in user_ids:
        user = repo.user(uid)
        if user is None:
            continue
        role = role_for(cfg, [g.display_name for g in groups if uid in g.member_ids]) or user.role
        if role != user.role:
            _audit(session, caller, "scim.role_synced", f"user:{uid}", before={"role": user.role}, after={"role": role})
            user.role = role


def list_groups(session: Any, caller: ScimCaller, base: str, *, flt: str | None, start: int,
                count: int) -> dict[str, Any]:
    """The organisation's SCIM groups, filtered by ``displayName eq``/``externalId eq``."""
    cond = _eq_filter(flt, ("displayName", "externalId"))
    out = [group_resource(session, g, base) for g in SsoRepository(session).groups(caller.org_id)
           if not cond or (g.display_name if cond[0] == "displayName" else g.external_id) == cond[1]]
    return _page(out, start, count)


def get_group(session: Any, caller: ScimCaller, base: str, group_id: str) -> dict[str, Any]:
    """One group as a SCIM resource."""
    return group_resource(session, _group(session, caller, group_id), base)


def create_group(session: Any, caller: ScimCaller, base: str, body: ScimGroupIn) -> dict[str, Any]:
    """Create a group with members; roles of its members follow the group mappings."""
    srepo = SsoRepository(session)
    if srepo.group_by_name(caller.org_id, body.displayName):
        raise ScimError(409, f"group {body.displayName} exists", "uniqueness", field="displayName")
    members = _member_ids(session, caller, list(body.members))
    group = ScimGroup(org_id=caller.org_id, display_name=body.displayName, external_id=body.externalId,
                      member_ids=members)
    srepo.add(group)
    _audit(session, caller, "scim.group_created", f"scim_group:{group.id}",
           after={"displayName": group.display_name, "members": members})
    _sync_roles(session, caller, set(members))
    return group_resource(session, group, base)


def replace_group(session: Any, caller: ScimCaller, base: str, group_id: str, body: ScimGroupIn) -> dict[str, Any]:
    """PUT: replace the name and the members."""
    group = _group(session, caller, group_id)
    before = set(group.member_ids)
    members = _member_ids(session, caller, list(body.members))
    group.display_name, group.external_id, group.member_ids = body.displayName, body.externalId, members
    session.flush()
    _audit(session, caller, "scim.group_updated", f"scim_group:{group.id}", before={"members": sorted(before)},
           after={"displayName": group.display_name, "members": members})
    _sync_roles(session, caller, before | set(members))
    return group_resource(session, group, base)


def patch_group(session: Any, caller: ScimCaller, base: str, group_id: str, body: ScimPatch) -> dict[str, Any]:
    """PATCH: add/remove/replace ``members`` (also ``members[value eq "id"]``) and ``displayName``."""
    group = _group(session, caller, group_id)
    before = list(group.member_ids)
    members = list(group.member_ids)
    for op in body.Operations:
        kind, path = op.op.lower(), op.path or ""
        if path == "" and isinstance(op.value, dict):
            if "displayName" in op.value:
                group.display_name = str(op.value["displayName"])[:255]
            if "members" in op.value:
                path, op = "members", ScimPatchOp(op=op.op, path="members", value=op.value["members"])
            else:
                continue
        m = re.fullmatch(r'members\[value eq "([^"]+)"\]', path)
        if m:
            kind, path, op = "remove" if kind == "remove" else kind, "members", \
                ScimPatchOp(op=op.op, path="members", value=[{"value": m.group(1)}])
        if path == "displayName":
            if not isinstance(op.value, str) or not op.value:
                raise ScimError(400, "displayName must be a non-empty string", "invalidValue", field="displayName")
            group.display_name = op.value[:255]
        elif path == "members":
            values = op.value if isinstance(op.value, list) else ([] if op.value is None else [op.value])
            ids = _member_ids(session, caller, values) if values else []
            if kind == "add":
                members += [i for i in ids if i not in members]
            elif kind == "remove":
                members = [i for i in members if i not in ids] if ids else []
            else:
                members = ids
        elif path != "externalId":
            raise ScimError(400, f"unsupported path {path!r}", "invalidPath", field="path")
    group.member_ids = members
    session.flush()
    _audit(session, caller, "scim.group_updated", f"scim_group:{group.id}", before={"members": before},
           after={"displayName": group.display_name, "members": members})
    _sync_roles(session, caller, set(before) | set(members))
    return group_resource(session, group, base)


def delete_group(session: Any, caller: ScimCaller, group_id: str) -> None:
    """Delete a group; its former members' roles are recomputed."""
    group = _group(session, caller, group_id)
    members = set(group.member_ids)
    SsoRepository(session).delete(group)
    _audit(session, caller, "scim.group_deleted", f"scim_group:{group_id}", before={"members": sorted(members)})
    _sync_roles(session, caller, members)
