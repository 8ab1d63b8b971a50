"""Standard Webhooks signing: secrets, signatures and their verification (partner hooks, customer webhooks).

A request carries ``webhook-id`` (stable across retries), ``webhook-timestamp`` and
``webhook-signature: v1,<base64 HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>``, one signature
per valid secret (two while a rotated secret is still in its grace period).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets as random_secrets
import time

from tools.errors import Unauthorized

TOLERANCE_S = 300


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(random_secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256>`` of ``{msg_id}.{timestamp}.{body}`` with a ``whsec_`` secret."""
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signature_header(secrets: list[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one ``v1,…`` signature per secret, space-separated."""
    return " ".join(sign(s, msg_id, timestamp, body) for s in secrets)


def webhook_headers(secrets: list[str], msg_id: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` for ``body`` (now, unless given)."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts),
            "webhook-signature": signature_header(secrets, msg_id, ts, body)}


def verify(secrets: list[str], headers: dict[str, str], body: bytes, *, tolerance_s: int = TOLERANCE_S,
           now: float | None = None) -> None:
    """Check a Standard Webhooks request against any of ``secrets``; raise Unauthorized if forged or stale."""
    h = {k.lower(): v for k, v in headers.items()}
    msg_id, ts, sigs = h.get("webhook-id"), h.get("webhook-timestamp"), h.get("webhook-signature")
    if not msg_id or not ts or not sigs:
        raise Unauthorized("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        stamp = int(ts)
    except ValueError:
        raise Unauthorized("webhook-timestamp is not an integer") from None
    current = time.time() if now is None else now
    if abs(current - stamp) > tolerance_s:
        raise Unauthorized("webhook-timestamp is too old or in the future")
    for secret in secrets:
        expected = sign(secret, msg_id, stamp, body).split(",", 1)[1]
        for sig in sigs.split():
            version, _, value = sig.partition(",")
            if version == "v1" and hmac.compare_digest(value, expected):
                return
    raise Unauthorized("no valid webhook signature")

