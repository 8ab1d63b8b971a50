"""Test mode, isolated like Stripe's: a test key (``lvq_test_``) and a live key of the same organisation each
try every /v1 route that names an object by id (taken from the app's route table, so a new route is
covered on its own) on the other mode's objects, and get 404 every time; lists never show the other
mode's objects. Test credits are their own limited balance (402 with how to get more), test jobs never
accrue partner revenue and call out only to registered test webhook endpoints, signed.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import sys
import uuid
from typing import Any

from sqlalchemy import select, update

from memory.db import session_scope
from memory.events.models import Event, EventDelivery
from memory.jobs.models import SandboxCreditAccount
from memory.partner.models import RevenueEntry
from tests.factories import jobs as js
from tests.factories.orgs import OrgFixture
from tests.factories.partners import emit_event, install, make_world, manifest, publish
from tests.fakes.partner_endpoint import Receiver
from tests.support import ROOT, wait_for
from tests.support.processes import running_worker

# Path parameters naming an object that belongs to one mode.
MODE_IDS = {"pipeline_id", "job_id", "install_id", "delivery_id", "endpoint_id"}
NOOP = [{"kind": "transform", "name": "echo", "expression": "input"}]
# A valid body for the routes that need one (a route missing here answers 422 and fails the test: add it).
BODIES: dict[str, dict[str, Any]] = {
    "/v1/pipelines/{pipeline_id}": {"name": "renamed"},
    "/v1/installs/{install_id}/disable": {"reason": "cross-mode"},
    "/v1/installs/{install_id}/replay": {"since": "2020-01-01T00:00:00Z"},
}


def sandbox_headers(client: Any, org: OrgFixture, role: str = "admin") -> dict[str, str]:
    """Headers with a new test-mode key of ``org`` with ``role``."""
    r = client.post("/v1/keys", json={"name": f"sandbox {role}", "role": role, "mode": "test"}, headers=org.headers())
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['key']}"}


def _ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


def _event_delivery(org_id: int, mode: str) -> int:
    """A dead handler delivery of one of the org's events of ``mode`` (the retry route's object)."""
    with session_scope() as s:
        ev = s.scalars(select(Event).where(Event.org_id == org_id, Event.mode == mode).order_by(Event.id)).first()
        assert ev is not None, mode
        d = EventDelivery(event_id=ev.id, handler=f"tests.dead.{uuid.uuid4().hex[:6]}", status="dead", attempts=8,
                          last_error="boom")
        s.add(d)
        s.flush()
        return d.id


def _objects(client: Any, h: dict[str, str], org_id: int, slug: str, rx: Receiver, mode: str) -> dict[str, Any]:
    """One object of each kind, made with key ``h`` (so of its mode)."""
    pid = _ok(client.post("/v1/pipelines", json={"name": "same name in both modes", "steps": NOOP}, headers=h),
              201)["id"]
    jid = _ok(client.post("/v1/jobs", json={"pipeline_id": pid}, headers=h), 201)["id"]
    dead = _ok(client.post("/v1/jobs", json={"pipeline_id": pid}, headers=h), 201)["id"]
    _ok(client.post(f"/v1/jobs/{dead}/dead-letter", headers=h))
    inst = _ok(client.post("/v1/installs", json={"plugin": slug}, headers=h), 201)["id"]
    ep = _ok(client.post("/v1/webhook-endpoints", json={"url": rx.url(f"/{mode}")}, headers=h), 201)
    assert ep["mode"] == mode and ep["secret"].startswith("whsec_")
    emit_event("job_complete", {"job_id": jid, **({"livemode": False} if mode == "test" else {})}, org_id)
    deliveries = _ok(client.get("/v1/webhook-deliveries", headers=h))["items"]
    assert [d["install_id"] for d in deliveries] == [inst], deliveries
    body = json.loads(_ok(client.get(f"/v1/webhook-deliveries/{deliveries[0]['id']}", headers=h))["body"])
    assert body["data"].get("livemode", True) is (mode == "live"), body
    return {"pipeline_id": pid, "job_id": jid, "dead_job_id": dead, "install_id": inst, "endpoint_id": ep["id"],
            "delivery_id": deliveries[0]["id"], "event_delivery_id": _event_delivery(org_id, mode)}


def _url(path: str, ids: dict[str, Any]) -> str:
    out = path
    for name in MODE_IDS:
        value = ids["event_delivery_id"] if name == "delivery_id" and path.startswith("/v1/events") else ids[name]
        out = out.replace("{" + name + "}", str(value))
    return out


def _visible(client: Any, h: dict[str, str]) -> dict[str, set[int]]:
    """Ids of every object kind the key ``h`` lists."""
    def ids(path: str, key: str = "id") -> set[int]:
        return {int(i[key]) for i in _ok(client.get(path, headers=h))["items"]}

    return {"pipeline_id": ids("/v1/pipelines"), "job_id": ids("/v1/jobs") | ids("/v1/jobs/dead"),
            "install_id": ids("/v1/installs"), "endpoint_id": ids("/v1/webhook-endpoints"),
            "delivery_id": ids("/v1/webhook-deliveries"),
            "event_job_ids": {int(e["payload"].get("job_id", 0)) for e in _ok(client.get(
                "/v1/events", headers=h))["items"]}}


def test_test_and_live_keys_never_reach_each_others_objects(app, client, set_settings) -> None:
    with Receiver() as rx:
        w = make_world(client, set_settings)
        org = w.customer
        slug = f"{w.partner.slug}.modes"
        publish(client, w, manifest(slug, rx.url("/partner")))
        js.grant(org.org_id, 10)
        live_h, test_h = org.headers(), sandbox_headers(client, org)
        live = _objects(client, live_h, org.org_id, slug, rx, "live")
        test = _objects(client, test_h, org.org_id, slug, rx, "test")
        assert js.balance(org.org_id) == 8  # the two live runs; the test runs took test credits
        # Lists show only the caller's mode.
        for h, mine, theirs in ((live_h, live, test), (test_h, test, live)):
            seen = _visible(client, h)
            for kind in ("pipeline_id", "install_id", "endpoint_id", "delivery_id"):
                assert mine[kind] in seen[kind] and theirs[kind] not in seen[kind], kind
            assert {mine["job_id"], mine["dead_job_id"]} <= seen["job_id"]
            assert not {theirs["job_id"], theirs["dead_job_id"]} & seen["job_id"]
            assert mine["job_id"] in seen["event_job_ids"] and theirs["job_id"] not in seen["event_job_ids"]

        tried: list[tuple[str, str]] = []
        for path, ops in app.openapi()["paths"].items():
            names = {p.strip("{}") for p in path.split("/") if p.startswith("{")}
            if not path.startswith("/v1/") or not names or not names <= MODE_IDS:
                continue
            for method in ops:
                for h, other in ((test_h, live), (live_h, test)):
                    kwargs: dict[str, Any] = {"headers": h}
                    if method in ("post", "put", "patch"):
                        kwargs["json"] = BODIES.get(path, {})
                    url = _url(path, other)
                    r = client.request(method.upper(), url, **kwargs)
                    assert r.status_code == 404, (method.upper(), path, url, r.status_code, r.text[:300])
                    tried.append((method.upper(), path))
        covered = {p for _, p in tried}
        for must in ("/v1/pipelines/{pipeline_id}", "/v1/jobs/{job_id}", "/v1/installs/{install_id}",
                     "/v1/webhook-deliveries/{delivery_id}", "/v1/webhook-endpoints/{endpoint_id}",
                     "/v1/webhook-endpoints/{endpoint_id}/secret", "/v1/events/deliveries/{delivery_id}/retry"):
            assert must in covered, (must, sorted(covered))
        assert len(tried) >= 2 * 20, len(tried)

        # Ids in bodies: the other mode's pipeline cannot be run or paused.
        for h, other in ((test_h, live), (live_h, test)):
            r = client.post("/v1/jobs", json={"pipeline_id": other["pipeline_id"]}, headers=h)
            assert r.status_code == 404 and r.json()["field"] == "pipeline_id", r.text
            r = client.post("/v1/queue/pause", params={"pipeline_id": other["pipeline_id"]}, headers=h)
            assert r.status_code == 404, r.text
        # A test key cannot pause the organisation's queue (it holds the live jobs).
        r = client.post("/v1/queue/pause", headers=test_h)
        assert r.status_code == 403 and r.json()["field"] == "pipeline_id", r.text

        # Everything is still there, unchanged, for its own mode.
        for h, mine in ((live_h, live), (test_h, test)):
            pipeline = _ok(client.get(f"/v1/pipelines/{mine['pipeline_id']}", headers=h))
            assert pipeline["name"] == "same name in both modes"
            assert _ok(client.get(f"/v1/jobs/{mine['job_id']}", headers=h))["state"] == "queued"
            assert _ok(client.get(f"/v1/jobs/{mine['dead_job_id']}", headers=h))["state"] == "dead"
            assert _ok(client.get(f"/v1/webhook-endpoints/{mine['endpoint_id']}", headers=h))["id"]
            assert _ok(client.get("/v1/installs", headers=h))["items"][0]["status"] == "active"


def test_test_credits_are_limited_refilled_monthly_refunded_and_reset(client, org: OrgFixture, set_settings) -> None:
    set_settings(test_credits_monthly=3)
    th, viewer = sandbox_headers(client, org), sandbox_headers(client, org, "viewer")
    pid = _ok(client.post("/v1/pipelines", json={"name": "sandbox", "steps": NOOP}, headers=th), 201)["id"]
    body = _ok(client.get("/v1/credits", headers=viewer))
    assert body["mode"] == "test" and body["balance"] == 3 and body["refills_on"]
    jobs = [_ok(client.post("/v1/jobs", json={"pipeline_id": pid}, headers=th), 201)["id"] for _ in range(3)]
    r = client.post("/v1/jobs", json={"pipeline_id": pid}, headers=th)
    assert r.status_code == 402 and r.headers["content-type"].startswith("application/problem+json"), r.text
    problem = r.json()
    today = dt.datetime.now(dt.UTC).date()
    first_next = dt.date(today.year + (today.month == 12), today.month % 12 + 1, 1).isoformat()
    assert problem["field"] == "credits" and problem["refills_on"] == first_next and problem["mode"] == "test"
    assert first_next in problem["detail"] and "/v1/test-data/reset" in problem["detail"]
    assert js.balance(org.org_id) == 0  # the live balance is another account
    assert _ok(client.get("/v1/credits", headers=org.headers()))["mode"] == "live"

    # Cancelled before it ran: the test credit comes back, to the test balance.
    _ok(client.post(f"/v1/jobs/{jobs[0]}/cancel", headers=th))
    body = _ok(client.get("/v1/credits", headers=th))
    assert body["balance"] == 1 and [e["reason"] for e in body["ledger"]][:1] == ["refund"]
    assert js.balance(org.org_id) == 0

    # A new month refills the test balance (the row's last refill moved back a month).
    with session_scope() as s:
        s.execute(update(SandboxCreditAccount).where(SandboxCreditAccount.org_id == org.org_id)
                  .values(period="2000-01", balance=0))
    assert _ok(client.get("/v1/credits", headers=th))["balance"] == 3

    # Reset: owner/admin only, audited; test objects gone, test credits restored, live data untouched.
    live_pid = js.pipeline(org.org_id, NOOP, name="live one")
    r = client.post("/v1/test-data/reset", headers=viewer)
    assert r.status_code == 403, r.text
    r = client.post("/v1/test-data/reset", headers=org.headers("viewer"))
    assert r.status_code == 403, r.text
    out = _ok(client.post("/v1/test-data/reset", headers=th))
    assert out["pipelines"] == 1 and out["jobs"] == 3 and out["test_credits"] == 3, out
    assert client.get(f"/v1/pipelines/{pid}", headers=th).status_code == 404
    assert client.get(f"/v1/jobs/{jobs[1]}", headers=th).status_code == 404
    assert _ok(client.get("/v1/credits", headers=th))["ledger"] == []
    assert _ok(client.get(f"/v1/pipelines/{live_pid}", headers=org.headers()))["name"] == "live one"
    audit = _ok(client.get("/v1/audit", params={"action": "test_data.reset"}, headers=org.headers("auditor")))
    assert audit["items"][0]["detail"]["jobs"] == 3


def _sdk() -> Any:
    spec = importlib.util.spec_from_file_location("sdk_example", ROOT / "docs" / "dev_portal" / "sdk_example.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("sdk_example", mod)  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def _finished(job_id: int) -> bool:
    return js.job(job_id).state in ("succeeded", "failed", "dead")


def test_test_jobs_call_only_registered_test_endpoints_signed_and_never_accrue_revenue(
        client, set_settings) -> None:
    sdk = _sdk()
    with Receiver() as rx:
        w = make_world(client, set_settings)
        org = w.customer
        slug = f"{w.partner.slug}.meter"
        publish(client, w, manifest(slug, None, pricing={"model": "per_run", "credits_per_run": 5},
                                    endpoints={"actions": [{"name": "post", "url": rx.url("/action")}]}))
        js.grant(org.org_id, 20)
        live_h, th = org.headers(), sandbox_headers(client, org)
        install(client, org, slug)
        _ok(client.post("/v1/installs", json={"plugin": slug}, headers=th), 201)
        test_ep = _ok(client.post("/v1/webhook-endpoints", json={"url": rx.url("/hook-test")}, headers=th), 201)
        live_ep = _ok(client.post("/v1/webhook-endpoints", json={"url": rx.url("/hook-live")}, headers=live_h), 201)
        _ok(client.post("/v1/webhook-endpoints", json={"url": rx.url("/action")}, headers=th), 201)

        def job(h: dict[str, str], steps: list[dict[str, Any]]) -> int:
            name = f"p-{uuid.uuid4().hex[:8]}"
            pid = _ok(client.post("/v1/pipelines", json={"name": name, "steps": steps}, headers=h), 201)["id"]
            return int(_ok(client.post("/v1/jobs", json={"pipeline_id": pid}, headers=h), 201)["id"])

        notify = {"kind": "notify", "channel": "webhook", "subject": "done", "body": "hello"}
        plugin_call = {"kind": "http", "method": "POST", "plugin": slug, "action": "post", "body": {"x": 1}}
        test_signed = job(th, [{**notify, "url": rx.url("/hook-test")}])
        test_unregistered = job(th, [{"kind": "http", "method": "POST", "url": rx.url("/elsewhere"), "body": {}}])
        test_live_endpoint = job(th, [{**notify, "url": rx.url("/hook-live")}])
        test_email = job(th, [{"kind": "notify", "channel": "email", "to": "ops@acme-test.io", "subject": "x"}])
        test_plugin = job(th, [plugin_call])
        live_signed = job(live_h, [{**notify, "url": rx.url("/hook-live")}])
        live_unsigned = job(live_h, [{**notify, "url": rx.url("/hook-unregistered")}])
        live_plugin = job(live_h, [plugin_call])
        everything = [test_signed, test_unregistered, test_live_endpoint, test_email, test_plugin, live_signed,
                      live_unsigned, live_plugin]
        with running_worker():
            wait_for(lambda: all(_finished(j) for j in everything), 30, "the jobs to finish")
            emitted = [test_plugin, live_plugin]
            wait_for(lambda: all(js.events_for("job_complete", j) for j in emitted), 10, "completion events")
            for _ in range(5):
                from tools.events.service import dispatch_pending
                from workers import wiring

                if dispatch_pending(wiring.reactions()) == 0:
                    break

        states = {j: js.job(j) for j in everything}
        for j in (test_signed, test_plugin, live_signed, live_unsigned, live_plugin):
            assert states[j].state == "succeeded", (j, states[j].last_error)
        for j in (test_unregistered, test_live_endpoint, test_email):
            assert states[j].state == "failed" and states[j].retryable is False, (j, states[j].last_error)
        assert "not a registered test webhook endpoint" in (states[test_unregistered].last_error or "")
        assert "not a registered test webhook endpoint" in (states[test_live_endpoint].last_error or "")
        assert "test jobs send no email" in (states[test_email].last_error or "")
        assert rx.at("/elsewhere") == []  # never called
        assert len(rx.at("/hook-live")) == 1  # only the live job's notify reached the live endpoint

        # The test notify is signed with the test endpoint's secret and verifies with the SDK example.
        (got,) = rx.at("/hook-test")
        sdk.verify_webhook(test_ep["secret"], got.headers, got.body)
        assert json.loads(got.body)["livemode"] is False
        (live_got,) = rx.at("/hook-live")
        sdk.verify_webhook(live_ep["secret"], live_got.headers, live_got.body)
        try:
            sdk.verify_webhook(test_ep["secret"], live_got.headers, live_got.body)
            raise AssertionError("a live webhook verified with the test secret")
        except sdk.WebhookVerificationError:
            pass
        # A live notify URL nobody registered still works, unsigned (compatibility; see the docs).
        (plain,) = rx.at("/hook-unregistered")
        assert "webhook-signature" not in plain.headers
        # Completion events of test jobs say livemode false.
        assert js.events_for("job_complete", test_plugin)[0]["livemode"] is False
        assert "livemode" not in js.events_for("job_complete", live_plugin)[0]

        # Both plugin calls reached the action; only the live run accrued the partner's per-run revenue.
        assert len(rx.at("/action")) == 2
        with session_scope() as s:
            refs = [r.source_ref for r in s.scalars(select(RevenueEntry).where(RevenueEntry.org_id == org.org_id))]
        assert len(refs) == 1, refs


def test_test_installs_of_monthly_plugins_accrue_nothing(client, set_settings) -> None:
    w = make_world(client, set_settings)
    org = w.customer
    slug = f"{w.partner.slug}.monthly"
    publish(client, w, manifest(slug, None, pricing={"model": "monthly", "monthly_minor": 1999}))
    th = sandbox_headers(client, org)
    _ok(client.post("/v1/installs", json={"plugin": slug}, headers=th), 201)
    with session_scope() as s:
        assert s.scalars(select(RevenueEntry).where(RevenueEntry.org_id == org.org_id)).all() == []
    install(client, org, slug)
    with session_scope() as s:
        assert len(s.scalars(select(RevenueEntry).where(RevenueEntry.org_id == org.org_id)).all()) == 1


def test_webhook_endpoint_routes_validate_input(client, org: OrgFixture, set_settings) -> None:
    h = org.headers()
    r = client.post("/v1/webhook-endpoints", json={"url": "http://169.254.169.254/latest"}, headers=h)
    assert r.status_code == 422 and "url" in r.text, r.text
    r = client.post("/v1/webhook-endpoints", json={"url": "ftp://example.com/x"}, headers=h)
    assert r.status_code == 422, r.text
    for bad in ("0", str(2**31), str(2**63), "x"):
        r = client.get(f"/v1/webhook-endpoints/{bad}", headers=h)
        assert r.status_code == 422 and r.json()["field"] == "endpoint_id", (bad, r.status_code, r.text)
    assert client.get(f"/v1/webhook-endpoints/{2**31 - 1}", headers=h).status_code == 404
    ep = _ok(client.post("/v1/webhook-endpoints", json={"url": "https://hooks.example.com/levqor"}, headers=h), 201)
    assert "secret" not in _ok(client.get(f"/v1/webhook-endpoints/{ep['id']}", headers=h))
    assert client.get(f"/v1/webhook-endpoints/{ep['id']}/secret", headers=org.headers("viewer")).status_code == 403
    assert _ok(client.get(f"/v1/webhook-endpoints/{ep['id']}/secret", headers=h))["secret"] == ep["secret"]
    rotated = _ok(client.post(f"/v1/webhook-endpoints/{ep['id']}/rotate", headers=h))
    assert rotated["secret"] != ep["secret"] and rotated["rotated_at"]
    _ok(client.delete(f"/v1/webhook-endpoints/{ep['id']}", headers=h))
    assert client.get(f"/v1/webhook-endpoints/{ep['id']}", headers=h).status_code == 404
    actions = [e["action"] for e in _ok(client.get("/v1/audit", headers=org.headers("auditor")))["items"]]
    for a in ("webhook_endpoints.created", "webhook_endpoints.secret_revealed", "webhook_endpoints.rotated",
              "webhook_endpoints.deleted"):
        assert a in actions, a


def test_another_organisation_cannot_reach_webhook_endpoints_through_the_pages(app, client, org: OrgFixture,
                                                                                set_settings) -> None:
    """The /developer pages are not in the OpenAPI document the tenancy test walks: the same rule, here."""
    import secrets

    from fastapi.testclient import TestClient

    from tests.factories.portal import csrf, verified_developer

    th = sandbox_headers(client, org)
    victim = _ok(client.post("/v1/webhook-endpoints", json={"url": "https://victim.example.com/h"}, headers=th), 201)
    set_settings(signup_max_per_ip=1000)
    with TestClient(app, raise_server_exceptions=False,
                    client=(f"198.51.100.{secrets.randbelow(250) + 1}", 40000)) as web:
        verified_developer(web)
        page = web.get("/developer/webhooks")
        assert page.status_code == 200 and "victim.example.com" not in page.text
        token = csrf(page.text)
        for action in ("reveal", "rotate", "delete"):
            r = web.post(f"/developer/webhooks/{victim['id']}/{action}?mode=test", data={"csrf_token": token})
            assert r.status_code == 404 and r.json()["field"] == "endpoint_id", r.text
        # The developer's own test endpoint, then the reset button (its own organisation only).
        r = web.post("/developer/webhooks", data={"csrf_token": token, "url": "https://mine.example.com/h",
                                                   "mode": "test"})
        assert r.status_code == 201 and "whsec_" in r.text, r.text
        r = web.post("/developer/test-data/reset", data={"csrf_token": token})
        assert r.status_code == 200 and "Test data deleted" in r.text, r.text
        assert "mine.example.com" in web.get("/developer/webhooks?mode=test").text  # endpoints stay
        assert "mine.example.com" not in web.get("/developer/webhooks?mode=live").text
    after = _ok(client.get(f"/v1/webhook-endpoints/{victim['id']}/secret", headers=th))
    assert after["secret"] == victim["secret"]


def test_partner_deliveries_of_test_events_go_only_to_registered_test_endpoints(client, set_settings) -> None:
    from workers.hooks import Deliverer

    with Receiver() as rx:
        w = make_world(client, set_settings)
        org = w.customer
        slug = f"{w.partner.slug}.targets"
        publish(client, w, manifest(slug, rx.url("/partner")))
        test_h = sandbox_headers(client, org)
        _ok(client.post("/v1/installs", json={"plugin": slug}, headers=test_h), 201)
        emit_event("job_complete", {"job_id": 1, "livemode": False}, org.org_id)
        deliverer = Deliverer(concurrency=1, per_endpoint=1, timeout_s=5)
        try:
            deliverer.drain(10)
            # The partner's URL is no registered test endpoint of this organisation: recorded, never sent.
            (d,) = _ok(client.get("/v1/webhook-deliveries", headers=test_h))["items"]
            assert d["status"] == "failed" and "not a registered test webhook endpoint" in d["last_error"], d
            assert rx.at("/partner") == []
            replay = client.post(f"/v1/webhook-deliveries/{d['id']}/replay", headers=test_h)
            assert replay.status_code == 409 and "not a registered test webhook endpoint" in replay.json()["detail"]
            deliverer.drain(10)
            assert rx.at("/partner") == []
            # Once the developer registers that URL as a test endpoint, the replay goes out.
            _ok(client.post("/v1/webhook-endpoints", json={"url": rx.url("/partner")}, headers=test_h), 201)
            _ok(client.post(f"/v1/webhook-deliveries/{d['id']}/replay", headers=test_h))
            deliverer.drain(10)
        finally:
            deliverer.close()
        (got,) = rx.at("/partner")
        assert json.loads(got.body)["data"]["livemode"] is False
