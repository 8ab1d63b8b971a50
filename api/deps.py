"""Request dependencies: the session (commits at the edge), the principal, ``require(permission)``.

GET and HEAD requests get a read-only session (on SQLite it never takes the write lock); a GET route
that writes declares ``dependencies=[writes()]``. At most ``LEVQOR_DB_POOL_SIZE`` requests of a process
hold a session at once: the others wait on the event loop, holding neither a thread nor a connection,
so a request that holds a connection never waits for a thread that waits for a connection.

The dependencies run on the event loop and go to the threadpool only for database work: the session
is opened there without I/O (it connects on first use) and is committed and closed in a thread only if
it was used; an API key this process verified within ``LEVQOR_API_KEY_CACHE_S`` needs no read at all.
So a read whose key is cached costs one thread hop (its endpoint), or none for an ``async`` endpoint.
"""

from __future__ import annotations

import asyncio
import hmac
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import anyio
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from api import tiers
from levqor.logging import request_id_var
from levqor.settings import get_settings
from memory.db import close_session, session_factory
from tools.context import Principal, ToolContext
from tools.enterprise import audit_log
from tools.enterprise.rbac import PERMISSIONS, allowed
from tools.errors import Forbidden, Unauthorized
from tools.identity.service import authenticate_key, cached_key_principal, session_principal

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


async def get_session(request: Request,
                      _slot: Annotated[None, Depends(db_slot, scope="function")]) -> AsyncIterator[Session]:
    """One session per request: commit when the handler returns, roll back on any error."""
    session = session_factory(read_only=read_only_request(request))()
    try:
        yield session
    except BaseException:
        await _end(session, ok=False)
        raise
    await _end(session, ok=True)


async def _end(session: Session, *, ok: bool) -> None:
    """Commit (``ok``) or roll back, then close, in a thread if that does I/O (also when cancelled)."""
    with anyio.CancelScope(shield=True):
        if session.in_transaction() or session.new or session.dirty or session.deleted or \
                session.info.get("after_close"):
            await run_in_threadpool(_finish, session, ok)
        else:
            session.close()  # never used: nothing to commit, no connection to give back


def _finish(session: Session, ok: bool) -> None:
    """``session_scope``'s edge: commit on success (rolled back if that fails) or roll back; close."""
    try:
        if ok:
            session.commit()
        else:
            session.rollback()
    except BaseException:
        session.rollback()
        raise
    finally:
        close_session(session)


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def _bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        raise Unauthorized("Authorization header must be 'Bearer <API key>'")
    return request.headers.get("x-api-key")


async def get_principal(request: Request, session: SessionDep) -> Principal:
    """Authenticate by API key (``Authorization: Bearer`` or ``X-API-Key``) or browser session cookie."""
    raw = _bearer(request)
    if raw:
        cached = cached_key_principal(session, raw)
        principal = cached if cached is not None else await run_in_threadpool(authenticate_key, session, raw)
        await tiers.enforce(request, principal, session)
    else:
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            raise Unauthorized("authentication required: send an API key as 'Authorization: Bearer <key>'")
        principal, bs = await run_in_threadpool(session_principal, session, token)
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

    async def __call__(self, request: Request, session: SessionDep,
                       principal: Annotated[Principal, Depends(get_principal)]) -> ToolContext:
        # No I/O here: a denial's audit entry is written once the session has closed (in a thread).
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
