"""Usage tiers at the edge: every ``/v1`` request made with an API key is checked against its plan's
limits (``tools/dev_portal/tiers.py``) and answered with ``RateLimit-*`` headers; a refusal is a 429.

Browser sessions (a person in the console, whose sign-in is throttled) are neither limited nor metered:
tiers meter programmatic use, which needs an API key.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session
from starlette.datastructures import MutableHeaders

from tools.context import Principal
from tools.dev_portal.tiers import limiter

STATE_KEY = "ratelimit_headers"


async def enforce(request: Request, principal: Principal, session: Session) -> None:
    """Count the request against its key's and organisation's limits, or raise the 429 problem."""
    scope = request.scope
    if principal.kind != "api_key" or principal.org_id is None or not scope["path"].startswith("/v1/"):
        return
    if limiter.needs_load(principal, limiter.clock()):
        await run_in_threadpool(limiter.load, session, principal, limiter.clock())
    route = str(getattr(scope.get("route"), "path_format", "unmatched"))  # /v1/jobs/{job_id}
    decision = limiter.check(principal, method=scope["method"], route=route)
    scope.setdefault("state", {})[STATE_KEY] = decision.headers()  # request.state, without building it
    if decision.broken is not None:
        raise decision.error()


def apply(headers: MutableHeaders, scope: MutableMapping[str, Any]) -> None:
    """Add the request's ``RateLimit-*`` headers to its response (whatever its status)."""
    state = scope.get("state")
    values = state.get(STATE_KEY) if state else None
    if values:
        headers.update(values)
