"""Audit chain entries and checkpoints, and tampering with them inside a transaction that is rolled back.

The chain is global and shared with every other test, so tampering happens inside one transaction
that is rolled back (the verifier reads the tampered rows through that same session).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from memory.audit.models import AuditEntry, AuditHead
from memory.db import session_factory, session_scope
from tests.support.database import IS_PG
from tools.enterprise.audit_log import append, entry_hash, write_checkpoint

ENTRIES = AuditEntry.__table__
CONTENT = [c.name for c in ENTRIES.c if c.name != "seq"]


def append_entries(n: int, org_id: int | None = None, **fields: Any) -> list[int]:
    """Append ``n`` entries (committed); return their sequence numbers."""
    with session_scope() as s:
        return [append(s, actor=fields.get("actor", "user:t"), action=fields.get("action", "test.tamper"),
                       target=fields.get("target", f"t:{uuid.uuid4().hex[:6]}"), org_id=org_id,
                       detail={"i": i}).seq for i in range(n)]


def checkpoint() -> int:
    """Write a signed checkpoint of the head (committed); return the entry it covers."""
    with session_scope() as s:
        cp = write_checkpoint(s)
        assert cp is not None
        return cp.seq


@contextmanager
def tampering() -> Iterator[Session]:
    """A session whose writes bypass the PostgreSQL append-only triggers and are rolled back."""
    s = session_factory()()
    try:
        if IS_PG:
            s.execute(text("SET LOCAL session_replication_role = replica"))
        yield s
    finally:
        s.rollback()
        s.close()


def entry_row(s: Session, seq: int) -> dict[str, Any]:
    return dict(s.execute(select(*ENTRIES.c).where(ENTRIES.c.seq == seq)).one()._mapping)


def rehash_from(s: Session, seq: int) -> None:
    """Recompute every hash from ``seq`` to the end so the chain links again (an attacker's rewrite)."""
    prev = entry_row(s, seq - 1)["hash"] if seq > 1 else "0" * 64
    last = seq
    for row in list(s.execute(select(*ENTRIES.c).where(ENTRIES.c.seq >= seq).order_by(ENTRIES.c.seq))):
        fields = dict(row._mapping)
        fields["prev_hash"] = prev
        new = entry_hash(type("E", (), fields))
        s.execute(update(ENTRIES).where(ENTRIES.c.seq == row.seq).values(prev_hash=prev, hash=new))
        prev, last = new, row.seq
    s.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=last, hash=prev))
