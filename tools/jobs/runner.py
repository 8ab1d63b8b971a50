"""Run a claimed job's steps and record the outcome under the job's fence.

Steps never execute code: ``http`` (through the SSRF guard), ``transform`` (JMESPath or a
placeholder template), ``delay`` (interruptible) and ``notify`` (email through the outbox, or a
webhook through the SSRF guard, signed with the endpoint's secret when the URL is a registered webhook
endpoint: :mod:`tools.jobs.endpoints`). A test job (test mode) calls out only to registered TEST
endpoints and sends no email; anything else fails its step, not retried. An ``http`` call to a plugin
action (by name or by URL) needs an active install in the job's organisation (and mode) and is signed
with its secrets
(:mod:`tools.partner_api.actions`). Errors are classified: timeouts, connection errors, 5xx and 429
are transient (retried with backoff); everything else fails the job at once.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from memory.db import session_scope, utcnow
from memory.jobs.models import Job, JobStep, Pipeline
from memory.jobs.repository import JobRepository
from tools.errors import AppError
from tools.events.service import Reactions, emit_many
from tools.jobs import metrics
from tools.jobs.endpoints import EndpointDirectory
from tools.jobs.outcomes import record_failure, record_successes, release
from tools.jobs.pipelines import render, search
from tools.partner_api.actions import LazyDirectory, PluginCall, without_reserved
from tools.shared import ssrf
from tools.shared.signing import webhook_headers

log = logging.getLogger(__name__)
MAX_OUTPUT_CHARS = 64_000


class StepFailed(Exception):
    def __init__(self, message: str, *, retryable: bool):
        super().__init__(message)
        self.message = message
        self.retryable = retryable


class Interrupted(Exception):
    """The run must stop now: its lease was lost, it was cancelled, or the worker is shutting down."""


@dataclass
class RunControl:
    """Signals between the worker and one running job."""

    lost: threading.Event = field(default_factory=threading.Event)  # lease lost / cancelled
    shutdown: threading.Event = field(default_factory=threading.Event)  # worker stopping: give it back
    deadline: float = float("inf")

    def wait(self, seconds: float) -> None:
        end = min(time.monotonic() + seconds, self.deadline)
        while True:
            self.check()
            left = end - time.monotonic()
            if left <= 0:
                break
            self.lost.wait(min(left, 0.1))
        self.check()

    def check(self) -> None:
        if self.lost.is_set():
            raise Interrupted("lease lost or job cancelled")
        if self.shutdown.is_set():
            raise Interrupted("worker shutting down")
        if time.monotonic() > self.deadline:
            raise StepFailed("pipeline timeout exceeded", retryable=True)


@dataclass
class RunResult:
    ok: bool
    output: Any = None
    error: str = ""
    retryable: bool = False
    interrupted: bool = False
    steps: list[JobStep] = field(default_factory=list)
    emits: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def _clip(value: Any) -> Any:
    text = json.dumps(value, default=str)
    if len(text) <= MAX_OUTPUT_CHARS:
        return value
    return {"truncated": True, "preview": text[:MAX_OUTPUT_CHARS]}


def _plugin_call(step: dict[str, Any], url: str | None, plugins: LazyDirectory | None) -> PluginCall | None:
    """The install this step's call belongs to (None: not a plugin action); StepFailed if not installed."""
    if plugins is None:
        if step.get("plugin"):
            raise StepFailed("plugin actions need an organisation", retryable=False)
        return None
    try:
        if step.get("plugin"):
            return plugins.get().by_name(str(step["plugin"]), step.get("action"))
        return plugins.get().by_url(url or "")
    except AppError as exc:
        raise StepFailed(f"refused: {exc.detail}", retryable=False) from None
    except Exception as exc:  # reading the installs failed (database): worth a retry
        raise StepFailed(f"could not read the plugin installs: {type(exc).__name__}: {exc}", retryable=True) from None


@dataclass
class Outbound:
    """Where a run may call out: its mode and its organisation's registered webhook endpoints."""

    mode: str = "live"
    endpoints: EndpointDirectory | None = None

    def endpoint(self, url: str, *, signed: bool) -> tuple[str, str] | None:
        """``(endpoint id, secret)`` of the registered endpoint ``url`` addresses when the call is to be
        signed; StepFailed when a test run calls anything but a registered test endpoint."""
        if self.endpoints is None or (self.mode != "test" and not signed):
            return None
        try:
            ep = self.endpoints.match(url)
        except Exception as exc:  # reading the endpoints failed (database): worth a retry
            raise StepFailed(f"could not read the webhook endpoints: {type(exc).__name__}: {exc}",
                             retryable=True) from None
        if ep is None and self.mode == "test":
            raise StepFailed(f"test mode: {url} is not a registered test webhook endpoint; test jobs call only "
                             "the URLs registered with POST /v1/webhook-endpoints using a test key", retryable=False)
        return (str(ep.id), ep.secret) if ep is not None else None


def _http(step: dict[str, Any], data: dict[str, Any], ctrl: RunControl, logs: list[str],
          plugins: LazyDirectory | None = None, call_id: str = "", outbound: Outbound | None = None,
          signed: bool = False) -> Any:
    import httpx  # kept lazy: start-up time (only a worker running an http step needs it)

    url = render(step["url"], data) if step.get("url") is not None else None
    if url is not None and not isinstance(url, str):
        raise StepFailed(f"url template produced {type(url).__name__}, not a string", retryable=False)
    call = _plugin_call(step, url, plugins)
    if call is not None:
        url = call.url
    assert url is not None  # pipelines validate that a step has a url or a plugin action
    # Signature and caller headers are Levqor's: whatever a stored step says, they are dropped here.
    headers = without_reserved({k: str(render(v, data)) for k, v in (step.get("headers") or {}).items()})
    body = step.get("body")
    content: bytes | None = None
    if body is not None:
        rendered = render(body, data)
        if isinstance(rendered, str):
            content = rendered.encode()
        else:
            content = json.dumps(rendered).encode()
            headers.setdefault("Content-Type", "application/json")
    method = step.get("method", "GET")
    timeout = min(float(step.get("timeout_s", 10.0)), max(0.1, ctrl.deadline - time.monotonic()))
    logs.append(f"{method} {url}")
    redirects = ssrf.MAX_REDIRECTS
    endpoint = outbound.endpoint(url, signed=signed and call is None) if outbound is not None else None
    if call is not None:
        headers.update(call.headers(call_id or f"msg_{uuid.uuid4().hex}", content or b""))
        redirects = 0  # the signed request must not be replayed to another host
        logs.append(f"signed for plugin {call.plugin} (install {call.install_id}, action {call.action})")
    elif endpoint is not None and signed:
        headers.update(webhook_headers([endpoint[1]], call_id or f"msg_{uuid.uuid4().hex}", content or b""))
        redirects = 0
        logs.append(f"signed for webhook endpoint {endpoint[0]}")
    elif outbound is not None and outbound.mode == "test":
        redirects = 0  # a redirect would leave the registered test endpoint
    started = time.perf_counter()
    try:
        resp = ssrf.request(method, url, headers=headers, content=content, timeout=timeout, max_redirects=redirects)
    except ssrf.SSRFBlocked as exc:
        if call is not None and exc.detail.startswith("more than"):
            raise StepFailed(f"plugin {call.plugin} answered with a redirect; signed calls do not follow "
                             "redirects", retryable=False) from None
        raise StepFailed(f"refused by the SSRF guard: {exc.detail}", retryable=False) from None
    except httpx.TimeoutException as exc:
        raise StepFailed(f"timeout after {timeout:g}s: {type(exc).__name__}", retryable=True) from None
    except httpx.TransportError as exc:
        raise StepFailed(f"connection error: {type(exc).__name__}: {exc}", retryable=True) from None
    logs.append(f"-> {resp.status_code} in {(time.perf_counter() - started) * 1000:.0f} ms"
                + (f" after redirects {resp.redirects}" if resp.redirects else ""))
    try:
        parsed: Any = resp.json()
    except ValueError:
        parsed = resp.text[:MAX_OUTPUT_CHARS]
    out = {"status": resp.status_code, "body": parsed,
           "headers": {k: v for k, v in resp.headers.items() if k.lower() in ("content-type", "location")}}
    ok_status = step.get("ok_status")
    ok = resp.status_code in ok_status if ok_status else 200 <= resp.status_code < 300
    if not ok:
        transient = resp.status_code >= 500 or resp.status_code == 429
        raise StepFailed(f"HTTP {resp.status_code} from {url}", retryable=transient)
    return out


def _transform(step: dict[str, Any], data: dict[str, Any], logs: list[str]) -> Any:
    from jmespath.exceptions import JMESPathError  # kept lazy: start-up time

    try:
        if step.get("check") is not None and not search(step["check"], data):
            msg = step.get("message") or f"check failed: {step['check']}"
            raise StepFailed(msg, retryable=bool(step.get("retryable")))
        if step.get("expression") is not None:
            return search(step["expression"], data)
        if step.get("template") is not None:
            return render(step["template"], data)
        return data.get("prev")
    except JMESPathError as exc:
        raise StepFailed(f"transform error: {exc}", retryable=False) from None


def _notify(step: dict[str, Any], data: dict[str, Any], ctrl: RunControl, logs: list[str],
            emits: list[tuple[str, dict[str, Any]]], plugins: LazyDirectory | None = None,
            call_id: str = "", outbound: Outbound | None = None) -> Any:
    subject = render(step.get("subject") or "", data)
    body = render(step.get("body"), data)
    test = outbound is not None and outbound.mode == "test"
    if step["channel"] == "email" and test:
        raise StepFailed("test mode: test jobs send no email; notify a registered test webhook endpoint instead",
                         retryable=False)
    if step["channel"] == "email":
        # Sent by whoever handles ``notification_requested``, only if this run's success is recorded.
        payload = {"channel": "email", "to": step["to"], "subject": subject, "body": body}
        emits.append(("notification_requested", payload))
        logs.append(f"email to {step['to']} queued in the outbox")
        return {"queued": True, "to": step["to"]}
    message: dict[str, Any] = {"subject": subject, "body": body, "job": data.get("job")}
    if test:
        message["livemode"] = False
    http_step = {"url": step["url"], "method": "POST", "timeout_s": 10.0, "body": message}
    return _http(http_step, {}, ctrl, logs, plugins, call_id, outbound, signed=True)


def execute(pipeline_steps: list[dict[str, Any]], *, job_input: dict[str, Any], job_meta: dict[str, Any],
            run: int, attempt: int, job_id: int, ctrl: RunControl, org_id: int | None = None,
            mode: str = "live") -> RunResult:
    """Run every step in order; stop at the first failure. Never raises for step errors."""
    plugins = LazyDirectory(org_id, mode) if org_id is not None else None
    outbound = Outbound(mode, EndpointDirectory(org_id, mode) if org_id is not None else None)
    result = RunResult(ok=True)
    outputs: list[Any] = []
    prev: Any = job_input
    for pos, step in enumerate(pipeline_steps):
        kind = step["kind"]
        logs: list[str] = []
        started = utcnow()
        row = JobStep(job_id=job_id, run=run, attempt=attempt, position=pos, name=step.get("name") or kind,
                      kind=kind, status="running", started_at=started)
        data = {"input": job_input, "prev": prev, "steps": outputs, "job": job_meta}
        call_id = f"msg_job{job_id}_{run}_{attempt}_{pos}"  # webhook-id of a plugin call: one per step attempt
        try:
            ctrl.check()
            if kind == "http":
                out = _http(step, data, ctrl, logs, plugins, call_id, outbound)
            elif kind == "transform":
                out = _transform(step, data, logs)
            elif kind == "delay":
                logs.append(f"waiting {step['seconds']}s")
                ctrl.wait(float(step["seconds"]))
                out = prev
            elif kind == "notify":
                out = _notify(step, data, ctrl, logs, result.emits, plugins, call_id, outbound)
            else:
                raise StepFailed(f"unknown step kind {kind!r}", retryable=False)
        except StepFailed as exc:
            row.status, row.log, row.finished_at = "failed", "\n".join([*logs, exc.message]), utcnow()
            result.steps.append(row)
            result.ok, result.error, result.retryable = False, f"step {pos} ({row.name}): {exc.message}", exc.retryable
            return result
        except Interrupted as exc:
            row.status, row.log, row.finished_at = "interrupted", "\n".join([*logs, str(exc)]), utcnow()
            result.steps.append(row)
            result.ok, result.interrupted, result.error = False, True, str(exc)
            return result
        except Exception as exc:  # a bug in a step must fail the job, not the worker
            log.exception("step crashed", extra={"fields": {"job_id": job_id, "step": pos}})
            row.status, row.log, row.finished_at = "failed", "\n".join([*logs, repr(exc)]), utcnow()
            result.steps.append(row)
            result.ok, result.error, result.retryable = False, f"step {pos} ({row.name}) crashed: {exc!r}", False
            return result
        out = _clip(out)
        row.status, row.output, row.log, row.finished_at = "succeeded", out, "\n".join(logs), utcnow()
        result.steps.append(row)
        outputs.append(out)
        prev = out
    result.output = prev
    return result


@dataclass(frozen=True)
class PipelineSnapshot:
    """What a run needs of its pipeline, read in the claim's transaction."""

    name: str
    steps: list[dict[str, Any]]
    timeout_s: float
    retry_backoff_s: float

    @classmethod
    def of(cls, p: Pipeline) -> PipelineSnapshot:
        return cls(p.name, list(p.steps), float(p.timeout_s), float(p.retry_backoff_s))


@dataclass
class Finished:
    """A run whose steps are over, waiting for its outcome to be recorded."""

    job: Job
    result: RunResult
    backoff_s: float
    give_back: bool  # interrupted by the worker's shutdown (not by a lost lease): back to the queue


def run_steps(job: Job, ctrl: RunControl, pipeline: PipelineSnapshot | None = None) -> Finished:
    """Run the steps of a job this worker claimed; nothing is recorded (see :func:`record_runs`)."""
    if pipeline is None:
        with session_scope() as s:
            found = s.get(Pipeline, job.pipeline_id)
            pipeline = PipelineSnapshot.of(found) if found is not None else None
    steps = pipeline.steps if pipeline else []
    timeout_s, backoff = (pipeline.timeout_s, pipeline.retry_backoff_s) if pipeline else (0.0, 0.0)
    started = time.monotonic()
    ctrl.deadline = started + timeout_s
    if job.started_at is not None:
        metrics.ENQUEUE_TO_START.observe(max(0.0, (job.started_at - job.enqueued_at).total_seconds()))
    meta = {"id": job.id, "attempt": job.attempts, "pipeline_id": job.pipeline_id, "trigger": job.trigger}
    if not steps:
        res = RunResult(ok=False, error="pipeline was deleted", retryable=False)
    else:
        res = execute(steps, job_input=dict(job.input or {}), job_meta=meta, run=job.fence, attempt=job.attempts,
                      job_id=job.id, ctrl=ctrl, org_id=job.org_id, mode=job.mode or "live")
    metrics.RUN_DURATION.observe(time.monotonic() - started)
    return Finished(job, res, backoff, give_back=res.interrupted and ctrl.shutdown.is_set() and not ctrl.lost.is_set())


def record_runs(session: Session, runs: list[Finished], reactions: Reactions | None = None) -> list[str]:
    """Record the outcomes of finished runs in the caller's transaction, each under its job's fence;
    what was recorded for each: succeeded, queued (a retry), failed, dead, released or stale.

    Successes, the common case, are written together (:func:`tools.jobs.outcomes.record_successes`);
    ``reactions`` decides which of their completion events are outbox work."""
    out: dict[int, str] = {}
    wins = [r for r in runs if r.result.ok]
    for r, ok in zip(wins, record_successes(session, [(r.job, r.result.output, r.result.steps) for r in wins],
                                            reactions), strict=True):
        out[id(r)] = "succeeded" if ok else "stale"
    emits = [(name, {**payload, "job_id": r.job.id}, r.job.org_id)
             for r in wins if out[id(r)] == "succeeded" for name, payload in r.result.emits]
    emit_many(session, emits)
    for r in runs:
        if r.result.ok:
            continue
        res, job = r.result, r.job
        if res.interrupted:
            JobRepository(session).add_steps(res.steps)
            out[id(r)] = ("released" if release(session, job) else "stale") if r.give_back else "stale"
        else:
            out[id(r)] = record_failure(session, job, res.error, res.retryable, res.steps, r.backoff_s) or "stale"
    return [out[id(r)] for r in runs]
