"""Jobs and the queue: submit, run, retry with backoff, dead-letter, cancel, fencing, leases, pause, credits."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from tests.factories import jobs as js
from tests.factories.jobs import job_steps
from tests.factories.orgs import OrgFixture, make_org
from tests.support import wait_for
from tests.support.processes import running_worker

NOOP = [{"kind": "transform", "name": "echo", "expression": "input"}]


def _state(job_id: int, *states: str) -> bool:
    return js.job(job_id).state in states


def test_submit_run_and_read_results_through_the_api(client, org: OrgFixture) -> None:
    h = org.headers()
    pid = js.pipeline(org.org_id, [
        {"kind": "transform", "name": "sum", "template": {"total": "{{ sum(input.xs) }}", "who": "{{ input.who }}"}},
        {"kind": "delay", "seconds": 0.05},
        {"kind": "notify", "channel": "email", "to": "ops@acme-test.io", "subject": "total {{ prev.total }}"},
    ])
    assert client.post("/v1/jobs", json={"pipeline_id": pid}, headers=h).status_code == 402
    js.grant(org.org_id, 3)
    r = client.post("/v1/jobs", json={"pipeline_id": pid, "input": {"xs": [1, 2, 3], "who": "ada"}},
                    headers={**h, "Idempotency-Key": "k1"})
    assert r.status_code == 201, r.text
    jid = r.json()["id"]
    again = client.post("/v1/jobs", json={"pipeline_id": pid, "input": {"xs": [9]}},
                        headers={**h, "Idempotency-Key": "k1"})
    assert again.status_code == 200 and again.json()["id"] == jid and again.json()["created"] is False
    assert js.balance(org.org_id) == 2  # pro plan: 1 credit a run, charged once
    with running_worker():
        wait_for(lambda: _state(jid, "succeeded"), what="job succeeded")
    body = client.get(f"/v1/jobs/{jid}", headers=h).json()
    assert body["state"] == "succeeded" and body["attempts"] == 1 and body["finished_at"]
    assert [s["status"] for s in body["steps"]] == ["succeeded"] * 3
    assert body["steps"][0]["output"] == {"total": 6, "who": "ada"}
    assert body["steps"][2]["output"]["queued"] is True
    assert len(js.events_for("job_complete", jid)) == 1
    assert js.events_for("notification_requested", jid)[0]["subject"] == "total 6"


def test_transient_failures_retry_with_backoff_then_go_dead(client, org: OrgFixture) -> None:
    js.grant(org.org_id, 5)
    pid = js.pipeline(org.org_id, [{"kind": "transform", "check": "input.ok", "message": "upstream 503",
                                    "retryable": True}], max_attempts=3, retry_backoff_s=0.05)
    jid = js.submit(org.org_id, pid, {"ok": False})
    with running_worker():
        wait_for(lambda: _state(jid, "dead"), what="job dead")
    j = js.job(jid)
    assert j.attempts == 3 and j.retryable is True and "upstream 503" in (j.last_error or "")
    assert len(js.events_for("job_retrying", jid)) == 2 and len(js.events_for("job_dead", jid)) == 1
    dead = client.get("/v1/jobs/dead", headers=org.headers()).json()["items"]
    assert [d["id"] for d in dead] == [jid]
    listed = client.get("/v1/jobs", params={"state": "dead"}, headers=org.headers()).json()["items"][0]
    for key in ("id", "pipeline_id", "state", "attempts", "max_attempts", "last_error", "retryable", "created_at",
                "finished_at"):
        assert key in listed
    assert js.ledger_rows(jid) == [("job_run", -1)]


def test_permanent_failure_fails_at_once_and_retry_requeues(client, org: OrgFixture) -> None:
    js.grant(org.org_id, 5)
    pid = js.pipeline(org.org_id, [{"kind": "transform", "check": "input.ok", "message": "bad order"}])
    jid = js.submit(org.org_id, pid, {"ok": False})
    with running_worker():
        wait_for(lambda: _state(jid, "failed"), what="job failed")
        j = js.job(jid)
        assert j.attempts == 1 and j.retryable is False and len(js.events_for("job_failed", jid)) == 1
        out = js.invoke(org.org_id, "jobs.retry_failed", {"pipeline_id": pid})
        assert out.job_ids == [jid]
        wait_for(lambda: _state(jid, "failed") and js.job(jid).fence == 2, what="failed again")
    assert js.balance(org.org_id) == 4  # retries are not charged again
    r = client.post(f"/v1/jobs/{jid}/retry", headers=org.headers())
    assert r.status_code == 200 and r.json()["state"] == "queued" and r.json()["attempts"] == 0
    assert client.post(f"/v1/jobs/{jid}/retry", headers=org.headers()).status_code == 409


def test_http_step_errors_are_classified(monkeypatch: pytest.MonkeyPatch, org: OrgFixture) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from levqor.settings import get_settings

    class H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            code = int(self.path.strip("/"))
            self.send_response(code)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *a: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{srv.server_address[1]}"
    js.grant(org.org_id, 10)
    monkeypatch.setattr(get_settings(), "allow_loopback_urls", True)
    jobs: dict[str, int] = {}
    for name, url in {"ok": f"{base}/200", "e503": f"{base}/503", "e429": f"{base}/429", "e404": f"{base}/404",
                      "refused": "http://127.0.0.1:1/"}.items():
        pid = js.pipeline(org.org_id, [{"kind": "http", "url": url, "timeout_s": 2}], max_attempts=1)
        jobs[name] = js.submit(org.org_id, pid)
    blocked_pid = js.pipeline(org.org_id, [{"kind": "http", "url": f"{base}/200"}], max_attempts=1)
    try:
        with running_worker(concurrency=4):
            wait_for(lambda: all(_state(j, "succeeded", "failed", "dead") for j in jobs.values()), what="all done")
            monkeypatch.setattr(get_settings(), "allow_loopback_urls", False)
            blocked = js.submit(org.org_id, blocked_pid)
            wait_for(lambda: _state(blocked, "failed", "dead", "succeeded"), what="blocked done")
    finally:
        srv.shutdown()
        srv.server_close()
    got = {k: (js.job(v).state, js.job(v).retryable) for k, v in jobs.items()}
    assert got == {"ok": ("succeeded", False), "e503": ("dead", True), "e429": ("dead", True),
                   "e404": ("failed", False), "refused": ("dead", True)}
    b = js.job(blocked)
    assert b.state == "failed" and b.retryable is False and "SSRF" in (b.last_error or "")


def test_completion_is_fenced_a_stale_run_cannot_record(org: OrgFixture) -> None:
    from sqlalchemy import update

    from memory.db import session_scope
    from memory.jobs.models import Job
    from memory.jobs.repository import JobRepository
    from tools.jobs.outcomes import record_success, requeue_expired

    js.grant(org.org_id, 2)
    pid = js.pipeline(org.org_id, NOOP)
    jid = js.submit(org.org_id, pid, {"x": 1})
    with session_scope() as s:
        s.execute(update(Job).where(Job.state == "queued", Job.id != jid).values(run_at=dt.datetime(2999, 1, 1,
                                                                                                   tzinfo=dt.UTC)))
    try:
        with session_scope() as s:
            first = JobRepository(s).claim("w-old", 1, 30)[0]  # a transient object, in no session
        assert first.id == jid and first.fence == 1
        with session_scope() as s:  # the old worker stops heartbeating: its lease runs out
            s.execute(update(Job).where(Job.id == jid).values(lease_until=dt.datetime.now(dt.UTC) - dt.timedelta(1)))
        with session_scope() as s:
            assert requeue_expired(s, org.org_id) == ([jid], [])
        with session_scope() as s:
            second = JobRepository(s).claim("w-new", 1, 30)[0]
        assert second.fence == 2 and second.attempts == 2
        with session_scope() as s:
            assert record_success(s, first, {"by": "old"}, []) is False
        with session_scope() as s:
            assert record_success(s, second, {"by": "new"}, []) is True
        with session_scope() as s:
            assert record_success(s, second, {"by": "again"}, []) is False
        j = js.job(jid)
        assert j.state == "succeeded" and j.output == {"by": "new"}
        assert len(js.events_for("job_complete", jid)) == 1 and js.ledger_rows(jid) == [("job_run", -1)]
    finally:
        with session_scope() as s:
            s.execute(update(Job).where(Job.run_at > dt.datetime(2998, 1, 1, tzinfo=dt.UTC))
                      .values(run_at=dt.datetime.now(dt.UTC)))


def test_lease_expiry_after_max_attempts_is_dead(org: OrgFixture) -> None:
    from sqlalchemy import update

    from memory.db import session_scope
    from memory.jobs.models import Job
    from tools.jobs.outcomes import requeue_expired

    js.grant(org.org_id, 2)
    pid = js.pipeline(org.org_id, NOOP, max_attempts=1)
    jid = js.submit(org.org_id, pid)
    with session_scope() as s:
        s.execute(update(Job).where(Job.id == jid).values(
            state="running", attempts=1, fence=1, lease_owner="gone",
            lease_until=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)))
    out = js.invoke(org.org_id, "jobs.requeue_expired", {})
    assert out.dead == [jid] and out.requeued == []
    assert js.job(jid).state == "dead" and len(js.events_for("job_dead", jid)) == 1
    with session_scope() as s:
        assert requeue_expired(s, org.org_id) == ([], [])


def test_cancel_refunds_a_job_that_never_ran(client, org: OrgFixture) -> None:
    js.grant(org.org_id, 3)
    h = org.headers()
    pid = js.pipeline(org.org_id, NOOP)
    client.post("/v1/queue/pause", headers=h)
    try:
        jid = client.post("/v1/jobs", json={"pipeline_id": pid}, headers=h).json()["id"]
        assert js.balance(org.org_id) == 2
        r = client.post(f"/v1/jobs/{jid}/cancel", headers=h)
        assert r.status_code == 200 and r.json()["state"] == "cancelled"
        assert js.balance(org.org_id) == 3
        assert sorted(js.ledger_rows(jid)) == [("job_run", -1), ("refund", 1)]
        assert client.post(f"/v1/jobs/{jid}/cancel", headers=h).status_code == 409
    finally:
        client.post("/v1/queue/resume", headers=h)


def test_cancel_running_job_discards_its_result(client, org: OrgFixture) -> None:
    js.grant(org.org_id, 2)
    pid = js.pipeline(org.org_id, [{"kind": "delay", "seconds": 30}])
    jid = js.submit(org.org_id, pid)
    with running_worker(lease_s=0.6):
        wait_for(lambda: _state(jid, "running"), what="running")
        assert client.post(f"/v1/jobs/{jid}/cancel", headers=org.headers()).json()["state"] == "cancelled"
        # The heartbeat notices the lost lease and stops the run within a lease period.
        wait_for(lambda: any(s.status == "interrupted" for s in job_steps(jid)), timeout=10, what="interrupted")
    assert js.job(jid).state == "cancelled" and js.events_for("job_complete", jid) == []



def test_pause_queue_and_pipeline_hold_jobs(client, org: OrgFixture) -> None:
    js.grant(org.org_id, 5)
    h = org.headers()
    p1, p2 = js.pipeline(org.org_id, NOOP), js.pipeline(org.org_id, NOOP)
    assert client.post(f"/v1/pipelines/{p1}/pause", headers=h).json() == {"scope": f"pipeline:{p1}", "paused": True}
    with running_worker():
        j1, j2 = js.submit(org.org_id, p1), js.submit(org.org_id, p2)
        wait_for(lambda: _state(j2, "succeeded"), what="unpaused pipeline runs")
        assert js.job(j1).state == "queued"
        assert client.post("/v1/queue/pause", headers=h).json()["paused"] is True
        assert client.post(f"/v1/pipelines/{p1}/resume", headers=h).status_code == 200
        j3 = js.submit(org.org_id, p2)
        q = client.get("/v1/queue", headers=h).json()
        assert q["paused"] is True and q["depth"] >= 2
        assert js.job(j1).state == "queued" and js.job(j3).state == "queued"
        assert client.post("/v1/queue/resume", headers=h).json()["paused"] is False
        wait_for(lambda: _state(j1, "succeeded") and _state(j3, "succeeded"), what="resumed")


def test_dead_letter_list_retry_and_purge(client, org: OrgFixture) -> None:
    js.grant(org.org_id, 5)
    h = org.headers()
    pid = js.pipeline(org.org_id, NOOP)
    client.post(f"/v1/pipelines/{pid}/pause", headers=h)
    a, b = js.submit(org.org_id, pid), js.submit(org.org_id, pid)
    for jid in (a, b):
        r = client.post(f"/v1/jobs/{jid}/dead-letter", headers=h)
        assert r.status_code == 200 and r.json()["state"] == "dead"
    assert {d["id"] for d in client.get("/v1/jobs/dead", headers=h).json()["items"]} == {a, b}
    assert client.post(f"/v1/jobs/dead/{a}/retry", headers=h).json()["state"] == "queued"
    assert client.post("/v1/jobs/dead/purge", json={}, headers=h).json() == {"purged": 1}
    assert client.get(f"/v1/jobs/{b}", headers=h).status_code == 404
    assert client.post("/v1/jobs/dead/purge", json={}, headers=org.headers("viewer")).status_code == 403


def test_list_filters_and_cursor_pagination(client, org: OrgFixture) -> None:
    js.grant(org.org_id, 20)
    h = org.headers()
    p1, p2 = js.pipeline(org.org_id, NOOP), js.pipeline(org.org_id, NOOP)
    client.post("/v1/queue/pause", headers=h)
    try:
        ids = [js.submit(org.org_id, p1) for _ in range(5)] + [js.submit(org.org_id, p2) for _ in range(2)]
        seen: list[int] = []
        cursor = None
        while True:
            params = {"limit": 2, "pipeline_id": p1, **({"cursor": cursor} if cursor else {})}
            page = client.get("/v1/jobs", params=params, headers=h).json()
            seen += [j["id"] for j in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert seen == sorted(ids[:5], reverse=True)
        assert client.get("/v1/jobs", params={"state": "bogus"}, headers=h).status_code == 422
        assert len(client.get("/v1/jobs", params={"state": "queued"}, headers=h).json()["items"]) == 7
    finally:
        client.post("/v1/queue/resume", headers=h)


def test_workers_register_drain_and_report_usage(client, org: OrgFixture, set_settings) -> None:
    staff = make_org()
    set_settings(staff_orgs=[staff.slug])
    h = staff.headers()
    with running_worker(lease_s=0.6) as w:
        def mine() -> dict | None:  # type: ignore[type-arg]
            items = client.get("/v1/workers", headers=h).json()["items"]
            return next((i for i in items if i["id"] == w.id and i["rss_bytes"]), None)

        row = wait_for(mine, what="worker registered")
        assert row["health"] == "healthy" and row["pid"] > 0 and row["rss_bytes"] > 10_000_000
        assert client.post(f"/v1/workers/{w.id}/drain", headers=org.headers("viewer")).status_code == 403
        # Workers run every organisation's jobs: a tenant's admin may not drain them.
        r = client.post(f"/v1/workers/{w.id}/drain", headers=org.headers())
        assert r.status_code == 403 and "only Levqor staff" in r.json()["detail"]
        r = client.post(f"/v1/workers/{w.id}/drain", headers=h)
        assert r.status_code == 200 and r.json()["command"] == "drain"
        wait_for(lambda: w.draining, what="worker draining")
        js.grant(org.org_id, 2)
        jid = js.submit(org.org_id, js.pipeline(org.org_id, NOOP))
        wait_for(lambda: (mine() or {}).get("state") == "draining", what="state draining")
        assert js.job(jid).state == "queued"
    with running_worker():
        wait_for(lambda: _state(jid, "succeeded"), what="another worker runs it")
    assert all(i["id"] != w.id for i in client.get("/v1/workers", headers=h).json()["items"])


def test_metrics_expose_queue_and_run_figures(client, org: OrgFixture) -> None:
    from memory.db import session_scope
    from tools.jobs.metrics import refresh

    js.grant(org.org_id, 2)
    jid = js.submit(org.org_id, js.pipeline(org.org_id, NOOP))
    with running_worker():
        wait_for(lambda: _state(jid, "succeeded"), what="done")
    with session_scope() as s:
        refresh(s)
    text = client.get("/metrics").text
    for name in ("levqor_jobs{state=\"succeeded\"}", "levqor_job_queue_depth", "levqor_job_queue_oldest_age_seconds",
                 "levqor_job_enqueue_to_start_seconds_bucket", "levqor_job_run_duration_seconds_bucket",
                 "levqor_credits_spent_total", "levqor_workers{health=", "levqor_jobs_submitted_total"):
        assert name in text, name


def test_jobs_tools_are_registered_with_contract_names_and_risks() -> None:
    from tools.registry import registry

    want = {"jobs.list": "read", "jobs.get": "read", "jobs.retry": "write", "jobs.retry_failed": "write",
            "jobs.cancel": "write", "workers.list": "read", "workers.restart": "destructive",
            "workers.drain": "write", "queues.pause": "write", "queues.resume": "write",
            "jobs.requeue_expired": "write", "jobs.dead_letter": "destructive"}
    assert {n: registry.get(n).risk for n in want} == want
    assert set(registry.get("jobs.list").input_model.model_fields) >= {"state", "pipeline_id", "cursor", "limit"}
    assert set(registry.get("jobs.retry_failed").input_model.model_fields) == {"pipeline_id", "limit"}


def test_only_operators_grant_credits_test_keys_never_and_balance_is_readable(client, org: OrgFixture) -> None:
    r = client.post("/v1/credits/grant", json={"amount": 100}, headers=org.headers())
    assert r.status_code == 403 and r.json()["field"] == "amount"
    key = client.post("/v1/keys", json={"name": "sandbox", "role": "admin", "mode": "test"},
                      headers=org.headers()).json()["key"]
    r = client.post("/v1/credits/grant", json={"amount": 100, "note": "sandbox"},
                    headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 403 and r.json()["field"] == "amount" and "test-data/reset" in r.json()["detail"]
    assert js.balance(org.org_id) == 0
    assert js.grant(org.org_id, 100) == 100  # the operator (CLI, seed, billing): a system principal
    # Nor does a test key spend the live balance: a live pipeline does not exist for it (test mode).
    pid = js.pipeline(org.org_id, NOOP)
    r = client.post("/v1/jobs", json={"pipeline_id": pid}, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 404 and r.json()["field"] == "pipeline_id"
    assert js.balance(org.org_id) == 100
    body = client.get("/v1/credits", headers=org.headers("viewer")).json()
    assert body["balance"] == 100 and body["cost_per_run"] == 1 and body["ledger"][0]["reason"] == "grant"


def test_cli_grants_credits(org: OrgFixture) -> None:
    from typer.testing import CliRunner

    from api.cli import app

    res = CliRunner().invoke(app, ["credits-grant", "25", "--org", org.slug])
    assert res.exit_code == 0, res.output
    assert js.balance(org.org_id) == 25
