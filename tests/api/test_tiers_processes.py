"""Usage tiers across real ``levqor api`` processes on one database (SQLite file or PostgreSQL): two
processes share the day counters and the usage rows through their syncs; and the SDK example, against a
live server whose per-second limit is small, waits ``Retry-After`` on each 429 and gets every answer."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import httpx

from memory.db import session_scope
from memory.usage.repository import UsageRepository
from tests.factories.orgs import make_org
from tests.support import wait_for
from tests.support.processes import levqor_env, start_api
from tests.tools.dev_portal.test_sdk_example import load_sdk
from tools.shared.ratelimit import DatabaseStorage

BIG = {"key_per_second": 1000, "org_per_second": 1000, "key_per_day": 1_000_000, "org_per_day": 1_000_000,
       "org_per_month": 10_000_000}


def _env(tmp_path: Path, sync_s: str = "0.2", **pro: int) -> dict[str, str]:
    return levqor_env(var_dir=tmp_path, LEVQOR_API_TIERS=json.dumps({"pro": {**BIG, **pro}}),
                      LEVQOR_RATE_LIMIT_SYNC_S=sync_s)


def _shared(key: str) -> int:
    with session_scope() as s:
        return DatabaseStorage(s).get(key)


def test_two_api_processes_share_the_day_counters_and_the_usage(tmp_path: Path) -> None:
    org = make_org()
    key = org.keys["viewer"]
    prefix = key[:17]
    day = int(time.time() // 86400)
    counter = f"tier:k:{prefix}:d{day}"
    a, base_a = start_api(tmp_path / "a", _env(tmp_path / "a", key_per_day=6))
    b, base_b = start_api(tmp_path / "b", _env(tmp_path / "b", key_per_day=6))
    try:
        h = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=base_a, headers=h, timeout=20) as pa, \
                httpx.Client(base_url=base_b, headers=h, timeout=20) as pb:
            assert [pa.get("/v1/me").status_code for _ in range(4)] == [200] * 4
            wait_for(lambda: _shared(counter) == 4, 20, "process A to sync its 4 requests")
            # B reads the shared count before its first answer: 2 more, then the day limit
            statuses = [pb.get("/v1/me") for _ in range(3)]
            assert [r.status_code for r in statuses] == [200, 200, 429]
            refused = statuses[2].json()
            assert refused["limit"] == "key_per_day" and refused["allowed"] == 6
            assert int(statuses[2].headers["Retry-After"]) >= 1
            assert statuses[1].headers["RateLimit-Remaining"] == "0"
            wait_for(lambda: _shared(counter) == 6, 20, "process B to sync its 2 requests")
            # A learns B's requests at its next sync; until then it may accept what it believed was left
            # (2: the documented overshoot, at most what one process accepts between two syncs)
            polls: list[int] = []

            def a_refuses() -> bool:
                polls.append(pa.get("/v1/me").status_code)
                return polls[-1] == 429
            wait_for(a_refuses, 20, "process A to refuse the key")
            overshoot = polls.count(200)
            assert overshoot <= 2, polls
            wait_for(lambda: _shared(counter) == 6 + overshoot, 20, "every accepted request in the shared count")

        def metered() -> bool:
            with session_scope() as s:
                today = dt.datetime.fromtimestamp(day * 86400, dt.UTC).date()
                rows = UsageRepository(s).rows(org.org_id, start=today, end=today + dt.timedelta(days=1))
                got = [(r.key_prefix, r.route, r.requests) for r in rows]
                return got == [(prefix, "/v1/me", 6 + overshoot)] and rows[0].refused >= 2
        wait_for(metered, 20, "both processes' usage rows (6 requests, the refusals)")
    finally:
        a.stop()
        b.stop()


def test_the_sdk_example_waits_retry_after_against_a_live_server_with_a_low_limit(tmp_path: Path) -> None:
    org = make_org()
    proc, base = start_api(tmp_path / "api", _env(tmp_path / "api", key_per_second=2))
    seen: list[tuple[int, str | None]] = []
    real = httpx.HTTPTransport()

    class Recording(httpx.BaseTransport):
        """The real transport; it only notes each answer's status and Retry-After."""

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            r = real.handle_request(request)
            seen.append((r.status_code, r.headers.get("retry-after")))
            return r

    try:
        sdk = load_sdk()
        with sdk.Levqor(org.keys["viewer"], base, transport=Recording(), max_retries=5) as api:
            answers = [api.request("GET", "/v1/me") for _ in range(6)]
        assert all(a["role"] == "viewer" for a in answers)
        refusals = [ra for status, ra in seen if status == 429]
        assert refusals, seen  # six requests at two per second: the server refused some
        assert all(ra == "1" for ra in refusals), seen
        assert [s for s, _ in seen].count(200) == 6
        with sdk.Levqor(org.keys["viewer"], base, max_retries=0) as api:
            got = []
            for _ in range(5):  # within a few ms: at least three in one second
                try:
                    api.request("GET", "/v1/me")
                    got.append(200)
                except sdk.ApiError as exc:
                    got.append(exc.status)
                    assert exc.problem["limit"] == "key_per_second"
        assert 429 in got  # without retries the refusal reaches the caller as problem details
    finally:
        proc.stop()
