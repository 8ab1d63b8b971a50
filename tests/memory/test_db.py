"""Sessions: a read-only session never takes SQLite's write lock and refuses to write; a writing one
takes the lock up front (BEGIN IMMEDIATE)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event, select, text, update

from memory.db import ReadOnlySessionError, get_engine, read_engine, session_scope
from memory.identity.models import Organization
from tests.factories.orgs import make_org
from tests.factories.settings import scratch_sqlite


@pytest.fixture()
def sqlite_db(tmp_path: Path) -> Iterator[str]:
    with scratch_sqlite(tmp_path) as url:
        yield url


def _statements(url: str) -> list[str]:
    seen: list[str] = []
    event.listen(get_engine(url), "before_cursor_execute", lambda _c, _cur, stmt, *_a: seen.append(stmt))
    return seen


def test_read_only_sessions_begin_deferred_and_writing_ones_immediate(sqlite_db: str) -> None:
    seen = _statements(sqlite_db)
    with session_scope(read_only=True) as s:
        s.execute(text("SELECT 1"))
    with read_engine().connect() as conn:
        conn.execute(text("SELECT 2"))
    with session_scope() as s:
        s.execute(text("SELECT 3"))
    begins = [stmt for stmt in seen if stmt.startswith("BEGIN")]
    assert begins == ["BEGIN", "BEGIN", "BEGIN IMMEDIATE"], seen


def test_a_read_only_session_reads_while_another_connection_holds_the_write_lock(sqlite_db: str) -> None:
    org = make_org()
    writer = sqlite3.connect(sqlite_db.removeprefix("sqlite:///"), isolation_level=None, timeout=0)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE organizations SET name = 'uncommitted' WHERE id = ?", (org.org_id,))
        with session_scope(read_only=True) as s:  # a writing session would wait for the lock here
            name = s.scalar(select(Organization.name).where(Organization.id == org.org_id))
        assert name == f"Org {org.slug}"
    finally:
        writer.rollback()
        writer.close()


def test_a_read_only_session_refuses_to_write(sqlite_db: str) -> None:
    org = make_org()
    with pytest.raises(ReadOnlySessionError), session_scope(read_only=True) as s:
        o = s.get(Organization, org.org_id)
        assert o is not None
        o.name = "changed"
        s.flush()
    with pytest.raises(ReadOnlySessionError), session_scope(read_only=True) as s:
        s.add(Organization(slug="nope", name="nope", plan="free", settings={}))
        s.flush()
    with pytest.raises(ReadOnlySessionError), session_scope(read_only=True) as s:
        s.execute(update(Organization).where(Organization.id == org.org_id).values(name="changed"))
    with session_scope(read_only=True) as s:
        assert s.scalar(select(Organization.name).where(Organization.id == org.org_id)) == f"Org {org.slug}"
        assert s.scalar(select(Organization.id).where(Organization.slug == "nope")) is None
