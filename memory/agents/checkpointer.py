"""The agents' LangGraph checkpointer: where a run's graph state waits while it is paused on an approval.

PostgresSaver on PostgreSQL (in a schema of its own, which Alembic ignores), SqliteSaver next to the
SQLite database otherwise. One per database per process. This is the one module of ``memory`` the agents
import directly (the import contracts name it): the graph state belongs to LangGraph, not to a tool.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

from levqor.settings import get_settings

CHECKPOINT_SCHEMA = "levqor_agent_checkpoints"

_saver_lock = threading.Lock()
_savers: dict[str, Any] = {}


def checkpointer() -> Any:
    """The process's LangGraph checkpointer: PostgresSaver on PostgreSQL, else SqliteSaver in VAR_DIR."""
    s = get_settings()
    url = s.resolved_database_url
    key = url if not s.is_sqlite else str((s.var_dir / "agent_checkpoints.db").resolve())
    with _saver_lock:
        if key in _savers:
            return _savers[key]
        saver = _sqlite_saver(key) if s.is_sqlite else _postgres_saver(url)
        saver.setup()
        _savers[key] = saver
        return saver


def _sqlite_saver(path: str) -> Any:
    from langgraph.checkpoint.sqlite import SqliteSaver  # kept lazy: start-up time (and only one backend)

    get_settings().var_dir.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return SqliteSaver(conn)


def _postgres_saver(url: str) -> Any:
    # kept lazy: start-up time (and only one backend)
    import psycopg
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg.rows import dict_row
    from psycopg_pool import ConnectionPool

    conninfo = url.replace("postgresql+psycopg://", "postgresql://", 1)
    # Its own schema: the checkpointer's tables are not the application's (Alembic ignores them).
    with psycopg.connect(conninfo, autocommit=True) as c:
        c.execute(f"CREATE SCHEMA IF NOT EXISTS {CHECKPOINT_SCHEMA}")
    pool: Any = ConnectionPool(conninfo, min_size=1, max_size=4, open=True, kwargs={
        "autocommit": True, "prepare_threshold": None, "row_factory": dict_row,
        "options": f"-c search_path={CHECKPOINT_SCHEMA}"})
    return PostgresSaver(pool)


def reset_checkpointers() -> None:
    """Forget cached checkpointers (tests that switch databases)."""
    with _saver_lock:
        _savers.clear()
