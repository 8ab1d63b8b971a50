"""The immutable audit log: chain, search and export, tamper detection, checkpoints, triggers.

The chain is global and shared with every other test, so tampering happens inside one transaction
that is rolled back (the verifier reads the tampered rows through that same session), or in a
scratch database (a SQLite file, or a PostgreSQL schema) created and dropped by the test.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text, update
from sqlalchemy.orm import Session

from memory.audit.models import AuditCheckpoint, AuditEntry, AuditHead
from memory.db import session_factory, session_scope
from tests.conftest import IS_PG, TEST_DB_URL, OrgFixture
from tests.procs import ROOT, Proc, levqor_env, wait_for
from tools.enterprise.audit_log import (
    append,
    checkpoint_message,
    entry_hash,
    verify_chain,
    write_checkpoint,
)

ENTRIES = AuditEntry.__table__
CONTENT = [c.name for c in ENTRIES.c if c.name != "seq"]


def _append(n: int, org_id: int | None = None, **fields: Any) -> list[int]:
    with session_scope() as s:
        return [append(s, actor=fields.get("actor", "user:t"), action=fields.get("action", "test.tamper"),
                       target=fields.get("target", f"t:{uuid.uuid4().hex[:6]}"), org_id=org_id,
                       detail={"i": i}).seq for i in range(n)]


def _checkpoint() -> int:
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


def _row(s: Session, seq: int) -> dict[str, Any]:
    return dict(s.execute(select(*ENTRIES.c).where(ENTRIES.c.seq == seq)).one()._mapping)


def _rehash_from(s: Session, seq: int) -> None:
    """Recompute every hash from ``seq`` to the end so the chain links again (an attacker's rewrite)."""
    prev = _row(s, seq - 1)["hash"] if seq > 1 else "0" * 64
    last = seq
    for row in list(s.execute(select(*ENTRIES.c).where(ENTRIES.c.seq >= seq).order_by(ENTRIES.c.seq))):
        fields = dict(row._mapping)
        fields["prev_hash"] = prev
        new = entry_hash(type("E", (), fields))
        s.execute(update(ENTRIES).where(ENTRIES.c.seq == row.seq).values(prev_hash=prev, hash=new))
        prev, last = new, row.seq
    s.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=last, hash=prev))


# ---- the chain, search, export ---------------------------------------------------------------

def test_appends_form_a_chain_that_verifies() -> None:
    seqs = _append(3)
    assert seqs == [seqs[0], seqs[0] + 1, seqs[0] + 2]
    with session_scope() as s:
        rows = [_row(s, q) for q in [seqs[0] - 1, *seqs] if q >= 1]
        for before, after in zip(rows, rows[1:], strict=False):
            assert after["prev_hash"] == before["hash"]
        for row in rows:
            assert entry_hash(type("E", (), row)) == row["hash"]
        head = s.get(AuditHead, 1)
        assert head is not None and head.seq == seqs[-1] and head.hash == rows[-1]["hash"]
        result = verify_chain(s)
    assert result.ok, result.problem
    assert result.head_seq >= seqs[-1] and result.entries == result.head_seq


def _seed_search(org: OrgFixture) -> dict[str, Any]:
    marks: dict[str, Any] = {}
    _append(1, org.org_id, actor="user:901", action="kx.created", target="key:901")
    _append(1, org.org_id, actor="user:902", action="kx.revoked", target="key:901")
    marks["t1"] = dt.datetime.now(dt.UTC)
    _append(1, org.org_id, actor="user:901", action="a_b.x", target="key:902")
    _append(1, org.org_id, actor="user:901", action="aXb.x", target="key:902")
    _append(1, org.org_id, actor="user:902", action="ux.role_changed", target="user:909")
    marks["t2"] = dt.datetime.now(dt.UTC)
    _append(2, org.org_id, actor="user:903", action="ox.settings_changed", target="org")
    return marks


def test_search_paginates_with_a_cursor_and_filters(client, org: OrgFixture) -> None:
    marks = _seed_search(org)
    h = org.headers("auditor")
    everything = client.get("/v1/audit", params={"limit": 500}, headers=h).json()["items"]
    assert [e["seq"] for e in everything] == sorted((e["seq"] for e in everything), reverse=True)
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/audit", params=params, headers=h).json()
        seen += [e["seq"] for e in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert cursor == page["items"][-1]["seq"]
    assert seen == [e["seq"] for e in everything] and len(set(seen)) == len(seen)
    assert pages == -(-len(everything) // 3)

    def actions(**params: Any) -> list[str]:
        r = client.get("/v1/audit", params={"limit": 500, **params}, headers=h)
        assert r.status_code == 200, r.text
        return [e["action"] for e in r.json()["items"]]

    assert actions(action="kx.*") == ["kx.revoked", "kx.created"]
    assert actions(action="a_b.*") == ["a_b.x"]  # "_" is not a wildcard
    assert actions(action="%") == []  # neither is "%"
    assert actions(action="ux.role_changed") == ["ux.role_changed"]
    assert actions(actor="user:902") == ["ux.role_changed", "kx.revoked"]
    assert actions(target="key:902") == ["aXb.x", "a_b.x"]
    assert actions(since=marks["t1"].isoformat(), until=marks["t2"].isoformat()) == [
        "ux.role_changed", "aXb.x", "a_b.x"]
    assert "kx.created" not in actions(since=marks["t1"].isoformat())
    assert actions(until=marks["t1"].isoformat(), action="kx.*") == ["kx.revoked", "kx.created"]
    # A time without an offset is UTC, not a 500.
    naive = marks["t1"].replace(tzinfo=None).isoformat()
    assert actions(since=naive) == actions(since=marks["t1"].isoformat())
    assert client.get("/v1/audit", params={"since": "yesterday"}, headers=h).status_code == 422
    # Another organisation sees none of it.
    from tests.conftest import make_org

    other = make_org()
    theirs = client.get("/v1/audit", params={"limit": 500}, headers=other.headers("auditor")).json()["items"]
    assert theirs and all(e["org_id"] == other.org_id for e in theirs)


def test_export_is_jsonl_oldest_first_and_is_itself_audited(client, org: OrgFixture) -> None:
    _seed_search(org)
    r = client.get("/v1/audit/export", params={"action": "kx.*"}, headers=org.headers("auditor"))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert [e["action"] for e in lines] == ["kx.created", "kx.revoked"]
    assert lines[0]["seq"] < lines[1]["seq"] and all(len(e["hash"]) == 64 for e in lines)
    everything = client.get("/v1/audit/export", headers=org.headers("auditor")).text.splitlines()
    assert len(everything) >= 8
    exported = client.get("/v1/audit", params={"action": "audit.exported"}, headers=org.headers("auditor"))
    assert [e["detail"] for e in exported.json()["items"]] == [{"limit": 50}, {"action": "kx.*", "limit": 50}]
    assert client.get("/v1/audit/export", headers=org.headers("viewer")).status_code == 403


def test_verify_endpoint_allows_auditors_and_admins_only(client, org: OrgFixture) -> None:
    for role in ("auditor", "admin"):
        r = client.get("/v1/audit/verify", headers=org.headers(role))
        assert r.status_code == 200, r.text
        assert r.json()["ok"] is True and r.json()["first_bad_seq"] is None
    assert client.get("/v1/audit/verify", headers=org.headers("viewer")).status_code == 403


def test_verify_endpoint_answers_409_naming_the_first_bad_entry(client, org: OrgFixture,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import tools.enterprise.audit_tools as audit_tools

    (seq,) = _append(1, org.org_id)
    real = audit_tools.verify_chain

    def on_tampered_rows(session: Session, export_path: Path | None = None) -> Any:
        # Tamper inside the request's own transaction, verify, and undo it before the request commits.
        if IS_PG:
            session.execute(text("SET LOCAL session_replication_role = replica"))
        session.execute(update(ENTRIES).where(ENTRIES.c.seq == seq).values(target="elsewhere"))
        try:
            return real(session, export_path)
        finally:
            session.rollback()

    monkeypatch.setattr(audit_tools, "verify_chain", on_tampered_rows)
    r = client.get("/v1/audit/verify", headers=org.headers("auditor"))
    assert r.status_code == 409, r.text
    assert r.json()["ok"] is False and r.json()["first_bad_seq"] == seq and f"entry {seq}" in r.json()["problem"]
    monkeypatch.undo()
    assert client.get("/v1/audit/verify", headers=org.headers("auditor")).json()["ok"] is True


# ---- tamper detection (inside a rolled-back transaction) --------------------------------------

def test_edited_field_is_named() -> None:
    a, b, c = _append(3)
    with tampering() as s:
        s.execute(update(ENTRIES).where(ENTRIES.c.seq == b).values(target="someone-else"))
        r = verify_chain(s)
    assert not r.ok and r.first_bad_seq == b and "modified" in (r.problem or "")
    with tampering() as s:  # an edited JSON field too
        s.execute(update(ENTRIES).where(ENTRIES.c.seq == c).values(detail={"i": 99}))
        assert verify_chain(s).first_bad_seq == c
    with tampering() as s:  # edited and its own hash recomputed: the next entry no longer links
        row = _row(s, b)
        row["actor"] = "user:innocent"
        s.execute(update(ENTRIES).where(ENTRIES.c.seq == b).values(actor="user:innocent",
                                                                   hash=entry_hash(type("E", (), row))))
        r = verify_chain(s)
        assert not r.ok and r.first_bad_seq == b, r
    with session_scope() as s:
        assert verify_chain(s).ok  # the rollback left the real chain intact


def test_deleted_middle_entry_is_named() -> None:
    a, b, c = _append(3)
    with tampering() as s:
        s.execute(ENTRIES.delete().where(ENTRIES.c.seq == b))
        r = verify_chain(s)
    assert not r.ok and r.first_bad_seq == b and "missing" in (r.problem or "")


def test_reordered_entries_are_named() -> None:
    a, b, c, d = _append(4)
    with tampering() as s:
        rb, rc = _row(s, b), _row(s, c)
        s.execute(update(ENTRIES).where(ENTRIES.c.seq == b).values({k: rc[k] for k in CONTENT}))
        s.execute(update(ENTRIES).where(ENTRIES.c.seq == c).values({k: rb[k] for k in CONTENT}))
        r = verify_chain(s)
    assert not r.ok and r.first_bad_seq == b, r


def test_truncated_tail_is_caught_by_the_head_and_by_the_checkpoint() -> None:
    first, *_ = _append(4)
    top = _checkpoint()
    cut_to = first + 1  # keep entries up to here; the checkpoint covers up to ``top``
    with tampering() as s:
        s.execute(ENTRIES.delete().where(ENTRIES.c.seq > cut_to))
        r = verify_chain(s)
        assert not r.ok and r.first_bad_seq == cut_to + 1 and "removed" in (r.problem or ""), r
        # The attacker also moves the head back: only the signed checkpoint still knows.
        last = _row(s, cut_to)
        s.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=cut_to, hash=last["hash"]))
        r = verify_chain(s)
        assert not r.ok and r.first_bad_seq == cut_to + 1 and f"covers entry {top}" in (r.problem or ""), r
        # Without checkpoints (none in the database, no export file) the cut would go unnoticed.
        s.execute(AuditCheckpoint.__table__.delete())
        assert verify_chain(s, export_path=Path("/nonexistent/levqor-checkpoints.jsonl")).ok
        # The export file outside the database still catches it.
        r = verify_chain(s)
        assert not r.ok and r.first_bad_seq == cut_to + 1


def test_recomputed_chain_is_caught_by_the_signed_checkpoint() -> None:
    _append(1)
    good = _checkpoint()
    e1, e2, e3, e4 = _append(4)
    assert e1 == good + 1
    top = _checkpoint()
    with tampering() as s:  # rewrite from the first entry after the previous checkpoint
        s.execute(update(ENTRIES).where(ENTRIES.c.seq == e1).values(actor="user:innocent"))
        _rehash_from(s, e1)
        s.execute(AuditCheckpoint.__table__.delete().where(AuditCheckpoint.seq == top))  # hide it in the DB
        r = verify_chain(s)
        assert not r.ok and r.first_bad_seq == e1 and f"checkpoint at entry {top}" in (r.problem or ""), r
    with tampering() as s:  # rewrite from the middle: named as the range since the last good checkpoint
        s.execute(update(ENTRIES).where(ENTRIES.c.seq == e3).values(detail={"i": 7}))
        _rehash_from(s, e3)
        r = verify_chain(s)
        assert not r.ok and r.first_bad_seq == e1 and f"{e1}..{top}" in (r.problem or ""), r
    with tampering() as s:  # a forged checkpoint for the rewritten chain has no valid signature
        s.execute(update(ENTRIES).where(ENTRIES.c.seq == e2).values(target="x"))
        _rehash_from(s, e2)
        head = s.execute(select(AuditHead.seq, AuditHead.hash)).one()
        s.execute(update(AuditCheckpoint.__table__).where(AuditCheckpoint.seq == top)
                  .values(head_hash=head.hash))
        r = verify_chain(s)
        assert not r.ok and "invalid signature" in (r.problem or ""), r


# ---- checkpoints --------------------------------------------------------------------------

def test_checkpoint_signatures_verify_independently_with_the_public_key(client, org: OrgFixture,
                                                                        tmp_var: Path) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    _append(2, org.org_id)
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
    _append(1)
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


# ---- concurrency ------------------------------------------------------------------------------

def test_concurrent_appends_form_a_gap_free_valid_chain() -> None:
    threads, per_thread = 8, 15
    errors: list[BaseException] = []
    got: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def work(n: int) -> None:
        try:
            start.wait(timeout=30)
            for i in range(per_thread):
                with session_scope() as s:
                    seq = append(s, actor=f"agent:t{n}", action="test.concurrent", detail={"i": i}).seq
                with lock:
                    got.append(seq)
        except BaseException as exc:  # reported below
            errors.append(exc)

    verdicts: list[Any] = []
    done = threading.Event()

    def verifier() -> None:  # verifying while others append must never report a cut tail
        try:
            while not done.is_set():
                with session_scope() as s:
                    verdicts.append(verify_chain(s))
        except BaseException as exc:  # reported below
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    checker = threading.Thread(target=verifier)
    checker.start()
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=120)
    done.set()
    checker.join(timeout=120)
    assert not errors, errors
    assert verdicts and [v.problem for v in verdicts if not v.ok] == []
    assert len(got) == threads * per_thread and len(set(got)) == len(got)
    assert sorted(got) == list(range(min(got), min(got) + len(got)))
    with session_scope() as s:
        r = verify_chain(s)
    assert r.ok, r.problem


# ---- PostgreSQL triggers ------------------------------------------------------------------------

@pytest.mark.skipif(not IS_PG, reason="the append-only triggers exist on PostgreSQL only")
@pytest.mark.parametrize("statement", [
    "UPDATE audit_entries SET target = 'x' WHERE seq = (SELECT max(seq) FROM audit_entries)",
    "DELETE FROM audit_entries WHERE seq = (SELECT max(seq) FROM audit_entries)",
    "TRUNCATE audit_entries",
])
def test_postgres_triggers_refuse_update_delete_truncate(statement: str) -> None:
    from psycopg.errors import InsufficientPrivilege
    from sqlalchemy.exc import DBAPIError

    _append(1)
    s = session_factory()()
    try:
        with pytest.raises(DBAPIError) as caught:
            s.execute(text(statement))
        assert isinstance(caught.value.orig, InsufficientPrivilege)
        assert "append-only" in str(caught.value.orig)
    finally:
        s.rollback()
        s.close()


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
