"""Signed, URL-safe tokens (HMAC-SHA256 with the app's secret key) for the community flows: the form's
fill-time stamp, the double opt-in link and unsubscribe links. Nothing is stored: the signature is the proof,
and each ``purpose`` signs with its own key so one kind of token never passes for another."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from levqor.settings import get_settings


def _key(purpose: str) -> bytes:
    return hmac.new(get_settings().resolved_secret_key().encode(), f"community:{purpose}".encode(),
                    hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(purpose: str, value: str, *, now: float | None = None) -> str:
    """``value`` and the time, signed for ``purpose``."""
    stamp = int(time.time() if now is None else now)
    payload = _b64(f"{stamp}:{value}".encode())
    mac = _b64(hmac.new(_key(purpose), payload.encode(), hashlib.sha256).digest()[:18])
    return f"{payload}.{mac}"


def unsign(purpose: str, token: str) -> tuple[str, int] | None:
    """The signed value and its time, or None when the token is forged, truncated or of another purpose."""
    payload, _, mac = token.partition(".")
    if not payload or not mac:
        return None
    expected = _b64(hmac.new(_key(purpose), payload.encode(), hashlib.sha256).digest()[:18])
    if not hmac.compare_digest(expected, mac):
        return None
    try:
        stamp, _, value = _unb64(payload).decode().partition(":")
        return value, int(stamp)
    except (ValueError, UnicodeDecodeError):
        return None
