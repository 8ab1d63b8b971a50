"""Test setup: one database per test process (SQLite in a temp dir, or PostgreSQL from
``LEVQOR_TEST_DATABASE_URL``, one database per xdist worker), migrated with Alembic; the app, a client
and a rolled-back session. Factories, fakes and process helpers live in ``tests/factories``,
``tests/fakes`` and ``tests/support``; their fixtures are plugged in below."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.database import IS_PG, REQUIRE_SYSTEM, TEST_DB_URL, TMP, reset_postgres

pytest_plugins = [
    "tests.factories.orgs",
    "tests.factories.settings",
    "tests.fakes.notion",
    "tests.fakes.openai",
    "tests.fakes.smtp",
    "tests.fakes.jobs_tools",
    "tests.support.live_server",
]


def pytest_configure(config: pytest.Config) -> None:
    from levqor.settings import get_settings
    from memory.db import dispose_engines
    from memory.migrate import upgrade
    from tests.factories.settings import HIGH_TIERS_JSON

    os.environ.setdefault("LEVQOR_API_TIERS", HIGH_TIERS_JSON)  # no 429 where a test hammers the API

    get_settings.cache_clear()
    if IS_PG:
        reset_postgres(TEST_DB_URL)
    upgrade(TEST_DB_URL)
    dispose_engines()


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(TMP, ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``@pytest.mark.needs_pkg("prometheus")``: skip naming the package, or fail under CI's variable."""
    for item in items:
        for mark in item.iter_markers("needs_pkg"):
            binary = mark.kwargs.get("binary", mark.args[0])
            if shutil.which(binary) is None and not REQUIRE_SYSTEM:
                item.add_marker(pytest.mark.skip(
                    reason=f"needs the Debian package '{mark.args[0]}' (command {binary!r} not found); "
                           "apt-get install it or run .ci/run"))


@pytest.fixture(scope="session")
def tmp_var() -> Path:
    """This process's ``LEVQOR_VAR_DIR``."""
    return TMP


@pytest.fixture(scope="session")
def app() -> Any:
    from api.app import create_app

    return create_app()


@pytest.fixture()
def client(app: Any) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture()
def db_session() -> Iterator[object]:
    """A session whose work is rolled back at the end (one outer transaction)."""
    from memory.db import session_factory

    s = session_factory()()
    try:
        yield s
    finally:
        s.rollback()
        s.close()
