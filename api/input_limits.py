"""Input limits at the edge: one ASGI middleware in front of every route (API and pages).

- **Body size.** The body is read with a cap (``LEVQOR_MAX_BODY_BYTES``, 1 MiB; a few routes have
  their own, :data:`ROUTE_BODY_LIMITS`), refused with 413 as soon as ``Content-Length`` or the bytes
  received (chunked bodies too) pass it. Form posts count like any other body.
- **JSON bodies** (``application/json``, ``*+json``, no content type, and routes that parse any body
  as JSON) must be UTF-8 (raw invalid bytes such as ``\\xed\\xa0\\x80`` are refused), nest at most
  ``LEVQOR_MAX_JSON_DEPTH`` levels (counted without recursion before parsing), hold no NaN or
  Infinity, no string longer than ``LEVQOR_MAX_STRING_LENGTH``, no list or object with more than
  ``LEVQOR_MAX_LIST_LENGTH`` items, no lone surrogate (``"\\ud800"``) and no NUL character
  (PostgreSQL text cannot store it).

Every refusal is a problem-details response naming the limit (``limit``: the setting) and the
value allowed (``allowed``); 413 for size, 422 for the rest. Malformed JSON passes through: the
route's own validation names the error as before. The body is then replayed to the route unchanged.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import Request

from api.errors import problem
from api.routers.jobs import MAX_HOOK_BODY
from levqor.settings import Settings, get_settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COSTS_IMPORT_MAX_BYTES = 5 * 1024 * 1024
# (method, path pattern, limit name, bytes): routes with their own body limit (documented in the README).
ROUTE_BODY_LIMITS: tuple[tuple[str, re.Pattern[str], str, int], ...] = (
    # a CSV bill of up to 5,000,000 characters (CostImportIn)
    ("POST", re.compile(r"^/v1/costs/import$"), "COSTS_IMPORT_MAX_BYTES", COSTS_IMPORT_MAX_BYTES),
    # unauthenticated webhook triggers: smaller than the default
    ("POST", re.compile(r"^/v1/hooks/[^/]+$"), "MAX_HOOK_BODY", MAX_HOOK_BODY),
)
# Routes that parse their body as JSON whatever its content type.
JSON_ANY_TYPE: tuple[tuple[str, re.Pattern[str]], ...] = (("POST", re.compile(r"^/v1/hooks/[^/]+$")),)

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_INNERMOST = re.compile(r"\[\]|\{\}")
_SURROGATE = re.compile("[\ud800-\udfff]")


class Refusal(Exception):
    """A body refused at the edge: the problem details to answer with."""

    def __init__(self, status: int, title: str, detail: str, type_slug: str, *, field: str = "body",
                 limit: str | None = None, allowed: int | None = None):
        super().__init__(detail)
        self.status, self.title, self.detail, self.type_slug = status, title, detail, type_slug
        self.field, self.limit, self.allowed = field, limit, allowed


def body_limit(method: str, path: str, settings: Settings) -> tuple[str, int]:
    """The name and size in bytes of the body limit of ``method path``."""
    for m, pattern, name, limit in ROUTE_BODY_LIMITS:
        if m == method and pattern.match(path):
            return name, limit
    return "LEVQOR_MAX_BODY_BYTES", settings.max_body_bytes


def _too_large(limit: tuple[str, int]) -> Refusal:
    name, size = limit
    return Refusal(413, "Request body too large", f"body: larger than the {size} bytes allowed ({name})",
                   "payload-too-large", limit=name, allowed=size)


def _is_json(content_type: str | None, method: str, path: str) -> bool:
    if any(m == method and p.match(path) for m, p in JSON_ANY_TYPE):
        return True
    if not content_type:
        return True  # FastAPI parses a body without a content type as JSON
    media = content_type.split(";", 1)[0].strip().lower()
    return media.startswith("application/") and (media.endswith("/json") or media.endswith("+json"))


def json_depth(text: str, most: int) -> int:
    """How deep ``text`` nests arrays and objects (strings ignored), counted up to ``most + 1``.

    No recursion: the brackets outside strings are kept, then innermost pairs are removed a level at a
    time, each pass in C; malformed nesting stops early and is left to the parser."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    depth = 0
    while brackets and depth <= most:
        reduced = _INNERMOST.sub("", brackets)
        if reduced == brackets:  # unbalanced: count what is left (a truncated body may still nest deeply)
            level = 0
            for c in brackets:
                level += 1 if c in "[{" else -1
                if depth + level > most:
                    return depth + level
            break
        brackets, depth = reduced, depth + 1
    return depth


def _refuse_constant(name: str) -> Any:
    raise Refusal(422, "Invalid JSON number", f"body: {name} is not a JSON number", "validation-error")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise Refusal(422, "Invalid JSON number", f"body: the number {text[:40]} is out of range",
                      "validation-error")
    return value


def _check_string(value: str, path: str, settings: Settings, what: str = "string") -> None:
    where = path or "body"
    if len(value) > settings.max_string_length:
        raise Refusal(422, "String too long",
                      f"{where}: a {what} of {len(value)} characters is longer than the "
                      f"{settings.max_string_length} allowed (LEVQOR_MAX_STRING_LENGTH)",
                      "limit-exceeded", field=where, limit="LEVQOR_MAX_STRING_LENGTH",
                      allowed=settings.max_string_length)
    if "\x00" in value:
        raise Refusal(422, "Validation failed", f"{where}: NUL characters are not allowed", "validation-error",
                      field=where)
    if _SURROGATE.search(value):
        raise Refusal(422, "Invalid text", f"{where}: a lone surrogate (\\ud800-\\udfff) is not a Unicode "
                      "character", "validation-error", field=where)


def _check_items(n: int, path: str, settings: Settings) -> None:
    if n > settings.max_list_length:
        where = path or "body"
        raise Refusal(422, "List too long", f"{where}: {n} items are more than the {settings.max_list_length} "
                      "allowed in a list or object (LEVQOR_MAX_LIST_LENGTH)", "limit-exceeded", field=where,
                      limit="LEVQOR_MAX_LIST_LENGTH", allowed=settings.max_list_length)


def check_json(body: bytes, settings: Settings) -> None:
    """Raise :class:`Refusal` if the JSON ``body`` breaks a limit; malformed JSON is not refused here."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refusal(422, "Invalid text", f"body: not valid UTF-8 (byte {exc.start})", "validation-error") \
            from None
    if not text.strip():
        return
    most = settings.max_json_depth
    if json_depth(text, most) > most:
        raise Refusal(422, "JSON nested too deeply",
                      f"body: JSON nested deeper than the {most} levels allowed (LEVQOR_MAX_JSON_DEPTH)",
                      "limit-exceeded", limit="LEVQOR_MAX_JSON_DEPTH", allowed=most)
    try:
        doc = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:  # not reached with a sane LEVQOR_MAX_JSON_DEPTH; never a 500 either way
        raise Refusal(422, "JSON nested too deeply", "body: JSON nested too deeply to parse", "limit-exceeded",
                      limit="LEVQOR_MAX_JSON_DEPTH", allowed=most) from None
    except json.JSONDecodeError:
        return  # malformed: the route's validation names the error
    except ValueError:  # an integer beyond Python's digit limit
        raise Refusal(422, "Invalid JSON number", "body: a number has too many digits", "validation-error") \
            from None
    stack: list[tuple[Any, str]] = [(doc, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            _check_string(value, path, settings)
        elif isinstance(value, dict):
            _check_items(len(value), path, settings)
            for k, v in value.items():
                _check_string(k, path, settings, "key")
                stack.append((v, f"{path}.{k}" if path else k))
        elif isinstance(value, list):
            _check_items(len(value), path, settings)
            stack.extend((v, f"{path}.{i}" if path else str(i)) for i, v in enumerate(value))


class InputLimits:
    """ASGI middleware enforcing the limits above on every request with a body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        length, chunked = headers.get("content-length"), "chunked" in headers.get("transfer-encoding", "").lower()
        if length is None and not chunked:
            await self.app(scope, receive, send)  # no body
            return
        settings = get_settings()
        method, path = scope["method"], scope["path"]
        limit = body_limit(method, path, settings)
        try:
            if length is not None and length.isdigit() and int(length) > limit[1]:
                raise _too_large(limit)
            body = await _read(receive, limit)
            if body is None:
                return  # the client went away
            if body and _is_json(headers.get("content-type"), method, path):
                check_json(body, settings)
        except Refusal as refusal:
            await _answer(refusal, scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)


async def _read(receive: Receive, limit: tuple[str, int]) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit[1]:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: wait for the disconnect, as the server would

    return replay


async def _answer(refusal: Refusal, scope: Scope, receive: Receive, send: Send) -> None:
    response = problem(refusal.status, refusal.title, refusal.detail, refusal.type_slug, Request(scope),
                       field=refusal.field, limit=refusal.limit, allowed=refusal.allowed)
    if refusal.status == 413:
        response.headers["connection"] = "close"  # the rest of the body is not read
    await response(scope, receive, send)
