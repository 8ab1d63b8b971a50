"""Input limits at the edge (api/input_limits.py): oversized bodies are 413 and over-deep, over-long,
non-finite or broken-Unicode JSON is 422, each naming the limit it broke; never a 500, and a normal
request still passes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from api.input_limits import json_depth
from tests.factories import jobs as js
from tests.factories.orgs import OrgFixture

NOOP = [{"kind": "transform", "expression": "input"}]
MIB = 1024 * 1024
JSON = {"content-type": "application/json"}


@pytest.fixture()
def hook_path(client, org: OrgFixture) -> str:
    """An unauthenticated webhook trigger URL's path (its pipeline's org has credits)."""
    r = client.post("/v1/pipelines", json={"name": "hook", "trigger": {"type": "webhook"}, "steps": NOOP},
                    headers=org.headers())
    url = r.json()["webhook_url"]
    js.grant(org.org_id, 10)
    return str(url[url.index("/v1/hooks/"):])


def _submit(client, org: OrgFixture, body: bytes | str, **headers: str):  # type: ignore[no-untyped-def]
    return client.post("/v1/jobs", content=body, headers={**org.headers(), **JSON, **headers})


def _job_body(pipeline_id: int, input_json: str) -> str:
    return f'{{"pipeline_id": {pipeline_id}, "input": {input_json}}}'


def _assert_problem(r, status: int, limit: str | None = None, allowed: int | None = None) -> dict:  # type: ignore[no-untyped-def,type-arg]
    assert r.status_code == status, r.text[:500]
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and body["detail"]
    if limit is not None:
        assert body["limit"] == limit and body["allowed"] == allowed, body
        assert limit in body["detail"] and str(allowed) in body["detail"], body
    return dict(body)


def test_a_10_mb_body_is_413_naming_the_limit_with_content_length(client, org: OrgFixture) -> None:
    pid = js.make_pipeline(org.org_id)
    body = _job_body(pid, '{"blob": "' + "x" * (10 * MIB) + '"}')
    r = _submit(client, org, body)
    problem = _assert_problem(r, 413, "LEVQOR_MAX_BODY_BYTES", MIB)
    assert problem["title"] == "Request body too large" and r.headers["x-request-id"]
    assert client.get("/v1/jobs", headers=org.headers()).json()["items"] == []  # nothing stored


def test_a_10_mb_chunked_body_without_content_length_is_413(client, org: OrgFixture) -> None:
    pid = js.make_pipeline(org.org_id)
    chunks_sent: list[int] = []

    def chunks() -> Iterator[bytes]:
        yield _job_body(pid, '{"blob": "').encode()[:-2]
        for _ in range(160):  # 160 x 64 KiB = 10 MiB
            chunks_sent.append(1)
            yield b"x" * 65536
        yield b'"}}'

    r = client.post("/v1/jobs", content=chunks(), headers={**org.headers(), **JSON})
    _assert_problem(r, 413, "LEVQOR_MAX_BODY_BYTES", MIB)
    assert client.get("/v1/jobs", headers=org.headers()).json()["items"] == []


def test_the_body_limit_is_a_setting_and_counts_form_posts(client, org: OrgFixture, set_settings) -> None:
    set_settings(max_body_bytes=2000)
    pid = js.make_pipeline(org.org_id)
    r = _submit(client, org, _job_body(pid, '{"note": "' + "y" * 3000 + '"}'))
    _assert_problem(r, 413, "LEVQOR_MAX_BODY_BYTES", 2000)
    r = client.post("/login", data={"email": "a@b.io", "password": "p" * 3000, "csrf_token": "t"},
                    follow_redirects=False)
    _assert_problem(r, 413, "LEVQOR_MAX_BODY_BYTES", 2000)


def test_a_route_with_its_own_limit_names_it(client, hook_path: str) -> None:
    r = client.post(hook_path, content=b'{"a": "' + b"z" * 300_000 + b'"}', headers=JSON)
    _assert_problem(r, 413, "MAX_HOOK_BODY", 256_000)


@pytest.mark.parametrize("depth", [33, 300, 10_000])
def test_deep_json_on_jobs_is_422_naming_the_limit(client, org: OrgFixture, depth: int) -> None:
    pid = js.make_pipeline(org.org_id)
    r = _submit(client, org, _job_body(pid, '{"a": ' + "[" * depth + "]" * depth + "}"))
    problem = _assert_problem(r, 422, "LEVQOR_MAX_JSON_DEPTH", 32)
    assert problem["title"] == "JSON nested too deeply"


@pytest.mark.parametrize("depth", [300, 10_000])
def test_deep_json_on_the_unauthenticated_hook_is_422(client, hook_path: str, depth: int) -> None:
    r = client.post(hook_path, content='{"a": ' + "[" * depth + "]" * depth + "}", headers=JSON)
    _assert_problem(r, 422, "LEVQOR_MAX_JSON_DEPTH", 32)
    # whatever the content type, as the hook reads any body as JSON; a truncated body too
    r = client.post(hook_path, content="[" * depth, headers={"content-type": "text/plain"})
    _assert_problem(r, 422, "LEVQOR_MAX_JSON_DEPTH", 32)
    assert client.post(hook_path, json={"a": [[1]]}).status_code == 202


def test_nesting_at_the_limit_passes_and_one_more_level_does_not(client, org: OrgFixture) -> None:
    pid = js.make_pipeline(org.org_id)
    js.grant(org.org_id, 5)
    # the body object, "input", then 30 lists: 32 levels
    r = _submit(client, org, _job_body(pid, '{"a": ' + "[" * 30 + "]" * 30 + "}"))
    assert r.status_code == 201, r.text
    r = _submit(client, org, _job_body(pid, '{"a": ' + "[" * 31 + "]" * 31 + "}"))
    _assert_problem(r, 422, "LEVQOR_MAX_JSON_DEPTH", 32)


def test_json_depth_ignores_brackets_in_strings_and_needs_no_recursion() -> None:
    assert json_depth('{"a": "[[[[{{{{", "b": [1, {"c": "]]]"}]}', 32) == 3
    assert json_depth('["\\"[[[", []]', 32) == 2
    assert json_depth("[" * 1_000_000, 32) == 33
    assert json_depth("[]" * 100_000, 32) == 1


@pytest.mark.parametrize("body", [
    b'{"pipeline_id": 1, "input": {"a": "\\ud800"}}',           # an escaped lone surrogate
    b'{"pipeline_id": 1, "input": {"a": "\xed\xa0\x80"}}',      # the raw bytes of one (not UTF-8)
    b'{"pipeline_id": 1, "input": {"\\udfff": 1}}',             # in a key
    b'{"pipeline_id": 1, "input": {"a": "\xff"}}',              # any invalid UTF-8
])
def test_broken_unicode_is_422(client, org: OrgFixture, body: bytes) -> None:
    problem = _assert_problem(_submit(client, org, body), 422)
    assert problem["title"] == "Invalid text"
    assert "surrogate" in problem["detail"] or "UTF-8" in problem["detail"]


def test_broken_unicode_on_the_hook_is_422(client, hook_path: str) -> None:
    _assert_problem(client.post(hook_path, content=b'{"a": "\\ud800"}', headers=JSON), 422)
    _assert_problem(client.post(hook_path, content=b'{"a": "\xed\xa0\x80"}'), 422)


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999", "-1e400"])
def test_nan_and_infinity_are_422(client, org: OrgFixture, number: str) -> None:
    pid = js.make_pipeline(org.org_id)
    problem = _assert_problem(_submit(client, org, _job_body(pid, f'{{"x": {number}}}')), 422)
    assert problem["title"] == "Invalid JSON number"


def test_long_string_and_long_list_are_422_naming_the_limit(client, org: OrgFixture, set_settings) -> None:
    pid = js.make_pipeline(org.org_id)
    r = _submit(client, org, _job_body(pid, '{"s": "' + "a" * 100_001 + '"}'))
    problem = _assert_problem(r, 422, "LEVQOR_MAX_STRING_LENGTH", 100_000)
    assert problem["field"] == "input.s" and problem["title"] == "String too long"
    r = _submit(client, org, _job_body(pid, '{"l": [' + ",".join(["0"] * 10_001) + "]}"))
    problem = _assert_problem(r, 422, "LEVQOR_MAX_LIST_LENGTH", 10_000)
    assert problem["field"] == "input.l" and problem["title"] == "List too long"
    set_settings(max_string_length=20, max_list_length=3)
    _assert_problem(_submit(client, org, _job_body(pid, '{"s": "' + "a" * 21 + '"}')), 422,
                    "LEVQOR_MAX_STRING_LENGTH", 20)
    problem = _assert_problem(_submit(client, org, _job_body(pid, '{"' + "k" * 21 + '": 1}')), 422,
                              "LEVQOR_MAX_STRING_LENGTH", 20)
    assert "a key of 21 characters" in problem["detail"] and problem["field"] == "input"
    _assert_problem(_submit(client, org, _job_body(pid, '{"a": 1, "b": 2, "c": 3, "d": 4}')), 422,
                    "LEVQOR_MAX_LIST_LENGTH", 3)


def test_a_normal_request_still_passes_and_is_stored_unchanged(client, org: OrgFixture) -> None:
    pid = js.make_pipeline(org.org_id)
    js.grant(org.org_id, 5)
    data = {"text": "héllo 😀 " + "x" * 5000, "list": list(range(1000)), "nested": {"a": [{"b": [1.5, None]}]}}
    r = client.post("/v1/jobs", json={"pipeline_id": pid, "input": data}, headers=org.headers())
    assert r.status_code == 201, r.text
    assert js.job(r.json()["id"]).input == data
    # malformed JSON still gets the route's own validation error
    r = _submit(client, org, b'{"pipeline_id": ')
    assert r.status_code == 422 and r.json()["type"].endswith("validation-error")
