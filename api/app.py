"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles

from api import errors, security_headers
from api.input_limits import InputLimits
from levqor import __version__
from levqor.logging import request_id_var
from levqor.metrics import LATENCY, REQUESTS, start_process
from levqor.settings import get_settings
from policies.engine import get_engine as load_policy

log = logging.getLogger("levqor.http")
ROUTERS: tuple[str, ...] = (
    "api.routers.health",
    "api.routers.identity",
    "api.routers.audit",
    "api.routers.platform",
    "api.routers.partners",
    "api.pages.marketplace",
    "api.routers.jobs",
    "api.routers.agents",
    "api.pages.agents",
    "api.routers.pulse",
    "api.pages.pulse",
    "api.routers.ops",
    "api.pages.ops",
    "api.pages.router",
)


def _route_template(request: Request) -> str:
    """The matched route's template (``/v1/keys/{key_id}``), so metrics never carry raw ids."""
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    if path:
        return str(path)
    if request.url.path.startswith("/static/"):
        return "/static"
    return "unmatched"


def _loggable_path(path: str, route: str) -> str:
    """The path for logs; routes carrying a secret in the URL log their template instead."""
    return route if "{secret}" in route else path


_chaos_delay_cache: list[float] = [0.0, 0.0]  # [read at (monotonic), seconds]
CHAOS_DELAY_REREAD_S = 0.5


def _chaos_delay(path: str) -> float:
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


def create_app() -> FastAPI:
    """Build the app: routers, problem-details errors, request ids, metrics, logs."""
    settings = get_settings()
    load_policy()  # a bad policy.json stops start-up here, naming the line
    start_process("api")
    app = FastAPI(
        title="Levqor API",
        version=__version__,
        description="Levqor automation platform: operations, agents and partner ecosystem. "
        "Authenticate with `Authorization: Bearer <API key>`. Errors are RFC 9457 problem details.",
    )
    errors.install(app)
    for name in ROUTERS:
        app.include_router(importlib.import_module(name).router)
    static = Path(__file__).parent / "pages" / "static"
    app.mount("/static", StaticFiles(directory=static), name="static")
    # Inside the middleware below (added after it), so refusals carry the request id and are counted.
    app.add_middleware(InputLimits)

    @app.middleware("http")
    async def observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex
        if len(rid) > 64 or not rid.replace("-", "").isalnum():
            rid = uuid.uuid4().hex
        token = request_id_var.set(rid)
        started = time.perf_counter()
        status = 500
        try:
            # PostgreSQL text cannot hold NUL: refuse it up front, naming the field (in JSON bodies: InputLimits)
            nul = _nul_field(request)
            if nul is not None:
                response: Response = errors.problem(422, "Validation failed", f"{nul}: NUL characters are not "
                                                    "allowed", "validation-error", request, field=nul)
            else:
                if settings.chaos_api_delay_file:  # the chaos suite's injected slowdown (never set in production)
                    await asyncio.sleep(_chaos_delay(settings.chaos_api_delay_file))
                response = await call_next(request)
            status = response.status_code
            response.headers["x-request-id"] = rid
            security_headers.apply(response.headers, request.url.path)
            return response
        finally:
            elapsed = time.perf_counter() - started
            route = _route_template(request)
            REQUESTS.labels(request.method, route, str(status)).inc()
            LATENCY.labels(request.method, route).observe(elapsed)
            if route not in ("/metrics", "/healthz"):
                log.info("request", extra={"fields": {
                    "method": request.method, "route": route, "path": _loggable_path(request.url.path, route),
                    "status": status, "ms": round(elapsed * 1000, 2)}})
            request_id_var.reset(token)

    app.state.settings = settings
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _nul_field(request: Request) -> str | None:
    """The first query parameter or path segment holding a NUL character, if any."""
    if "\x00" in request.url.path:
        return "path"
    for key, value in request.query_params.multi_items():
        if "\x00" in key or "\x00" in value:
            return key.replace("\x00", "") or "query"
    return None


PROBLEM_SCHEMA = {
    "type": "object",
    "title": "Problem",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string"}, "instance": {"type": "string"}, "request_id": {"type": "string"},
        "field": {"type": "string"},
        "limit": {"type": "string", "description": "The limit a refused request broke (e.g. LEVQOR_MAX_BODY_BYTES)"},
        "allowed": {"type": "integer", "description": "The value that limit allows"},
        "errors": {"type": "array", "items": {"type": "object", "properties": {
            "field": {"type": "string"}, "in": {"type": "string"}, "rule": {"type": "string"},
            "message": {"type": "string"}}}},
    },
}


def _openapi(app: FastAPI) -> dict[str, object]:
    """OpenAPI with every error documented as ``application/problem+json`` and bearer auth."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    comps = doc.setdefault("components", {})
    comps.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    comps["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "API key: lvq_live_… or lvq_test_…"}}
    problem = {"description": "Problem details", "content": {
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    for path, ops in doc.get("paths", {}).items():
        for op in ops.values():
            responses = op.setdefault("responses", {})
            responses.pop("422", None)
            responses["4XX"] = problem
            responses["5XX"] = problem
            if path not in ("/healthz", "/readyz", "/metrics", "/login"):
                op["security"] = [{"bearer": []}]
    app.openapi_schema = doc
    return doc
