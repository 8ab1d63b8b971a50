"""Alembic environment: the URL comes from Levqor settings (or ``-x url=...``)."""

from __future__ import annotations

from alembic import context

from memory.db import get_engine
from memory.metadata import metadata

config = context.config


def run_migrations_online() -> None:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.attributes.get("url")
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = get_engine(url)
    with engine.connect() as conn:
        _run(conn)
        conn.commit()


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
