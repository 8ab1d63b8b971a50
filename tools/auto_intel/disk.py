"""The var directory's space as a control: ``ops.free_disk_space``, the healer's action for ``disk_full``.

It deletes only what :func:`levqor.diskspace.freeable` lists (rotated logs, exports past their retention),
largest first, until free space is back above the limit plus the reserve, and audits every file it
deleted. It never touches the database, keys, live logs, the mail sink or metrics files; when that is
not enough the incident stays open and goes to a person.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from levqor import diskspace
from levqor.settings import get_settings
from tools.context import ToolContext
from tools.enterprise import audit_log
from tools.enterprise.rbac import require_staff
from tools.registry import tool


class FreeIn(BaseModel):
    dry_run: bool = Field(False, description="List what would be deleted, delete nothing")
    reason: str = Field("", max_length=500, description="Why (the incident), for the audit log")


class FreeOut(BaseModel):
    deleted: list[str] = Field(description="Files deleted (or that would be), relative to the var directory")
    freed_bytes: int
    free_bytes: int = Field(description="Free space in the var directory afterwards")
    limit_bytes: int = Field(description="LEVQOR_OPS_DISK_FREE_MIN_BYTES")
    enough: bool = Field(description="Free space is at or above the limit")
    errors: list[str]


@tool("ops.free_disk_space", risk="destructive")
def free_disk_space(ctx: ToolContext, params: FreeIn) -> FreeOut:
    """Free space in the var directory: delete rotated logs and exports past their retention, largest first,
    until free space is back above the limit; never the database or live files. Every file is audited."""
    require_staff(ctx, "delete files of the platform's var directory")
    out = diskspace.free_space(dry_run=params.dry_run)
    free = diskspace.free_bytes()
    limit = int(get_settings().ops_disk_free_min_bytes)
    if not params.dry_run:
        audit_log.record_platform(ctx, "ops.free_disk_space", "var_dir",
                                  detail={"deleted": out.files[:200], "deleted_count": len(out.files),
                                          "freed_bytes": out.bytes, "free_bytes": free, "errors": out.errors[:20],
                                          "reason": params.reason})
    return FreeOut(deleted=out.files, freed_bytes=out.bytes, free_bytes=free, limit_bytes=limit,
                   enough=free >= limit, errors=out.errors)
