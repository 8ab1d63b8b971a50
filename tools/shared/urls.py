"""URL identity for registered webhook endpoints: which URLs address the same endpoint."""

from __future__ import annotations

from urllib.parse import urlsplit


def origin_path(url: str) -> tuple[str, str, int, str] | None:
    """Scheme, host, port and path of ``url`` (query and fragment ignored), or None if it is no http(s) URL."""
    try:
        u = urlsplit(url)
        port = u.port
    except ValueError:
        return None
    if u.scheme not in ("http", "https") or not u.hostname:
        return None
    return u.scheme, u.hostname.rstrip(".").lower(), port or (443 if u.scheme == "https" else 80), u.path or "/"


def same_endpoint(url: str, registered: str) -> bool:
    """Whether ``url`` addresses the registered endpoint: same scheme, host, port and path."""
    a, b = origin_path(url), origin_path(registered)
    return a is not None and a == b
