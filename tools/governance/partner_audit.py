"""Partner audits: is a plugin version secure and within the code of conduct in ``policy.json``?

An audit checks four things and records each problem as a finding (code, severity, evidence, remedy):

* **manifest**: the schema, scopes allowed and needed by a subscribed event (least privilege),
  prohibited categories, personal-data disclosure, privacy and support pages reachable (and the
  privacy page stating retention);
* **endpoint**: TLS 1.2 or newer, a certificate valid for the host (and not about to expire), HSTS and
  the security headers, no redirect to a private address, 401 on unsigned or wrongly signed requests,
  and a signed test event acknowledged within the time limit;
* **behaviour**: error rate and p95 latency of the plugin's deliveries in the delivery log against the
  floors;
* **revenue share**: the manifest's share within the bounds and the volume tier, and no revenue accrued
  above it.

The result is ``fail`` when a finding's severity is in ``enforcement.fail_at``, ``pass_with_warnings``
when any other finding (but ``info``) remains, else ``pass``. Every request goes through the SSRF guard
(:mod:`tools.shared.ssrf`); test events are signed like real deliveries (Standard Webhooks) with the
plugin's audit key.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from memory.db import utcnow
from memory.governance.models import AuditKey, PartnerAudit
from memory.governance.repository import GovernanceRepository
from memory.partner.models import Plugin
from memory.partner.repository import PartnerRepository
from policies.engine import CodeOfConduct, PolicyDocument, get_engine
from tools.errors import AppError, Conflict
from tools.governance import probes
from tools.partner_api.manifest import validate_manifest
from tools.shared.signing import new_secret, webhook_headers

Severity = Literal["critical", "high", "medium", "low", "info"]
Result = Literal["pass", "pass_with_warnings", "fail"]
SEVERITY_ORDER: tuple[str, ...] = ("critical", "high", "medium", "low", "info")
# Which scope an event's fields need (least privilege: a scope no subscribed event needs is excess).
EVENT_SCOPES: dict[str, str] = {
    "user_signup": "users:read", "org_created": "org:read", "credits_low": "credits:read",
    "job_complete": "jobs:read", "job_failed": "jobs:read", "job_dead": "jobs:read", "job_retrying": "jobs:read",
    "job_cancelled": "jobs:read", "pipeline_created": "jobs:read",
}
AUDIT_EVENT = "levqor.audit.ping"


class Finding(BaseModel):
    code: str = Field(description="Stable id of the check that found it, e.g. endpoint.unsigned_accepted")
    area: Literal["manifest", "endpoint", "behaviour", "revenue"]
    severity: Severity
    title: str
    evidence: str
    remedy: str


class Outcome(BaseModel):
    result: Result
    findings: list[Finding]
    checks: list[str]


def conduct(doc: PolicyDocument | None = None) -> CodeOfConduct:
    """The code of conduct in force; a policy without one cannot audit (409)."""
    doc = doc or get_engine().doc
    if doc.code_of_conduct is None:
        raise Conflict("policy.json has no code_of_conduct: partner audits need one", field="code_of_conduct")
    return doc.code_of_conduct


def result_of(findings: list[Finding], coc: CodeOfConduct) -> Result:
    if any(f.severity in coc.enforcement.fail_at for f in findings):
        return "fail"
    if any(f.severity != "info" for f in findings):
        return "pass_with_warnings"
    return "pass"


def audit_key(session: Session, plugin_id: int) -> str:
    """The plugin's audit signing secret (made on first use); partners verify test events with it."""
    repo = GovernanceRepository(session)
    key = repo.key(plugin_id)
    if key is None:
        key = AuditKey(plugin_id=plugin_id, secret=new_secret())
        repo.add(key)
    return key.secret


# ---- manifest --------------------------------------------------------------------------------------

def check_manifest(m: dict[str, Any], coc: CodeOfConduct, timeout: float) -> tuple[list[Finding], list[str]]:
    out: list[Finding] = []
    checks = ["manifest.schema"]
    try:
        validate_manifest(m)
    except AppError as exc:
        out.append(Finding(code="manifest.schema", area="manifest", severity="critical",
                           title="The manifest does not validate", evidence=exc.detail,
                           remedy="Fix the manifest (see docs/dev_portal/marketplace_schema.md) and submit a new "
                                  "version."))
    scopes = list(m.get("scopes") or [])
    events = list(m.get("events") or [])
    checks.append("manifest.scopes")
    bad = [s for s in scopes if s not in coc.data_scopes.allowed]
    if bad:
        out.append(Finding(code="manifest.scope_not_allowed", area="manifest", severity="critical",
                           title="The plugin requests scopes the code of conduct does not allow",
                           evidence=f"requested {bad}; allowed {coc.data_scopes.allowed}",
                           remedy=f"Remove {', '.join(bad)} from the manifest's scopes."))
    if coc.data_scopes.least_privilege:
        needed = {EVENT_SCOPES[e] for e in events if e in EVENT_SCOPES} | {"events:read"}
        excess = [s for s in scopes if s not in needed and s not in bad]
        if excess:
            out.append(Finding(code="manifest.excess_scopes", area="manifest", severity="medium",
                               title="Scopes no subscribed event needs (least privilege)",
                               evidence=f"scopes {excess} while the events {events or '[]'} need only "
                                        f"{sorted(needed)}",
                               remedy=f"Drop {', '.join(excess)} or subscribe to the events that need them."))
    checks.append("manifest.categories")
    words = " ".join([*(m.get("categories") or []), str(m.get("description") or ""), str(m.get("name") or "")]).lower()
    banned = [c for c in coc.prohibited_categories if c.lower() in words.split() or c.lower() in
              (m.get("categories") or [])]
    if banned:
        out.append(Finding(code="manifest.prohibited_category", area="manifest", severity="critical",
                           title="The plugin falls in a prohibited category",
                           evidence=f"prohibited {banned} found in the categories, name or description",
                           remedy="Such plugins cannot be listed on the Levqor marketplace."))
    personal = [s for s in scopes if s in coc.data_scopes.personal_data]
    checks.append("disclosure.personal_data")
    if personal and coc.disclosure.personal_data_in_description and "personal data" not in words:
        out.append(Finding(code="disclosure.personal_data", area="manifest", severity="medium",
                           title="Personal data is requested without saying so",
                           evidence=f"scopes {personal} carry personal data; the description does not mention "
                                    "'personal data'",
                           remedy="Say in the description which personal data the plugin receives and why."))
    for name, needed_flag in (("privacy_url", coc.disclosure.privacy_url_reachable),
                              ("support_url", coc.disclosure.support_url_reachable)):
        url = m.get(name)
        if not needed_flag or not url:
            continue
        checks.append(f"disclosure.{name}")
        page = probes.http_probe("GET", str(url), headers={"accept": "text/html"}, body=None, timeout=timeout,
                                 verify_tls=True)
        if page.status is None or page.status >= 400:
            why = page.blocked or page.error or f"HTTP {page.status}"
            out.append(Finding(code=f"disclosure.{name.removesuffix('_url')}_unreachable", area="manifest",
                               severity="high", title=f"The {name.removesuffix('_url')} page is not reachable",
                               evidence=f"GET {url}: {why}",
                               remedy=f"Serve the page at {url} over valid HTTPS, or update the manifest's {name}."))
        elif name == "privacy_url" and coc.retention.privacy_page_must_mention:
            checks.append("disclosure.retention")
            text = _page_text(str(url), timeout)
            if not any(w in text for w in ("retain", "retention", "delete")):
                out.append(Finding(code="disclosure.retention", area="manifest", severity="medium",
                                   title="The privacy page does not state how long data is kept",
                                   evidence=f"{url} mentions neither retention nor deletion",
                                   remedy=f"State the retention period (at most {coc.retention.max_days} days "
                                          "for Levqor data) on the privacy page."))
    return out, checks


def _page_text(url: str, timeout: float) -> str:
    from tools.shared import ssrf

    try:
        return ssrf.request("GET", url, timeout=timeout, max_body=256_000).text.lower()
    except Exception:
        return ""


# ---- endpoint --------------------------------------------------------------------------------------

def check_endpoint(url: str, secret: str, coc: CodeOfConduct, audit_ref: str,
                   now: dt.datetime) -> tuple[list[Finding], list[str]]:
    rules, limit_ms = coc.endpoint, coc.floors.ack_within_ms
    out: list[Finding] = []
    checks = ["endpoint.tls"]
    timeout = max(2.0, limit_ms / 1000 * 3)
    try:
        tls = probes.tls_probe(url, timeout=timeout)
    except AppError as exc:
        out.append(Finding(code="endpoint.blocked", area="endpoint", severity="critical",
                           title="The endpoint's address is not allowed", evidence=f"{url}: {exc.detail}",
                           remedy="Use a public HTTPS address for the endpoint."))
        return out, checks
    if tls.error:
        out.append(Finding(code="endpoint.unreachable", area="endpoint", severity="critical",
                           title="The endpoint cannot be reached over TLS", evidence=f"{url}: {tls.error}",
                           remedy="Serve the endpoint over HTTPS on a reachable public address."))
        return out, checks
    order = ("SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
    if tls.version not in order or order.index(tls.version) < order.index(rules.min_tls):
        out.append(Finding(code="endpoint.tls_version", area="endpoint", severity="critical",
                           title=f"TLS older than {rules.min_tls}", evidence=f"negotiated {tls.version}",
                           remedy=f"Enable {rules.min_tls} or newer and disable older versions."))
    elif tls.legacy_accepted:
        out.append(Finding(code="endpoint.tls_legacy", area="endpoint", severity="high",
                           title="A legacy TLS version is still accepted",
                           evidence=f"a handshake capped at TLS 1.1 succeeded ({tls.legacy_accepted})",
                           remedy="Disable TLS 1.0 and 1.1 on the server."))
    if not tls.verified:
        out.append(Finding(code="endpoint.certificate", area="endpoint", severity="critical",
                           title="The TLS certificate is not valid for the host",
                           evidence=f"{tls.verify_error}; subject {tls.subject or '?'}, issuer {tls.issuer or '?'}",
                           remedy="Install a certificate for the endpoint's host name issued by a public CA "
                                  "(e.g. Let's Encrypt), with its full chain."))
    elif tls.not_after is not None and tls.not_after - now < dt.timedelta(days=rules.cert_expiry_warn_days):
        out.append(Finding(code="endpoint.certificate_expiry", area="endpoint", severity="medium",
                           title="The certificate expires soon", evidence=f"valid until {tls.not_after:%Y-%m-%d}",
                           remedy="Renew the certificate (and automate renewal)."))
    verify = tls.verified
    body = json.dumps({"type": AUDIT_EVENT, "timestamp": now.isoformat(), "data": {"audit": audit_ref}},
                      separators=(",", ":")).encode()
    base = {"content-type": "application/json", "user-agent": "Levqor-Audit/1"}
    checks.append("endpoint.unsigned")
    msg = f"msg_audit_{uuid.uuid4().hex[:20]}"
    unsigned = probes.http_probe("POST", url, headers=dict(base), body=body, timeout=timeout, verify_tls=verify)
    forged_headers = {**base, **webhook_headers([new_secret()], msg, body)}
    forged = probes.http_probe("POST", url, headers=forged_headers, body=body, timeout=timeout, verify_tls=verify)
    for p in (unsigned, forged):
        if p.blocked:
            out.append(Finding(code="endpoint.redirect_private", area="endpoint", severity="critical",
                               title="The endpoint redirects to an address Levqor must not call",
                               evidence=p.blocked, remedy="Answer at the endpoint itself; never redirect to "
                                                          "private or internal addresses."))
            return out, checks
    accepted = [(what, p.status) for what, p in (("unsigned", unsigned), ("wrongly signed", forged))
                if p.status is not None and p.status < 300]
    if accepted:
        out.append(Finding(code="endpoint.unsigned_accepted", area="endpoint", severity="critical",
                           title="The endpoint accepts requests without a valid signature",
                           evidence="; ".join(f"{what} POST answered {st}" for what, st in accepted),
                           remedy="Verify webhook-signature (Standard Webhooks, your audit key and install "
                                  "secrets) and answer 401 when it is missing or wrong."))
    else:
        other = [(what, p.status or p.error) for what, p in (("unsigned", unsigned), ("wrongly signed", forged))
                 if p.status != 401]
        if other:
            out.append(Finding(code="endpoint.unsigned_status", area="endpoint", severity="low",
                               title="Unsigned requests are refused, but not with 401",
                               evidence="; ".join(f"{what} POST answered {st}" for what, st in other),
                               remedy="Answer 401 Unauthorized to a missing or invalid signature."))
    checks.append("endpoint.ack")
    signed = probes.http_probe("POST", url, headers={**base, **webhook_headers([secret], f"{msg}_s", body)},
                               body=body, timeout=timeout, verify_tls=verify)
    if signed.blocked:
        out.append(Finding(code="endpoint.redirect_private", area="endpoint", severity="critical",
                           title="The endpoint redirects to an address Levqor must not call", evidence=signed.blocked,
                           remedy="Answer at the endpoint itself; never redirect to private addresses."))
        return out, checks
    if signed.status is None:
        out.append(Finding(code="endpoint.ack_timeout" if signed.timed_out else "endpoint.unreachable",
                           area="endpoint", severity="critical",
                           title="A signed test event was not acknowledged",
                           evidence=f"signed POST: {signed.error}",
                           remedy=f"Acknowledge (2xx) a signed event within {limit_ms} ms; do slow work after "
                                  "answering."))
    elif signed.status >= 300:
        out.append(Finding(code="endpoint.ack_rejected", area="endpoint", severity="high",
                           title="A correctly signed test event was refused",
                           evidence=f"signed POST answered {signed.status} in {signed.elapsed_ms:.0f} ms",
                           remedy=f"Accept events of type {AUDIT_EVENT} signed with the plugin's audit key "
                                  "(shown on the plugin's audit page) and answer 2xx."))
    elif signed.elapsed_ms > limit_ms:
        out.append(Finding(code="endpoint.ack_slow", area="endpoint", severity="high",
                           title="Signed events are acknowledged too slowly",
                           evidence=f"signed POST answered {signed.status} after {signed.elapsed_ms:.0f} ms "
                                    f"(limit {limit_ms} ms)",
                           remedy="Answer 2xx at once and process the event in the background."))
    if any(p.redirects for p in (unsigned, forged, signed)):
        out.append(Finding(code="endpoint.redirects", area="endpoint", severity="low",
                           title="The endpoint redirects",
                           evidence=f"redirected via {signed.redirects or unsigned.redirects}",
                           remedy="Publish the final URL in the manifest."))
    checks.append("endpoint.headers")
    headers = next((p.headers for p in (signed, unsigned, forged) if p.status is not None), {})
    hsts = headers.get("strict-transport-security", "")
    max_age = _max_age(hsts)
    if not hsts:
        out.append(Finding(code="endpoint.hsts_missing", area="endpoint", severity="high",
                           title="No HSTS header", evidence="responses carry no Strict-Transport-Security header",
                           remedy=f"Send Strict-Transport-Security: max-age={rules.hsts_min_age_s}; "
                                  "includeSubDomains."))
    elif max_age < rules.hsts_min_age_s:
        out.append(Finding(code="endpoint.hsts_short", area="endpoint", severity="medium",
                           title="HSTS max-age is too short", evidence=f"Strict-Transport-Security: {hsts}",
                           remedy=f"Raise max-age to at least {rules.hsts_min_age_s} seconds."))
    missing = [h for h in rules.security_headers if h.lower() not in headers]
    if missing:
        out.append(Finding(code="endpoint.security_headers", area="endpoint", severity="medium",
                           title="Security headers are missing", evidence=f"responses lack {', '.join(missing)}",
                           remedy="Send " + ", ".join(f"{h}{': nosniff' if h == 'x-content-type-options' else ''}"
                                                      for h in missing) + " on every response."))
    return out, checks


def _max_age(hsts: str) -> int:
    for part in hsts.split(";"):
        k, _, v = part.strip().partition("=")
        if k.lower() == "max-age":
            try:
                return int(v.strip().strip('"'))
            except ValueError:
                return 0
    return 0


# ---- behaviour and revenue share -------------------------------------------------------------------

def check_behaviour(session: Session, plugin_id: int, coc: CodeOfConduct,
                    now: dt.datetime) -> tuple[list[Finding], list[str]]:
    floors = coc.floors
    rows = GovernanceRepository(session).delivery_attempts(plugin_id, now - dt.timedelta(days=floors.window_days))
    if len(rows) < floors.min_sample:
        return [Finding(code="behaviour.sample", area="behaviour", severity="info",
                        title="Too few deliveries to judge behaviour",
                        evidence=f"{len(rows)} delivery attempts in {floors.window_days} days "
                                 f"(at least {floors.min_sample} needed)", remedy="Nothing to do.")], \
            ["behaviour.sample"]
    out: list[Finding] = []
    failed = sum(1 for code, _ in rows if code is None or code >= 300)
    rate = failed / len(rows)
    if rate > floors.max_error_rate:
        out.append(Finding(code="behaviour.error_rate", area="behaviour", severity="high",
                           title="Too many deliveries fail",
                           evidence=f"{failed} of {len(rows)} attempts in {floors.window_days} days failed "
                                    f"({rate:.1%}; floor {floors.max_error_rate:.1%})",
                           remedy="Find why the endpoint errors or times out (its logs, the delivery log on the "
                                  "developer portal) and fix it."))
    lat = sorted(lat for _, lat in rows)
    p95 = lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))]
    if p95 > floors.max_p95_latency_ms:
        out.append(Finding(code="behaviour.latency", area="behaviour", severity="high",
                           title="Deliveries are answered too slowly",
                           evidence=f"p95 latency {p95:.0f} ms over {len(rows)} attempts "
                                    f"(floor {floors.max_p95_latency_ms} ms)",
                           remedy="Acknowledge at once and process events in the background."))
    return out, ["behaviour.error_rate", "behaviour.latency"]


def check_revenue(session: Session, plugin: Plugin, m: dict[str, Any], doc: PolicyDocument,
                  now: dt.datetime) -> tuple[list[Finding], list[str]]:
    rules = doc.revenue_share
    share = float(m.get("revenue_share") or 0)
    installs = PartnerRepository(session).install_counts().get(plugin.id, 0)
    cap = rules.cap_for(installs)
    out: list[Finding] = []
    if not rules.min_partner_share <= share <= cap or 1 - share < rules.platform_fee_floor - 1e-9:
        out.append(Finding(code="revenue.share", area="revenue", severity="critical",
                           title="The revenue share is outside the policy",
                           evidence=f"manifest share {share:g}; allowed {rules.min_partner_share:g}-{cap:g} at "
                                    f"{installs} installs (platform fee floor {rules.platform_fee_floor:g})",
                           remedy=f"Set revenue_share between {rules.min_partner_share:g} and {cap:g} in a new "
                                  "version."))
    n, top = GovernanceRepository(session).revenue_over_share(plugin.id, int(round(cap * 10000)),
                                                              now - dt.timedelta(days=92))
    if n:
        out.append(Finding(code="revenue.accrued_over_cap", area="revenue", severity="critical",
                           title="Revenue accrued above the allowed share",
                           evidence=f"{n} ledger entries in the last quarter at up to {top / 100:g}% "
                                    f"(cap {cap:.0%})",
                           remedy="Levqor finance corrects the ledger; no action by the partner."))
    return out, ["revenue.share", "revenue.ledger"]


# ---- an audit: planned in a session, probed without one ------------------------------------------

@dataclass(frozen=True)
class Plan:
    """What probing an audit needs, read in a (short) transaction: the version's manifest, the audit key,
    the code of conduct, and the findings of the checks that only read the database."""

    audit_id: int
    manifest: dict[str, Any]
    secret: str
    coc: CodeOfConduct
    stored: list[Finding]
    stored_checks: list[str]


def plan(session: Session, audit: PartnerAudit, now: dt.datetime | None = None) -> Plan:
    """Read what ``audit`` needs and run its database checks (behaviour, revenue share); no network."""
    now = now or utcnow()
    doc = get_engine().doc
    coc = conduct(doc)
    repo = PartnerRepository(session)
    plugin = repo.plugin(audit.plugin_id)
    assert plugin is not None
    v = next((v for v in repo.versions(plugin.id) if v.version == audit.version), None)
    if v is None:
        raise Conflict(f"version {audit.version} of {plugin.slug} no longer exists", field="version")
    m = dict(v.manifest)
    findings: list[Finding] = []
    checks: list[str] = []
    for f, c in (check_behaviour(session, plugin.id, coc, now), check_revenue(session, plugin, m, doc, now)):
        findings += f
        checks += c
    return Plan(audit_id=audit.id, manifest=m, secret=audit_key(session, plugin.id), coc=coc, stored=findings,
                stored_checks=checks)


def probe(p: Plan, now: dt.datetime | None = None) -> Outcome:
    """Probe the manifest's pages and the endpoint (network only, no database) and return the outcome."""
    now = now or utcnow()
    timeout = max(2.0, p.coc.floors.ack_within_ms / 1000 * 3)
    findings, checks = check_manifest(p.manifest, p.coc, timeout)
    url = (p.manifest.get("endpoints") or {}).get("webhook_url")
    if url:
        f, c = check_endpoint(str(url), p.secret, p.coc, f"aud_{p.audit_id}", now)
        findings += f
        checks += c
    findings += p.stored
    checks += p.stored_checks
    findings.sort(key=lambda f: SEVERITY_ORDER.index(f.severity))
    return Outcome(result=result_of(findings, p.coc), findings=findings, checks=checks)


def queue(session: Session, plugin: Plugin, version: str, trigger: str, requested_by: str) -> PartnerAudit:
    """Queue an audit of ``plugin`` at ``version`` (the open one when one is already queued or running;
    the unique index on open audits settles a race between two triggers)."""
    repo = GovernanceRepository(session)
    open_ = repo.open_audit(plugin.id, version)
    if open_ is not None:
        return open_
    audit = PartnerAudit(plugin_id=plugin.id, partner_id=plugin.partner_id, version=version, trigger=trigger,
                         requested_by=requested_by, status="queued")
    try:
        with session.begin_nested():
            repo.add(audit)
    except IntegrityError:
        other = repo.open_audit(plugin.id, version)
        if other is None:
            raise
        return other
    return audit


def finish(session: Session, audit: PartnerAudit, outcome: Outcome, now: dt.datetime | None = None) -> None:
    """Record the outcome; a fail gets its deadline (not a demo partner's: never enforced), a pass or pass
    with warnings closes earlier fails."""
    from tools.governance import explain

    now = now or utcnow()
    coc = conduct()
    prepo = PartnerRepository(session)
    partner, plugin = prepo.partner(audit.partner_id), prepo.plugin(audit.plugin_id)
    demo = bool(partner is not None and partner.demo)
    audit.status, audit.result, audit.finished_at, audit.lease_until = "done", outcome.result, now, None
    audit.findings = [f.model_dump() for f in outcome.findings]
    audit.checks = outcome.checks
    audit.policy_version = get_engine().doc.version
    repo = GovernanceRepository(session)
    if outcome.result == "fail" and not demo:
        audit.deadline_at = now + dt.timedelta(days=coc.enforcement.fix_within_days)
    elif outcome.result != "fail":
        for old in repo.failed_open():
            if old.plugin_id == audit.plugin_id and old.id != audit.id:
                old.resolved_by_audit_id = audit.id
    audit.explanation = explain.template(audit, plugin.name if plugin else None, demo=demo)
    audit.explained_by = "template"
    session.flush()
