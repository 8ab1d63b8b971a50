"""Every request's edge: request id, NUL refusal, the chaos delay, security headers, metrics, the log line.

A pure ASGI middleware: it wraps ``send`` to add the headers to the response's start message, instead
of Starlette's ``BaseHTTPMiddleware``, which runs the app in a task of its own and streams every
response through a memory channel (about a tenth of the API's CPU per request, measured).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import MutableHeaders
from starlette.requests import Request

from api import errors, security_headers, tiers, versioning
from levqor.logging import request_id_var
from levqor.metrics import LATENCY, REQUESTS

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("levqor.http")
UNLOGGED_ROUTES = ("/metrics", "/healthz")


def route_template(scope: Scope) -> str:
    """The matched route's template (``/v1/keys/{key_id}``), so metrics never carry raw ids."""
    path = getattr(scope.get("route"), "path", None)
    if path:
        return str(path)
    if scope["path"].startswith("/static/"):
        return "/static"
    return "unmatched"


def loggable_path(path: str, route: str) -> str:
    """The path for logs; routes carrying a secret in the URL log their template instead."""
    return route if "{secret}" in route else path


_chaos_delay_cache: list[float] = [0.0, 0.0]  # [read at (monotonic), seconds]
CHAOS_DELAY_REREAD_S = 0.5


def chaos_delay(path: str) -> float:
    """Seconds of latency the chaos suite injects (LEVQOR_CHAOS_API_DELAY_FILE), re-read twice a second."""
    now = time.monotonic()
    if now - _chaos_delay_cache[0] >= CHAOS_DELAY_REREAD_S:
        try:
            with open(path) as f:
                _chaos_delay_cache[1] = max(0.0, min(30.0, float(f.read().strip() or 0)))
        except (OSError, ValueError):
            _chaos_delay_cache[1] = 0.0
        _chaos_delay_cache[0] = now
    return _chaos_delay_cache[1]


def nul_field(scope: Scope) -> str | None:
    """The first query parameter or path segment holding a NUL character, if any."""
    if "\x00" in scope["path"]:
        return "path"
    qs: bytes = scope.get("query_string", b"")
    if b"%00" not in qs and b"\x00" not in qs:
        return None
    for key, value in parse_qsl(qs.decode("latin-1"), keep_blank_values=True):
        if "\x00" in key or "\x00" in value:
            return key.replace("\x00", "") or "query"
    return None


def request_id(scope: Scope) -> str:
    """The client's ``X-Request-Id`` if it is short and alphanumeric (dashes allowed), else a new one."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            rid = value.decode("latin-1")
            if rid and len(rid) <= 64 and rid.replace("-", "").isalnum():
                return rid
            break
    return uuid.uuid4().hex


_series: dict[tuple[str, str, str], tuple[Any, Any]] = {}  # (method, route, status) -> (counter, histogram)


def _observe(method: str, route: str, status: int, seconds: float) -> None:
    """Count the request and its latency (labelled children kept: ``labels()`` costs a lock and checks)."""
    key = (method, route, str(status))
    children = _series.get(key)
    if children is None:
        children = (REQUESTS.labels(method, route, key[2]), LATENCY.labels(method, route))
        if len(_series) < 4096:  # methods come from clients: never grow without bound
            _series[key] = children
    children[0].inc()
    children[1].observe(seconds)


class Observe:
    """The ASGI middleware: outermost of Levqor's own, so refusals carry the request id and are counted."""

    def __init__(self, app: ASGIApp, chaos_delay_file: str = "") -> None:
        self.app = app
        self.chaos_delay_file = chaos_delay_file

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope)
        token = request_id_var.set(rid)
        started = time.perf_counter()
        status = 500
        path: str = scope["path"]

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers["x-request-id"] = rid
                security_headers.apply(headers, path)
                versioning.apply(headers, scope)
                tiers.apply(headers, scope)
            await send(message)

        try:
            # PostgreSQL text cannot hold NUL: refuse it up front, naming the field (in JSON bodies: InputLimits)
            nul = nul_field(scope)
            if nul is not None:
                response = errors.problem(422, "Validation failed", f"{nul}: NUL characters are not allowed",
                                          "validation-error", Request(scope), field=nul)
                await response(scope, receive, send_with_headers)
            else:
                if self.chaos_delay_file:  # the chaos suite's injected slowdown (never set in production)
                    await asyncio.sleep(chaos_delay(self.chaos_delay_file))
                await self.app(scope, receive, send_with_headers)
        finally:
            elapsed = time.perf_counter() - started
            route = route_template(scope)
            method = scope["method"]
            _observe(method, route, status, elapsed)
            if route not in UNLOGGED_ROUTES and log.isEnabledFor(logging.INFO):
                log.info("request", extra={"fields": {
                    "method": method, "route": route, "path": loggable_path(path, route),
                    "status": status, "ms": round(elapsed * 1000, 2)}})
            request_id_var.reset(token)
