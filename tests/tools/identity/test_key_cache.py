"""API key verification cache: a key verified once is not read again for ``LEVQOR_API_KEY_CACHE_S``; a key
revoked behind the process's back (another process, plain SQL) is refused once that time has passed on
the cache's clock (controlled here, no sleeping), one revoked through this process at once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import event, text

from memory.db import get_engine
from tests.factories.orgs import OrgFixture
from tools.identity import keycache
from tools.identity.service import sha256


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClock]:
    fake = FakeClock()
    monkeypatch.setattr(keycache.cache, "clock", fake)
    keycache.cache.forget()
    yield fake
    keycache.cache.forget()


def _statements(client, key: str) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(status of GET /v1/me with ``key``, database statements it ran)."""
    n = [0]

    def count(*_a: object) -> None:
        n[0] += 1

    event.listen(get_engine(), "before_cursor_execute", count)
    try:
        status = client.get("/v1/me", headers={"Authorization": f"Bearer {key}"}).status_code
    finally:
        event.remove(get_engine(), "before_cursor_execute", count)
    return status, n[0]


def _revoke_behind_the_cache(key: str) -> None:
    """Revoke as another process would: plain SQL on a connection of its own (no ORM event here)."""
    with get_engine().begin() as conn:
        conn.execute(text("UPDATE api_keys SET revoked_at = :t WHERE key_hash = :h"),
                     {"t": dt.datetime.now(dt.UTC), "h": sha256(key)})


def test_a_verified_key_is_not_read_again_within_the_ttl(client, org: OrgFixture, clock: FakeClock) -> None:
    key = org.keys["viewer"]
    status, first = _statements(client, key)
    assert status == 200 and first >= 1
    clock.now += 0.5
    assert _statements(client, key) == (200, 0)
    clock.now += 0.5  # a second after the verifying read: read again
    status, again = _statements(client, key)
    assert status == 200 and again >= 1


def test_a_key_revoked_elsewhere_is_refused_within_a_second(client, org: OrgFixture, clock: FakeClock) -> None:
    key = org.keys["viewer"]
    assert _statements(client, key)[0] == 200  # verified and cached at clock.now
    _revoke_behind_the_cache(key)
    clock.now += 0.999
    assert _statements(client, key) == (200, 0)  # the cache still answers (the bound is the TTL, not less)
    clock.now += 0.001
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {key}"}).status_code == 401


def test_a_key_revoked_through_this_process_is_refused_at_once(client, org: OrgFixture, clock: FakeClock) -> None:
    created = client.post("/v1/keys", json={"name": "short-lived"}, headers=org.headers()).json()
    key = created["key"]
    assert _statements(client, key)[0] == 200
    assert _statements(client, key) == (200, 0)
    assert client.delete(f"/v1/keys/{created['id']}", headers=org.headers()).status_code == 200
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {key}"}).status_code == 401


def test_an_expired_cached_key_is_refused_without_a_read(org: OrgFixture, clock: FakeClock) -> None:
    principal = keycache.CachedKey(principal=object(), key_id=1,  # type: ignore[arg-type]
                                   expires_at=dt.datetime(2030, 1, 1, tzinfo=dt.UTC), last_used_at=None,
                                   stamped=clock.now)
    keycache.cache.put("h", principal)
    assert keycache.cache.get("h", 1.0, dt.datetime(2029, 12, 31, tzinfo=dt.UTC)) is principal
    assert keycache.cache.get("h", 1.0, dt.datetime(2030, 1, 1, tzinfo=dt.UTC)) is None
    assert len(keycache.cache) == 0


def test_no_cache_when_the_ttl_is_zero(client, org: OrgFixture, clock: FakeClock, set_settings) -> None:
    set_settings(api_key_cache_s=0)
    key = org.keys["viewer"]
    assert _statements(client, key)[0] == 200
    status, n = _statements(client, key)
    assert status == 200 and n >= 1
    _revoke_behind_the_cache(key)
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {key}"}).status_code == 401


def test_the_cache_stays_bounded() -> None:
    cache = keycache.KeyCache(clock=lambda: 0.0, max_entries=10)
    for i in range(25):
        cache.put(f"h{i}", keycache.CachedKey(object(), i, None, None, 0.0))  # type: ignore[arg-type]
    assert len(cache) <= 10 and cache.get("h24", 1.0, dt.datetime.now(dt.UTC)) is not None
