"""Audit log tools: search, export, verify the chain, list and write signed checkpoints."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, Field, field_validator
from sqlalchemy.orm import Session

from memory.audit.models import AuditEntry
from memory.audit.repository import AuditRepository
from tools.context import ToolContext
from tools.enterprise.audit_log import VerifyResult, public_key_b64, record, verify_chain, write_checkpoint
from tools.enterprise.rbac import is_staff, require_staff
from tools.registry import tool


class AuditEntryRead(BaseModel):
    seq: int
    ts: dt.datetime
    org_id: int | None
    actor: str
    action: str
    target: str
    outcome: str
    request_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    detail: dict[str, Any] | None
    hash: str

    @classmethod
    def of(cls, e: AuditEntry) -> AuditEntryRead:
        return cls(seq=e.seq, ts=e.ts, org_id=e.org_id, actor=e.actor, action=e.action, target=e.target,
                   outcome=e.outcome, request_id=e.request_id, before=e.before, after=e.after,
                   detail=e.detail, hash=e.hash)


class AuditSearch(BaseModel):
    actor: str | None = Field(None, max_length=200, description="Exact actor, e.g. user:3")
    action: str | None = Field(None, max_length=100, description="Action; * is a wildcard, e.g. keys.*")
    target: str | None = Field(None, max_length=300)
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    cursor: int | None = Field(None, ge=1, le=2**62, description="Return entries older than this seq")
    limit: int = Field(50, ge=1, le=500)
    platform: bool = Field(False, description="Levqor staff: the platform log (entries of no organisation) "
                                              "instead of the organisation's")

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: dt.datetime | None) -> dt.datetime | None:
        """A time without an offset is read as UTC."""
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value


class AuditPage(BaseModel):
    items: list[AuditEntryRead]
    next_cursor: int | None


def _log_of(ctx: ToolContext, params: AuditSearch) -> int | None:
    """The organisation whose log is read (None with ``platform``: the platform log, staff only)."""
    if params.platform:
        require_staff(ctx, "read the platform audit log", read=True)
        return None
    return ctx.org_id


@tool("audit.search", risk="read")
def search(ctx: ToolContext, params: AuditSearch) -> AuditPage:
    """List audit entries of the caller's organisation, newest first, filtered and paginated."""
    rows = AuditRepository(ctx.session).search(
        org_id=_log_of(ctx, params), actor=params.actor, action=params.action, target=params.target,
        since=params.since, until=params.until, before_seq=params.cursor, limit=params.limit + 1,
        platform=params.platform,
    )
    more = len(rows) > params.limit
    rows = rows[: params.limit]
    return AuditPage(items=[AuditEntryRead.of(r) for r in rows], next_cursor=rows[-1].seq if more else None)


def export_jsonl(session: Session, org_id: int | None, params: AuditSearch) -> Iterator[str]:
    """Yield the matching entries, oldest first, as JSON lines."""
    rows = AuditRepository(session).iter_matching(
        org_id=org_id, actor=params.actor, action=params.action, target=params.target,
        since=params.since, until=params.until, platform=params.platform,
    )
    for row in rows:
        yield AuditEntryRead.of(row).model_dump_json() + "\n"


def export_audited(ctx: ToolContext, params: AuditSearch) -> str:
    """The organisation's matching entries as JSON lines; the export itself goes into the audit log."""
    body = "".join(export_jsonl(ctx.session, _log_of(ctx, params), params))
    detail = params.model_dump(mode="json", exclude_none=True)
    if not params.platform:
        detail.pop("platform")
    record(ctx, "audit.exported", "audit", detail=detail)
    return body


class NoInput(BaseModel):
    pass


@tool("audit.verify", risk="read")
def verify(ctx: ToolContext, params: NoInput) -> VerifyResult:
    """Verify the audit hash chain and signed checkpoints; name the first bad entry.

    The chain is one for the whole platform, so everyone's verification covers all of it; an organisation
    sees its own entry count and last entry, and the bad entry's number only when the entry is its own."""
    result = verify_chain(ctx.session)
    if is_staff(ctx, read=True):
        return result
    repo = AuditRepository(ctx.session)
    entries, last = repo.org_summary(ctx.org_id)
    out = result.model_copy(update={"entries": entries, "head_seq": last, "checkpoints_checked": 0})
    if result.first_bad_seq is not None and repo.org_of(result.first_bad_seq) != ctx.org_id:
        out = out.model_copy(update={"first_bad_seq": None, "problem": "the audit chain fails verification at an "
                                     "entry outside your organisation; Levqor staff can see which"})
    return out


class CheckpointRead(BaseModel):
    seq: int
    head_hash: str
    ts: dt.datetime
    key_id: str
    signature: str
    public_key: str


class CheckpointList(BaseModel):
    items: list[CheckpointRead]


@tool("audit.checkpoints", risk="read")
def checkpoints(ctx: ToolContext, params: NoInput) -> CheckpointList:
    """List the signed audit checkpoints with the public key that verifies them (Levqor staff)."""
    require_staff(ctx, "list audit checkpoints: they cover every organisation's entries", read=True)
    pub = public_key_b64()
    return CheckpointList(items=[
        CheckpointRead(seq=c.seq, head_hash=c.head_hash, ts=c.ts, key_id=c.key_id, signature=c.signature,
                       public_key=pub)
        for c in AuditRepository(ctx.session).checkpoints()
    ])


@tool("audit.checkpoint", risk="write")
def checkpoint(ctx: ToolContext, params: NoInput) -> CheckpointList:
    """Write a signed checkpoint of the audit chain head now (Levqor staff)."""
    require_staff(ctx, "write audit checkpoints: they cover every organisation's entries")
    cp = write_checkpoint(ctx.session)
    pub = public_key_b64()
    items = [] if cp is None else [CheckpointRead(seq=cp.seq, head_hash=cp.head_hash, ts=cp.ts,
                                                  key_id=cp.key_id, signature=cp.signature, public_key=pub)]
    return CheckpointList(items=items)
