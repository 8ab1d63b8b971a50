"""The test database and scratch directory of this test process, chosen before anything imports Levqor.

SQLite (the default) lives in a temporary directory per process. PostgreSQL comes from
``LEVQOR_TEST_DATABASE_URL``; under ``pytest-xdist`` each worker gets its own database
(``<name>_gw0``, ``<name>_gw1``, ...) on the same server, created on first use, so workers never see
each other's rows.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sqlalchemy.engine import make_url

TMP = Path(tempfile.mkdtemp(prefix="levqor-test-"))
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
PG_BASE_URL = os.environ.get("LEVQOR_TEST_DATABASE_URL") or ""


def _worker_url(base: str) -> str:
    if not XDIST_WORKER:
        return base
    url = make_url(base)
    return url.set(database=f"{url.database}_{XDIST_WORKER}").render_as_string(hide_password=False)


TEST_DB_URL = _worker_url(PG_BASE_URL) if PG_BASE_URL else f"sqlite:///{TMP / 'levqor.db'}"
IS_PG = TEST_DB_URL.startswith("postgresql")
# Under CI a test that needs a Debian package fails when it is missing, instead of being skipped.
REQUIRE_SYSTEM = os.environ.get("LEVQOR_REQUIRE_SYSTEM_PACKAGES") == "1"

os.environ["LEVQOR_DATABASE_URL"] = TEST_DB_URL
os.environ["LEVQOR_VAR_DIR"] = str(TMP)
os.environ.setdefault("LEVQOR_LOG_JSON", "true")
os.environ.pop("OPENAI_API_KEY", None)
os.environ.pop("OPENAI_BASE_URL", None)
os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
# Scheduled agents would act on other tests' data; tests that need a schedule set their own.
os.environ.setdefault("LEVQOR_AGENT_SCHEDULES", "{}")


def reset_postgres(url: str) -> None:
    """An empty ``public`` schema in the database of ``url``, creating the database if it is missing
    (through the server's ``postgres`` database)."""
    from sqlalchemy import create_engine, text

    name = make_url(url).database
    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}) is None:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
