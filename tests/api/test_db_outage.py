"""The API while the database is unavailable (PostgreSQL: nothing listening where it should be; SQLite:
another connection holds the write lock past the busy timeout): 503 problem details with Retry-After,
never a 500; /readyz not ready, /healthz up; the outage noted once in this process's span file and ended
by the next commit. Which errors count as *unavailable* (real driver errors)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from levqor.db_outage import SPAN_DIR, backoff_s, is_unavailable, span_path, tracker
from tests.factories.orgs import OrgFixture, make_org
from tests.factories.settings import override_settings, scratch_sqlite
from tests.support import free_port
from tests.support.database import IS_PG, TEST_DB_URL


@pytest.fixture()
def fresh_tracker(tmp_var: Path) -> Iterator[Any]:
    """The process's outage tracker, reset (and its span files removed) after the test."""
    yield tracker
    tracker.since = tracker.ended = tracker.var_dir = None
    shutil.rmtree(tmp_var / SPAN_DIR, ignore_errors=True)


class DatabaseDown:
    """The database unavailable to this process until :meth:`lift`."""

    def __init__(self, tmp_path: Path, set_settings: Any):
        self.set_settings = set_settings
        self.lock: sqlite3.Connection | None = None
        self.scratch: Any = None
        if IS_PG:
            self.org = make_org()
            set_settings(database_url=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/levqor")
            return
        self.busy = override_settings(db_busy_timeout_s=0.2)
        self.busy.__enter__()
        self.scratch = scratch_sqlite(tmp_path)
        url = self.scratch.__enter__()
        self.org = make_org()
        self.lock = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        self.lock.execute("BEGIN EXCLUSIVE")

    def lift(self) -> None:
        if IS_PG:
            self.set_settings(database_url=TEST_DB_URL)
        elif self.lock is not None:
            self.lock.execute("ROLLBACK")
            self.lock.close()
            self.lock = None

    def close(self) -> None:
        self.lift()
        if self.scratch is not None:
            self.scratch.__exit__(None, None, None)
            self.busy.__exit__(None, None, None)


@pytest.fixture()
def db_down(tmp_path: Path, set_settings: Any, fresh_tracker: Any) -> Iterator[DatabaseDown]:
    down = DatabaseDown(tmp_path, set_settings)
    try:
        yield down
    finally:
        down.close()


def _span(tmp_var: Path) -> dict[str, Any]:
    return dict(json.loads(span_path(tmp_var).read_text()))


def test_requests_needing_the_database_get_503_with_retry_after_and_readyz_follows(
        client: Any, db_down: DatabaseDown, tmp_var: Path) -> None:
    org: OrgFixture = db_down.org
    for _ in range(3):
        r = client.post("/v1/keys", json={"name": "in the outage", "role": "viewer"}, headers=org.headers())
        assert r.status_code == 503, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.headers["retry-after"] == "5"
        body = r.json()
        assert body["type"].endswith("/database-unavailable") and body["status"] == 503
        assert body["instance"] == "/v1/keys"
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["database"] == "unreachable", ready.text
    assert client.get("/healthz").status_code == 200
    # noted once, when it started; not yet over
    assert tracker.active()
    span = _span(tmp_var)
    assert span["end"] is None and span["start"]

    db_down.lift()
    ready = client.get("/readyz")  # its writing probe is the commit that ends the outage
    assert ready.status_code == 200, ready.text
    assert not tracker.active()
    span = _span(tmp_var)
    assert span["end"] is not None and span["end"] > span["start"]
    r = client.post("/v1/keys", json={"name": "after the outage", "role": "viewer"}, headers=db_down.org.headers())
    assert r.status_code == 201, r.text


def test_a_database_error_that_is_not_an_outage_stays_a_500(fresh_tracker: Any) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from api import errors
    from memory.db import session_scope

    app = FastAPI()
    errors.install(app)

    @app.get("/broken")
    def broken() -> None:
        with session_scope() as s:
            s.execute(text("SELECT * FROM no_such_table_here"))

    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/broken")
    assert r.status_code == 500 and "retry-after" not in r.headers, r.text
    assert not tracker.active()


def _raised(fn: Any) -> BaseException:
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001  (the error under test)
        return exc
    raise AssertionError("nothing raised")


def test_unavailable_means_the_database_cannot_serve_not_that_the_request_is_wrong(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    holder.execute("BEGIN EXCLUSIVE")
    other = sqlite3.connect(path, timeout=0.05, isolation_level=None)
    locked = _raised(lambda: other.execute("INSERT INTO t VALUES (1)"))
    holder.execute("ROLLBACK")
    other.execute("INSERT INTO t VALUES (1)")
    dup = _raised(lambda: other.execute("INSERT INTO t VALUES (1)"))
    missing = _raised(lambda: other.execute("SELECT * FROM nope"))
    assert is_unavailable(locked)
    assert is_unavailable(OperationalError("INSERT", {}, locked))  # as SQLAlchemy wraps it
    assert not is_unavailable(IntegrityError("INSERT", {}, dup))
    assert not is_unavailable(OperationalError("SELECT", {}, missing))
    assert not is_unavailable(ValueError("database is locked"))

    import psycopg

    refused = _raised(lambda: psycopg.connect(f"host=127.0.0.1 port={free_port()} user=x connect_timeout=2"))
    assert is_unavailable(refused) and is_unavailable(OperationalError("connect", {}, refused))
    assert is_unavailable(psycopg.errors.AdminShutdown("terminating connection due to administrator command"))
    assert not is_unavailable(psycopg.errors.QueryCanceled("canceling statement due to statement timeout"))
    assert not is_unavailable(psycopg.errors.SerializationFailure("could not serialize access"))


def test_backoff_doubles_to_its_cap_with_jitter() -> None:
    for attempt in range(1, 12):
        wait = backoff_s(attempt)
        assert min(5.0, 0.25 * 2 ** (attempt - 1)) * 0.5 <= wait <= min(5.0, 0.25 * 2 ** (attempt - 1))
    assert backoff_s(1, cap=0.1) <= 0.1
