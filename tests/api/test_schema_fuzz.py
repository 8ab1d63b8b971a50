"""Schemathesis over the whole OpenAPI document: no 5xx and no response breaking its own schema."""

from __future__ import annotations

import re

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    allow_header_conformance,
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from tests.factories.orgs import make_org

app = create_app()
schema = schemathesis.openapi.from_asgi("/openapi.json", app)
_org = None


def _headers() -> dict[str, str]:
    global _org
    if _org is None:
        _org = make_org()
    return _org.headers("admin")


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_never_fails_on_any_input(case) -> None:  # type: ignore[no-untyped-def]
    # Server errors and responses that break the documented schema fail; whether lax input
    # (e.g. ``true`` for an integer) is accepted is pydantic's business, not checked here.
    response = case.call(headers=_headers())
    checks = [status_code_conformance, content_type_conformance, response_schema_conformance,
              response_headers_conformance, allow_header_conformance]
    if not _documented_unavailable(response):
        checks.insert(0, not_a_server_error)
    case.validate_response(response, checks=checks, excluded_checks=[
        schemathesis.checks.positive_data_acceptance, schemathesis.checks.negative_data_rejection,
        schemathesis.checks.missing_required_header, schemathesis.checks.unsupported_method])


# 503s that say a dependency is not configured or not ready here (Stripe without a key, readiness
# while another process migrates): documented answers about the environment, not crashes.
UNAVAILABLE_TYPES = ("payments-unavailable",)


def _documented_unavailable(response) -> bool:  # type: ignore[no-untyped-def]
    if response.status_code != 503:
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    return str(body.get("type", "")).rsplit("/", 1)[-1] in UNAVAILABLE_TYPES or body.get("status") == "unavailable"


# Bodies no generator makes: the edge refuses each, on every operation that takes a body, before the
# route runs (tests/api/test_input_limits.py checks the details on a few routes).
HOSTILE_BODIES = {
    "deep": (b'{"a": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", 422, "LEVQOR_MAX_JSON_DEPTH"),
    "nan": (b'{"a": NaN}', 422, None),
    "escaped surrogate": (b'{"a": "\\ud800"}', 422, None),
    "raw surrogate bytes": (b'{"a": "\xed\xa0\x80"}', 422, None),
    "oversized": (b'{"a": "' + b"x" * (2 * 1024 * 1024) + b'"}', 413, "LEVQOR_MAX_BODY_BYTES"),
}


def test_hostile_bodies_are_refused_on_every_operation_with_a_body() -> None:
    from fastapi.testclient import TestClient

    ops = [(method.upper(), re.sub(r"\{[^}]+\}", "1", path))
           for path, item in app.openapi()["paths"].items() for method, op in item.items()
           if method in ("post", "put", "patch") and "requestBody" in op]
    assert len(ops) > 20
    with TestClient(app, raise_server_exceptions=False) as client:
        for method, path in ops:
            for name, (body, status, limit) in HOSTILE_BODIES.items():
                if name == "oversized" and path == "/v1/costs/import":
                    continue  # its own 5 MiB limit
                r = client.request(method, path, content=body,
                                   headers={**_headers(), "content-type": "application/json"})
                assert r.status_code == status, (method, path, name, r.text[:200])
                assert r.headers["content-type"].startswith("application/problem+json")
                if limit is not None:
                    assert r.json()["limit"] in (limit, "MAX_HOOK_BODY"), (method, path, name)
