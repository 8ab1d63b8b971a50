"""Pipeline calls to a plugin's actions are signed to the partner with the install's secret.

A real job worker runs real pipelines against a real HTTP receiver (a server thread on loopback);
the receiver's requests are verified with the Standard Webhooks library and with plain hmac.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

from standardwebhooks.webhooks import Webhook

from tests.factories import jobs as js
from tests.factories.partners import World, install, make_world, manifest, publish, secrets_for
from tests.fakes.partner_endpoint import Behaviour, Receiver
from tests.support import ROOT, wait_for
from tests.support.processes import running_worker


def _plugin(client: Any, set_settings: Any, rx: Receiver, *, installed: bool = True) -> tuple[World, str, int | None]:
    w = make_world(client, set_settings)
    slug = f"{w.partner.slug}.chat"
    publish(client, w, manifest(slug, None, pricing={"model": "per_run", "credits_per_run": 5},
                                endpoints={"actions": [{"name": "post", "url": rx.url("/action")},
                                                       {"name": "moved", "url": rx.url("/moved")}]}))
    inst_id = install(client, w.customer, slug)["id"] if installed else None
    js.grant(w.customer.org_id, 100)
    return w, slug, inst_id


def _run(org_id: int, pipeline_id: int, payload: dict[str, Any] | None = None, *, state: str = "succeeded") -> Any:
    job_id = js.submit(org_id, pipeline_id, payload or {})
    with running_worker():
        wait_for(lambda: js.job(job_id).state in ("succeeded", "failed", "dead"), 20, "the job to finish")
    job = js.job(job_id)
    assert job.state == state, job.last_error
    return job


def _docs_verifier() -> Callable[[list[str], dict[str, str], bytes], None]:
    """The partner's plain-hmac check exactly as docs/dev_portal/partners.md shows it."""
    text = (ROOT / "docs" / "dev_portal" / "partners.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S)
    assert code is not None
    scope: dict[str, Any] = {}
    exec(code.group(1), scope)  # our own documentation
    return scope["verify_levqor_call"]  # type: ignore[no-any-return]


def _hmac_ok(secret: str, headers: dict[str, str], body: bytes) -> bool:
    try:
        _docs_verifier()([secret], headers, body)
    except ValueError:
        return False
    return True


def test_pipeline_call_to_plugin_action_is_signed_with_the_install_secret(client, set_settings) -> None:
    with Receiver() as rx:
        w, slug, inst_id = _plugin(client, set_settings, rx)
        pid = js.pipeline(w.customer.org_id, [
            {"kind": "http", "method": "POST", "plugin": slug, "action": "post", "body": {"who": "{{ input.who }}"}},
            {"kind": "http", "method": "POST", "url": rx.url("/action/sub?x=1"),  # by URL, under the action's
             "body": ["{{ prev.status }}"]},
        ])
        job = _run(w.customer.org_id, pid, {"who": "ada"})
        hits = rx.at("/action") + rx.at("/action/sub?x=1")
        assert [h.body for h in hits] == [b'{"who": "ada"}', b"[200]"]
        secret = secrets_for(client, w, inst_id)["secret"]
        for h in hits:
            Webhook(secret).verify(h.body, h.headers)  # raises if forged or stale
            assert _hmac_ok(secret, h.headers, h.body)
            assert h.headers["levqor-install-id"] == str(inst_id)
            assert h.headers["levqor-org-id"] == str(w.customer.org_id)
            assert h.headers["levqor-plugin"] == slug and h.headers["levqor-action"] == "post"
        assert hits[0].headers["webhook-id"] != hits[1].headers["webhook-id"]
        assert hits[0].headers["webhook-id"].startswith(f"msg_job{job.id}_")
        # Another install's secret does not verify it.
        assert not _hmac_ok("whsec_" + base64.b64encode(b"k" * 32).decode(), hits[0].headers, hits[0].body)

        # Per-run pricing accrues as before: 5 credits x 10 minor units for the job.
        from workers.dispatcher import dispatch_pending

        wait_for(lambda: dispatch_pending() == 0, 10, "the outbox to drain")
        st = client.get("/v1/payouts/statement", headers=w.partner.headers("partner")).json()
        assert st["gross_minor"] == 50, st

        # During a rotation both secrets sign the call.
        r = client.post(f"/v1/installs/{inst_id}/rotate-secret", headers=w.customer.headers())
        assert r.status_code == 200, r.text
        new, old = r.json()["secret"], r.json()["previous_secret"]
        _run(w.customer.org_id, pid, {"who": "bob"})
        h = rx.at("/action")[-1]
        assert len(h.headers["webhook-signature"].split()) == 2
        Webhook(new).verify(h.body, h.headers)
        Webhook(old).verify(h.body, h.headers)


def test_call_to_a_plugin_that_is_not_installed_fails_clearly(client, set_settings) -> None:
    with Receiver() as rx:
        w, slug, _ = _plugin(client, set_settings, rx, installed=False)
        h = w.customer.headers()
        # Refused when the pipeline is saved: by name and by URL.
        r = client.post("/v1/pipelines", headers=h, json={"name": "by-name", "steps": [
            {"kind": "http", "method": "POST", "plugin": slug, "action": "post"}]})
        assert r.status_code == 422 and r.json()["field"] == "steps.0.plugin", r.text
        assert f"plugin {slug!r} is not installed" in r.json()["detail"]
        r = client.post("/v1/pipelines", headers=h, json={"name": "by-url", "steps": [
            {"kind": "transform", "expression": "input"},
            {"kind": "http", "method": "POST", "url": rx.url("/action")}]})
        assert r.status_code == 422 and r.json()["field"] == "steps.1.url" and "not installed" in r.json()["detail"]
        r = client.post("/v1/pipelines", headers=h, json={"name": "by-notify", "steps": [
            {"kind": "notify", "channel": "webhook", "url": rx.url("/action/x")}]})
        assert r.status_code == 422 and r.json()["field"] == "steps.0.url" and "not installed" in r.json()["detail"]
        # A templated URL can only be checked when it runs: refused then, nothing sent.
        pid = js.pipeline(w.customer.org_id, [{"kind": "http", "method": "POST", "url": rx.base + "{{ input.path }}"}])
        job = _run(w.customer.org_id, pid, {"path": "/action"}, state="failed")
        assert "refused" in (job.last_error or "") and f"plugin {slug!r} is not installed" in (job.last_error or "")
        # Installed, then uninstalled after the pipeline was saved: refused at run time.
        inst = install(client, w.customer, slug)
        pid = js.pipeline(w.customer.org_id, [{"kind": "http", "method": "POST", "plugin": slug, "action": "post"}])
        r = client.delete(f"/v1/installs/{inst['id']}", headers=h)
        assert r.status_code == 200, r.text
        job = _run(w.customer.org_id, pid, state="failed")
        assert "not installed" in (job.last_error or "")
        # An unknown action of an installed plugin is named.
        install(client, w.customer, slug)
        r = client.post("/v1/pipelines", headers=h, json={"name": "bad-action", "steps": [
            {"kind": "http", "plugin": slug, "action": "nope"}]})
        assert r.status_code == 422 and "has no action 'nope'" in r.json()["detail"] and "post" in r.json()["detail"]
        assert rx.received == []


def test_pipeline_author_cannot_set_or_override_signature_headers(client, set_settings) -> None:
    from sqlalchemy import update

    from memory.db import session_scope
    from memory.jobs.models import Pipeline

    with Receiver() as rx:
        w, slug, inst_id = _plugin(client, set_settings, rx)
        for name in ("webhook-signature", "Webhook-Id", "LEVQOR-ORG-ID"):
            r = client.post("/v1/pipelines", headers=w.customer.headers(), json={"name": f"h-{name}", "steps": [
                {"kind": "http", "method": "POST", "plugin": slug, "action": "post", "headers": {name: "v1,forged"}}]})
            assert r.status_code == 422 and f"header {name!r} is set by Levqor" in r.text, r.text
        # A step stored without validation (an older pipeline) still cannot override them at run time.
        pid = js.pipeline(w.customer.org_id, [{"kind": "http", "method": "POST", "plugin": slug, "action": "post"}])
        forged = {"Webhook-Signature": "v1,Zm9yZ2Vk", "webhook-timestamp": "1", "Levqor-Org-Id": "999999",
                  "X-Trace": "kept"}
        with session_scope() as s:
            s.execute(update(Pipeline).where(Pipeline.id == pid).values(steps=[
                {"kind": "http", "method": "POST", "plugin": slug, "action": "post", "headers": forged,
                 "body": {"n": 1}}]))
        _run(w.customer.org_id, pid)
        (hit,) = rx.at("/action")
        sent = [(k.lower(), v) for k, v in hit.raw_headers]
        assert [v for k, v in sent if k == "webhook-signature"] == [hit.headers["webhook-signature"]]
        assert "forged" not in hit.headers["webhook-signature"] and "Zm9yZ2Vk" not in hit.headers["webhook-signature"]
        assert [v for k, v in sent if k == "levqor-org-id"] == [str(w.customer.org_id)]
        assert [v for k, v in sent if k == "webhook-timestamp"] != ["1"]
        assert hit.headers["x-trace"] == "kept"
        Webhook(secrets_for(client, w, inst_id)["secret"]).verify(hit.body, hit.headers)


def test_signed_call_does_not_follow_a_redirect(client, set_settings) -> None:
    with Receiver() as rx:
        rx.behaviour["/moved"] = Behaviour(307, headers={"location": rx.url("/elsewhere")})
        w, slug, _ = _plugin(client, set_settings, rx)
        pid = js.pipeline(w.customer.org_id, [{"kind": "http", "method": "POST", "plugin": slug, "action": "moved"}])
        job = _run(w.customer.org_id, pid, state="failed")
        assert "signed calls do not follow redirects" in (job.last_error or "")
        assert len(rx.at("/moved")) == 1 and rx.at("/elsewhere") == []
