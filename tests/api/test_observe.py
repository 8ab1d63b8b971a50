"""The edge middleware is pure ASGI (no ``BaseHTTPMiddleware``) and still sets the request id, the
security headers (CSP on pages), counts every request by route template and refuses NUL input."""

from __future__ import annotations

import re

from starlette.middleware.base import BaseHTTPMiddleware

from api.observe import Observe, nul_field
from tests.factories.orgs import OrgFixture


def test_no_base_http_middleware_in_the_stack(app) -> None:
    classes = [m.cls for m in app.user_middleware]
    assert Observe in classes
    assert not [c for c in classes if isinstance(c, type) and issubclass(c, BaseHTTPMiddleware)], classes


def test_request_id_is_echoed_or_made_and_headers_are_set(client, org: OrgFixture) -> None:
    r = client.get("/v1/me", headers={**org.headers("viewer"), "X-Request-Id": "abc-123"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "abc-123"
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
    assert "content-security-policy" not in r.headers  # JSON, not a page
    bad = client.get("/v1/me", headers={**org.headers("viewer"), "X-Request-Id": "no spaces<>"})
    assert re.fullmatch(r"[0-9a-f]{32}", bad.headers["x-request-id"])
    refused = client.get("/v1/me")  # a 401 from a dependency carries them too
    assert refused.status_code == 401 and refused.json()["request_id"] == refused.headers["x-request-id"]
    assert refused.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    page = client.get("/login")
    assert page.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_every_request_is_counted_by_route_template(client, org: OrgFixture) -> None:
    def count(route: str, status: str) -> float:
        text = client.get("/metrics").text
        m = re.search(rf'^levqor_http_requests_total\{{method="GET",route="{re.escape(route)}",'
                      rf'status="{status}"\}} (\S+)$', text, re.M)
        return float(m.group(1)) if m else 0.0

    before = count("/v1/me", "200"), count("/v1/me", "401"), count("unmatched", "422")
    client.get("/v1/me", headers=org.headers("viewer"))
    client.get("/v1/me")
    nul = client.get("/v1/me", params={"x": "a\x00b"}, headers=org.headers("viewer"))  # refused before routing
    assert nul.status_code == 422 and nul.headers["x-request-id"] and nul.json()["field"] == "x"
    assert (count("/v1/me", "200"), count("/v1/me", "401"), count("unmatched", "422")) == \
        (before[0] + 1, before[1] + 1, before[2] + 1)


def test_nul_is_found_in_the_path_and_the_query_string() -> None:
    assert nul_field({"path": "/v1/a\x00", "query_string": b""}) == "path"
    assert nul_field({"path": "/v1/a", "query_string": b"state=x%00y"}) == "state"
    assert nul_field({"path": "/v1/a", "query_string": b"%00=1"}) == "query"
    assert nul_field({"path": "/v1/a", "query_string": b"state=x%2500"}) is None
