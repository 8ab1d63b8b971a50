"""Test setup: one database per run (SQLite in a temp dir, or PostgreSQL from
``LEVQOR_TEST_DATABASE_URL``), migrated with Alembic; helpers to make organisations and keys."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

_TMP = Path(tempfile.mkdtemp(prefix="levqor-test-"))
TEST_DB_URL = os.environ.get("LEVQOR_TEST_DATABASE_URL") or f"sqlite:///{_TMP / 'levqor.db'}"
os.environ["LEVQOR_DATABASE_URL"] = TEST_DB_URL
os.environ["LEVQOR_VAR_DIR"] = str(_TMP)
os.environ.setdefault("LEVQOR_LOG_JSON", "true")
os.environ.pop("OPENAI_API_KEY", None)
os.environ.pop("OPENAI_BASE_URL", None)
os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
# Scheduled agents would act on other tests' data; tests that need a schedule set their own.
os.environ.setdefault("LEVQOR_AGENT_SCHEDULES", "{}")

IS_PG = TEST_DB_URL.startswith("postgresql")
REQUIRE_SYSTEM = os.environ.get("LEVQOR_REQUIRE_SYSTEM_PACKAGES") == "1"


def _reset_postgres(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def pytest_configure(config: pytest.Config) -> None:
    from levqor.settings import get_settings
    from memory.db import dispose_engines
    from memory.migrate import upgrade

    get_settings.cache_clear()
    if IS_PG:
        _reset_postgres(TEST_DB_URL)
    upgrade(TEST_DB_URL)
    dispose_engines()


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_TMP, ignore_errors=True)


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
    return _TMP


@pytest.fixture(scope="session")
def app():  # type: ignore[no-untyped-def]
    from api.app import create_app

    return create_app()


@pytest.fixture()
def client(app):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


_counter = itertools.count(1)


@dataclass
class OrgFixture:
    org_id: int
    slug: str
    keys: dict[str, str]  # role -> full API key
    admin_email: str
    admin_password: str

    def headers(self, role: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


def make_org(plan: str = "pro") -> OrgFixture:
    """Create an organisation with an admin user and one API key per role (committed)."""
    from memory.db import session_scope
    from tools.context import SYSTEM, Principal, ToolContext
    from tools.registry import registry

    slug = f"t{next(_counter)}-{uuid.uuid4().hex[:8]}"
    email = f"admin-{slug}@acme-test.io"
    password = "correct horse battery staple"
    with session_scope() as s:
        org = registry.invoke("org.create", ToolContext(s, SYSTEM), {"name": f"Org {slug}", "slug": slug,
                                                                     "plan": plan})
        ctx = ToolContext(s, Principal(kind="system", id="test", org_id=org.id, role="admin"))  # type: ignore[attr-defined]
        registry.invoke("users.create", ctx, {"email": email, "role": "admin", "password": password})
        keys = {}
        for role in ("admin", "viewer", "auditor", "partner"):
            keys[role] = registry.invoke("keys.create", ctx, {"name": f"{role} key", "role": role}).key  # type: ignore[attr-defined]
    return OrgFixture(org.id, slug, keys, email, password)  # type: ignore[attr-defined]


@pytest.fixture()
def org() -> OrgFixture:
    return make_org()


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


@pytest.fixture()
def fake_llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``fake_llm(steps)`` starts the local fake OpenAI server with a script and points the agents at it
    (LLM mode); the servers stop at the end of the test."""
    from tests.fake_openai import FakeOpenAI, Script

    servers: list[FakeOpenAI] = []

    def start(steps: Any) -> Script:
        script = Script(steps)
        server = FakeOpenAI(script)
        url = server.__enter__()
        servers.append(server)
        monkeypatch.setenv("OPENAI_BASE_URL", url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-fake")
        monkeypatch.setenv("LEVQOR_LLM_MAX_RETRIES", "0")
        return script

    yield start
    for server in servers:
        server.__exit__(None, None, None)
