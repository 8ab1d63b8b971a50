"""The immutable audit log: the hash chain, search and export, the verify endpoint, tamper detection
(edits, deletions, reordering) inside rolled-back transactions, concurrent appends, PostgreSQL triggers."""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text, update
from sqlalchemy.orm import Session

from memory.audit.models import AuditHead
from memory.db import session_factory, session_scope
from tests.factories.audit import CONTENT, ENTRIES, append_entries, entry_row, tampering
from tests.factories.orgs import OrgFixture, make_org
from tests.support.database import IS_PG
from tools.enterprise.audit_log import append, entry_hash, verify_chain

# ---- the chain, search, export ---------------------------------------------------------------

def test_appends_form_a_chain_that_verifies() -> None:
    seqs = append_entries(3)
    assert seqs == [seqs[0], seqs[0] + 1, seqs[0] + 2]
    with session_scope() as s:
        rows = [entry_row(s, q) for q in [seqs[0] - 1, *seqs] if q >= 1]
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
    append_entries(1, org.org_id, actor="user:901", action="kx.created", target="key:901")
    append_entries(1, org.org_id, actor="user:902", action="kx.revoked", target="key:901")
    marks["t1"] = dt.datetime.now(dt.UTC)
    append_entries(1, org.org_id, actor="user:901", action="a_b.x", target="key:902")
    append_entries(1, org.org_id, actor="user:901", action="aXb.x", target="key:902")
    append_entries(1, org.org_id, actor="user:902", action="ux.role_changed", target="user:909")
    marks["t2"] = dt.datetime.now(dt.UTC)
    append_entries(2, org.org_id, actor="user:903", action="ox.settings_changed", target="org")
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

    (seq,) = append_entries(1, org.org_id)
    real = audit_tools.verify_chain

    def on_tampered_rows(session: Session, export_path: Path | None = None) -> Any:
        # Tamper inside the request's own transaction, verify, and undo it before the request commits
        # (on its connection: the GET's session is read-only and refuses ORM writes).
        conn = session.connection()
        if IS_PG:
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(update(ENTRIES).where(ENTRIES.c.seq == seq).values(target="elsewhere"))
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
    a, b, c = append_entries(3)
    with tampering() as s:
        s.execute(update(ENTRIES).where(ENTRIES.c.seq == b).values(target="someone-else"))
        r = verify_chain(s)
    assert not r.ok and r.first_bad_seq == b and "modified" in (r.problem or "")
    with tampering() as s:  # an edited JSON field too
        s.execute(update(ENTRIES).where(ENTRIES.c.seq == c).values(detail={"i": 99}))
        assert verify_chain(s).first_bad_seq == c
    with tampering() as s:  # edited and its own hash recomputed: the next entry no longer links
        row = entry_row(s, b)
        row["actor"] = "user:innocent"
        s.execute(update(ENTRIES).where(ENTRIES.c.seq == b).values(actor="user:innocent",
                                                                   hash=entry_hash(type("E", (), row))))
        r = verify_chain(s)
        assert not r.ok and r.first_bad_seq == b, r
    with session_scope() as s:
        assert verify_chain(s).ok  # the rollback left the real chain intact


def test_deleted_middle_entry_is_named() -> None:
    a, b, c = append_entries(3)
    with tampering() as s:
        s.execute(ENTRIES.delete().where(ENTRIES.c.seq == b))
        r = verify_chain(s)
    assert not r.ok and r.first_bad_seq == b and "missing" in (r.problem or "")


def test_reordered_entries_are_named() -> None:
    a, b, c, d = append_entries(4)
    with tampering() as s:
        rb, rc = entry_row(s, b), entry_row(s, c)
        s.execute(update(ENTRIES).where(ENTRIES.c.seq == b).values({k: rc[k] for k in CONTENT}))
        s.execute(update(ENTRIES).where(ENTRIES.c.seq == c).values({k: rb[k] for k in CONTENT}))
        r = verify_chain(s)
    assert not r.ok and r.first_bad_seq == b, r


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
                with session_scope(read_only=True) as s:  # as GET /v1/audit/verify does
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

    append_entries(1)
    s = session_factory()()
    try:
        with pytest.raises(DBAPIError) as caught:
            s.execute(text(statement))
        assert isinstance(caught.value.orig, InsufficientPrivilege)
        assert "append-only" in str(caught.value.orig)
    finally:
        s.rollback()
        s.close()
