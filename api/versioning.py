"""API version and deprecation headers on responses (the policy is ``tools/dev_portal/versioning.py``)."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.datastructures import MutableHeaders

from tools.dev_portal.versioning import API_VERSION, DEPRECATIONS, VERSION_HEADER


def apply(headers: MutableHeaders, scope: MutableMapping[str, Any]) -> None:
    """``Levqor-Version`` on every response; ``Deprecation``/``Sunset``/``Link`` when the route is retiring."""
    headers[VERSION_HEADER] = API_VERSION
    if not DEPRECATIONS:
        return
    path = getattr(scope.get("route"), "path", None)
    dep = DEPRECATIONS.get((scope.get("method", ""), path)) if path else None
    if dep is not None:
        headers.update(dep.headers())


def mark_deprecated(app: FastAPI) -> None:
    """Mark the routes of ``DEPRECATIONS`` deprecated in the OpenAPI document."""
    for route in app.routes:
        if isinstance(route, APIRoute) and any((m, route.path) in DEPRECATIONS for m in route.methods):
            route.deprecated = True
