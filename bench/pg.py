"""Shared by the benchmarks: make sure their PostgreSQL database exists on a fresh machine; drop one."""

from __future__ import annotations


def ensure_pg_database(url: str) -> None:
    """Create the database named in ``url`` unless it exists."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    u = make_url(url)
    admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": u.database}):
            conn.execute(text(f'CREATE DATABASE "{u.database}"'))
    admin.dispose()


def drop_pg_database(url: str) -> None:
    """Drop the database named in ``url`` if it exists, closing its connections."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    u = make_url(url)
    admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{u.database}" WITH (FORCE)'))
    admin.dispose()
