"""Security headers on every response; a Content-Security-Policy on every HTML page.

The pages use no inline script or style (scripts and styles come from ``/static``), so their policy
allows only the site itself and forbids framing. FastAPI's ``/docs`` and ``/redoc`` load Swagger UI
and ReDoc from a CDN with an inline bootstrap script: they get a wider policy of their own.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders

PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
            "worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
            "frame-ancestors 'none'")
DOCS_PATHS = ("/docs", "/redoc")
ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}


def apply(headers: MutableHeaders, path: str) -> None:
    """Add the headers every response carries, and the CSP when the response is an HTML page."""
    for name, value in ALWAYS.items():
        headers.setdefault(name, value)
    if headers.get("content-type", "").startswith("text/html"):
        docs = path in DOCS_PATHS or path.startswith("/docs/")
        headers.setdefault("Content-Security-Policy", DOCS_CSP if docs else PAGE_CSP)
