"""Webhook admission control under overload: what the fan-out sheds (an organisation over its backlog,
an endpoint lagging), that shed work is recorded, counted, raises an incident, is visible to the
customer and the partner, and is replayed once with the webhook-ids it would have had."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.factories.partners import emit_event, install, make_world, manifest, publish
from tests.fakes.partner_endpoint import Receiver


def _world(client: Any, set_settings: Any, rx: Receiver, paths: tuple[str, ...],
           **settings: Any) -> tuple[Any, list[int]]:
    w = make_world(client, set_settings, **settings)
    ids = []
    for p in paths:
        slug = f"{w.partner.slug}.{p.strip('/')}"
        publish(client, w, manifest(slug, rx.url(p)))
        ids.append(install(client, w.customer, slug)["id"])
    return w, ids


def _deliveries(install_id: int) -> list[Any]:
    from sqlalchemy import select

    from memory.db import session_scope
    from memory.partner.models import WebhookDelivery

    with session_scope() as s:
        rows = s.scalars(select(WebhookDelivery).where(WebhookDelivery.install_id == install_id)
                         .order_by(WebhookDelivery.event_id)).all()
        s.expunge_all()
        return list(rows)


def _shed(reason: str) -> float:
    from tools.partner_api import metrics

    return float(metrics.SHED.labels(reason=reason)._value.get())


def test_decide() -> None:
    from tools.partner_api.admission import decide

    now = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)
    assert decide(9, 10, None, now, 5.0) is None
    assert decide(10, 10, None, now, 5.0) == "org_backlog"
    assert decide(0, 10, now - dt.timedelta(seconds=5), now, 5.0) is None
    assert decide(0, 10, now - dt.timedelta(seconds=6), now, 5.0) == "endpoint_lag"
    assert decide(10, 10, now - dt.timedelta(seconds=6), now, 5.0) == "org_backlog"
    assert decide(10**6, 0, now - dt.timedelta(days=1), now, 0) is None  # both limits off


def test_org_over_its_backlog_sheds_records_and_replays_once(client, set_settings) -> None:
    from sqlalchemy import select

    from memory.db import session_scope
    from memory.ops.models import Incident
    from tools.auto_intel.monitor import monitor_tick
    from workers.hooks import deliver_due

    with Receiver() as rx:
        w, (iid,) = _world(client, set_settings, rx, ("/org",), hooks_org_backlog_max=3)
        before = _shed("org_backlog")
        for i in range(5):
            emit_event("job_complete", {"job_id": i}, w.customer.org_id)
        admitted = _deliveries(iid)
        assert len(admitted) == 3  # the first three fill the backlog; the last two are shed
        assert _shed("org_backlog") - before == 2
        page = client.get("/v1/webhook-deferrals", headers=w.customer.headers()).json()["items"]
        assert [(d["install_id"], d["shed"], d["reason"], d["status"]) for d in page] == \
            [(iid, 2, "org_backlog", "deferred")]
        # The partner sees the same record for its plugin; another organisation does not.
        assert [d["id"] for d in client.get("/v1/webhook-deferrals", headers=w.partner.headers()).json()["items"]] \
            == [page[0]["id"]]
        other = make_world(client, set_settings)
        assert client.get("/v1/webhook-deferrals", headers=other.customer.headers()).json()["items"] == []
        assert client.post(f"/v1/installs/{iid}/replay-deferred", json={},
                           headers=other.customer.headers()).status_code == 404
        # The monitor opens one incident for the organisation's shedding.
        tick = monitor_tick()
        assert tick.error is None
        finding = next(f for f in tick.findings if f.cause == f"webhooks:org:{w.customer.org_id}")
        assert finding.diagnosis == "webhook_shedding" and finding.evidence["shed"] == 2
        with session_scope() as s:
            inc = s.scalars(select(Incident).where(Incident.cause == finding.cause)).one()
            assert inc.diagnosis == "webhook_shedding" and inc.org_id == w.customer.org_id and inc.state == "open"
            assert inc.id in tick.opened
        # Delivered, the backlog drains; the replay creates exactly the shed deliveries, never shed again.
        assert deliver_due() >= 3
        r = client.post(f"/v1/installs/{iid}/replay-deferred", json={}, headers=w.customer.headers())
        assert r.status_code == 200 and r.json()["requeued"] == 2 and r.json()["remaining"] == 0
        deliver_due()
        rows = _deliveries(iid)
        assert len(rows) == 5 and {d.status for d in rows} == {"succeeded"}
        assert [d.replays for d in rows] == [0, 0, 0, 1, 1]
        sent = [x.headers["webhook-id"] for x in rx.at("/org")]
        assert sorted(sent) == sorted(d.uid for d in rows)  # each once, with its stable webhook-id
        assert client.get("/v1/webhook-deferrals", headers=w.customer.headers()).json()["items"][0]["status"] \
            == "replayed"
        # A second replay finds nothing left.
        r = client.post(f"/v1/installs/{iid}/replay-deferred", json={}, headers=w.customer.headers())
        assert r.json()["requeued"] == 0


def test_one_org_overloaded_does_not_shed_another(client, set_settings) -> None:
    with Receiver() as rx:
        a, (ia,) = _world(client, set_settings, rx, ("/a",), hooks_org_backlog_max=2)
        b, (ib,) = _world(client, set_settings, rx, ("/b",), hooks_org_backlog_max=2)
        for i in range(4):
            emit_event("job_complete", {"job_id": i}, a.customer.org_id)
        emit_event("job_complete", {"job_id": 100}, b.customer.org_id)
        assert len(_deliveries(ia)) == 2
        assert len(_deliveries(ib)) == 1
        assert client.get("/v1/webhook-deferrals", headers=b.customer.headers()).json()["items"] == []


def test_lagging_endpoint_sheds_only_its_own_deliveries(client, set_settings) -> None:
    from sqlalchemy import update

    from memory.db import session_scope, utcnow
    from memory.partner.models import WebhookDelivery

    with Receiver() as rx:
        w, (slow, fast) = _world(client, set_settings, rx, ("/slow", "/fast"), hooks_org_backlog_max=0,
                                 hooks_endpoint_max_lag_s=30)
        before = _shed("endpoint_lag")
        emit_event("job_complete", {"job_id": 1}, w.customer.org_id)
        with session_scope() as s:  # nobody has claimed the slow endpoint's delivery for a minute
            s.execute(update(WebhookDelivery).where(WebhookDelivery.install_id == slow)
                      .values(next_attempt_at=utcnow() - dt.timedelta(seconds=60)))
        emit_event("job_complete", {"job_id": 2}, w.customer.org_id)
        assert len(_deliveries(slow)) == 1 and len(_deliveries(fast)) == 2
        assert _shed("endpoint_lag") - before == 1
        (d,) = client.get("/v1/webhook-deferrals", params={"install_id": slow},
                          headers=w.customer.headers()).json()["items"]
        assert d["reason"] == "endpoint_lag" and d["shed"] == 1


def test_disabled_endpoint_holds_deliveries_without_counting_or_shedding(client, set_settings) -> None:
    with Receiver() as rx:
        w, (held, live) = _world(client, set_settings, rx, ("/held", "/live"), hooks_org_backlog_max=2)
        r = client.post(f"/v1/installs/{held}/disable", json={"reason": "maintenance"}, headers=w.customer.headers())
        assert r.status_code == 200, r.text
        emit_event("job_complete", {"job_id": 1}, w.customer.org_id)
        emit_event("job_complete", {"job_id": 2}, w.customer.org_id)
        emit_event("job_complete", {"job_id": 3}, w.customer.org_id)
        assert len(_deliveries(held)) == 3  # held for when it is enabled, as before
        assert len(_deliveries(live)) == 2  # only the live endpoint's two fill the backlog
        (d,) = client.get("/v1/webhook-deferrals", headers=w.customer.headers()).json()["items"]
        assert d["install_id"] == live and d["shed"] == 1


def test_replay_goes_through_a_limit_of_events_per_call(client, set_settings) -> None:
    with Receiver() as rx:
        w, (iid,) = _world(client, set_settings, rx, ("/page",), hooks_org_backlog_max=1)
        for i in range(4):
            emit_event("job_complete", {"job_id": i}, w.customer.org_id)
        assert len(_deliveries(iid)) == 1
        r = client.post(f"/v1/installs/{iid}/replay-deferred", json={"limit": 2}, headers=w.customer.headers())
        assert r.status_code == 200 and r.json()["requeued"] >= 1 and r.json()["remaining"] == 1
        r = client.post(f"/v1/installs/{iid}/replay-deferred", json={"limit": 10}, headers=w.customer.headers())
        assert r.json()["remaining"] == 0
        assert len(_deliveries(iid)) == 4
