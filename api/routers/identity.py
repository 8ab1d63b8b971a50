"""Organisation, users, roles and API keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status
from pydantic import BaseModel

from api.deps import require
from tools.context import ToolContext
from tools.dev_portal.accounts import require_verified
from tools.identity import service as identity
from tools.identity.service import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyRead,
    ApiKeyRevoke,
    NoInput,
    OrgRead,
    OrgSettingsUpdate,
    RoleChange,
    RoleName,
    UserCreate,
    UserList,
    UserRead,
)

router = APIRouter(prefix="/v1", tags=["identity"])


class Me(BaseModel):
    actor: str
    kind: str
    role: str
    org_id: int | None
    name: str
    key_mode: str | None


@router.get("/me", response_model=Me)
async def me(ctx: Annotated[ToolContext, require("org:read")]) -> Me:
    """Show who the caller is."""
    p = ctx.principal
    return Me(actor=p.actor, kind=p.kind, role=p.role, org_id=p.org_id, name=p.name, key_mode=p.key_mode)


@router.get("/org", response_model=OrgRead)
def get_org(ctx: Annotated[ToolContext, require("org:read")]) -> OrgRead:
    """Show the caller's organisation."""
    return identity.get_org(ctx, NoInput())


@router.patch("/org", response_model=OrgRead)
def update_org(body: OrgSettingsUpdate, ctx: Annotated[ToolContext, require("org:write")]) -> OrgRead:
    """Change the organisation's name or settings."""
    return identity.update_settings(ctx, body)


@router.get("/users", response_model=UserList)
def list_users(ctx: Annotated[ToolContext, require("users:read")]) -> UserList:
    """List users and roles."""
    return identity.list_users(ctx, NoInput())


@router.post("/users", response_model=UserRead, status_code=status.HTTP_201_CREATED)
def create_user(body: UserCreate, ctx: Annotated[ToolContext, require("users:write")]) -> UserRead:
    """Add a user with a role."""
    return identity.create_user(ctx, body)


class RoleBody(BaseModel):
    role: RoleName


@router.put("/users/{user_id}/role", response_model=UserRead)
def set_role(user_id: Annotated[int, Path(ge=1, le=2**31 - 1)], body: RoleBody,
             ctx: Annotated[ToolContext, require("users:write")]) -> UserRead:
    """Change a user's role."""
    return identity.set_role(ctx, RoleChange(user_id=user_id, role=body.role))


@router.get("/keys", response_model=ApiKeyList)
def list_keys(ctx: Annotated[ToolContext, require("keys:read")]) -> ApiKeyList:
    """List API keys (never the secret part)."""
    return identity.list_keys(ctx, NoInput())


@router.post("/keys", response_model=ApiKeyCreated, status_code=status.HTTP_201_CREATED)
def create_key(body: ApiKeyCreate, ctx: Annotated[ToolContext, require("keys:write")]) -> ApiKeyCreated:
    """Create an API key; the response is the only time the full key is shown."""
    require_verified(ctx)
    return identity.create_key(ctx, body)


@router.delete("/keys/{key_id}", response_model=ApiKeyRead)
def revoke_key(key_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
               ctx: Annotated[ToolContext, require("keys:write")]) -> ApiKeyRead:
    """Revoke an API key."""
    return identity.revoke_key(ctx, ApiKeyRevoke(key_id=key_id))
