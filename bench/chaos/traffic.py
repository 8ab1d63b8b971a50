"""Steady API traffic of the chaos suite: several clients as real ones behave, counting every failure.

Each client keeps its connections alive (one ``httpx.Client``) and mixes authenticated reads (the job
list, one job) with job submissions carrying an ``Idempotency-Key``. A request *fails* when no answer
came (a connection error) or the answer was a 5xx. With ``retry`` a client retries as the documented
client does (``docs/dev_portal/sdk_example.py``, as Stripe's SDK does): only requests that got no answer
(a connection error before any response), only GETs and POSTs with an idempotency key (every request
here is one of those: its ``safe_to_retry``), with its backoff. Both counts are kept: ``first_failed``
is what a client without retries sees, ``failed`` what is left after the safe retries.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx

SDK = Path(__file__).resolve().parents[2] / "docs" / "dev_portal" / "sdk_example.py"


def sdk() -> ModuleType:
    """The documented client (``docs/dev_portal/sdk_example.py``), whose retry rule the clients follow."""
    if "sdk_example" not in sys.modules:
        spec = importlib.util.spec_from_file_location("sdk_example", SDK)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["sdk_example"] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules["sdk_example"]


@dataclass
class Tally:
    """What the clients saw."""

    requests: int = 0
    first_failed: int = 0  # requests whose first attempt failed (a client without retries)
    failed: int = 0  # requests that failed after the safe retries
    retried: int = 0  # requests answered after at least one retry
    errors: Counter[str] = field(default_factory=Counter)  # first-attempt failures by kind
    failed_at: list[float] = field(default_factory=list)  # when each first attempt failed (time.monotonic())
    accepted: dict[str, int] = field(default_factory=dict)  # idempotency key -> job id (2xx answers)
    keys_sent: list[str] = field(default_factory=list)  # every idempotency key a submission carried
    crashed: list[str] = field(default_factory=list)  # client threads that stopped on an error of their own


class Clients:
    """``n`` client threads sending a steady mix of requests to ``base`` until :meth:`stop`."""

    def __init__(self, base: str, key: str, pipeline_id: int, *, n: int = 6, retry: bool = True,
                 post_every: int = 6, pause_s: float = 0.02):
        self.base, self.key, self.pipeline_id = base, key, pipeline_id
        self.retry, self.post_every, self.pause_s = retry, post_every, pause_s
        self.tally = Tally()
        self.sdk = sdk()  # loaded here, once: not by the client threads at the same time
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(n)]

    def start(self) -> Clients:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> Tally:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)
        return self.tally

    def _client(self, i: int) -> None:
        try:
            self._requests(i)
        except Exception as e:  # a bug of the client, not a failed request: the scenario reports it
            with self._lock:
                self.tally.crashed.append(f"{type(e).__name__}: {e}")

    def _requests(self, i: int) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        seen: list[int] = []
        with httpx.Client(base_url=self.base, headers=headers, timeout=10) as client:
            n = 0
            while not self._stop.is_set():
                n += 1
                if n % self.post_every == 0:
                    idem = f"chaos-{i}-{uuid.uuid4().hex[:12]}"
                    with self._lock:
                        self.tally.keys_sent.append(idem)
                    r = self._send(client, "POST", "/v1/jobs", json={"pipeline_id": self.pipeline_id},
                                   headers={"Idempotency-Key": idem})
                    if r is not None and r.status_code in (200, 201):
                        job_id = int(r.json()["id"])
                        seen.append(job_id)
                        with self._lock:
                            self.tally.accepted[idem] = job_id
                elif seen and n % 2:
                    self._send(client, "GET", f"/v1/jobs/{seen[-1]}")
                else:
                    self._send(client, "GET", "/v1/jobs", params={"limit": 5})
                self._stop.wait(self.pause_s)

    def _send(self, client: httpx.Client, method: str, path: str, **kw: Any) -> httpx.Response | None:
        """One request (with the documented client's safe retries); the answer, or None when it failed."""
        doc = self.sdk
        first: str | None = None
        for attempt in range(len(doc.RETRY_BACKOFF_S) + 1):
            req = client.build_request(method, path, **kw)
            try:
                r = client.send(req)
            except httpx.TransportError as e:  # no answer: connection refused, reset or closed before a response
                first = first or type(e).__name__
                if not self.retry or attempt == len(doc.RETRY_BACKOFF_S) or not doc.safe_to_retry(req):
                    break
                time.sleep(doc.RETRY_BACKOFF_S[attempt])
                continue
            if r.status_code >= 500:  # an answer: never retried (the server may have acted)
                first = first or f"http {r.status_code}"
                self._count(first, ok=False, retried=attempt > 0)
                return None
            self._count(first, ok=True, retried=attempt > 0)
            return r
        self._count(first, ok=False, retried=False)
        return None

    def _count(self, first_error: str | None, *, ok: bool, retried: bool) -> None:
        with self._lock:
            self.tally.requests += 1
            if first_error is not None:
                self.tally.first_failed += 1
                self.tally.failed_at.append(time.monotonic())
                self.tally.errors[first_error] += 1
            self.tally.failed += not ok
            self.tally.retried += ok and retried
