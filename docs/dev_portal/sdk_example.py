"""A small typed Levqor API client to copy into your project (Python 3.10+, `pip install httpx`).

It creates a pipeline, submits a job with an idempotency key, polls the job until it finishes, handles
429 (waits `Retry-After`, then tries again), retries a request that got no answer at all (the connection
failed or closed before a response: a restarted or killed server process) when that is safe (a GET, or a
POST with an `Idempotency-Key`), registers a webhook endpoint and verifies a webhook
signature (Standard Webhooks). Every error is an `ApiError` carrying the RFC 9457 problem details the
API sent. With a test key (`lvq_test_...`) everything happens in test mode: test credits, test data.

    LEVQOR_URL=http://127.0.0.1:8000 LEVQOR_API_KEY=lvq_test_... python sdk_example.py
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

FINISHED = frozenset({"succeeded", "failed", "dead", "cancelled"})
RETRY_BACKOFF_S = (0.05, 0.2, 0.5)  # waits before the retries of a request that got no answer


def safe_to_retry(request: httpx.Request) -> bool:
    """Whether a request that got no answer may be sent again: it reads (GET, HEAD), or it is a POST with
    an `Idempotency-Key` (the API returns the job the first attempt made, if it made one). Anything else
    may have taken effect on the server: it is never sent twice. An answer (even a 5xx) is never retried
    here (a 429 waits `Retry-After`)."""
    return request.method in ("GET", "HEAD") or (request.method == "POST" and "idempotency-key" in request.headers)


@dataclass
class ApiError(Exception):
    """A 4xx/5xx answer: its status and problem details (`detail`, and `field` naming the bad input)."""

    status: int
    problem: dict[str, Any]

    def __str__(self) -> str:
        field = f" (field {self.problem['field']})" if self.problem.get("field") else ""
        return f"{self.status} {self.problem.get('title', '')}: {self.problem.get('detail', '')}{field}"


@dataclass(frozen=True)
class Job:
    id: int
    state: str
    output: Any
    last_error: str | None
    created: bool  # False when the idempotency key matched a job submitted before


class Levqor:
    """The Levqor API with one API key (`lvq_test_...` for test mode, `lvq_live_...` for live)."""

    def __init__(self, api_key: str, base_url: str = "http://127.0.0.1:8000", *, max_retries: int = 5,
                 max_wait_s: float = 60.0, timeout_s: float = 30.0, transport: httpx.BaseTransport | None = None):
        self.max_retries = max_retries
        self.max_wait_s = max_wait_s
        self.http = httpx.Client(base_url=base_url, timeout=timeout_s, transport=transport,
                                 headers={"Authorization": f"Bearer {api_key}", "User-Agent": "levqor-example/1"})

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Levqor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None,
                headers: Mapping[str, str] | None = None) -> Any:
        """Send a request; on 429 wait `Retry-After` seconds and send it again (up to `max_retries` times);
        one that got no answer is sent again (up to three times) only when :func:`safe_to_retry`."""
        attempt = unanswered = 0
        while True:
            req = self.http.build_request(method, path, json=json, params=params, headers=headers)
            try:
                r = self.http.send(req)
            except httpx.TransportError:  # no answer: refused, reset or closed before the response
                if unanswered == len(RETRY_BACKOFF_S) or not safe_to_retry(req):
                    raise
                time.sleep(RETRY_BACKOFF_S[unanswered])
                unanswered += 1
                continue
            if r.status_code == 429 and attempt < self.max_retries:
                attempt += 1
                time.sleep(min(self.max_wait_s, retry_after(r)))
                continue
            if r.status_code >= 400:
                try:
                    problem = r.json()
                except ValueError:
                    problem = {"title": r.reason_phrase, "detail": r.text[:500]}
                raise ApiError(r.status_code, problem)
            return r.json()

    def create_pipeline(self, name: str, steps: list[dict[str, Any]]) -> int:
        """Create a pipeline; its id."""
        return int(self.request("POST", "/v1/pipelines", json={"name": name, "steps": steps})["id"])

    def submit_job(self, pipeline_id: int, input: dict[str, Any], *, idempotency_key: str | None = None) -> Job:
        """Submit a job. Send the same `idempotency_key` when you retry: you get the same job, charged once."""
        key = idempotency_key or str(uuid.uuid4())
        body = self.request("POST", "/v1/jobs", json={"pipeline_id": pipeline_id, "input": input},
                            headers={"Idempotency-Key": key})
        return _job(body)

    def create_webhook_endpoint(self, url: str, description: str = "") -> tuple[int, str]:
        """Register a webhook endpoint (in the key's mode); its id and signing secret (`whsec_...`)."""
        body = self.request("POST", "/v1/webhook-endpoints", json={"url": url, "description": description})
        return int(body["id"]), str(body["secret"])

    def get_job(self, job_id: int) -> Job:
        return _job(self.request("GET", f"/v1/jobs/{job_id}"))

    def wait_for_job(self, job_id: int, *, timeout_s: float = 60.0, every_s: float = 0.5) -> Job:
        """Poll the job until it has finished (succeeded, failed, dead or cancelled)."""
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.get_job(job_id)
            if job.state in FINISHED:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job.state} after {timeout_s} s")
            time.sleep(every_s)


def _job(body: dict[str, Any]) -> Job:
    return Job(id=int(body["id"]), state=str(body["state"]), output=body.get("output"),
               last_error=body.get("last_error"), created=bool(body.get("created", False)))


def retry_after(r: httpx.Response) -> float:
    """Seconds to wait before retrying a 429: `Retry-After` (seconds), else `RateLimit-Reset`, else 1."""
    for name in ("retry-after", "ratelimit-reset"):
        value = r.headers.get(name)
        if value is not None:
            try:
                return max(0.0, float(value))
            except ValueError:
                pass
    return 1.0


class WebhookVerificationError(Exception):
    pass


def verify_webhook(secret: str, headers: Mapping[str, str], body: bytes, *, tolerance_s: int = 300,
                   now: float | None = None) -> None:
    """Check a Standard Webhooks request (`webhook-id`, `webhook-timestamp`, `webhook-signature`).

    `secret` is the endpoint's `whsec_...` secret; `body` the raw request body, before any JSON parsing.
    Raises `WebhookVerificationError` when the signature is wrong or the timestamp is too old or too new."""
    h = {k.lower(): v for k, v in headers.items()}
    msg_id, ts, sigs = h.get("webhook-id"), h.get("webhook-timestamp"), h.get("webhook-signature")
    if not msg_id or not ts or not sigs:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        stamp = int(ts)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not a number") from None
    if abs((time.time() if now is None else now) - stamp) > tolerance_s:
        raise WebhookVerificationError("webhook-timestamp is outside the tolerance (replayed or clock skew)")
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = base64.b64encode(hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest())
    for sig in sigs.split():  # several while a secret is being rotated
        version, _, value = sig.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            return
    raise WebhookVerificationError("no valid signature")


def main() -> None:
    base_url = os.environ.get("LEVQOR_URL", "http://127.0.0.1:8000")
    with Levqor(os.environ["LEVQOR_API_KEY"], base_url) as api:
        pipeline_id = api.create_pipeline("hello", [
            {"kind": "transform", "name": "greet", "template": {"greeting": "Hello, {{ input.name }}!"}},
        ])
        key = str(uuid.uuid4())
        job = api.submit_job(pipeline_id, {"name": "Ada"}, idempotency_key=key)
        again = api.submit_job(pipeline_id, {"name": "Ada"}, idempotency_key=key)
        assert again.id == job.id and not again.created  # a retry with the same key: the same job
        done = api.wait_for_job(job.id)
        print(f"job {done.id}: {done.state} {done.output}")


if __name__ == "__main__":
    main()
