"""The audit log's hash chain: append an entry in the caller's transaction, or detached after it.

Each entry's hash covers its fields and the previous entry's hash (``entry_hash``), so an edit, a
deletion in the middle or a reordering breaks the chain; ``tools.enterprise.audit_log`` signs
checkpoints of the head and verifies the whole chain. This module is the store's own rule for writing
an entry, so every layer above (the tools registry auditing a denial, a tool recording an action)
appends through it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from typing import Any

from sqlalchemy.orm import Session

from levqor.metrics import AUDIT_ENTRIES
from memory.audit.models import AuditEntry
from memory.audit.repository import AuditRepository
from memory.db import after_close, session_scope, utcnow

log = logging.getLogger("tools.enterprise.audit_log")


def _canonical(entry: Any) -> bytes:
    """The bytes an entry's hash covers; ``entry`` is a model or a row with the same attributes."""
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


def entry_hash(entry: Any) -> str:
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
        seq=head.seq + 1, ts=ts, org_id=org_id, actor=actor[:200], action=action[:100], target=target[:300],
        outcome=outcome[:20], request_id=request_id[:64] if request_id else None,
        before=_jsonable(before), after=_jsonable(after),
        detail=_jsonable(detail), prev_hash=head.hash,
    )
    entry.hash = entry_hash(entry)
    repo.add(entry, head)
    AUDIT_ENTRIES.labels(action=action).inc()
    return entry


def append_detached(*, session: Session | None = None, **kwargs: Any) -> None:
    """Append an entry that must survive the caller's rollback (denials).

    With a session, it is written in a new transaction once that session has closed (through
    :func:`memory.db.close_session`, as ``session_scope`` and the API dependency do); without one,
    at once, so never call it without the session while a transaction is open: on SQLite the new
    transaction would wait for the caller's write lock, on PostgreSQL for the chain head it may hold.
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
