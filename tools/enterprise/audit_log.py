"""Immutable audit log: a hash chain over every privileged action, with signed checkpoints.

Entries are written by ``memory.audit.chain`` (``append`` in the caller's transaction,
``append_detached`` after it; both are importable from here as the tools' audit API).

Each entry's hash covers its fields and the previous entry's hash, so an edit, a deletion in the
middle or a reordering breaks the chain. A deleted tail (or a chain recomputed from some point)
is caught by Ed25519-signed checkpoints ``(seq, head hash)`` kept in the database and in an
append-only file outside it. On PostgreSQL triggers also refuse UPDATE, DELETE and TRUNCATE.

A checkpoint signs, with Ed25519, the UTF-8 bytes of
``"levqor-audit-checkpoint\n{seq}\n{head_hash}\n{ts}"`` where ``ts`` is the checkpoint time in UTC
as ``datetime.isoformat()`` (``+00:00``); anyone holding the public key can check it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session, SessionTransaction

from levqor.settings import get_settings
from memory.audit.chain import append, append_detached, entry_hash
from memory.audit.models import AuditCheckpoint, AuditEntry
from memory.audit.repository import GENESIS, AuditRepository
from memory.db import session_scope, utcnow
from tools.context import ToolContext
from tools.schedules import Schedule

__all__ = ["append", "append_detached", "entry_hash", "record", "verify_chain", "write_checkpoint"]

log = logging.getLogger(__name__)


def record(ctx: ToolContext, action: str, target: str = "", **kwargs: Any) -> AuditEntry:
    """Append an entry for the principal in ``ctx``."""
    kwargs.setdefault("org_id", ctx.principal.org_id)
    return append(ctx.session, actor=ctx.principal.actor, action=action, target=target,
                  request_id=ctx.request_id, **kwargs)


def record_platform(ctx: ToolContext, action: str, target: str, affected_orgs: Iterable[int] = (),
                    **kwargs: Any) -> AuditEntry:
    """A platform-wide action: one entry in the platform log (no organisation), and one in the log of
    every organisation whose work it affects (so each tenant sees what was done to its work)."""
    detail = dict(kwargs.pop("detail", None) or {})
    entry = append(ctx.session, actor=ctx.principal.actor, action=action, target=target,
                   request_id=ctx.request_id, org_id=None, detail=detail or None, **kwargs)
    for org_id in sorted(set(affected_orgs)):
        append(ctx.session, actor=ctx.principal.actor, action=action, target=target, request_id=ctx.request_id,
               org_id=org_id, detail={**detail, "platform_seq": entry.seq}, **kwargs)
    return entry


# ---- signing -------------------------------------------------------------------------------

def _load_or_create_key() -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

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


def _raw_public(key: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(pub).decode()


def public_key_b64() -> str:
    """The checkpoint signing key's raw Ed25519 public key, base64 (creates the key pair if missing)."""
    return _raw_public(_load_or_create_key())


def _known_public_keys() -> dict[str, str]:
    """key id -> public key, from the existing key file only (verification never creates a key)."""
    from cryptography.hazmat.primitives import serialization

    path = get_settings().resolved_audit_key_path
    if not path.exists():
        return {}
    pub = _raw_public(serialization.load_pem_private_key(path.read_bytes(), password=None))
    return {_key_id(pub): pub}


def _key_id(pub_b64: str) -> str:
    return hashlib.sha256(pub_b64.encode()).hexdigest()[:16]


def checkpoint_message(seq: int, head_hash: str, ts: dt.datetime) -> bytes:
    """The exact bytes a checkpoint signs."""
    return f"levqor-audit-checkpoint\n{seq}\n{head_hash}\n{ts.astimezone(dt.UTC).isoformat()}".encode()


_EXPORT_KEY = "levqor_audit_checkpoint_export"


def write_checkpoint(session: Session) -> AuditCheckpoint | None:
    """Sign ``(seq, head hash)`` of the current head; store it, and append it to the export file on commit."""
    repo = AuditRepository(session)
    head = repo.lock_head()
    if head.seq == 0:
        return None
    last = repo.last_checkpoint()
    if last is not None and last.seq == head.seq:
        return last
    key = _load_or_create_key()
    pub = _raw_public(key)
    ts = utcnow()
    sig = key.sign(checkpoint_message(head.seq, head.hash, ts))
    cp = AuditCheckpoint(ts=ts, seq=head.seq, head_hash=head.hash, key_id=_key_id(pub),
                         signature=base64.b64encode(sig).decode())
    repo.add_checkpoint(cp)
    # Written only once the checkpoint committed: a rolled-back one must not reach the file, where
    # it would later look like a truncated log.
    session.info.setdefault(_EXPORT_KEY, []).append(json.dumps(_cp_json(cp)))
    return cp


@sa_event.listens_for(Session, "after_commit")
def _export_committed_checkpoints(session: Session) -> None:
    lines = session.info.pop(_EXPORT_KEY, None)
    if not lines:
        return
    export = get_settings().resolved_checkpoint_export
    try:
        export.parent.mkdir(parents=True, exist_ok=True)
        with export.open("a") as fh:
            fh.write("".join(line + "\n" for line in lines))
    except OSError:
        log.exception("could not append audit checkpoint to the export file",
                      extra={"fields": {"path": str(export)}})


@sa_event.listens_for(Session, "after_transaction_end")
def _drop_uncommitted_checkpoints(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_EXPORT_KEY, None)


def _cp_json(cp: AuditCheckpoint) -> dict[str, Any]:
    return {"seq": cp.seq, "head_hash": cp.head_hash, "ts": cp.ts.isoformat(), "key_id": cp.key_id,
            "signature": cp.signature}


def _verify_signature(cp: dict[str, Any], pub_b64: str) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    pub = Ed25519PublicKey.from_public_bytes(base64.b64decode(pub_b64))
    try:
        ts = dt.datetime.fromisoformat(cp["ts"])
        pub.verify(base64.b64decode(cp["signature"]), checkpoint_message(int(cp["seq"]), cp["head_hash"], ts))
        return True
    except (InvalidSignature, ValueError, KeyError, TypeError):
        return False


# ---- verification --------------------------------------------------------------------------

class VerifyResult(BaseModel):
    ok: bool
    entries: int
    head_seq: int
    checkpoints_checked: int
    first_bad_seq: int | None = None
    problem: str | None = None


def _load_checkpoints(session: Session, export_path: Path) -> tuple[list[dict[str, Any]], str | None]:
    """Checkpoints from the database and the export file, de-duplicated, in seq order."""
    found: dict[tuple[int, str, str], dict[str, Any]] = {}
    for cp in AuditRepository(session).checkpoints():
        found[(cp.seq, cp.head_hash, cp.signature)] = _cp_json(cp)
    problem = None
    if export_path.exists():
        for n, line in enumerate(export_path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                c = json.loads(line)
                key = (int(c["seq"]), str(c["head_hash"]), str(c["signature"]))
            except (ValueError, KeyError, TypeError):
                problem = problem or f"checkpoint export {export_path} line {n} is not a checkpoint"
                continue
            found.setdefault(key, c)
    return sorted(found.values(), key=lambda c: int(c["seq"])), problem


def verify_chain(session: Session, export_path: Path | None = None) -> VerifyResult:
    """Walk the whole chain and every checkpoint; report the first bad entry.

    The chain walk finds an edited entry, a deleted middle entry and a reordering. The head row
    finds a cut tail unless it was rewritten too; the signed checkpoints find that, and a chain
    recomputed from some entry onward (as the range of entries after the last checkpoint that
    still matches).
    """
    repo = AuditRepository(session)
    problems: list[tuple[int, str]] = []
    prev = GENESIS
    count = 0
    expected = 1
    last_hash: dict[int, str] = {}
    # Head and checkpoints are read before the walk: entries appended meanwhile (another
    # transaction, on PostgreSQL) can only add to what the walk sees, never look like a cut tail.
    head = repo.head()
    head_mark = head.seq if head is not None else 0
    cps, file_problem = _load_checkpoints(session, export_path or get_settings().resolved_checkpoint_export)
    cp_seqs = {int(c["seq"]) for c in cps}
    walk_broken = False
    for row in repo.iter_rows():
        seq = int(row.seq)
        self_ok = entry_hash(row) == row.hash
        if seq != expected:
            if seq > expected:
                problems.append((expected, f"entry {expected} is missing (deleted; the next entry is {seq})"))
            else:
                problems.append((seq, f"entry {seq} is out of order"))
            walk_broken = True
            break
        if row.prev_hash != prev:
            if self_ok and seq > 1:
                problems.append((seq - 1, f"entry {seq - 1} was altered and its hash recomputed "
                                          f"(entry {seq} no longer links to it)"))
            else:
                problems.append((seq, f"entry {seq} does not link to entry {seq - 1} "
                                      "(deleted, inserted or reordered)"))
            walk_broken = True
            break
        if not self_ok:
            problems.append((seq, f"entry {seq} was modified (its hash does not match its content)"))
            walk_broken = True
            break
        if seq in cp_seqs:
            last_hash[seq] = row.hash
        prev = row.hash
        count += 1
        expected += 1
    head_seq = expected - 1
    if not walk_broken and head_mark > head_seq:
        problems.append((head_seq + 1, f"entries {head_seq + 1}..{head_mark} were removed (log truncated)"))
    keys = _known_public_keys() if cps else {}
    checked = 0
    good_until = 0
    for cp in cps:
        seq = int(cp["seq"])
        pub = keys.get(str(cp.get("key_id")))
        if pub is None:
            problems.append((seq, f"checkpoint at entry {seq} is signed by an unknown key "
                                  f"{cp.get('key_id')!r} (is the audit key file missing?)"))
            break
        if not _verify_signature(cp, pub):
            problems.append((seq, f"checkpoint at entry {seq} has an invalid signature"))
            break
        checked += 1
        if seq > head_seq:
            if not walk_broken:
                problems.append((head_seq + 1, f"log truncated: a signed checkpoint covers entry {seq}, "
                                               f"the log ends at entry {head_seq}"))
            break
        if last_hash.get(seq) != cp["head_hash"]:
            problems.append((good_until + 1, f"entries {good_until + 1}..{seq} do not match the signed "
                                             f"checkpoint at entry {seq} (chain rewritten)"))
            break
        good_until = seq
    if problems:
        first, problem = min(problems, key=lambda p: p[0])
        return VerifyResult(ok=False, entries=count, head_seq=head_seq, checkpoints_checked=checked,
                            first_bad_seq=first, problem=problem)
    if file_problem:
        return VerifyResult(ok=False, entries=count, head_seq=head_seq, checkpoints_checked=checked,
                            problem=file_problem)
    return VerifyResult(ok=True, entries=count, head_seq=head_seq, checkpoints_checked=checked)


# ---- tools ---------------------------------------------------------------------------------


def _scheduled_checkpoint() -> None:
    with session_scope() as session:
        write_checkpoint(session)


def schedules() -> list[Schedule]:
    """A signed checkpoint of the chain head every ``LEVQOR_AUDIT_CHECKPOINT_INTERVAL_S``."""
    return [Schedule("audit.checkpoint", float(get_settings().audit_checkpoint_interval_s), _scheduled_checkpoint)]
