"""NUL characters (which PostgreSQL text cannot store) are refused as bad input naming the field, on
every database, in a query parameter, a path segment or a JSON body; never a 500."""

from __future__ import annotations

from tests.factories.orgs import OrgFixture


def test_nul_in_a_query_parameter_is_a_422_naming_it(client, org: OrgFixture) -> None:
    r = client.get("/v1/events", params={"name": "job\x00complete"}, headers=org.headers())
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["field"] == "name" and "NUL" in r.json()["detail"]


def test_nul_in_a_path_segment_is_a_422(client, org: OrgFixture) -> None:
    r = client.get("/v1/plugins/acme%00chat", headers=org.headers())
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "path"


def test_nul_in_a_json_string_is_a_422_naming_its_path(client, org: OrgFixture) -> None:
    body = '{"day": "2026-11-01", "source": "infrastructure", "amount_cents": 100, "description": "bill\\u0000"}'
    r = client.post("/v1/costs", content=body, headers={**org.headers(), "content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "description"
    # The same body without the NUL is stored.
    r = client.post("/v1/costs", content=body.replace("\\u0000", ""),
                    headers={**org.headers(), "content-type": "application/json"})
    assert r.status_code == 201, r.text
