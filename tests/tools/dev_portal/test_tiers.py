"""The tier limiter as two API processes would run it: two limiters on one database share the day and
month counters through their syncs (exact once synced; before that each can overshoot by what it alone
accepted, the documented bound), a fresh process reads the totals before its first answer, a failed sync
loses no count, and the tier table in docs/dev_portal/index.md is the one in settings."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from levqor.settings import DEFAULT_API_TIERS, PLANS
from memory.db import session_scope
from tests.factories.orgs import OrgFixture
from tools.context import Principal
from tools.dev_portal.docs import DOCS_DIR
from tools.dev_portal.tiers import TierLimiter
from tools.shared.ratelimit import DatabaseStorage

NOON = dt.datetime(2026, 12, 5, 12, 0, 0, tzinfo=dt.UTC).timestamp()
BIG = {"key_per_second": 1000, "org_per_second": 1000, "key_per_day": 1_000_000, "org_per_day": 1_000_000,
       "org_per_month": 10_000_000}


class Clock:
    def __init__(self) -> None:
        self.now = NOON

    def __call__(self) -> float:
        return self.now


def key_principal(org: OrgFixture, role: str = "viewer", mode: str = "live") -> Principal:
    return Principal(kind="api_key", id=org.keys[role][:17], org_id=org.org_id, role=role, key_mode=mode)


def hit(lim: TierLimiter, p: Principal, route: str = "/v1/me") -> str:
    """One request through ``lim``: "ok" or the name of the limit that refused it."""
    if lim.needs_load(p, lim.clock()):
        with session_scope() as s:
            lim.load(s, p, lim.clock())
    d = lim.check(p, method="GET", route=route)
    return "ok" if d.broken is None else d.broken.name


def shared(key: str, now: float) -> int:
    with session_scope() as s:
        return DatabaseStorage(s, lambda: now).get(key)


def test_two_processes_share_day_counters_within_the_documented_overshoot(org: OrgFixture, set_settings) -> None:
    set_settings(api_tiers={"pro": {**BIG, "key_per_day": 5}}, rate_limit_sync_s=0)
    clock = Clock()
    a, b = TierLimiter(clock), TierLimiter(clock)
    p = key_principal(org)
    day_key = a.counter_keys(p, clock.now)[0][0]
    assert [hit(a, p) for _ in range(3)] == ["ok"] * 3
    a.sync()
    assert shared(day_key, clock.now) == 3
    # b starts after a synced: it reads the total before answering, so together they stop at exactly 5
    assert [hit(b, p) for _ in range(3)] == ["ok", "ok", "key_per_day"]
    # a has not synced since: it still believes 3 and accepts 2 more, the bounded overshoot
    # (at most what one process accepts between two syncs: its per-second limit x LEVQOR_RATE_LIMIT_SYNC_S)
    assert [hit(a, p) for _ in range(3)] == ["ok", "ok", "key_per_day"]
    a.sync()
    b.sync()
    assert shared(day_key, clock.now) == 7
    assert hit(a, p) == "key_per_day" and hit(b, p) == "key_per_day"
    clock.now += 86400  # the next UTC day: new counters everywhere
    assert hit(a, p) == "ok" and hit(b, p) == "ok"


def test_the_organisation_counters_add_up_every_key_and_process(org: OrgFixture, set_settings) -> None:
    set_settings(api_tiers={"pro": {**BIG, "org_per_day": 4, "org_per_month": 6}}, rate_limit_sync_s=0)
    clock = Clock()
    a, b = TierLimiter(clock), TierLimiter(clock)
    viewer, admin = key_principal(org), key_principal(org, "admin")
    assert [hit(a, viewer), hit(a, admin)] == ["ok", "ok"]
    a.sync()
    assert [hit(b, admin), hit(b, viewer), hit(b, viewer)] == ["ok", "ok", "org_per_day"]
    b.sync()
    a.sync()
    assert hit(a, viewer) == "org_per_day"
    clock.now += 86400
    assert [hit(a, viewer), hit(a, admin), hit(a, admin)] == ["ok", "ok", "org_per_month"]


def test_usage_rows_add_up_across_processes_and_modes(org: OrgFixture, set_settings) -> None:
    set_settings(api_tiers={"pro": BIG}, rate_limit_sync_s=0)
    from memory.usage.repository import UsageRepository

    clock = Clock()
    a, b = TierLimiter(clock), TierLimiter(clock)
    live, test = key_principal(org), key_principal(org, mode="test")
    for _ in range(3):
        hit(a, live)
        hit(b, live)
    hit(b, test, "/v1/jobs/{job_id}")
    a.sync()
    b.sync()
    b.sync()  # nothing new: nothing added twice
    with session_scope() as s:
        rows = UsageRepository(s).rows(org.org_id, start=dt.date(2026, 12, 5), end=dt.date(2026, 12, 5))
        got = sorted((r.mode, r.route, r.requests, r.refused) for r in rows)
    assert got == [("live", "/v1/me", 6, 0), ("test", "/v1/jobs/{job_id}", 1, 0)]


def test_a_failed_sync_keeps_its_counts_for_the_next(org: OrgFixture, set_settings) -> None:
    set_settings(api_tiers={"pro": BIG}, rate_limit_sync_s=0)
    clock = Clock()
    lim = TierLimiter(clock)
    p = key_principal(org)
    for _ in range(4):
        hit(lim, p)
    import tools.dev_portal.tiers as tiers_mod

    def broken() -> Any:
        raise OperationalError("SELECT 1", {}, Exception("the database went away"))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tiers_mod, "session_scope", broken)
        with pytest.raises(OperationalError):
            lim.sync()
    assert lim.check(p, method="GET", route="/v1/me").limits[2].used == 4  # still counted locally
    lim.sync()
    assert shared(lim.counter_keys(p, clock.now)[0][0], clock.now) == 5


def test_the_tier_table_in_the_docs_is_the_one_in_settings() -> None:
    doc = (DOCS_DIR / "index.md").read_text()
    section = doc[doc.index("## Rate limits and usage tiers"):]
    rows = {m.group(1): [int(x.replace(",", "")) for x in m.group(2).split("|")]
            for m in re.finditer(r"^\| `(\w+)` \|([\d,| ]+)\|$", section, re.M)}
    defaults = DEFAULT_API_TIERS
    assert set(rows) == set(PLANS)
    for plan in PLANS:
        t = defaults[plan]
        assert rows[plan] == [t.key_per_second, t.org_per_second, t.key_per_day, t.org_per_day, t.org_per_month], plan


def test_idle_counters_are_read_again_at_their_next_use(org: OrgFixture, set_settings) -> None:
    set_settings(api_tiers={"pro": {**BIG, "key_per_day": 6}}, rate_limit_sync_s=0)
    clock = Clock()
    a, b = TierLimiter(clock), TierLimiter(clock)
    p = key_principal(org)
    assert [hit(a, p) for _ in range(2)] == ["ok", "ok"]
    a.sync()
    clock.now += 120  # a goes quiet; b serves the key for a while
    assert [hit(b, p) for _ in range(3)] == ["ok"] * 3
    b.sync()
    a.sync()  # a no longer refreshes the idle counter: it forgets it...
    assert a.needs_load(p, clock.now)
    assert [hit(a, p) for _ in range(2)] == ["ok", "key_per_day"]  # ...and reads the 5 before answering
