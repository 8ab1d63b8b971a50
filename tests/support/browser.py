"""Headless Chromium for page tests: Debian's ``/usr/bin/chromium`` through playwright."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@contextlib.contextmanager
def chromium_page(errors: list[str] | None = None) -> Iterator[Any]:
    """A new page in a headless Chromium (closed on exit). With ``errors``, console errors (but a missing
    favicon) and uncaught page errors are appended to it, and CSP violations are collected in the page's
    ``window.__csp``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        try:
            page = browser.new_page()
            if errors is not None:
                page.on("console", lambda m: errors.append(f"{page.url}: {m.text} ({m.location.get('url')})")
                        if m.type == "error" and not m.location.get("url", "").endswith("/favicon.ico") else None)
                page.on("pageerror", lambda e: errors.append(f"{page.url}: {e}"))
                page.add_init_script("window.__csp = []; document.addEventListener('securitypolicyviolation', "
                                     "e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));")
            yield page
        finally:
            browser.close()
