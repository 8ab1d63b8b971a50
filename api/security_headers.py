"""Security headers on every response; a Content-Security-Policy on every HTML page.

The pages use no inline script or style (scripts and styles come from ``/static``), so their policy
allows only the site itself and forbids framing. ``/docs`` (Swagger UI, served from ``/static``) sets
inline styles as it renders: it gets a policy of its own that allows them, still with no inline script.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders

PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
DOCS_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
            "frame-ancestors 'none'")
DOCS_PATHS = ("/docs",)
# The Insights embed (api/pages/insights.py) may be framed by Notion, and only by Notion.
EMBED_PATHS = ("/insights/embed",)
EMBED_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
             "object-src 'none'; base-uri 'none'; form-action 'self'; "
             "frame-ancestors https://www.notion.so https://notion.so https://*.notion.site")
ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}


def apply(headers: MutableHeaders, path: str) -> None:
    """Add the headers every response carries, and the CSP when the response is an HTML page."""
    for name, value in ALWAYS.items():
        if name == "X-Frame-Options" and path in EMBED_PATHS:
            continue  # superseded by the embed's frame-ancestors allow-list
        headers.setdefault(name, value)
    if headers.get("content-type", "").startswith("text/html"):
        docs = path in DOCS_PATHS or path.startswith("/docs/")
        headers.setdefault("Content-Security-Policy", DOCS_CSP if docs else PAGE_CSP)
