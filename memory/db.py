"""Engine, sessions and the declarative base.

Sessions commit at the edge (request, job, agent run): use :func:`session_scope`. Tools and
repositories may ``flush()`` but never ``commit()``.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from levqor.settings import get_settings

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base for every model."""

    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on both SQLite and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def aware(t: dt.datetime) -> dt.datetime:
    """``t`` as an aware UTC time (a naive value read back from the database is UTC)."""
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


_lock = threading.Lock()
_engines: dict[str, Engine] = {}
_factories: dict[str, sessionmaker[Session]] = {}


def make_engine(url: str) -> Engine:
    """Create an engine with the pragmas Levqor relies on."""
    settings = get_settings()
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _rec: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # Take the write lock up front: a deferred transaction that reads and then writes can
            # fail with SQLITE_BUSY_SNAPSHOT, which busy_timeout does not cover.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
    )


def get_engine(url: str | None = None) -> Engine:
    """Return the shared engine for ``url`` (default: the configured database)."""
    url = url or get_settings().resolved_database_url
    with _lock:
        if url not in _engines:
            if url.startswith("sqlite:///"):
                from pathlib import Path

                Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            _engines[url] = make_engine(url)
            _factories[url] = sessionmaker(_engines[url], expire_on_commit=False)
        return _engines[url]


def session_factory(url: str | None = None) -> sessionmaker[Session]:
    url = url or get_settings().resolved_database_url
    get_engine(url)
    return _factories[url]


def dispose_engines() -> None:
    """Close every pooled connection (tests, forks)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _factories.clear()


@contextmanager
def session_scope() -> Iterator[Session]:
    """Open a session that commits on success and rolls back on error (the edge)."""
    session = session_factory()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        close_session(session)


def after_close(session: Session, callback: Callable[[], None]) -> None:
    """Run ``callback`` once ``session`` has committed or rolled back and closed.

    Used for writes that must survive the caller's rollback (an audited denial): on SQLite a
    second transaction opened while the first holds the write lock would wait on it.
    """
    session.info.setdefault("after_close", []).append(callback)


def close_session(session: Session) -> None:
    callbacks = session.info.pop("after_close", [])
    session.close()
    for callback in callbacks:
        callback()
