"""RFC 9457 problem details for every error the API returns."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.exc import DataError, DBAPIError, DisconnectionError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from levqor import diskspace
from levqor.db_outage import is_unavailable
from levqor.logging import request_id_var
from tools.errors import AppError

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"
TYPE_BASE = "https://levqor.ai/problems/"
DB_RETRY_AFTER_S = 5  # what a client is told to wait while the database is unavailable


def problem(status: int, title: str, detail: str, type_slug: str, request: Request | None = None,
            **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": TYPE_BASE + type_slug, "title": title, "status": status, "detail": detail}
    if request is not None:
        body["instance"] = request.url.path
    rid = request_id_var.get()
    if rid:
        body["request_id"] = rid
    body.update({k: v for k, v in extra.items() if v is not None})
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:] or parts
    return ".".join(parts) or "body"


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/v1") and "text/html" in request.headers.get("accept", "")


def _allowed_methods(request: Request) -> list[str]:
    """Every method any route serves at this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "__none__"})
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into problem details."""

    @app.exception_handler(AppError)
    async def app_error(request: Request, exc: AppError) -> Response:
        if exc.status_code == 401 and _wants_html(request):
            portal = request.url.path.startswith("/developer")
            return RedirectResponse("/developer/login" if portal else "/login", status_code=303)
        resp = problem(exc.status_code, exc.title, exc.detail, exc.type_slug, request, field=exc.field,
                       **exc.extra)
        resp.headers.update(exc.headers)
        return resp

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _invalid(request, exc.errors())

    @app.exception_handler(ValidationError)
    async def model_error(request: Request, exc: ValidationError) -> JSONResponse:
        # A tool's input model built in a router from request values (path, query and body together).
        return _invalid(request, exc.errors(), where="request")

    def _invalid(request: Request, raw: Any, where: str | None = None) -> JSONResponse:
        errors = []
        for err in raw:
            errors.append({"field": _field(err.get("loc", ())),
                           "in": where or str((err.get("loc") or ["body"])[0]),
                           "rule": err.get("type", "invalid"), "message": err.get("msg", "invalid")})
        first = errors[0] if errors else {"field": "body", "message": "invalid request"}
        detail = f"{first['field']}: {first['message']}"
        return problem(422, "Validation failed", detail, "validation-error", request, field=first["field"],
                       errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404 and _browser_page(request):
            return HTMLResponse(NOT_FOUND_PAGE, status_code=404)
        titles = {404: "Not found", 405: "Method not allowed", 401: "Unauthorized", 403: "Forbidden"}
        resp = problem(exc.status_code, titles.get(exc.status_code, "Error"), str(exc.detail),
                       titles.get(exc.status_code, "error").lower().replace(" ", "-"), request)
        for k, v in (exc.headers or {}).items():
            resp.headers[k] = v
        if exc.status_code == 405:
            resp.headers["Allow"] = ", ".join(_allowed_methods(request))
        return resp

    @app.exception_handler(DataError)
    async def data_error(request: Request, exc: DataError) -> JSONResponse:
        # The database refused a value the validators let through (a NUL character in a JSON string, a
        # number out of a column's range): bad input, not a server fault.
        log.info("database refused a value", extra={"fields": {"error": str(exc.orig)[:200]}})
        return problem(422, "Validation failed", "a value is not valid for storage (a NUL character, or a number "
                       "out of range)", "validation-error", request, field="body")

    @app.exception_handler(DBAPIError)
    @app.exception_handler(DisconnectionError)
    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        # The database is down, unreachable or locked: the request may succeed later, so say when to retry
        # (the outage is logged once by levqor.db_outage, not per request). Any other database error is a bug.
        if not is_unavailable(exc):
            return await unhandled(request, exc)
        resp = problem(503, "Service unavailable", "the database is unavailable; retry later", "database-unavailable",
                       request)
        resp.headers["Retry-After"] = str(DB_RETRY_AFTER_S)
        return resp

    @app.exception_handler(Exception)
    async def unhandled(request: Request, exc: Exception) -> JSONResponse:
        if diskspace.is_enospc(exc):
            # A full disk (a file, or SQLite's "database or disk is full"; its transaction rolled back):
            # the disk_full incident frees space, the client retries.
            diskspace.note_enospc("api")
            log.warning("no space left on device", extra={"fields": {"error": str(exc)[:200]}})
            resp = problem(507, "Insufficient storage", "the server ran out of disk space; nothing was saved. "
                           "Retry shortly", "insufficient-storage", request)
            resp.headers["Retry-After"] = "30"
            return resp
        log.exception("unhandled error")
        return problem(500, "Internal error", "an unexpected error occurred; it was logged", "internal", request)


NOT_FOUND_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Page not found · Levqor</title><link rel="stylesheet" href="/static/levqor.css">
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml"></head>
<body><header><a class="brand" href="/">Levqor</a></header>
<main><div class="card"><h1>Page not found</h1>
<p>There is no page at this address. It may have moved, or the link may be mistyped.</p>
<p><a href="/">Go to the dashboard</a> · <a href="/marketplace">Marketplace</a> · <a href="/docs">API reference</a></p>
</div></main></body></html>"""


def _browser_page(request: Request) -> bool:
    """A browser asking for a page (API clients, and anything under /v1, keep problem+json)."""
    if request.method not in ("GET", "HEAD") or request.url.path.startswith(("/v1", "/static", "/metrics")):
        return False
    return "text/html" in request.headers.get("accept", "")
