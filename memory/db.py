"""Engine, sessions and the declarative base.

Sessions commit at the edge (request, job, agent run): use :func:`session_scope`. Tools and
repositories may ``flush()`` but never ``commit()``.

Two kinds of session: a writing one (the default) and a read-only one (``session_scope(read_only=True)``,
the API's GET requests). On SQLite a writing transaction takes the write lock up front (``BEGIN
IMMEDIATE``), so a transaction that reads and then writes never fails to upgrade; a read-only one begins
deferred and never takes the lock, so reads run beside a writer (WAL) and beside each other. A read-only
session refuses to flush changes or run ORM insert/update/delete (:class:`ReadOnlySessionError`).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, ORMExecuteState, Session, UOWTransaction, sessionmaker
from sqlalchemy.types import TypeDecorator

from levqor import db_outage
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


READ_ONLY = "levqor_read_only"  # execution option: a transaction that never writes (SQLite: deferred BEGIN)

_lock = threading.Lock()
_engines: dict[str, Engine] = {}
_factories: dict[str, sessionmaker[Session]] = {}
_read_engines: dict[str, Engine] = {}
_read_factories: dict[str, sessionmaker[Session]] = {}


class ReadOnlySessionError(RuntimeError):
    """A read-only session was asked to write (a bug: the caller should open a writing session)."""


def _refuse_flush(session: Session, _flush: UOWTransaction, _instances: object) -> None:
    if session.new or session.deleted or any(session.is_modified(o) for o in session.dirty):
        raise ReadOnlySessionError("a read-only session cannot write: open session_scope() for writes "
                                   "(an API GET route that writes declares dependencies=[writes()])")


def _refuse_dml(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        raise ReadOnlySessionError("a read-only session cannot run insert/update/delete")


def make_engine(url: str) -> Engine:
    """Create an engine with the pragmas Levqor relies on.

    Pool: ``LEVQOR_DB_POOL_SIZE`` connections kept, as many again in overflow (for sessions a request
    opens beside its own, such as detached audit entries), on SQLite and PostgreSQL alike.
    """
    settings = get_settings()
    pool = {"pool_size": settings.db_pool_size, "max_overflow": settings.db_pool_size}
    if url.startswith("sqlite"):
        busy = settings.db_busy_timeout_s
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": busy}, **pool)
        _track_outages(engine, settings.var_dir)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _rec: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={int(busy * 1000)}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            if conn.get_execution_options().get(READ_ONLY):
                # Never writes: a deferred transaction takes no lock, reads one WAL snapshot.
                conn.exec_driver_sql("BEGIN")
                return
            # Take the write lock up front: a deferred transaction that reads and then writes can
            # fail with SQLITE_BUSY_SNAPSHOT (or SQLITE_BUSY at once), which busy_timeout does not cover.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    engine = create_engine(url, pool_recycle=1800, **pool)
    _ping_when_idle(engine, settings.db_ping_idle_s)
    _track_outages(engine, settings.var_dir)
    return engine


def _track_outages(engine: Engine, var_dir: Path) -> None:
    """Note this process's database outages (:mod:`levqor.db_outage`): one starts when a call fails because
    the database is unavailable, and ends when a writing transaction commits again (on SQLite reads go on
    beside a lock held by another process, so only a write proves the database is back)."""

    @event.listens_for(engine, "handle_error")
    def _failed(ctx: Any) -> None:
        db_outage.tracker.failed(ctx.sqlalchemy_exception or ctx.original_exception, var_dir)

    @event.listens_for(engine, "commit")
    def _committed(conn: Any) -> None:
        if db_outage.tracker.active() and not conn.get_execution_options().get(READ_ONLY):
            db_outage.tracker.worked()


def _ping_when_idle(engine: Engine, idle_s: float) -> None:
    """Test a pooled connection on checkout only when it sat idle for ``idle_s`` seconds or more.

    SQLAlchemy's ``pool_pre_ping`` costs a round trip on every checkout (a tenth of a no-op job's time);
    a connection in steady use has just proved itself alive. A dead one is replaced at once (the pool
    retries the checkout on :class:`DisconnectionError`); one that dies while in use fails that
    transaction, as it would have with pre-ping.
    """

    @event.listens_for(engine, "connect")
    def _fresh(_dbapi_conn: Any, rec: Any) -> None:
        rec.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def _idle(_dbapi_conn: Any, rec: Any) -> None:
        rec.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_conn: Any, rec: Any, _proxy: Any) -> None:
        if time.monotonic() - rec.info.get("idle_since", 0.0) < idle_s:
            return
        try:
            cur = dbapi_conn.cursor()
            try:
                cur.execute("SELECT 1")
            finally:
                cur.close()
            if not getattr(dbapi_conn, "autocommit", True):
                dbapi_conn.rollback()  # end the implicit transaction the ping began (psycopg)
        except Exception as exc:
            raise DisconnectionError(f"pooled connection is dead: {exc}") from exc


def get_engine(url: str | None = None) -> Engine:
    """Return the shared engine for ``url`` (default: the configured database)."""
    url = url or get_settings().resolved_database_url
    with _lock:
        if url not in _engines:
            if url.startswith("sqlite:///"):
                Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            engine = _engines[url] = make_engine(url)
            _factories[url] = sessionmaker(engine, expire_on_commit=False)
            _read_engines[url] = read_engine_of(engine)
            reads = _read_factories[url] = sessionmaker(_read_engines[url], expire_on_commit=False,
                                                        info={READ_ONLY: True})
            event.listen(reads, "before_flush", _refuse_flush)
            event.listen(reads, "do_orm_execute", _refuse_dml)
        return _engines[url]


def read_engine_of(engine: Engine) -> Engine:
    """``engine`` for transactions that never write (same pool; on SQLite they begin deferred)."""
    return engine.execution_options(**{READ_ONLY: True})


def read_engine(url: str | None = None) -> Engine:
    """The shared engine's read-only view (health checks and other plain reads)."""
    url = url or get_settings().resolved_database_url
    get_engine(url)
    return _read_engines[url]


def session_factory(url: str | None = None, *, read_only: bool = False) -> sessionmaker[Session]:
    url = url or get_settings().resolved_database_url
    get_engine(url)
    return (_read_factories if read_only else _factories)[url]


def dispose_engines() -> None:
    """Close every pooled connection (tests, forks)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _factories.clear()
        _read_engines.clear()
        _read_factories.clear()


@contextmanager
def session_scope(*, read_only: bool = False) -> Iterator[Session]:
    """Open a session that commits on success and rolls back on error (the edge).

    ``read_only=True``: a session that never writes (see the module docstring).
    """
    session = session_factory(read_only=read_only)()
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
