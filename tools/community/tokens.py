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


MAC_LEN = 36  # hex digits (144 bits); tokens are [A-Za-z0-9_-] only, safe in any link or mail client


def _mac(purpose: str, payload: str) -> str:
    return hmac.new(_key(purpose), payload.encode(), hashlib.sha256).hexdigest()[:MAC_LEN]


def sign(purpose: str, value: str, *, now: float | None = None) -> str:
    """``value`` and the time, signed for ``purpose``."""
    stamp = int(time.time() if now is None else now)
    payload = _b64(f"{stamp}:{value}".encode())
    return payload + _mac(purpose, payload)


def unsign(purpose: str, token: str) -> tuple[str, int] | None:
    """The signed value and its time, or None when the token is forged, truncated or of another purpose."""
    payload, mac = token[:-MAC_LEN], token[-MAC_LEN:]
    if not payload or not token.isascii() or not hmac.compare_digest(_mac(purpose, payload), mac):
        return None
    try:
        stamp, _, value = _unb64(payload).decode().partition(":")
        return value, int(stamp)
    except (ValueError, UnicodeDecodeError):
        return None
