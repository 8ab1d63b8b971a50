"""Request dependencies: the session (commits at the edge), the principal, ``require(permission)``.

GET and HEAD requests get a read-only session (on SQLite it never takes the write lock); a GET route
that writes declares ``dependencies=[writes()]``. At most ``LEVQOR_DB_POOL_SIZE`` requests of a process
hold a session at once: the others wait on the event loop, holding neither a thread nor a connection,
so a request that holds a connection never waits for a thread that waits for a connection.
"""

from __future__ import annotations

import asyncio
import hmac
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Annotated, Any

import anyio
from fastapi import Depends, Request
from sqlalchemy.orm import Session

from levqor.logging import request_id_var
from levqor.settings import get_settings
from memory.db import session_scope
from tools.context import Principal, ToolContext
from tools.enterprise import audit_log
from tools.enterprise.rbac import PERMISSIONS, allowed
from tools.errors import Forbidden, Unauthorized
from tools.identity.service import authenticate_key, session_principal

SESSION_COOKIE = "levqor_session"


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_db_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.Semaphore] = weakref.WeakKeyDictionary()


async def db_slot() -> AsyncIterator[None]:
    """Hold one of the process's ``LEVQOR_DB_POOL_SIZE`` places for a request's session (one set per loop)."""
    loop = asyncio.get_running_loop()
    slots = _db_slots.get(loop)
    if slots is None:
        slots = _db_slots[loop] = anyio.Semaphore(max(1, get_settings().db_pool_size))
    async with slots:
        yield


def _writes_marker() -> None:
    return None


def writes() -> Any:
    """Mark a GET route that writes (e.g. audits a read): its request gets a writing session."""
    return Depends(_writes_marker)


def read_only_request(request: Request) -> bool:
    """A GET/HEAD/OPTIONS request on a route not marked :func:`writes`."""
    if request.method not in SAFE_METHODS:
        return False
    dependant = getattr(request.scope.get("route"), "dependant", None)
    return not any(d.call is _writes_marker for d in getattr(dependant, "dependencies", ()))


def get_session(request: Request, _slot: Annotated[None, Depends(db_slot, scope="function")]) -> Iterator[Session]:
    """One session per request: commit when the handler returns, roll back on any error."""
    with session_scope(read_only=read_only_request(request)) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def _bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        raise Unauthorized("Authorization header must be 'Bearer <API key>'")
    return request.headers.get("x-api-key")


def get_principal(request: Request, session: SessionDep) -> Principal:
    """Authenticate by API key (``Authorization: Bearer`` or ``X-API-Key``) or browser session cookie."""
    raw = _bearer(request)
    if raw:
        principal = authenticate_key(session, raw)
    else:
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            raise Unauthorized("authentication required: send an API key as 'Authorization: Bearer <key>'")
        principal, bs = session_principal(session, token)
        request.state.csrf_token = bs.csrf_token
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            _check_csrf(request, bs.csrf_token)
    request.state.principal = principal
    return principal


def _check_csrf(request: Request, expected: str) -> None:
    sent = request.headers.get("x-csrf-token") or getattr(request.state, "form_csrf", None)
    if not sent or not hmac.compare_digest(sent, expected):
        raise Forbidden("missing or wrong CSRF token", field="csrf_token")


class _Require:
    """Dependency checking one permission; routes are found by the ``permission`` attribute."""

    def __init__(self, permission: str):
        if permission not in PERMISSIONS:
            raise KeyError(f"unknown permission {permission!r}; add it to tools/enterprise/rbac.py")
        self.permission = permission

    def __call__(self, request: Request, session: SessionDep,
                 principal: Annotated[Principal, Depends(get_principal)]) -> ToolContext:
        if not allowed(principal.role, self.permission):
            audit_log.append_detached(
                session=session, actor=principal.actor, action="authz.denied", target=request.url.path,
                org_id=principal.org_id, request_id=request_id_var.get(), outcome="denied",
                detail={"permission": self.permission, "role": principal.role, "method": request.method},
            )
            raise Forbidden(f"role {principal.role!r} lacks permission {self.permission!r}")
        return ToolContext(session=session, principal=principal, request_id=request_id_var.get())


def require(permission: str) -> Any:
    """``Depends`` that authenticates, checks ``permission`` and yields a :class:`ToolContext`."""
    return Depends(_Require(permission))


def public() -> Any:
    """Mark a route as intentionally public (no authentication)."""
    return Depends(_public_marker)


def _public_marker() -> None:
    return None




def settings_dep() -> Any:
    return get_settings()


Ctx = Callable[..., ToolContext]
