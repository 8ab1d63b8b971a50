"""Developer portal API: key rotation and teammate invitations (sign-up itself is the /developer pages)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from api.deps import require
from tools.context import ToolContext
from tools.dev_portal import accounts
from tools.dev_portal import keys as portal_keys
from tools.dev_portal.accounts import InviteCreate, InviteId, InviteList, InviteRead
from tools.dev_portal.keys import KeyRotate, KeyRotated

router = APIRouter(prefix="/v1", tags=["identity"])
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.post("/keys/{key_id}/rotate", response_model=KeyRotated, status_code=status.HTTP_201_CREATED)
def rotate_key(key_id: Id, ctx: Annotated[ToolContext, require("keys:write")]) -> KeyRotated:
    """Replace an API key (same name, role, mode); the old key works for LEVQOR_KEY_ROTATION_GRACE_S more."""
    return portal_keys.rotate_key(ctx, KeyRotate(key_id=key_id))


@router.get("/invites", response_model=InviteList)
def list_invites(ctx: Annotated[ToolContext, require("users:read")]) -> InviteList:
    """List pending teammate invitations."""
    return accounts.list_invites(ctx, accounts.NoInput())


@router.post("/invites", response_model=InviteRead, status_code=status.HTTP_201_CREATED)
def invite(body: InviteCreate, ctx: Annotated[ToolContext, require("users:write")]) -> InviteRead:
    """Email a teammate a one-time link to join the organisation with a role."""
    return accounts.invite(ctx, body)


@router.delete("/invites/{invite_id}", response_model=InviteRead)
def cancel_invite(invite_id: Id, ctx: Annotated[ToolContext, require("users:write")]) -> InviteRead:
    """Cancel a pending invitation."""
    return accounts.cancel_invite(ctx, InviteId(invite_id=invite_id))
