"""Signed audit checkpoints: what they catch that the chain alone cannot (a cut tail, a recomputed chain),
independent verification with the public key, the export file, and the CLI and scheduler on scratch
databases (a SQLite file, or a PostgreSQL schema created and dropped by the test)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text, update

from memory.audit.models import AuditCheckpoint, AuditEntry, AuditHead
from memory.db import session_factory, session_scope
from tests.factories.audit import ENTRIES, append_entries, checkpoint, entry_row, rehash_from, tampering
from tests.factories.orgs import OrgFixture
from tests.support import ROOT, wait_for
from tests.support.database import IS_PG, TEST_DB_URL
from tests.support.processes import Proc, levqor_env
from tools.enterprise.audit_log import append, checkpoint_message, verify_chain, write_checkpoint

# ---- what only checkpoints catch (inside a rolled-back transaction) ---------------------------

def test_truncated_tail_is_caught_by_the_head_and_by_thecheckpoint() -> None:
    first, *_ = append_entries(4)
    top = checkpoint()
    cut_to = first + 1  # keep entries up to here; the checkpoint covers up to ``top``
    with tampering() as s:
        s.execute(ENTRIES.delete().where(ENTRIES.c.seq > cut_to))
        r = verify_chain(s)
        assert not r.ok and r.first_bad_seq == cut_to + 1 and "removed" in (r.problem or ""), r
        # The attacker also moves the head back: only the signed checkpoint still knows.
        last = entry_row(s, cut_to)
        s.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=cut_to, hash=last["hash"]))
        r = verify_chain(s)
        assert not r.ok and r.first_bad_seq == cut_to + 1 and f"covers entry {top}" in (r.problem or ""), r
        # Without checkpoints (none in the database, no export file) the cut would go unnoticed.
        s.execute(AuditCheckpoint.__table__.delete())
        assert verify_chain(s, export_path=Path("/nonexistent/levqor-checkpoints.jsonl")).ok
        # The export file outside the database still catches it.
        r = verify_chain(s)
        assert not r.ok and r.first_bad_seq == cut_to + 1


def test_recomputed_chain_is_caught_by_the_signedcheckpoint() -> None:
    append_entries(1)
    good = checkpoint()
    e1, e2, e3, e4 = append_entries(4)
    assert e1 == good + 1
    top = checkpoint()
    with tampering() as s:  # rewrite from the first entry after the previous checkpoint
        s.execute(update(ENTRIES).where(ENTRIES.c.seq == e1).values(actor="user:innocent"))
        rehash_from(s, e1)
        s.execute(AuditCheckpoint.__table__.delete().where(AuditCheckpoint.seq == top))  # hide it in the DB
        r = verify_chain(s)
        assert not r.ok and r.first_bad_seq == e1 and f"checkpoint at entry {top}" in (r.problem or ""), r
    with tampering() as s:  # rewrite from the middle: named as the range since the last good checkpoint
        s.execute(update(ENTRIES).where(ENTRIES.c.seq == e3).values(detail={"i": 7}))
        rehash_from(s, e3)
        r = verify_chain(s)
        assert not r.ok and r.first_bad_seq == e1 and f"{e1}..{top}" in (r.problem or ""), r
    with tampering() as s:  # a forged checkpoint for the rewritten chain has no valid signature
        s.execute(update(ENTRIES).where(ENTRIES.c.seq == e2).values(target="x"))
        rehash_from(s, e2)
        head = s.execute(select(AuditHead.seq, AuditHead.hash)).one()
        s.execute(update(AuditCheckpoint.__table__).where(AuditCheckpoint.seq == top)
                  .values(head_hash=head.hash))
        r = verify_chain(s)
        assert not r.ok and "invalid signature" in (r.problem or ""), r


# ---- checkpoints --------------------------------------------------------------------------

def test_checkpoint_signatures_verify_independently_with_the_public_key(client, org: OrgFixture, tmp_var: Path,
                                                                        set_settings) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    append_entries(2, org.org_id)
    # Checkpoints cover every organisation's entries: a tenant neither writes nor lists them.
    assert client.post("/v1/audit/checkpoints", headers=org.headers()).status_code == 403
    assert client.get("/v1/audit/checkpoints", headers=org.headers("auditor")).status_code == 403
    set_settings(staff_orgs=[org.slug])
    made = client.post("/v1/audit/checkpoints", headers=org.headers())
    assert made.status_code == 200 and made.json()["items"]
    assert client.post("/v1/audit/checkpoints", headers=org.headers("auditor")).status_code == 403
    listed = client.get("/v1/audit/checkpoints", headers=org.headers("auditor")).json()["items"]
    assert listed and listed[-1]["seq"] == made.json()["items"][0]["seq"]
    pub = Ed25519PublicKey.from_public_bytes(base64.b64decode(listed[0]["public_key"]))

    def message(cp: dict[str, Any]) -> bytes:
        ts = dt.datetime.fromisoformat(cp["ts"].replace("Z", "+00:00")).astimezone(dt.UTC).isoformat()
        return f"levqor-audit-checkpoint\n{cp['seq']}\n{cp['head_hash']}\n{ts}".encode()

    for cp in listed:
        pub.verify(base64.b64decode(cp["signature"]), message(cp))
    with session_scope() as s:  # each signed head hash is the real entry hash at that seq
        for cp in listed:
            assert s.get(AuditEntry, cp["seq"]).hash == cp["head_hash"]  # type: ignore[union-attr]
    exported = [json.loads(line) for line in (tmp_var / "audit-checkpoints.jsonl").read_text().splitlines()]
    assert {(c["seq"], c["signature"]) for c in listed} <= {(c["seq"], c["signature"]) for c in exported}
    for cp in exported:
        pub.verify(base64.b64decode(cp["signature"]), message(cp))
    forged = dict(listed[-1], seq=listed[-1]["seq"] + 1)
    with pytest.raises(InvalidSignature):
        pub.verify(base64.b64decode(forged["signature"]), message(forged))
    # The module's own message format is the documented one.
    last = listed[-1]
    assert checkpoint_message(last["seq"], last["head_hash"],
                              dt.datetime.fromisoformat(last["ts"].replace("Z", "+00:00"))) == message(last)


def test_rolled_back_checkpoint_never_reaches_the_export_file(tmp_var: Path) -> None:
    append_entries(1)
    export = tmp_var / "audit-checkpoints.jsonl"
    before = export.read_text() if export.exists() else ""
    s = session_factory()()
    try:
        append(s, actor="user:t", action="test.rollback")
        assert write_checkpoint(s) is not None
    finally:
        s.rollback()
        s.close()
    assert (export.read_text() if export.exists() else "") == before
    with session_scope() as s:
        assert verify_chain(s).ok


# ---- scratch databases: the CLI and the scheduler --------------------------------------------

@contextmanager
def scratch_db(tmp_path: Path) -> Iterator[str]:
    """A migrated database of its own: a SQLite file, or a PostgreSQL schema dropped afterwards."""
    from memory.db import dispose_engines
    from memory.migrate import upgrade

    if not IS_PG:
        url = f"sqlite:///{tmp_path / 'scratch.db'}"
        upgrade(url)
        try:
            yield url
        finally:
            dispose_engines()
        return
    schema = f"scratch_{uuid.uuid4().hex[:10]}"
    admin = create_engine(TEST_DB_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{TEST_DB_URL}?options=-csearch_path%3D{schema}"
    try:
        upgrade(url)
        yield url
    finally:
        dispose_engines()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "api.cli", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_cli_verify_exits_0_when_intact_and_1_naming_the_entry(tmp_path: Path) -> None:
    with scratch_db(tmp_path) as url:
        env = levqor_env(tmp_path / "var", url)
        factory = session_factory(url)
        with factory() as s, s.begin():
            for i in range(5):
                append(s, actor="user:1", action="test.cli", target=f"t{i}")
        assert _cli(env, "audit", "checkpoint").returncode == 0
        ok = _cli(env, "audit", "verify")
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "intact" in ok.stdout and "5 entries" in ok.stdout
        with factory() as s, s.begin():
            if IS_PG:
                s.execute(text("SET LOCAL session_replication_role = replica"))
            s.execute(update(ENTRIES).where(ENTRIES.c.seq == 3).values(action="test.innocent"))
        bad = _cli(env, "audit", "verify")
        assert bad.returncode == 1, bad.stdout + bad.stderr
        assert "entry 3" in bad.stdout
        as_json = _cli(env, "audit", "verify", "--json")
        assert as_json.returncode == 1 and json.loads(as_json.stdout)["first_bad_seq"] == 3


def test_scheduler_writes_signed_checkpoints_on_its_interval(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    with scratch_db(tmp_path) as url:
        var = tmp_path / "var"
        env = levqor_env(var, url, LEVQOR_AUDIT_CHECKPOINT_INTERVAL_S="1", LEVQOR_SCHEDULER_LEASE_S="3")
        factory = session_factory(url)

        def add(n: int) -> int:
            with factory() as s, s.begin():
                return [append(s, actor="user:1", action="test.sched").seq for _ in range(n)][-1]

        def checkpoint_at(seq: int) -> AuditCheckpoint | None:
            with factory() as s:
                return s.scalar(select(AuditCheckpoint).where(AuditCheckpoint.seq == seq))

        first = add(3)
        proc = Proc.levqor("scheduler", env=env, logdir=tmp_path / "logs")
        try:
            cp1 = wait_for(lambda: checkpoint_at(first), 40, f"a checkpoint at entry {first}", interval=0.2)
            second = add(2)
            cp2 = wait_for(lambda: checkpoint_at(second), 40, f"a checkpoint at entry {second}", interval=0.2)
        finally:
            code = proc.stop()
        assert code == 0, proc.stderr[-2000:]
        key = serialization.load_pem_private_key((var / "audit_ed25519.pem").read_bytes(), password=None)
        pub = key.public_key()
        for cp in (cp1, cp2):
            pub.verify(base64.b64decode(cp.signature), checkpoint_message(cp.seq, cp.head_hash, cp.ts))  # type: ignore[attr-defined]
        exported = [json.loads(x) for x in (var / "audit-checkpoints.jsonl").read_text().splitlines()]
        assert {first, second} <= {c["seq"] for c in exported}
        with factory() as s:
            assert s.get(AuditEntry, second).hash == cp2.head_hash  # type: ignore[union-attr]
