"""The database: migrate it to head, and tell whether it answers and is at head (readiness)."""

from __future__ import annotations

from pydantic import BaseModel
from sqlalchemy import text

from levqor.db_outage import tracker as outage
from levqor.metrics import ready_gauge
from memory.db import get_engine, read_engine
from memory.migrate import current, heads, upgrade


class Ready(BaseModel):
    status: str
    database: str
    migrations: str
    detail: str | None = None


def migrate(url: str | None = None) -> None:
    """Apply the Alembic migrations up to head."""
    upgrade(url)


def readiness() -> tuple[Ready, int]:
    """Check the database and its migrations (with the HTTP status to answer); record ``levqor_ready``.

    The probe only reads (it never takes SQLite's write lock, so it runs beside any writer), except while
    this process has noted a database outage: then it also begins a writing transaction, since on SQLite
    reads still answer beside a lock another process holds, and only a write shows the database back."""
    ready = ready_gauge()
    engine = read_engine()
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        if outage.active():
            with get_engine().begin() as conn:
                conn.execute(text("SELECT 1"))
        have = current(engine)
    except Exception as exc:  # any database failure means "not ready", never a 500
        body = Ready(status="unavailable", database="unreachable", migrations="unknown", detail=str(exc)[:200])
        ready.set(0)
        return body, 503
    want = heads()
    if have != want:
        body = Ready(status="unavailable", database="ok", migrations="behind",
                     detail=f"database at {sorted(have)}, code at {sorted(want)}: run `levqor migrate`")
        ready.set(0)
        return body, 503
    ready.set(1)
    return Ready(status="ok", database="ok", migrations="head"), 200
