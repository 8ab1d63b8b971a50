"""Developer docs: the API reference is generated from the OpenAPI document and not stale, the guides
render as pages (raw HTML escaped), the changelog page, the version header on every response, and
Deprecation/Sunset headers on a route marked deprecated."""

from __future__ import annotations

import re
from typing import Any

import pytest
from typer.testing import CliRunner

from api.cli import app as cli
from api.security_headers import PAGE_CSP
from tests.factories.orgs import OrgFixture
from tools.dev_portal import docs, versioning
from tools.dev_portal.versioning import API_VERSION, Deprecation


def test_the_api_reference_is_generated_from_the_openapi_document_and_up_to_date(app) -> None:
    text = docs.render_api_reference(app.openapi())
    assert docs.API_REFERENCE.read_text(encoding="utf-8") == text, \
        "docs/dev_portal/api_reference.md is stale: run `levqor docs api-reference` (or `make api-docs`)"
    for path, ops in app.openapi()["paths"].items():
        for method in ops:
            assert f"### `{method.upper()} {path}`" in text, (method, path)
    assert "### `POST /v1/keys/{key_id}/rotate`" in text and "## Schemas" in text


def test_the_command_checks_and_writes_the_reference(tmp_path) -> None:
    runner = CliRunner()
    out = tmp_path / "ref.md"
    stale = runner.invoke(cli, ["docs", "api-reference", "--check", "--out", str(out)])
    assert stale.exit_code == 1 and "stale" in " ".join(stale.output.split())
    wrote = runner.invoke(cli, ["docs", "api-reference", "--out", str(out)])
    assert wrote.exit_code == 0, wrote.output
    ok = runner.invoke(cli, ["docs", "api-reference", "--check", "--out", str(out)])
    assert ok.exit_code == 0 and "up to date" in " ".join(ok.output.split())
    assert out.read_text(encoding="utf-8") == docs.API_REFERENCE.read_text(encoding="utf-8")


def test_guides_changelog_and_sdk_example_are_served_as_pages(client) -> None:
    for path, expect in (("/developer/docs", "Quick start (five minutes)"),
                         ("/developer/docs/index", "Idempotency"),
                         ("/developer/docs/api-reference", "POST /v1/jobs"),
                         ("/developer/docs/sdk-example", "def verify_webhook"),
                         ("/developer/docs/partners", "Partner"),
                         ("/developer/changelog", API_VERSION)):
        r = client.get(path)
        assert r.status_code == 200 and "text/html" in r.headers["content-type"], path
        assert expect in r.text, path
        assert r.headers["content-security-policy"] == PAGE_CSP
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", r.text) and not re.search(r"\sstyle=", r.text), path
    guide = client.get("/developer/docs").text
    for topic in ("Authentication", "Errors", "Pagination", "Idempotency", "Webhooks", "Rate limits", "Test mode",
                  "RateLimit-Remaining", "Retry-After", "402", "429", "webhook-signature"):
        assert topic in guide, topic
    assert 'href="/developer/docs/api-reference"' in guide and 'id="rate-limits-and-usage-tiers"' in guide
    assert client.get("/developer/docs/nope").status_code == 404
    assert client.get("/developer/docs/..%2F..%2Fsecrets").status_code == 404


def test_markdown_is_rendered_with_raw_html_escaped() -> None:
    html = docs.render_markdown("# Hi there\n\n<script>alert(1)</script>\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
                                "[ref](api_reference.md#jobs)")
    assert '<h1 id="hi-there">' in html and "<script>" not in html and "&lt;script&gt;" in html
    assert "<table>" in html and 'href="/developer/docs/api-reference#jobs"' in html


def test_every_response_names_the_api_version(client, org: OrgFixture) -> None:
    for r in (client.get("/v1/me", headers=org.headers()), client.get("/v1/me"), client.get("/healthz"),
              client.get("/developer")):
        assert r.headers["levqor-version"] == API_VERSION, r.request.url


def test_a_deprecated_route_says_so_with_deprecation_sunset_and_link(client, org: OrgFixture, monkeypatch) -> None:
    import datetime as dt

    assert "deprecation" not in client.get("/v1/me", headers=org.headers()).headers
    dep = Deprecation(since=dt.date(2026, 12, 1), sunset=dt.date(2027, 6, 30), successor="/v1/org")
    monkeypatch.setitem(versioning.DEPRECATIONS, ("GET", "/v1/me"), dep)
    r = client.get("/v1/me", headers=org.headers())
    assert r.status_code == 200
    assert r.headers["deprecation"] == "@1796083200"  # RFC 9745: 2026-12-01T00:00:00Z as Unix seconds
    assert r.headers["sunset"] == "Wed, 30 Jun 2027 00:00:00 GMT"  # RFC 8594: an HTTP date
    assert '</v1/org>; rel="successor-version"' in r.headers["link"]
    assert '</developer/changelog>; rel="deprecation"' in r.headers["link"]
    assert "deprecation" not in client.get("/v1/org", headers=org.headers()).headers
    # the app factory marks it in the OpenAPI document (and so in the reference)
    from api.app import create_app

    spec: dict[str, Any] = create_app().openapi()
    assert spec["paths"]["/v1/me"]["get"]["deprecated"] is True
    assert "### `GET /v1/me` (deprecated)" in docs.render_api_reference(spec)


@pytest.mark.parametrize("path", ["/docs"])
def test_swagger_ui_is_served_from_local_files(client, path: str) -> None:
    page = client.get(path)
    assert page.status_code == 200 and "cdn" not in page.text.lower() and "http" not in page.text.split("<body>")[0]
    srcs = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert srcs and all(s.startswith("/") for s in srcs), srcs
    assert "script-src 'self';" in page.headers["content-security-policy"]
    for asset in ("/static/swagger-ui/swagger-ui-bundle.js", "/static/swagger-ui/swagger-ui.css",
                  "/static/swagger-init.js"):
        assert client.get(asset).status_code == 200, asset
    assert client.get("/redoc").status_code == 404
