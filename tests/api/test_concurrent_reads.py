"""Concurrent authenticated reads: a real ``levqor api`` process answers 64 concurrent connections
without an error or a timeout, a GET never waits for SQLite's write lock, and no GET route writes in
its read-only session."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path

import httpx
from fastapi.routing import APIRoute

from tests.factories.orgs import OrgFixture, make_org
from tests.factories.settings import scratch_sqlite

CONNECTIONS = 64
REQUESTS_EACH = 6
ROUTES = ("/v1/me", "/v1/jobs")


async def _hammer(base: str, key: str) -> tuple[int, list[str]]:
    """``CONNECTIONS`` clients each sending ``REQUESTS_EACH`` GETs back to back; (answers, failures)."""
    failures: list[str] = []
    answered = 0
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=20,
                                 headers={"Authorization": f"Bearer {key}"}) as http:
        async def one_client(c: int) -> None:
            nonlocal answered
            for i in range(REQUESTS_EACH):
                route = ROUTES[(c + i) % len(ROUTES)]
                try:
                    r = await http.get(route)
                except httpx.HTTPError as exc:  # a timeout or a dropped connection
                    failures.append(f"{route}: {exc!r}")
                    continue
                answered += 1
                if r.status_code != 200:
                    failures.append(f"{route}: {r.status_code} {r.text[:300]}")

        await asyncio.gather(*(one_client(c) for c in range(CONNECTIONS)))
    return answered, failures


def test_64_concurrent_authenticated_reads_all_succeed(api_on: tuple[str, OrgFixture]) -> None:
    base, org = api_on
    answered, failures = asyncio.run(_hammer(base, org.keys["viewer"]))
    assert not failures, f"{len(failures)} of {CONNECTIONS * REQUESTS_EACH} failed, e.g. {failures[:5]}"
    assert answered == CONNECTIONS * REQUESTS_EACH


def test_a_get_answers_while_another_connection_holds_the_sqlite_write_lock(client, tmp_path: Path) -> None:
    with scratch_sqlite(tmp_path) as url:
        org = make_org()
        headers = org.headers("viewer")
        assert client.get("/v1/me", headers=headers).status_code == 200  # records the key's use now
        writer = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None, timeout=0)
        try:
            writer.execute("BEGIN IMMEDIATE")
            writer.execute("UPDATE organizations SET name = 'uncommitted' WHERE id = ?", (org.org_id,))
            # Before reads began deferred, each of these waited 30 s for the lock and answered 500.
            assert client.get("/v1/me", headers=headers).status_code == 200
            r = client.get("/v1/org", headers=headers)
            assert r.status_code == 200 and r.json()["name"] == f"Org {org.slug}"
            assert client.get("/v1/jobs", headers=headers).status_code == 200
        finally:
            writer.rollback()
            writer.close()
        r = client.patch("/v1/org", json={"name": "renamed"}, headers=org.headers())  # writes still work
        assert r.status_code == 200 and r.json()["name"] == "renamed"


def test_no_get_route_writes_in_its_read_only_session(app, client, org: OrgFixture) -> None:
    """Every GET route answers without a 500 (a write in a read-only session raises); a GET route that
    writes declares writes() and then does write (the audit export audits itself)."""
    checked = 0
    for route in app.routes:
        if not isinstance(route, APIRoute) or "GET" not in route.methods:
            continue
        r = client.get(re.sub(r"\{[^}]+\}", "999999", route.path), headers=org.headers(),
                       follow_redirects=False)
        assert r.status_code < 500 or r.status_code == 503, (route.path, r.status_code, r.text[:300])
        checked += 1
    assert checked > 40
    assert client.get("/v1/audit/export", headers=org.headers("auditor")).status_code == 200
    entries = client.get("/v1/audit", params={"action": "audit.exported"}, headers=org.headers("auditor")).json()
    assert entries["items"], "the export was not audited"
