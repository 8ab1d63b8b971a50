"""Metrics feed over the Pulse store and a (fake, real-HTTP) Notion Pulse data source."""

from __future__ import annotations

import datetime as dt

from tests.factories.orgs import org_ctx
from tests.factories.pulse import seeded_org
from tests.fakes.notion import FakeNotion


def test_feed_merges_notion_history_and_local_wins(client, notion: FakeNotion) -> None:
    org = seeded_org()
    today = dt.date.today()
    old = today - dt.timedelta(days=100)  # before the local history
    notion.add_day(old.isoformat(), revenue=4242.0, uptime=99.5)
    recent = today - dt.timedelta(days=2)
    notion.add_day(recent.isoformat(), revenue=1.0)  # local has this day: local wins
    for i in range(150):  # enough pages to need pagination
        notion.add_day((old - dt.timedelta(days=i + 1)).isoformat(), certified_users=float(i))
    r = client.get("/v1/pulse/feed", params={"days": 400}, headers=org.headers("viewer"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["notion"] == "ok"
    pts = {(p["day"], p["kpi"]): p for p in body["points"]}
    assert pts[(old.isoformat(), "revenue")] == {"day": old.isoformat(), "kpi": "revenue", "value": 4242.0,
                                                 "source": "notion", "reason": None}
    assert pts[(recent.isoformat(), "revenue")]["source"] == "pulse"
    assert pts[(recent.isoformat(), "revenue")]["value"] != 1.0
    assert sum(1 for p in body["points"] if p["kpi"] == "certified_users" and p["source"] == "notion") == 150
    queries = [q for q in notion.requests if q[1].endswith("/query")]
    assert len(queries) >= 2 and queries[1][2].get("start_cursor")  # followed pagination


def test_snapshot_is_written_to_notion(client, notion: FakeNotion) -> None:
    org = seeded_org()
    r = client.post("/v1/pulse/notion", json={}, headers=org.headers())
    assert r.status_code == 200, r.text
    assert r.json()["kpis"] >= 10
    page = notion.pages[-1]
    assert page["properties"]["Day"]["date"]["start"] == r.json()["day"]
    assert page["properties"]["revenue"]["number"] > 0
    assert client.post("/v1/pulse/notion", json={}, headers=org.headers("viewer")).status_code == 403


def test_notion_failure_degrades_not_crashes(client, notion: FakeNotion) -> None:
    org = seeded_org()
    notion.fail_with = 500
    r = client.get("/v1/pulse/feed", headers=org.headers("viewer"))
    assert r.status_code == 200 and r.json()["notion"].startswith("Notion")
    assert any(p["source"] == "pulse" for p in r.json()["points"])
    push = client.post("/v1/pulse/notion", json={}, headers=org.headers())
    assert push.status_code == 503 and "Notion" in push.json()["detail"]


def test_notion_disabled_without_settings(client) -> None:
    org = seeded_org()
    assert client.get("/v1/pulse/feed", headers=org.headers("viewer")).json()["notion"] == "disabled"
    r = client.post("/v1/pulse/notion", json={}, headers=org.headers())
    assert r.status_code == 409 and r.json()["field"] == "notion"


def test_feed_values_and_series() -> None:
    from memory.db import session_scope
    from tools.decision_engine.metrics_feed import MetricsFeed

    org = seeded_org()
    with session_scope() as s:
        f = MetricsFeed(org_ctx(s, org.org_id), use_notion=False)
        assert len(f.values("revenue", 30)) == 30
        assert f.mean("uptime") is not None and f.costs_by_source(30)["infrastructure"] == 250 * 30
