"""The FastAPI application factory."""

from __future__ import annotations

import importlib
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles

from api import errors, versioning
from api.input_limits import InputLimits
from api.observe import Observe
from levqor import __version__
from levqor.metrics import start_process
from levqor.settings import get_settings
from policies.engine import get_engine as load_policy
from tools.dev_portal.tiers import limiter as tier_limiter

ROUTERS: tuple[str, ...] = (
    "api.routers.health",
    "api.routers.identity",
    "api.routers.dev_portal",
    "api.routers.sandbox",
    "api.routers.audit",
    "api.routers.platform",
    "api.routers.partners",
    "api.routers.billing",
    "api.routers.sso",
    "api.routers.scim",
    "api.pages.sso",
    "api.routers.certification",
    "api.pages.certification",
    "api.pages.billing",
    "api.pages.marketplace",
    "api.routers.jobs",
    "api.routers.agents",
    "api.pages.agents",
    "api.routers.pulse",
    "api.pages.pulse",
    "api.routers.insights",
    "api.pages.insights",
    "api.routers.ops",
    "api.pages.ops",
    "api.routers.sla",
    "api.pages.sla",
    "api.pages.router",
    "api.pages.developer",
    "api.routers.governance",
    "api.pages.governance",
    "api.routers.community",
    "api.pages.community",
    "api.pages.swagger",
)


def create_app() -> FastAPI:
    """Build the app: routers, problem-details errors, request ids, metrics, logs."""
    settings = get_settings()
    load_policy()  # a bad policy.json stops start-up here, naming the line
    start_process("api")
    app = FastAPI(
        title="Levqor API",
        version=__version__,
        description="Levqor automation platform: operations, agents and partner ecosystem. "
        "Authenticate with `Authorization: Bearer <API key>`. Errors are RFC 9457 problem details. "
        "Guides: /developer/docs.",
        docs_url=None,  # /docs is api/pages/swagger.py: Swagger UI from local files, not a CDN
        redoc_url=None,
    )
    errors.install(app)
    for name in ROUTERS:
        module = importlib.import_module(name)
        app.include_router(module.router)
        if hasattr(module, "browser"):  # a router's browser-only endpoints, outside the API document
            app.include_router(module.browser)
    versioning.mark_deprecated(app)
    static = Path(__file__).parent / "pages" / "static"
    app.mount("/static", StaticFiles(directory=static), name="static")
    # Inside Observe (added after it), so refusals carry the request id and are counted.
    app.add_middleware(InputLimits)
    app.add_middleware(Observe, chaos_delay_file=settings.chaos_api_delay_file)

    app.state.settings = settings
    # The usage tiers' last counts go to the database when the server stops (the rest every sync interval).
    app.router.add_event_handler("shutdown", tier_limiter.stop)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


PROBLEM_SCHEMA = {
    "type": "object",
    "title": "Problem",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string"}, "instance": {"type": "string"}, "request_id": {"type": "string"},
        "field": {"type": "string"},
        "reset_at": {"type": "string", "description": "When a rate limit that refused the request resets (UTC)"},
        "retry_after_s": {"type": "integer", "description": "Seconds until then (also the Retry-After header)"},
        "window_s": {"type": "integer", "description": "The window of that rate limit in seconds"},
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
