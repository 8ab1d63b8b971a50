"""Partner webhooks on a real local receiver: Standard Webhooks signatures (checked with the
``standardwebhooks`` package), scoped payloads, rotation, retries and Retry-After, 410, sustained
failure, a hanging endpoint, replay, and the delivery log."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.factories.partners import emit_event, install, make_world, manifest, publish, secrets_for
from tests.fakes.partner_endpoint import Behaviour, Receiver
from tests.support import wait_for


def _setup(client: Any, set_settings: Any, rx: Receiver, path: str, settings: dict[str, Any] | None = None,
           **m: Any) -> tuple[Any, dict[str, Any], str]:
    w = make_world(client, set_settings, **(settings or {}))
    slug = f"{w.partner.slug}.hooks"
    publish(client, w, manifest(slug, rx.url(path), **m))
    inst = install(client, w.customer, slug)
    return w, inst, slug


def _deliveries(client: Any, org: Any, **q: Any) -> list[dict[str, Any]]:
    r = client.get("/v1/webhook-deliveries", params=q, headers=org.headers())
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def _force_due(install_id: int) -> None:
    from sqlalchemy import update

    from memory.db import session_scope, utcnow
    from memory.partner.models import WebhookDelivery

    with session_scope() as s:
        s.execute(update(WebhookDelivery).where(WebhookDelivery.install_id == install_id,
                                                WebhookDelivery.status == "failing").values(next_attempt_at=utcnow()))


def test_signed_event_verifies_and_payload_is_limited_by_scopes(client, set_settings) -> None:
    from tools.errors import Unauthorized
    from tools.partner_api.signing import verify
    from workers.hooks import deliver_due

    with Receiver() as rx:
        w, inst, _ = _setup(client, set_settings, rx, "/h", scopes=["jobs:read", "users:read"],
                            events=["job_complete", "user_signup"])
        # The customer grants jobs:read only: no personal data may reach the partner.
        client.delete(f"/v1/installs/{inst['id']}", headers=w.customer.headers())
        inst = install(client, w.customer, inst["plugin"], scopes=["jobs:read"])
        emit_event("job_complete", {"job_id": 7, "pipeline_id": 3, "state": "succeeded", "attempts": 1,
                                    "trigger": "manual", "email": "leak@example.com"}, w.customer.org_id)
        emit_event("user_signup", {"user_id": 11, "email": "person@example.com", "role": "viewer"},
                   w.customer.org_id)
        emit_event("org_created", {"org_id": w.customer.org_id}, w.customer.org_id)  # not subscribed
        assert deliver_due() >= 2  # (other tests' retries may be due too)
        got = rx.at("/h")
        assert len(got) == 2
        secret = secrets_for(client, w, inst["id"])["secret"]
        bodies = {}
        for r in got:
            data = Webhook(secret).verify(r.body, r.headers)  # raises if forged
            bodies[data["type"]] = data
            assert r.headers["webhook-id"].startswith("msg_")
        job = bodies["job_complete"]["data"]
        assert job["job_id"] == 7 and job["state"] == "succeeded" and "email" not in job
        assert "email" not in json.dumps(bodies["user_signup"]) and "user_id" not in bodies["user_signup"]["data"]
        assert bodies["user_signup"]["data"]["event_id"].startswith("evt_")
        # Forged body, wrong secret, and a stale timestamp are all rejected (by the package and by us).
        r0 = next(r for r in got if b"job_complete" in r.body)
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(r0.body.replace(b"succeeded", b"failed"), r0.headers)
        with pytest.raises(WebhookVerificationError):
            Webhook("whsec_" + "A" * 43 + "=").verify(r0.body, r0.headers)
        old = int(time.time()) - 600
        from tools.partner_api.signing import sign

        stale = {**r0.headers, "webhook-timestamp": str(old),
                 "webhook-signature": sign(secret, r0.headers["webhook-id"], old, r0.body)}
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(r0.body, stale)
        with pytest.raises(Unauthorized):
            verify([secret], stale, r0.body)
        verify([secret], r0.headers, r0.body)
        # The delivery log shows the request headers (signature elided), response code and latency.
        items = _deliveries(client, w.customer, install_id=inst["id"])
        assert {d["status"] for d in items} == {"succeeded"}
        detail = client.get(f"/v1/webhook-deliveries/{items[0]['id']}", headers=w.customer.headers()).json()
        attempt = detail["log"][0]
        assert attempt["status_code"] == 200 and attempt["latency_ms"] > 0
        assert attempt["request_headers"]["webhook-id"] == detail["webhook_id"]
        assert secret not in json.dumps(detail)
        # The partner sees the same deliveries to its plugin.
        assert {d["id"] for d in _deliveries(client, w.partner)} >= {d["id"] for d in items}
        from tools.partner_api.metrics import DELIVERIES, DELIVERY_LATENCY

        assert DELIVERIES.labels(result="success")._value.get() >= 2
        assert DELIVERY_LATENCY._sum.get() > 0
        metrics = client.get("/metrics").text
        assert 'levqor_partner_webhook_deliveries_total{result="success"}' in metrics
        assert "levqor_partner_webhook_event_to_delivery_seconds_bucket" in metrics


def test_rotation_signs_with_both_secrets_during_grace(client, set_settings) -> None:
    from workers.hooks import deliver_due

    with Receiver() as rx:
        w, inst, _ = _setup(client, set_settings, rx, "/rot")
        old = secrets_for(client, w, inst["id"])["secret"]
        # Partner-role keys only read deliveries (docs/dev_portal/partners.md): rotating is for admins.
        assert client.post(f"/v1/installs/{inst['id']}/rotate-secret",
                           headers=w.partner.headers("partner")).status_code == 403
        new = client.post(f"/v1/installs/{inst['id']}/rotate-secret", headers=w.partner.headers()).json()
        emit_event("job_complete", {"job_id": 1}, w.customer.org_id)
        deliver_due()
        (r,) = rx.at("/rot")
        assert len(r.headers["webhook-signature"].split()) == 2
        Webhook(old).verify(r.body, r.headers)
        Webhook(new["secret"]).verify(r.body, r.headers)


def test_retries_follow_schedule_and_honour_retry_after(client, set_settings) -> None:
    from memory.db import session_scope, utcnow
    from memory.partner.models import PluginInstall
    from workers.hooks import deliver_due

    with Receiver() as rx:
        rx.behaviour["/busy"] = Behaviour(503, headers={"Retry-After": "120"})
        w, inst, _ = _setup(client, set_settings, rx, "/busy")
        emit_event("job_complete", {"job_id": 1}, w.customer.org_id)
        deliver_due()
        (d,) = _deliveries(client, w.customer, install_id=inst["id"])
        assert d["status"] == "failing" and d["attempts"] == 1 and d["last_status_code"] == 503
        wait = (dt.datetime.fromisoformat(d["next_attempt_at"]) - utcnow()).total_seconds()
        assert 110 < wait <= 121, wait  # Retry-After wins over the 5 s schedule step
        rx.behaviour["/busy"] = Behaviour(500)
        _force_due(inst["id"])
        deliver_due()
        (d,) = _deliveries(client, w.customer, install_id=inst["id"])
        wait = (dt.datetime.fromisoformat(d["next_attempt_at"]) - utcnow()).total_seconds()
        assert d["attempts"] == 2 and 240 - 5 < wait <= 360, wait  # schedule step 3: 5 min +/- 20 % jitter
        with session_scope() as s:
            assert s.get(PluginInstall, inst["id"]).failing_since is not None
        rx.behaviour["/busy"] = Behaviour(204)
        _force_due(inst["id"])
        deliver_due()
        (d,) = _deliveries(client, w.customer, install_id=inst["id"])
        assert d["status"] == "succeeded" and d["attempts"] == 3
        assert len({r.headers["webhook-id"] for r in rx.at("/busy")}) == 1  # same id on every retry
        with session_scope() as s:
            assert s.get(PluginInstall, inst["id"]).failing_since is None


def test_410_disables_endpoint_and_emails_partner(client, set_settings) -> None:
    from tools.partner_api import emails
    from workers import hooks

    sent: list[tuple[str, str, str]] = []
    emails.set_email_sender(lambda to, subject, body: sent.append((to, subject, body)))
    try:
        with Receiver() as rx:
            rx.behaviour["/gone"] = Behaviour(410)
            w, inst, _ = _setup(client, set_settings, rx, "/gone")
            emit_event("job_complete", {"job_id": 1}, w.customer.org_id)
            hooks.deliver_due()
            installs = client.get("/v1/installs", headers=w.customer.headers()).json()["items"]
            assert installs[0]["endpoint_disabled_at"] and "410" in installs[0]["disabled_reason"]
            assert sent and sent[-1][0] == f"dev@{w.partner.slug}.example" and "disabled" in sent[-1][1]
            # While disabled, new events queue up but nothing is sent.
            emit_event("job_complete", {"job_id": 2}, w.customer.org_id)
            hooks.deliver_due()
            assert len(rx.at("/gone")) == 1
            rx.behaviour["/gone"] = Behaviour(200)
            assert client.post(f"/v1/installs/{inst['id']}/enable", headers=w.customer.headers()).status_code == 200
            hooks.deliver_due()
            assert len(rx.at("/gone")) == 2
    finally:
        emails.set_email_sender(None)


def test_sustained_failure_disables_endpoint(client, set_settings) -> None:
    from sqlalchemy import update

    from memory.db import session_scope, utcnow
    from memory.partner.models import PartnerEmail, PluginInstall
    from workers.hooks import deliver_due

    with Receiver() as rx:
        rx.behaviour["/down"] = Behaviour(500)
        w, inst, _ = _setup(client, set_settings, rx, "/down", {"hooks_disable_after_s": 3600})
        emit_event("job_complete", {"job_id": 1}, w.customer.org_id)
        deliver_due()
        with session_scope() as s:
            assert s.get(PluginInstall, inst["id"]).endpoint_disabled_at is None
            s.execute(update(PluginInstall).where(PluginInstall.id == inst["id"]).values(
                failing_since=utcnow() - dt.timedelta(hours=2)))
        _force_due(inst["id"])
        deliver_due()
        with session_scope() as s:
            row = s.get(PluginInstall, inst["id"])
            assert row.endpoint_disabled_at is not None and "failed for over 3600" in row.disabled_reason
            from sqlalchemy import select

            mails = s.scalars(select(PartnerEmail).where(PartnerEmail.to == f"dev@{w.partner.slug}.example")).all()
            assert len(mails) == 1 and mails[0].sent_at is not None


def test_hanging_endpoint_does_not_slow_other_deliveries(client, set_settings) -> None:
    from workers.hooks import run_hooks

    with Receiver() as rx:
        rx.behaviour["/hang"] = Behaviour(200, delay=60)
        w, _, slug_hang = _setup(client, set_settings, rx, "/hang", {
            "hooks_timeout_s": 30, "hooks_concurrency": 4, "hooks_per_endpoint": 1})
        slug_ok = f"{w.partner.slug}.fast"
        publish(client, w, manifest(slug_ok, rx.url("/fast")))
        install(client, w.customer, slug_ok)
        stop = threading.Event()
        loop = threading.Thread(target=run_hooks, args=(stop, None), daemon=True)
        loop.start()
        try:
            for i in range(5):
                emit_event("job_complete", {"job_id": i}, w.customer.org_id)
            wait_for(lambda: len(rx.at("/hang")) >= 1, 5, "the hanging endpoint to be called")
            started = time.monotonic()
            emit_event("job_complete", {"job_id": 99}, w.customer.org_id)
            wait_for(lambda: any(b'"job_id":99' in r.body for r in rx.at("/fast")), 5, "the healthy endpoint")
            assert time.monotonic() - started < 3
            assert len(rx.at("/fast")) == 6
            assert len(rx.at("/hang")) == 1  # one in flight per endpoint; the rest wait their turn
        finally:
            rx.release.set()
            stop.set()
            loop.join(timeout=40)
        assert not loop.is_alive()


def test_replay_one_delivery_and_all_failures_since(client, set_settings) -> None:
    from workers.hooks import deliver_due

    with Receiver() as rx:
        w, inst, _ = _setup(client, set_settings, rx, "/r")
        since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        emit_event("job_complete", {"job_id": 1}, w.customer.org_id)
        deliver_due()
        (d,) = _deliveries(client, w.customer)
        assert client.post(f"/v1/webhook-deliveries/{d['id']}/replay",
                           headers=w.partner.headers("partner")).status_code == 403
        r = client.post(f"/v1/webhook-deliveries/{d['id']}/replay", headers=w.partner.headers())
        assert r.status_code == 200 and r.json()["status"] == "pending"
        deliver_due()
        assert [x.headers["webhook-id"] for x in rx.at("/r")] == [d["webhook_id"]] * 2
        rx.behaviour["/r"] = Behaviour(500)
        emit_event("job_complete", {"job_id": 2}, w.customer.org_id)
        emit_event("job_complete", {"job_id": 3}, w.customer.org_id)
        deliver_due()
        failing = _deliveries(client, w.customer, status="failing")
        assert len(failing) == 2
        rx.behaviour["/r"] = Behaviour(200)
        r = client.post(f"/v1/installs/{inst['id']}/replay", json={"since": since.isoformat()},
                        headers=w.customer.headers())
        assert r.status_code == 200 and r.json()["requeued"] == 2
        deliver_due()
        assert {x["status"] for x in _deliveries(client, w.customer)} == {"succeeded"}
        assert len(rx.at("/r")) == 6
        # Someone else's delivery cannot be replayed.
        other = make_world(client, set_settings)
        r = client.post(f"/v1/webhook-deliveries/{d['id']}/replay", headers=other.customer.headers())
        assert r.status_code == 404
