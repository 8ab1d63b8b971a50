"""Sessions: a read-only session never takes SQLite's write lock and refuses to write; a writing one
takes the lock up front (BEGIN IMMEDIATE)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, event, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from memory.db import ReadOnlySessionError, get_engine, make_engine, read_engine, session_scope
from memory.identity.models import Organization
from tests.factories.orgs import make_org
from tests.factories.settings import override_settings, scratch_sqlite
from tests.support.database import IS_PG, TEST_DB_URL


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


# ---- PostgreSQL pool: a connection is tested on checkout only after sitting idle -------------------

def _kill_pooled_backend(engine: Engine) -> None:
    """Terminate the server process behind the pool's one idle connection (as a restart or a proxy would)."""
    with engine.connect() as conn:
        pid = conn.scalar(text("SELECT pg_backend_pid()"))
    killer = create_engine(engine.url, poolclass=NullPool)
    with killer.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
    killer.dispose()


@pytest.mark.skipif(not IS_PG, reason="PostgreSQL's connection pool (SQLite opens a file, nothing to ping)")
@pytest.mark.parametrize("idle_s", [0.0, 3600.0])
def test_a_dead_pooled_connection_is_replaced_only_when_it_sat_idle_long_enough(idle_s: float) -> None:
    with override_settings(db_ping_idle_s=idle_s, db_pool_size=1):
        engine = make_engine(TEST_DB_URL)
        try:
            _kill_pooled_backend(engine)
            with engine.connect() as conn:
                if idle_s == 0:  # tested on checkout: the dead connection is replaced, the query works
                    assert conn.scalar(text("SELECT 41 + 1")) == 42
                else:  # in steady use no round trip is spent on a test: the dead connection fails once
                    with pytest.raises(DBAPIError) as err:
                        conn.scalar(text("SELECT 41 + 1"))
                    assert err.value.connection_invalidated
            with engine.connect() as conn:  # either way the pool heals
                assert conn.scalar(text("SELECT 1")) == 1
        finally:
            engine.dispose()
