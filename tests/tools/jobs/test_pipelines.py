"""Pipelines: validation on save (clear errors), CRUD, webhook, schedule and event triggers, templates."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.factories import jobs as js
from tests.factories.orgs import OrgFixture, make_org
from tests.support import wait_for

NOOP = [{"kind": "transform", "expression": "input"}]


@pytest.mark.parametrize(("steps", "field", "needle"), [
    ([{"kind": "transform", "expression": "foo[?"}], "steps.0.transform", "JMESPath"),
    ([{"kind": "http", "url": "ftp://x.example/"}], "steps.0.http.url", "scheme"),
    ([{"kind": "http", "url": "http://169.254.169.254/"}], "steps.0.http.url", "link-local"),
    ([{"kind": "http", "url": "http://[::ffff:127.0.0.1]/"}], "steps.0.http.url", "IPv4-mapped"),
    ([{"kind": "delay", "seconds": 99999}], "steps.0.delay.seconds", "3600"),
    ([{"kind": "shell", "cmd": "rm -rf /"}], "steps.0", "kind"),
    ([{"kind": "notify", "channel": "email"}], "steps.0.notify", "to"),
    ([{"kind": "transform", "template": {"a": "{{ input.[ }}"}}], "steps.0.transform", "JMESPath"),
    ([], "steps", "at least 1"),
])
def test_invalid_pipelines_are_refused_naming_the_field(client, org: OrgFixture, steps: list[dict[str, object]],
                                                        field: str, needle: str) -> None:
    r = client.post("/v1/pipelines", json={"name": "bad", "steps": steps}, headers=org.headers())
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["field"].startswith(field), body
    assert needle.lower() in body["detail"].lower(), body


@pytest.mark.parametrize(("trigger", "needle"), [
    ({"type": "schedule"}, "cron"),
    ({"type": "schedule", "cron": "61 * * * *"}, "cron"),
    ({"type": "event", "event": "no_such_event"}, "unknown event"),
    ({"type": "manual", "cron": "* * * * *"}, "only to a schedule"),
])
def test_invalid_triggers_are_refused(client, org: OrgFixture, trigger: dict[str, object], needle: str) -> None:
    r = client.post("/v1/pipelines", json={"name": "bad", "trigger": trigger, "steps": NOOP}, headers=org.headers())
    assert r.status_code == 422 and needle in r.json()["detail"], r.text
    assert r.json()["field"].startswith("trigger")


def test_crud_and_versioning(client, org: OrgFixture) -> None:
    h = org.headers()
    r = client.post("/v1/pipelines", json={"name": "etl", "steps": NOOP}, headers=h)
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    assert client.post("/v1/pipelines", json={"name": "etl", "steps": NOOP}, headers=h).status_code == 409
    r = client.patch(f"/v1/pipelines/{pid}", json={"steps": [{"kind": "delay", "seconds": 1}]}, headers=h)
    assert r.status_code == 200 and r.json()["version"] == 2 and r.json()["steps"][0]["kind"] == "delay"
    assert client.patch(f"/v1/pipelines/{pid}", json={"steps": [{"kind": "delay"}]}, headers=h).status_code == 422
    assert [p["id"] for p in client.get("/v1/pipelines", headers=h).json()["items"]] == [pid]
    viewer = org.headers("viewer")
    assert client.get(f"/v1/pipelines/{pid}", headers=viewer).status_code == 200
    assert client.delete(f"/v1/pipelines/{pid}", headers=viewer).status_code == 403
    assert client.delete(f"/v1/pipelines/{pid}", headers=h).status_code == 200
    assert client.get(f"/v1/pipelines/{pid}", headers=h).status_code == 404


def test_other_orgs_cannot_see_pipelines_or_jobs(client, org: OrgFixture) -> None:

    other = make_org()
    pid = js.pipeline(org.org_id, NOOP)
    js.grant(org.org_id, 5)
    jid = js.submit(org.org_id, pid)
    assert client.get(f"/v1/pipelines/{pid}", headers=other.headers()).status_code == 404
    assert client.get(f"/v1/jobs/{jid}", headers=other.headers()).status_code == 404
    assert client.post(f"/v1/jobs/{jid}/cancel", headers=other.headers()).status_code == 404
    assert client.get("/v1/jobs", headers=other.headers()).json()["items"] == []


def test_webhook_url_is_secret_shown_once_and_triggers_a_job(client, org: OrgFixture) -> None:
    h = org.headers()
    r = client.post("/v1/pipelines", json={"name": "hook", "trigger": {"type": "webhook"}, "steps": NOOP}, headers=h)
    url = r.json()["webhook_url"]
    assert url and "/v1/hooks/whk_" in url
    pid = r.json()["id"]
    assert client.get(f"/v1/pipelines/{pid}", headers=h).json()["webhook_url"] is None
    path = url[url.index("/v1/hooks/"):]
    assert client.post(path, json={"a": 1}).status_code == 402  # no credits yet
    js.grant(org.org_id, 10)
    r = client.post(path, json={"a": 1}, headers={"Idempotency-Key": "delivery-1"})
    assert r.status_code == 202, r.text
    again = client.post(path, json={"a": 1}, headers={"Idempotency-Key": "delivery-1"})
    assert again.json()["job_id"] == r.json()["job_id"] and again.json()["created"] is False
    job = js.job(r.json()["job_id"])
    assert job.input == {"a": 1} and job.trigger == "webhook" and job.org_id == org.org_id
    assert client.post(path, content=b"[1,2]").status_code == 422
    assert client.post("/v1/hooks/whk_wrong", json={}).status_code == 404
    rotated = client.post(f"/v1/pipelines/{pid}/rotate-webhook", headers=h).json()["webhook_url"]
    assert rotated != url
    assert client.post(path, json={}).status_code == 404


def test_schedule_tick_submits_due_pipelines_once(org: OrgFixture) -> None:
    from sqlalchemy import select, update

    from memory.db import session_scope
    from memory.jobs.models import Job, Pipeline
    from tools.jobs.triggers import schedule_tick

    js.grant(org.org_id, 10)
    pid = js.pipeline(org.org_id, NOOP, trigger={"type": "schedule", "cron": "*/5 * * * *"})
    due = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    with session_scope() as s:
        s.execute(update(Pipeline).where(Pipeline.id == pid).values(next_run_at=due))
    schedule_tick()
    schedule_tick()
    with session_scope() as s:
        jobs = s.scalars(select(Job).where(Job.pipeline_id == pid)).all()
        nxt = s.get(Pipeline, pid).next_run_at  # type: ignore[union-attr]
    assert len(jobs) == 1 and jobs[0].trigger == "schedule"
    assert nxt is not None and nxt > dt.datetime.now(dt.UTC)


def test_event_trigger_runs_pipeline_on_platform_event(org: OrgFixture) -> None:
    from sqlalchemy import select

    from memory.db import session_scope
    from memory.jobs.models import Job
    from tools.events.service import emit
    from workers.dispatcher import dispatch_pending

    js.grant(org.org_id, 10)
    pid = js.pipeline(org.org_id, NOOP, trigger={"type": "event", "event": "user_signup"})
    with session_scope() as s:
        emit(s, "user_signup", {"email": "new@acme-test.io"}, org_id=org.org_id)

    def jobs() -> list[Job]:
        dispatch_pending()
        with session_scope() as s:
            return list(s.scalars(select(Job).where(Job.pipeline_id == pid)))

    found = wait_for(jobs, what="event-triggered job")
    assert found[0].trigger == "event" and found[0].input["payload"]["email"] == "new@acme-test.io"


def test_template_language_is_data_only() -> None:
    from tools.jobs.pipelines import render

    data = {"input": {"n": 3, "items": [{"p": 2}, {"p": 5}], "name": "x"}}
    assert render({"total": "{{ sum(input.items[*].p) }}", "label": "n={{ input.n }} {{ input.name }}"}, data) == {
        "total": 7, "label": "n=3 x"}
    # Looks like code, stays text: nothing is evaluated beyond JMESPath.
    assert render("{{ input.__class__ }}", data) is None
