"""Usage tiers on /v1 (in-process app, the test database): RateLimit headers, per-key and per-organisation
limits per second and per day, the monthly quota, 429 problem details with Retry-After, resets after the
window (an injectable clock, no sleeps), usage metering per key, endpoint, mode and day as JSON and CSV,
bad query parameters, roles and organisations."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterator
from typing import Any

import pytest

from memory.db import session_scope
from memory.identity.models import Organization
from tests.factories import jobs as js
from tests.factories.orgs import OrgFixture, make_org, page_login
from tools.dev_portal.tiers import limiter

NOON = dt.datetime(2026, 12, 5, 12, 0, 0, 250_000, tzinfo=dt.UTC).timestamp()
BIG = {"key_per_second": 1000, "org_per_second": 1000, "key_per_day": 1_000_000, "org_per_day": 1_000_000,
       "org_per_month": 10_000_000}


class Clock:
    """Unix seconds that move only when told."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture()
def clock() -> Iterator[Clock]:
    """The limiter on a fake clock at 12:00:00.25 UTC, 5 December 2026, with nothing in memory."""
    c, old = Clock(NOON), limiter.clock
    limiter.reset()
    limiter.clock = c
    yield c
    limiter.clock = old
    limiter.reset()


def tiers(set_settings: Any, **pro: int) -> None:
    set_settings(api_tiers={"pro": {**BIG, **pro}})


def me(client: Any, org: OrgFixture, role: str = "viewer") -> Any:
    return client.get("/v1/me", headers=org.headers(role))


def test_the_default_tiers_apply_when_nothing_is_set(client, clock, set_settings) -> None:
    set_settings(api_tiers={})  # the defaults (the test processes otherwise run with very high tiers)
    free, pro = make_org("free"), make_org("pro")
    r = me(client, free)
    assert (r.headers["RateLimit-Limit"], r.headers["RateLimit-Remaining"]) == ("10", "9")
    assert r.headers["RateLimit-Policy"].startswith('10;w=1;comment="key_per_second", 20;w=1;')
    assert me(client, pro).headers["RateLimit-Limit"] == "100"
    assert [me(client, free).status_code for _ in range(10)] == [200] * 9 + [429]


def test_every_key_request_carries_ratelimit_headers_and_sessions_do_not(client, org, clock, set_settings) -> None:
    tiers(set_settings, key_per_second=5, org_per_second=8, key_per_day=100, org_per_day=200, org_per_month=1000)
    r = me(client, org)
    assert r.status_code == 200
    assert (r.headers["RateLimit-Limit"], r.headers["RateLimit-Remaining"], r.headers["RateLimit-Reset"]) == \
        ("5", "4", "1")  # the limit nearest exhaustion: 5 per second, this was the first, 0.75 s left
    assert r.headers["RateLimit-Policy"] == (
        '5;w=1;comment="key_per_second", 8;w=1;comment="org_per_second", 100;w=86400;comment="key_per_day", '
        '200;w=86400;comment="org_per_day", 1000;w=2678400;comment="org_per_month"')
    assert "Retry-After" not in r.headers
    assert me(client, org).headers["RateLimit-Remaining"] == "3"
    missing = client.get("/v1/jobs/2147483647", headers=org.headers("viewer"))  # errors count and say so too
    assert missing.status_code == 404 and missing.headers["RateLimit-Remaining"] == "2"
    # A person in the browser is not metered: no headers, no count.
    assert page_login(client, org.admin_email, org.admin_password).status_code == 303
    r = client.get("/v1/me")
    assert r.status_code == 200 and "RateLimit-Limit" not in r.headers
    client.cookies.clear()
    assert me(client, org).headers["RateLimit-Remaining"] == "1"


def test_the_per_key_limit_refuses_with_a_429_problem_then_resets_after_the_second(
        client, org, clock, set_settings) -> None:
    tiers(set_settings, key_per_second=3)
    assert [me(client, org).status_code for _ in range(3)] == [200, 200, 200]
    r = me(client, org)
    assert r.status_code == 429
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["Retry-After"] == "1"
    assert (r.headers["RateLimit-Limit"], r.headers["RateLimit-Remaining"], r.headers["RateLimit-Reset"]) == \
        ("3", "0", "1")
    body = r.json()
    assert body["status"] == 429 and body["type"].endswith("/rate-limited")
    assert body["limit"] == "key_per_second" and body["allowed"] == 3 and body["window_s"] == 1
    assert body["reset_at"] == "2026-12-05T12:00:01Z" and body["retry_after_s"] == 1
    assert "this API key's requests per second (3)" in body["detail"] and "retry in 1 s" in body["detail"]
    # the other key of the organisation is not affected by this key's limit
    assert me(client, org, "admin").status_code == 200
    clock.advance(0.75)  # 12:00:01.00: a new second
    assert me(client, org).status_code == 200


def test_two_keys_share_the_organisation_limit(client, org, clock, set_settings) -> None:
    tiers(set_settings, key_per_second=5, org_per_second=7)
    assert [me(client, org, "admin").status_code for _ in range(5)] == [200] * 5
    assert [me(client, org, "viewer").status_code for _ in range(2)] == [200] * 2
    r = me(client, org, "viewer")
    assert r.status_code == 429 and r.json()["limit"] == "org_per_second" and r.json()["allowed"] == 7
    assert r.headers["RateLimit-Limit"] == "7" and r.headers["RateLimit-Remaining"] == "0"
    assert me(client, org, "admin").status_code == 429
    other = make_org()  # another organisation has its own counters
    assert me(client, other, "viewer").status_code == 200
    clock.advance(1)
    assert me(client, org, "viewer").status_code == 200


def test_day_limits_reset_at_utc_midnight(client, org, clock, set_settings) -> None:
    tiers(set_settings, key_per_day=3, org_per_day=5)
    for _ in range(3):
        assert me(client, org).status_code == 200
        clock.advance(2)
    r = me(client, org)
    assert r.status_code == 429 and r.json()["limit"] == "key_per_day"
    wait = int(dt.datetime(2026, 12, 6, tzinfo=dt.UTC).timestamp() - clock.now) + 1
    assert r.headers["Retry-After"] == str(wait) and r.json()["reset_at"] == "2026-12-06T00:00:00Z"
    assert "per day (UTC)" in r.json()["detail"]
    assert me(client, org, "admin").status_code == 200
    assert me(client, org, "admin").status_code == 200
    r = me(client, org, "admin")
    assert r.status_code == 429 and r.json()["limit"] == "org_per_day"
    clock.now = dt.datetime(2026, 12, 6, 0, 0, 1, tzinfo=dt.UTC).timestamp()
    assert me(client, org).status_code == 200 and me(client, org, "admin").status_code == 200


def test_the_monthly_quota_is_a_429_until_the_next_month(client, org, clock, set_settings) -> None:
    tiers(set_settings, org_per_month=4)
    for role in ("admin", "viewer", "admin", "viewer"):
        assert me(client, org, role).status_code == 200
    r = me(client, org, "auditor")
    body = r.json()
    assert r.status_code == 429 and body["limit"] == "org_per_month" and body["allowed"] == 4
    assert body["reset_at"] == "2027-01-01T00:00:00Z" and "monthly request quota (4)" in body["detail"]
    assert "Upgrade the plan" in body["detail"]
    assert r.headers["RateLimit-Limit"] == "4" and r.headers["RateLimit-Remaining"] == "0"
    clock.now = dt.datetime(2026, 12, 31, 23, 59, 59, tzinfo=dt.UTC).timestamp()  # a new day, same month
    limiter.sync()
    assert me(client, org).status_code == 429
    clock.now = dt.datetime(2027, 1, 1, 0, 0, 0, tzinfo=dt.UTC).timestamp()
    assert me(client, org).status_code == 200


def test_a_plan_change_applies_at_the_next_sync(client, org, clock, set_settings) -> None:
    set_settings(api_tiers={"pro": {**BIG, "key_per_second": 1}, "enterprise": {**BIG, "key_per_second": 3}})
    assert [me(client, org).status_code for _ in range(2)] == [200, 429]
    with session_scope() as s:  # the plan is not a customer setting: staff change it in the database
        o = s.get(Organization, org.org_id)
        assert o is not None
        o.plan = "enterprise"
    limiter.sync()
    assert [me(client, org).status_code for _ in range(2)] == [200, 200]
    assert me(client, org).headers["RateLimit-Limit"] == "3"


def _usage(client: Any, org: OrgFixture, role: str = "admin", **params: Any) -> Any:
    return client.get("/v1/usage", params={"from": "2026-12-01", "to": "2026-12-07", **params},
                      headers=org.headers(role))


def test_usage_is_metered_per_key_endpoint_mode_and_day_after_a_burst(client, org, clock, set_settings) -> None:
    tiers(set_settings, key_per_second=4)
    js.grant(org.org_id, 1)
    pid = js.pipeline(org.org_id, [{"kind": "transform", "name": "echo", "expression": "input"}])
    jid = js.make_job(org.org_id, pid, "succeeded")
    codes = [me(client, org).status_code for _ in range(6)]
    assert codes == [200] * 4 + [429] * 2
    clock.advance(1)
    for _ in range(3):
        assert client.get(f"/v1/jobs/{jid}", headers=org.headers("viewer")).status_code == 200
    assert client.get("/v1/jobs/2147483647", headers=org.headers("viewer")).status_code == 404
    clock.advance(86400)  # the next day, from the admin key
    assert me(client, org, "admin").status_code == 200
    limiter.sync()
    r = _usage(client, org)
    assert r.status_code == 200, r.text
    body = r.json()
    viewer, admin = (org.keys[k][:17] for k in ("viewer", "admin"))
    rows = {(x["day"], x["key"], x["mode"], x["method"], x["endpoint"]): (x["requests"], x["refused"])
            for x in body["rows"]}
    assert rows == {
        ("2026-12-05", viewer, "live", "GET", "/v1/me"): (4, 2),
        ("2026-12-05", viewer, "live", "GET", "/v1/jobs/{job_id}"): (4, 0),
        ("2026-12-06", admin, "live", "GET", "/v1/me"): (1, 0),
    }, body["rows"]
    assert body["from"] == "2026-12-01" and body["to"] == "2026-12-07" and body["key"] is None
    assert body["total_requests"] == 9 and body["total_refused"] == 2
    assert [(d["day"], d["requests"], d["refused"]) for d in body["days"]] == [
        ("2026-12-01", 0, 0), ("2026-12-02", 0, 0), ("2026-12-03", 0, 0), ("2026-12-04", 0, 0),
        ("2026-12-05", 8, 2), ("2026-12-06", 1, 0), ("2026-12-07", 0, 0)]
    assert body["tier"]["plan"] == "pro" and body["tier"]["key_per_second"] == 4
    only = _usage(client, org, key=viewer).json()
    assert only["key"] == viewer and only["total_requests"] == 8 and {x["key"] for x in only["rows"]} == {viewer}
    # metered in batches: a second sync adds only what is new (the usage reads above)
    limiter.sync()
    again = {(x["day"], x["key"], x["endpoint"]): x["requests"] for x in _usage(client, org).json()["rows"]}
    assert again[("2026-12-06", admin, "/v1/usage")] == 2
    assert again[("2026-12-05", viewer, "/v1/me")] == 4


def test_usage_csv_is_well_formed_and_matches_the_json(client, org, clock, set_settings) -> None:
    tiers(set_settings, key_per_second=2)
    for _ in range(3):
        me(client, org)
    client.get("/v1/pipelines", headers=org.headers("viewer"))
    clock.advance(1)
    limiter.sync()
    r = client.get("/v1/usage.csv", params={"from": "2026-12-05", "to": "2026-12-05"}, headers=org.headers())
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"] == 'attachment; filename="levqor-usage-2026-12-05-2026-12-05.csv"'
    assert r.text.endswith("\r\n") and "\r\n" in r.text
    table = list(csv.reader(io.StringIO(r.text, newline="")))
    assert table[0] == ["day", "key", "mode", "method", "endpoint", "requests", "refused"]
    assert all(len(row) == 7 for row in table)
    as_json = _usage(client, org, **{"from": "2026-12-05", "to": "2026-12-05"}).json()["rows"]
    assert table[1:] == [[x["day"], x["key"], x["mode"], x["method"], x["endpoint"], str(x["requests"]),
                          str(x["refused"])] for x in as_json]
    assert ["2026-12-05", org.keys["viewer"][:17], "live", "GET", "/v1/me", "2", "1"] in table
    assert ["2026-12-05", org.keys["viewer"][:17], "live", "GET", "/v1/pipelines", "0", "1"] in table


@pytest.mark.parametrize(("params", "status", "field"), [
    ({"from": "2026-13-01"}, 422, "from"),
    ({"to": "yesterday"}, 422, "to"),
    ({"from": "2026-12-06", "to": "2026-12-01"}, 422, "from"),
    ({"from": "2024-01-01", "to": "2026-12-01"}, 422, "from"),
    ({"key": "not-a-key"}, 422, "key"),
    ({"key": "lvq_live_" + "x" * 40}, 422, "key"),
    ({"key": "lvq_live_Nope0000"}, 404, "key"),
    ({"to": "0001-01-02", "from": "0001-01-01"}, 200, None),  # the calendar's edges are no 500
    ({"to": "0001-01-02"}, 200, None),
    ({"from": "9999-12-31", "to": "9999-12-31"}, 200, None),
])
def test_bad_usage_parameters_are_4xx_naming_the_field(client, org, clock, params, status, field) -> None:
    for path in ("/v1/usage", "/v1/usage.csv"):
        r = client.get(path, params=params, headers=org.headers())
        assert r.status_code == status, (path, r.text)
        if field is None:
            continue
        assert r.headers["content-type"].startswith("application/problem+json")
        body = r.json()
        named = body.get("field") or [e["field"] for e in body.get("errors", [])]
        assert field in (named if isinstance(named, list) else [named]), body


def test_usage_roles_and_organisations(client, org, clock) -> None:
    assert me(client, org).status_code == 200
    other = make_org()
    assert me(client, other).status_code == 200
    limiter.sync()
    assert _usage(client, org, "viewer").status_code == 200
    assert _usage(client, org, "auditor").status_code == 403
    assert _usage(client, org, "partner").status_code == 403
    mine = _usage(client, org).json()
    keys = {x["key"] for x in mine["rows"]}  # the sync thread may already have written the reads above
    assert org.keys["viewer"][:17] in keys and keys <= {k[:17] for k in org.keys.values()}
    # another organisation's key is "not found", and its rows are never in this organisation's report
    r = _usage(client, org, key=other.keys["viewer"][:17])
    assert r.status_code == 404 and r.json()["field"] == "key"
    theirs = _usage(client, other).json()
    assert org.keys["viewer"][:17] not in str(theirs)


def test_the_usage_page_charts_the_days_and_links_the_csv(client, org, clock, set_settings) -> None:
    tiers(set_settings, key_per_second=2)
    for _ in range(3):
        me(client, org)
    clock.advance(86400)
    me(client, org, "admin")
    limiter.sync()
    assert page_login(client, org.admin_email, org.admin_password).status_code == 303
    page = client.get("/developer/usage", params={"from": "2026-12-04", "to": "2026-12-06"})
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    html = page.text
    assert 'href="/developer/usage"' in html  # in the portal's nav
    assert re.search(r'<svg id="usage-chart"[^>]*role="img"', html)
    bars = re.findall(r'<g class="bar" data-day="([\d-]+)"><title>[^<]*: (\d+) requests, (\d+) refused</title>', html)
    assert bars == [("2026-12-04", "0", "0"), ("2026-12-05", "2", "1"), ("2026-12-06", "1", "0")]
    assert html.count('fill="#e03131"') == 1  # one day had refusals
    # Axes with units: requests per day at 0, half and the top; the first, middle and last day.
    assert re.findall(r'<text class="y-tick"[^>]*>([\d,]+)</text>', html) == ["0", "1", "3"]
    assert re.findall(r'<text class="x-tick"[^>]*>([^<]+)</text>', html) == ["04 Dec", "05 Dec", "06 Dec"]
    assert '<strong id="usage-total">3</strong>' in html and '<strong id="usage-refused">1</strong>' in html
    assert "<code>GET /v1/me</code>" in html and "<script" not in html and " style=" not in html
    link = re.search(r'<a href="([^"]+)" download>Download CSV</a>', html)
    assert link is not None
    csv_url = link.group(1).replace("&amp;", "&")
    assert csv_url == "/v1/usage.csv?from=2026-12-04&to=2026-12-06"
    r = client.get(csv_url)  # the signed-in person downloads it with the session
    assert r.status_code == 200 and r.text.count("\r\n") == 3, r.text
    assert client.get("/developer/usage", params={"from": "2026-12-09", "to": "2026-12-01"}).status_code == 422
    client.cookies.clear()
    assert client.get("/developer/usage", follow_redirects=False).status_code in (302, 303, 401)
