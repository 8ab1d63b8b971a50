"""Tenancy: a second organisation's admin, viewer and partner keys are tried against every route of the
OpenAPI document with the first organisation's ids, names and series. Every answer is a 4xx or carries
none of the first organisation's data, no answer is a 5xx, and afterwards the first organisation's data
and the shared workers are exactly as they were.

The only route left out is ``POST /v1/hooks/{secret}``: whoever holds a pipeline's webhook secret may
trigger it, by design (the secret is the credential)."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from memory.billing.models import BillingAccount, BillingFlag, CreditNote, RevenueEntry
from memory.certification.models import Certificate, ExamAttempt
from memory.db import session_scope, utcnow
from memory.dev_portal.models import PortalToken
from memory.identity.models import ApiKey, User
from memory.jobs.models import Job, Pipeline, WebhookEndpoint, Worker
from memory.jobs.repository import WorkerRepository
from memory.ops.models import Incident
from memory.partner.models import PluginInstall
from memory.sla.models import MaintenanceWindow
from memory.sso.models import ScimGroup, SsoConfig
from tests.factories import jobs as js
from tests.factories.orgs import OrgFixture, make_org
from tests.factories.partners import emit_event, install, make_world, manifest, publish
from tests.fakes.partner_endpoint import Receiver
from tests.support.processes import running_worker
from tools.auto_intel import signals
from tools.dev_portal.tiers import limiter as tier_limiter

SKIPPED = {("POST", "/v1/hooks/{secret}")}
NOOP = [{"kind": "transform", "name": "echo", "expression": "input"}]


@contextmanager
def worker_row(current_jobs: list[int]) -> Iterator[str]:
    """A registered, heartbeating worker (a row on another host: commands reach it through the row only,
    no process is signalled) running ``current_jobs``; removed afterwards."""
    wid = f"elsewhere:{uuid.uuid4().hex[:8]}"
    with session_scope() as s:
        s.add(Worker(id=wid, host="elsewhere.invalid", pid=1, concurrency=2, state="running",
                     current_jobs=current_jobs, jobs_done=0, heartbeat_at=utcnow()))
    try:
        yield wid
    finally:
        with session_scope() as s:
            s.execute(Worker.__table__.delete().where(Worker.id == wid))


@dataclass
class Victim:
    org: OrgFixture
    ids: dict[str, Any]
    markers: list[str]
    series: str
    before: dict[str, Any] = field(default_factory=dict)


def _victim(client: Any, set_settings: Any, rx: Receiver) -> Victim:
    w = make_world(client, set_settings)
    a = w.customer
    tag = uuid.uuid4().hex[:8]
    slug = f"{w.partner.slug}.tenancy"
    publish(client, w, manifest(slug, rx.url("/t")))
    inst = install(client, a, slug)
    emit_event("job_complete", {"job_id": 1}, a.org_id)
    js.grant(a.org_id, 10)
    pipe_name = f"victim-pipeline-{tag}"
    pid = js.pipeline(a.org_id, NOOP, name=pipe_name)
    # A finished job: nothing (a worker, the janitor) changes it on its own while the test runs.
    jid = js.make_job(a.org_id, pid, "succeeded", input={"secret_note": f"victim-input-{tag}"})
    series = f"jobs.failed{{pipeline={pid}}}"
    with session_scope() as s:
        signals.store(s, utcnow() - dt.timedelta(seconds=5), [(series, 7.0, None)])
        inc = Incident(org_id=a.org_id, cause=f"pipeline:{pid}:{tag}", fingerprint=f"rule:tenancy:{tag}", kind="rule",
                       diagnosis="failure_rate", title=f"victim-incident-{tag}", severity="medium", state="open",
                       subject={"pipeline_id": pid})
        s.add(inc)
        s.flush()
        iid = inc.id
        # Billing: a Stripe customer, a paid invoice in the revenue ledger and a flag, all the victim's.
        s.add(BillingAccount(org_id=a.org_id, stripe_customer_id=f"cus_victim{tag}", plan="pro", status="active",
                             stripe_subscription_id=f"sub_victim{tag}"))
        s.add(RevenueEntry(org_id=a.org_id, kind="subscription", amount_minor=2900, stripe_object_id=f"in_victim{tag}",
                           event_id=f"evt_victim{tag}", plan="pro", interval="month", seats=1, occurred_at=utcnow()))
        s.add(BillingFlag(org_id=a.org_id, event_id=f"evt_victim{tag}", stripe_object_id=f"in_victim{tag}",
                          kind="amount_mismatch", detail=f"victim-flag-{tag}"))
        # SLA: a credit note and a maintenance window that only the victim's organisation may see.
        s.add(CreditNote(org_id=a.org_id, period="2020-01", amount_minor=1234, reason=f"victim-credit-{tag}"))
        window = MaintenanceWindow(org_id=a.org_id, starts_at=utcnow() + dt.timedelta(days=5),
                                   ends_at=utcnow() + dt.timedelta(days=5, hours=1), title=f"victim-maintenance-{tag}")
        s.add(window)
        s.flush()
        window_id = window.id
    h = a.headers()
    assert client.get("/v1/me", headers=a.headers("viewer")).status_code == 200
    keys = client.get("/v1/keys", headers=h).json()["items"]
    users = client.get("/v1/users", headers=h).json()["items"]
    run = client.post("/v1/agents/janitor/runs", headers=h)
    deliveries = client.get("/v1/webhook-deliveries", headers=h).json()["items"]
    endpoint = client.post("/v1/webhook-endpoints", json={"url": f"https://victim-{tag}.example.com/hook"},
                           headers=h)
    assert endpoint.status_code == 201, endpoint.text
    invited = f"victim-invitee-{tag}@acme-test.io"
    invite = client.post("/v1/invites", json={"email": invited, "role": "viewer"}, headers=h)
    assert invite.status_code == 201, invite.text
    # Single sign-on and SCIM: the first organisation's IdP settings, SCIM token and a SCIM group.
    sso = client.put("/v1/sso", headers=h, json={
        "oidc_enabled": True, "oidc_issuer": f"https://idp-{tag}.example.com", "oidc_client_id": f"victim-client-{tag}",
        "oidc_client_secret": f"victim-secret-{tag}", "group_roles": {f"victim-group-{tag}": "admin"}})
    assert sso.status_code == 200, sso.text
    scim = {"Authorization": f"Bearer {client.post('/v1/sso/scim-token', headers=h).json()['token']}"}
    group = client.post("/scim/v2/Groups", headers=scim, json={"displayName": f"victim-scim-group-{tag}"})
    assert group.status_code == 201, group.text
    cert_email = f"victim-candidate-{tag}@acme-test.io"  # certification: a passed attempt and its certificate
    exam = client.post("/v1/certification/exams", headers=h,
                       json={"candidate_name": "Victim Candidate", "candidate_email": cert_email}).json()
    from tests.api.test_certification import right_answers
    graded = client.post(f"/v1/certification/exams/{exam['id']}/submit", headers=h,
                         json={"answers": right_answers(exam)}).json()
    ids = {"group_id": group.json()["id"], "attempt_id": exam["id"], "certificate_id": graded["certificate_id"],
           "pipeline_id": pid, "job_id": jid, "incident_id": iid, "install_id": inst["id"],
           "key_id": keys[0]["id"], "user_id": users[0]["id"], "plugin": slug, "version": "1.0.0",
           "run_id": run.json().get("id", 1) if run.status_code < 300 else 1,
           "delivery_id": deliveries[0]["id"] if deliveries else 1, "agent": "janitor",
           "thread_id": f"victim-thread-{tag}", "approval_id": 1, "invite_id": invite.json()["id"],
           "suggestion_id": 1, "partner_id": 1, "endpoint_id": endpoint.json()["id"],
           "month": utcnow().strftime("%Y-%m"), "key_prefix": keys[0]["prefix"], "window_id": window_id,
           "audit_id": _governance_audit(slug), "quarter": "2026-Q4",
           "application_id": 1, "announcement_id": 1}
    tier_limiter.sync()  # the first organisation's usage rows (GET /v1/usage must not show them to another)
    markers = [a.slug, a.admin_email, pipe_name, f"victim-input-{tag}", f"victim-incident-{tag}",
               f"{{pipeline={pid}}}", invited, f"victim-{tag}.example.com", endpoint.json()["secret"],
               *[k["prefix"] for k in keys], f"cus_victim{tag}", f"in_victim{tag}", f"victim-flag-{tag}",
               f"victim-client-{tag}", f"idp-{tag}.example.com", f"victim-secret-{tag}", f"victim-group-{tag}",
               f"victim-scim-group-{tag}", scim["Authorization"][7:20],
               f"victim-credit-{tag}", f"victim-maintenance-{tag}", cert_email]
    return Victim(a, ids, markers, series)


def _governance_audit(slug: str) -> int:
    """The id of the audit its submission queued for the first organisation's plugin (governance routes)."""
    from memory.governance.models import PartnerAudit
    from memory.partner.models import Plugin

    with session_scope() as s:
        plugin = s.query(Plugin).filter(Plugin.slug == slug).one()
        return int(s.query(PartnerAudit).filter(PartnerAudit.plugin_id == plugin.id).one().id)


def _state(v: Victim, worker_id: str) -> dict[str, Any]:
    """Everything of the first organisation (and the shared worker) a leak could change."""
    balance = js.balance(v.org.org_id)
    with session_scope() as s:
        pipes = sorted((p.id, p.name, p.paused, p.webhook_secret_hash, p.version)
                       for p in s.query(Pipeline).filter(Pipeline.org_id == v.org.org_id))
        jobs = sorted((j.id, j.state, j.attempts) for j in s.query(Job).filter(Job.org_id == v.org.org_id))
        inc = s.get(Incident, v.ids["incident_id"])
        inst = s.get(PluginInstall, v.ids["install_id"])
        worker = WorkerRepository(s).get(worker_id)
        keys = sorted((k.id, k.expires_at, k.revoked_at) for k in s.query(ApiKey).filter(ApiKey.org_id == v.org.org_id))
        tokens = sorted((t.id, t.used_at, t.expires_at) for t in
                        s.query(PortalToken).filter(PortalToken.org_id == v.org.org_id))
        endpoints = sorted((e.id, e.url, e.secret) for e in
                           s.query(WebhookEndpoint).filter(WebhookEndpoint.org_id == v.org.org_id))
        acct = s.get(BillingAccount, v.org.org_id)
        billing = (acct.plan, acct.status, acct.stripe_customer_id, acct.stripe_subscription_id) if acct else None
        ledger = sorted((r.id, r.amount_minor)
                        for r in s.query(RevenueEntry).filter(RevenueEntry.org_id == v.org.org_id))
        sso = s.get(SsoConfig, v.org.org_id)
        sso_state = (sso.oidc_issuer, sso.oidc_client_id, sso.oidc_client_secret, sso.group_roles, sso.enforce_sso,
                     sso.scim_token_hash) if sso else None
        groups = sorted((g.id, g.display_name, tuple(g.member_ids))
                        for g in s.query(ScimGroup).filter(ScimGroup.org_id == v.org.org_id))
        users = sorted((u.id, u.email, u.role, u.active) for u in s.query(User).filter(User.org_id == v.org.org_id))
        certs = sorted((c.id, c.revoked_at, c.listed)
                       for c in s.query(Certificate).filter(Certificate.org_id == v.org.org_id))
        attempts = sorted((x.id, x.status, x.score) for x in
                          s.query(ExamAttempt).filter(ExamAttempt.org_id == v.org.org_id))
        return {"sso": sso_state, "scim_groups": groups, "users": users,
                "certificates": certs, "exam_attempts": attempts,
                "keys": keys, "portal_tokens": tokens, "webhook_endpoints": endpoints, "billing": billing,
                "ledger": ledger,
                "pipelines": pipes, "jobs": jobs, "incident": (inc.state, inc.summary) if inc else None,
                "install": (inst.status, inst.endpoint_disabled_at, inst.secret) if inst else None,
                "worker_command": worker.command if worker else "gone", "balance": balance}


def _url(path: str, ids: dict[str, Any], worker_id: str) -> str:
    def value(m: re.Match[str]) -> str:
        name = m.group(1)
        if name == "worker_id":
            return worker_id
        if name == "delivery_id" and path.startswith("/v1/events"):
            return "1"
        return str(ids[name])

    return re.sub(r"\{([^}]+)\}", value, path)


def _query(op: dict[str, Any], v: Victim) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in op.get("parameters", []):
        if p["in"] != "query":
            continue
        name = p["name"]
        if name in ("pipeline_id", "install_id"):
            out[name] = v.ids[name]
        elif name == "series":
            out[name] = v.series
        elif name == "prefix":
            out[name] = "jobs."
        elif name == "stream":
            out[name] = "false"
        elif name == "key":  # /v1/usage: the first organisation's key
            out[name] = v.ids["key_prefix"]
        elif name == "org":  # /v1/sla/report(.pdf): the first organisation's report by slug
            out[name] = v.org.slug
        elif name in ("from", "to"):
            out[name] = utcnow().date().isoformat()
    return out


def _body(v: Victim) -> dict[str, Any]:
    """A body naming the first organisation's objects wherever a route reads an id or a name."""
    return {"pipeline_id": v.ids["pipeline_id"], "job_id": v.ids["job_id"], "install_id": v.ids["install_id"],
            "plugin": v.ids["plugin"], "worker_id": "x", "org": v.org.slug, "input": {}, "role": "admin",
            "question": f"What failed in pipeline {v.ids['pipeline_id']}?", "message": "hello",
            "decision": "approve", "since": (utcnow() - dt.timedelta(days=1)).isoformat(),
            "period": utcnow().strftime("%Y-%m"), "desired": 1, "name": "x", "email": "x@attacker.example",
            "reason": "tenancy probe", "listed": True, "answers": {}}


def test_a_second_organisation_reaches_nothing_of_the_first(app, client, set_settings) -> None:
    with Receiver() as rx:
        v = _victim(client, set_settings, rx)
        attacker = make_org()
    with worker_row([v.ids["job_id"]]) as worker_id:
        before = _state(v, worker_id)
        spec = app.openapi()
        tried = 0
        statuses: dict[int, int] = {}
        for path, ops in spec["paths"].items():
            for method, op in ops.items():
                if (method.upper(), path) in SKIPPED:
                    continue
                url = _url(path, v.ids, worker_id)
                for role in ("admin", "viewer", "partner"):
                    kwargs: dict[str, Any] = {"headers": attacker.headers(role), "params": _query(op, v)}
                    if method in ("post", "put", "patch"):
                        kwargs["json"] = _body(v)
                    r = client.request(method.upper(), url, **kwargs)
                    where = (role, method.upper(), path, r.status_code, r.text[:300])
                    assert r.status_code < 500, where
                    # No answer names the first organisation's objects or their state; a refusal may echo
                    # what the caller itself sent (a series name, an id), nothing more.
                    sent = f"{url} {kwargs['params']} {kwargs.get('json', '')}"
                    leaked = [m for m in v.markers if m in r.text and (r.status_code < 400 or m not in sent)]
                    assert not leaked, (*where, leaked)
                    if "{" in path:  # on the first organisation's object, a conflict would tell its state
                        assert r.status_code != 409, where
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                    tried += 1
        assert tried >= 3 * 100, statuses
        assert 429 not in statuses, statuses  # every route was really tried (the test tiers are high)
        print("tenancy: answers by status", dict(sorted(statuses.items())))
        after = _state(v, worker_id)
    assert after == before
    # The first organisation still works with its own keys.
    assert client.get("/v1/me", headers=v.org.headers()).status_code == 200
    assert client.get(f"/v1/pipelines/{v.ids['pipeline_id']}", headers=v.org.headers("viewer")).status_code == 200


# Community routes open to anyone, by design (tools/community): the early-access form stamp, applying and
# confirming by the emailed token, published announcements and the Partner Network's public facts. Every
# other community route needs a key of a Levqor staff organisation.
COMMUNITY_PUBLIC = {("GET", "/v1/early-access/form"), ("POST", "/v1/early-access"),
                    ("POST", "/v1/early-access/confirm"), ("GET", "/v1/announcements"), ("GET", "/v1/partner-network")}
COMMUNITY_PREFIXES = ("/v1/early-access", "/v1/announcements", "/v1/partner-network", "/v1/community")


def test_community_routes_are_public_only_when_listed(app, client) -> None:
    seen = set()
    for path, ops in app.openapi()["paths"].items():
        if not path.startswith(COMMUNITY_PREFIXES):
            continue
        for method in ops:
            url = path.replace("{application_id}", "1").replace("{announcement_id}", "1")
            r = client.request(method.upper(), url, json={} if method == "post" else None)
            seen.add((method.upper(), path))
            if (method.upper(), path) in COMMUNITY_PUBLIC:
                assert r.status_code not in (401, 403) and r.status_code < 500, (method, path, r.status_code)
            else:
                assert r.status_code == 401, (method, path, r.status_code)
    assert COMMUNITY_PUBLIC <= seen and len(seen) > len(COMMUNITY_PUBLIC)


# ---- the platform rule, one by one ------------------------------------------------------------------

def test_worker_commands_are_staff_only_and_audited_in_the_platform_and_the_affected_orgs_logs(
        client, org: OrgFixture, set_settings) -> None:
    staff, other = make_org(), make_org()
    set_settings(staff_orgs=[staff.slug])
    jid = js.make_job(org.org_id, js.make_pipeline(org.org_id), "running")
    with worker_row([jid]) as worker_id:  # a shared worker running one of org's jobs
        for who in (other, org):  # another tenant's admin, and even the affected tenant's admin
            r = client.post(f"/v1/workers/{worker_id}/drain", headers=who.headers())
            assert r.status_code == 403 and "only Levqor staff" in r.json()["detail"], r.text
        assert client.post("/v1/workers/scale", json={"desired": 2}, headers=org.headers()).status_code == 403
        r = client.post(f"/v1/workers/{worker_id}/drain", headers=staff.headers())
        assert r.status_code == 200 and r.json()["command"] == "drain", r.text

    def drains(headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
        r = client.get("/v1/audit", params={"action": "workers.drain", **params}, headers=headers)
        assert r.status_code == 200, r.text
        return [e for e in r.json()["items"] if e["target"] == f"worker:{worker_id}"]

    (platform,) = drains(staff.headers("auditor"), platform="true")
    assert platform["org_id"] is None and platform["actor"].startswith("api_key:")
    (mine,) = drains(org.headers("auditor"))  # the organisation whose job the worker ran sees it too
    assert mine["detail"]["platform_seq"] == platform["seq"]
    assert drains(other.headers("auditor")) == []  # an organisation it did not touch does not
    assert client.get("/v1/audit", params={"platform": "true"}, headers=org.headers("auditor")).status_code == 403


def test_scheduled_pulse_snapshots_count_only_the_organisations_own_incidents(org: OrgFixture) -> None:
    from memory.pulse.repository import PulseRepository
    from tools.pulse.checks import run_checks

    other = make_org()
    now = utcnow()
    with session_scope() as s:
        for owner in (other.org_id, None):  # another tenant's incident and a platform one, detected today
            s.add(Incident(org_id=owner, cause=f"t:{uuid.uuid4().hex[:8]}", fingerprint="rule:t", kind="rule",
                           diagnosis="failure_rate", title="elsewhere", detected_at=now))
        s.add(Incident(org_id=org.org_id, cause=f"t:{uuid.uuid4().hex[:8]}", fingerprint="rule:t", kind="rule",
                       diagnosis="failure_rate", title="mine", detected_at=now))
    run_checks(now=now, org_ids=[org.org_id])
    with session_scope() as s:
        rows = PulseRepository(s).snapshot_rows(org.org_id, now.date())
    assert rows["anomalies_detected"].value == 1.0


def test_metrics_carry_no_tenant_labels_and_can_require_a_token(client, org: OrgFixture, set_settings) -> None:
    pid = js.pipeline(org.org_id, NOOP, name="<script>alert(1)</script> pipeline")
    js.grant(org.org_id, 1)
    jid = js.submit(org.org_id, pid)
    with running_worker():
        from tests.support import wait_for

        wait_for(lambda: js.job(jid).state == "succeeded", what="the job to run")
    text = client.get("/metrics").text
    assert "levqor_job_run_duration_seconds_count" in text
    assert "<script>" not in text and "pipeline=" not in text and org.slug not in text
    set_settings(metrics_token="s3cret-scrape-token")
    r = client.get("/metrics")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    r = client.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape-token"})
    assert r.status_code == 200 and "levqor_ready" in r.text


def test_organisation_settings_page_reads_and_writes_the_callers_organisation_only(client) -> None:
    """/settings/organisation (a page, so not in the OpenAPI walk above) takes no organisation id: a second
    organisation's admin sees and changes only its own industry and size band."""
    first, second = make_org(), make_org()
    assert client.patch("/v1/insights/profile", json={"industry": "healthcare", "size_band": "201-1000"},
                        headers=first.headers()).status_code == 200
    page = client.get("/settings/organisation", headers=second.headers())
    assert page.status_code == 200 and 'value="healthcare" selected' not in page.text
    r = client.post("/settings/organisation", data={"industry": "media", "size_band": "1-10"},
                    headers=second.headers())
    assert r.status_code == 200 and 'value="media" selected' in r.text
    assert client.get("/v1/insights/profile", headers=first.headers()).json() == {
        "industry": "healthcare", "size_band": "201-1000", "opt_out": False}
    assert client.post("/settings/organisation", data={"industry": "retail"},
                       headers=second.headers("viewer")).status_code == 403
