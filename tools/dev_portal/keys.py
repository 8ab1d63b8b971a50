"""API keys from the developer portal: rotation with a grace period (create and revoke are identity's)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from levqor.settings import get_settings
from memory.db import utcnow
from memory.identity.repository import IdentityRepository
from tools.context import ToolContext
from tools.enterprise import audit_log
from tools.errors import Conflict, NotFound
from tools.identity.service import ApiKeyCreate, ApiKeyCreated, ApiKeyRead, issue_key
from tools.registry import tool


class KeyRotate(BaseModel):
    key_id: int = Field(ge=1, le=2**31 - 1)


class KeyRotated(ApiKeyCreated):
    replaces: ApiKeyRead = Field(description="The old key, now expiring at the end of the grace period.")


@tool("keys.rotate", risk="write")
def rotate_key(ctx: ToolContext, params: KeyRotate) -> KeyRotated:
    """Replace an API key by a new one (same name, role and mode); the old one works for the grace period."""
    repo = IdentityRepository(ctx.session)
    old = repo.key(ctx.org_id, params.key_id)
    if old is None:
        raise NotFound(f"API key {params.key_id} not found", field="key_id")
    now = utcnow()
    if old.revoked_at is not None or (old.expires_at is not None and old.expires_at <= now):
        raise Conflict("this key is revoked or expired: create a new one instead", field="key_id")
    lifetime_days = None
    if old.expires_at is not None:
        lifetime_days = max(1, round((old.expires_at - old.created_at).total_seconds() / 86400))
    new = issue_key(ctx, ctx.org_id, ApiKeyCreate(name=old.name, role=old.role, mode=old.mode,  # type: ignore[arg-type]
                                                  expires_in_days=lifetime_days), ctx.principal.user_id)
    before = old.expires_at
    grace_end = now + dt.timedelta(seconds=get_settings().key_rotation_grace_s)
    old.expires_at = grace_end if before is None else min(before, grace_end)
    ctx.session.flush()
    audit_log.record(ctx, "keys.rotated", f"key:{old.prefix}",
                     before={"expires_at": before.isoformat() if before else None},
                     after={"expires_at": old.expires_at.isoformat(), "replaced_by": new.prefix})
    return KeyRotated(**new.model_dump(), replaces=ApiKeyRead.of(old))
