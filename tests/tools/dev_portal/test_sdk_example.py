"""docs/dev_portal/sdk_example.py against a live API process (SQLite and PostgreSQL): create a pipeline,
submit a job with an idempotency key (twice: the same job, charged once), poll it to success; retry a 429
after Retry-After; verify Standard Webhooks signatures made by Levqor's own signer and by the
`standardwebhooks` package, and refuse forged or stale ones."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
import uuid
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from tests.factories import jobs as js
from tests.factories.orgs import OrgFixture
from tests.support.processes import running_worker
from tools.dev_portal.docs import DOCS_DIR
from tools.partner_api.signing import new_secret, webhook_headers


def load_sdk() -> ModuleType:
    """The example file as a developer would import it (it is not a package of the project)."""
    spec = importlib.util.spec_from_file_location("sdk_example", DOCS_DIR / "sdk_example.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["sdk_example"] = module
    spec.loader.exec_module(module)
    return module


def first_job(sdk: ModuleType, base: str, key: str, notify_url: str | None = None) -> tuple[int, object]:
    """The quick start's first job with the example client (with ``notify_url``: then a notify step posting the
    greeting to that webhook URL); the job id and its output."""
    steps: list[dict[str, object]] = [
        {"kind": "transform", "name": "greet", "template": {"greeting": "Hello, {{ input.name }}!"}}]
    if notify_url is not None:
        steps.append({"kind": "notify", "channel": "webhook", "url": notify_url, "subject": "first job",
                      "body": "{{ prev.greeting }}"})
    with sdk.Levqor(key, base) as api:
        pipeline_id = api.create_pipeline(f"hello-{uuid.uuid4().hex[:6]}", steps)
        idem = str(uuid.uuid4())
        job = api.submit_job(pipeline_id, {"name": "Ada"}, idempotency_key=idem)
        again = api.submit_job(pipeline_id, {"name": "Ada"}, idempotency_key=idem)
        assert job.created and not again.created and again.id == job.id
        done = api.wait_for_job(job.id, timeout_s=60, every_s=0.1)
        assert done.state == "succeeded", done
        return done.id, done.output


def test_the_example_runs_a_first_job_against_a_live_server(api_on: tuple[str, OrgFixture]) -> None:
    base, org = api_on
    sdk = load_sdk()
    js.grant(org.org_id, 5)
    with running_worker():
        _job_id, output = first_job(sdk, base, org.keys["admin"])
    assert output == {"greeting": "Hello, Ada!"}
    assert js.balance(org.org_id) == 4  # two submissions with one idempotency key: charged once
    # errors are problem details naming the field
    with sdk.Levqor(org.keys["admin"], base) as api, pytest.raises(sdk.ApiError) as bad:
        api.create_pipeline("empty", [])
    assert bad.value.status == 422 and bad.value.problem["field"] == "steps"
    with sdk.Levqor(org.keys["viewer"], base) as api, pytest.raises(sdk.ApiError) as denied:
        api.create_pipeline("nope", [{"kind": "delay", "seconds": 0}])
    assert denied.value.status == 403


def test_a_429_is_retried_after_retry_after(api_on: tuple[str, OrgFixture]) -> None:
    """The live server answers; a proxy in front of it refuses the first two requests with 429."""
    base, org = api_on
    sdk = load_sdk()
    real = httpx.HTTPTransport()
    refused: list[float] = []

    class Limited(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if len(refused) < 2:
                refused.append(time.monotonic())
                return httpx.Response(429, headers={"Retry-After": "0.2", "Content-Type": "application/problem+json"},
                                      json={"type": "https://levqor.ai/problems/rate-limited", "status": 429,
                                            "title": "Too many requests", "detail": "slow down"})
            return real.handle_request(request)

    started = time.monotonic()
    with sdk.Levqor(org.keys["viewer"], base, transport=Limited()) as api:
        me = api.request("GET", "/v1/me")
    assert me["role"] == "viewer" and len(refused) == 2
    assert time.monotonic() - started >= 0.4  # it waited Retry-After each time
    with sdk.Levqor(org.keys["viewer"], base, transport=Limited(), max_retries=0) as api:
        refused.clear()
        with pytest.raises(sdk.ApiError) as exc:
            api.request("GET", "/v1/me")
    assert exc.value.status == 429


class _Unanswered(httpx.BaseTransport):
    """A server process killed -9 under the first ``fail`` requests: they get no answer at all."""

    def __init__(self, fail: int):
        self.fail, self.seen = fail, []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.method, request.url.path))
        if len(self.seen) <= self.fail:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        return httpx.Response(201 if request.method == "POST" else 200,
                              json={"id": 7, "state": "queued", "created": True})


def test_a_request_without_an_answer_is_retried_only_when_that_is_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    sdk = load_sdk()
    monkeypatch.setattr(sdk, "RETRY_BACKOFF_S", (0.0, 0.0, 0.0))
    for send in (lambda api: api.get_job(7), lambda api: api.submit_job(3, {}, idempotency_key="k1")):
        t = _Unanswered(fail=3)  # reads and idempotency-keyed submissions: sent again, up to three times
        with sdk.Levqor("lvq_test_x", "http://levqor.test", transport=t) as api:
            assert send(api).id == 7
        assert len(t.seen) == 4
        t = _Unanswered(fail=4)
        with sdk.Levqor("lvq_test_x", "http://levqor.test", transport=t) as api, \
                pytest.raises(httpx.RemoteProtocolError):
            send(api)
        assert len(t.seen) == 4
    t = _Unanswered(fail=1)  # a POST without an idempotency key may have taken effect: never sent twice
    with sdk.Levqor("lvq_test_x", "http://levqor.test", transport=t) as api, pytest.raises(httpx.RemoteProtocolError):
        api.create_pipeline("p", [])
    assert t.seen == [("POST", "/v1/pipelines")]


def test_webhook_signatures_verify_like_levqors_signer_and_standardwebhooks() -> None:
    sdk = load_sdk()
    secret = new_secret()
    body = json.dumps({"type": "job.succeeded", "data": {"job_id": 1}}).encode()
    headers = webhook_headers([secret], "msg_1", body)
    sdk.verify_webhook(secret, headers, body)  # Levqor's signer
    rotated = webhook_headers([new_secret(), secret], "msg_1", body)
    sdk.verify_webhook(secret, rotated, body)  # two signatures while a secret rotates: one matches
    from standardwebhooks.webhooks import Webhook

    Webhook(secret).verify(body, headers)  # the reference implementation agrees with the signer
    for bad_headers, bad_body in ((headers, body + b" "), ({**headers, "webhook-id": "msg_2"}, body),
                                  (webhook_headers([new_secret()], "msg_1", body), body),
                                  (webhook_headers([secret], "msg_1", body, timestamp=int(time.time()) - 3600), body),
                                  ({k: v for k, v in headers.items() if k != "webhook-signature"}, body)):
        with pytest.raises(sdk.WebhookVerificationError):
            sdk.verify_webhook(secret, bad_headers, bad_body)


def test_the_example_file_is_self_contained() -> None:
    """It imports only the standard library and httpx, so a developer can copy it alone."""
    source = Path(DOCS_DIR / "sdk_example.py").read_text()
    imports = {line.split()[1].split(".")[0] for line in source.splitlines() if line.startswith(("import ", "from "))}
    assert imports <= {"__future__", "base64", "hashlib", "hmac", "os", "time", "uuid", "collections", "dataclasses",
                       "typing", "httpx"}, imports
