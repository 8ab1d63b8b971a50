"""Immutable audit log: a hash chain over every privileged action, with signed checkpoints.

Each entry's hash covers its fields and the previous entry's hash, so an edit, a deletion in the
middle or a reordering breaks the chain. A deleted tail (or a chain recomputed from some point)
is caught by Ed25519-signed checkpoints ``(seq, head hash)`` kept in the database and in an
append-only file outside it. On PostgreSQL triggers also refuse UPDATE, DELETE and TRUNCATE.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from memory.audit.models import AuditCheckpoint, AuditEntry
from memory.audit.repository import GENESIS, AuditRepository
from memory.db import after_close, session_scope, utcnow
from tools.context import ToolContext
from tools.registry import tool

log = logging.getLogger(__name__)


def _canonical(entry: AuditEntry) -> bytes:
    body = {
        "seq": entry.seq,
        "ts": entry.ts.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "org_id": entry.org_id,
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "outcome": entry.outcome,
        "request_id": entry.request_id,
        "before": entry.before,
        "after": entry.after,
        "detail": entry.detail,
        "prev_hash": entry.prev_hash,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def entry_hash(entry: AuditEntry) -> str:
    return hashlib.sha256(_canonical(entry)).hexdigest()


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str)) if value is not None else None


def append(
    session: Session, *, actor: str, action: str, target: str = "", org_id: int | None = None,
    request_id: str | None = None, before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
    detail: dict[str, Any] | None = None, outcome: str = "ok",
) -> AuditEntry:
    """Append one entry in the caller's transaction (it commits or rolls back with the change)."""
    repo = AuditRepository(session)
    head = repo.lock_head()
    ts = utcnow()
    entry = AuditEntry(
        seq=head.seq + 1, ts=ts, org_id=org_id, actor=actor, action=action, target=target[:300],
        outcome=outcome, request_id=request_id, before=_jsonable(before), after=_jsonable(after),
        detail=_jsonable(detail), prev_hash=head.hash,
    )
    entry.hash = entry_hash(entry)
    repo.add(entry, head)
    from levqor.metrics import AUDIT_ENTRIES

    AUDIT_ENTRIES.labels(action=action).inc()
    return entry


def record(ctx: ToolContext, action: str, target: str = "", **kwargs: Any) -> AuditEntry:
    """Append an entry for the principal in ``ctx``."""
    kwargs.setdefault("org_id", ctx.principal.org_id)
    return append(ctx.session, actor=ctx.principal.actor, action=action, target=target,
                  request_id=ctx.request_id, **kwargs)


def append_detached(*, session: Session | None = None, **kwargs: Any) -> None:
    """Append an entry that must survive the caller's rollback (denials).

    With a session, it is written in a new transaction once that session has closed; without
    one, at once.
    """
    def write() -> None:
        try:
            with session_scope() as s:
                append(s, **kwargs)
        except Exception:  # an audit write must never turn a 403 into a 500
            log.exception("could not write detached audit entry", extra={"fields": kwargs})

    if session is not None:
        after_close(session, write)
    else:
        write()


# ---- signing -------------------------------------------------------------------------------

def _load_or_create_key() -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from levqor.settings import get_settings

    path = get_settings().resolved_audit_key_path
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pem)
        tmp.chmod(0o600)
        tmp.replace(path)
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def public_key_b64() -> str:
    from cryptography.hazmat.primitives import serialization

    pub = _load_or_create_key().public_key().public_bytes(serialization.Encoding.Raw,
                                                          serialization.PublicFormat.Raw)
    return base64.b64encode(pub).decode()


def _key_id(pub_b64: str) -> str:
    return hashlib.sha256(pub_b64.encode()).hexdigest()[:16]


def _checkpoint_message(seq: int, head_hash: str, ts: str) -> bytes:
    return f"levqor-audit-checkpoint\n{seq}\n{head_hash}\n{ts}".encode()


def write_checkpoint(session: Session) -> AuditCheckpoint | None:
    """Sign ``(seq, head hash)`` of the current head; store it and append it to the export file."""
    from levqor.settings import get_settings

    repo = AuditRepository(session)
    head = repo.lock_head()
    if head.seq == 0:
        return None
    last = repo.last_checkpoint()
    if last is not None and last.seq == head.seq:
        return last
    key = _load_or_create_key()
    pub = public_key_b64()
    ts = utcnow()
    sig = key.sign(_checkpoint_message(head.seq, head.hash, ts.isoformat()))
    cp = AuditCheckpoint(ts=ts, seq=head.seq, head_hash=head.hash, key_id=_key_id(pub),
                         signature=base64.b64encode(sig).decode())
    repo.add_checkpoint(cp)
    export = get_settings().resolved_checkpoint_export
    export.parent.mkdir(parents=True, exist_ok=True)
    with export.open("a") as fh:
        fh.write(json.dumps(_cp_json(cp)) + "\n")
    return cp


def _cp_json(cp: AuditCheckpoint) -> dict[str, Any]:
    return {"seq": cp.seq, "head_hash": cp.head_hash, "ts": cp.ts.isoformat(), "key_id": cp.key_id,
            "signature": cp.signature}


def _verify_signature(cp: dict[str, Any], pub_b64: str) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    pub = Ed25519PublicKey.from_public_bytes(base64.b64decode(pub_b64))
    try:
        ts = dt.datetime.fromisoformat(cp["ts"]).astimezone(dt.UTC).isoformat()
        pub.verify(base64.b64decode(cp["signature"]), _checkpoint_message(cp["seq"], cp["head_hash"], ts))
        return True
    except (InvalidSignature, ValueError, KeyError):
        return False


# ---- verification --------------------------------------------------------------------------

class VerifyResult(BaseModel):
    ok: bool
    entries: int
    head_seq: int
    checkpoints_checked: int
    first_bad_seq: int | None = None
    problem: str | None = None


def verify_chain(session: Session, export_path: Path | None = None) -> VerifyResult:
    """Walk the whole chain and every checkpoint; report the first bad entry."""
    from levqor.settings import get_settings

    repo = AuditRepository(session)
    expected_seq = 1
    prev = GENESIS
    count = 0
    last_hash: dict[int, str] = {}
    cps = [_cp_json(cp) for cp in repo.checkpoints()]
    export_path = export_path or get_settings().resolved_checkpoint_export
    if export_path.exists():
        for line in export_path.read_text().splitlines():
            if line.strip():
                cps.append(json.loads(line))
    cp_seqs = {int(c["seq"]) for c in cps}

    def bad(seq: int, problem: str) -> VerifyResult:
        return VerifyResult(ok=False, entries=count, head_seq=expected_seq - 1, checkpoints_checked=0,
                            first_bad_seq=seq, problem=problem)

    for entry in repo.iter_all():
        if entry.seq != expected_seq:
            if entry.seq > expected_seq:
                return bad(expected_seq, f"entry {expected_seq} is missing (next is {entry.seq})")
            return bad(entry.seq, f"entry {entry.seq} is out of order")
        if entry.prev_hash != prev:
            return bad(entry.seq, f"entry {entry.seq} does not link to entry {entry.seq - 1} "
                                  "(deleted, inserted or reordered)")
        if entry_hash(entry) != entry.hash:
            return bad(entry.seq, f"entry {entry.seq} was modified (its hash does not match its content)")
        if entry.seq in cp_seqs:
            last_hash[entry.seq] = entry.hash
        prev = entry.hash
        count += 1
        expected_seq += 1
    head_seq = expected_seq - 1
    head = repo.head()
    if head is not None and head.seq > head_seq:
        return bad(head_seq + 1, f"entries {head_seq + 1}..{head.seq} were removed (log truncated)")
    pub = public_key_b64() if cps else ""
    for cp in sorted(cps, key=lambda c: int(c["seq"])):
        seq = int(cp["seq"])
        if not _verify_signature(cp, pub):
            return bad(seq, f"checkpoint at entry {seq} has an invalid signature")
        if seq > head_seq:
            return bad(head_seq + 1, f"log truncated: signed checkpoint covers entry {seq}, "
                                     f"the log ends at {head_seq}")
        if last_hash.get(seq) != cp["head_hash"]:
            return bad(seq, f"entry {seq} does not match its signed checkpoint (chain rewritten)")
    return VerifyResult(ok=True, entries=count, head_seq=head_seq, checkpoints_checked=len(cps))


# ---- tools ---------------------------------------------------------------------------------

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
    cursor: int | None = Field(None, ge=1, description="Return entries older than this seq")
    limit: int = Field(50, ge=1, le=500)


class AuditPage(BaseModel):
    items: list[AuditEntryRead]
    next_cursor: int | None


@tool("audit.search", risk="read")
def search(ctx: ToolContext, params: AuditSearch) -> AuditPage:
    """List audit entries of the caller's organisation, newest first, filtered and paginated."""
    rows = AuditRepository(ctx.session).search(
        org_id=ctx.org_id, actor=params.actor, action=params.action, target=params.target,
        since=params.since, until=params.until, before_seq=params.cursor, limit=params.limit + 1,
    )
    more = len(rows) > params.limit
    rows = rows[: params.limit]
    return AuditPage(items=[AuditEntryRead.of(r) for r in rows], next_cursor=rows[-1].seq if more else None)


def export_jsonl(session: Session, org_id: int | None, params: AuditSearch) -> Iterator[str]:
    """Yield the matching entries, oldest first, as JSON lines."""
    repo = AuditRepository(session)
    rows = repo.search(org_id=org_id, actor=params.actor, action=params.action, target=params.target,
                       since=params.since, until=params.until, limit=1_000_000)
    for row in reversed(rows):
        yield AuditEntryRead.of(row).model_dump_json() + "\n"


class NoInput(BaseModel):
    pass


@tool("audit.verify", risk="read")
def verify(ctx: ToolContext, params: NoInput) -> VerifyResult:
    """Verify the audit hash chain and signed checkpoints; name the first bad entry."""
    return verify_chain(ctx.session)


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
    """List the signed audit checkpoints with the public key that verifies them."""
    pub = public_key_b64()
    return CheckpointList(items=[
        CheckpointRead(seq=c.seq, head_hash=c.head_hash, ts=c.ts, key_id=c.key_id, signature=c.signature,
                       public_key=pub)
        for c in AuditRepository(ctx.session).checkpoints()
    ])


@tool("audit.checkpoint", risk="write")
def checkpoint(ctx: ToolContext, params: NoInput) -> CheckpointList:
    """Write a signed checkpoint of the audit chain head now."""
    cp = write_checkpoint(ctx.session)
    pub = public_key_b64()
    items = [] if cp is None else [CheckpointRead(seq=cp.seq, head_hash=cp.head_hash, ts=cp.ts,
                                                  key_id=cp.key_id, signature=cp.signature, public_key=pub)]
    return CheckpointList(items=items)
