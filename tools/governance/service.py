"""Governance tools: run and read partner audits, explain and enforce them, and the policy versions.

Partners see the audits of their own plugins (and may ask for a new one); Levqor staff, the system and
the auditor agent (``agent:auditor``) see and run all of them. Enforcement (suspending a listing and
holding payouts) goes through ``plugins.set_state`` and ``partners.set_status``, so it is policy-checked
and audited like any other call of those tools.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field

from memory.db import utcnow
from memory.governance.models import PartnerAudit
from memory.governance.repository import GovernanceRepository
from memory.partner.models import PartnerEmail
from memory.partner.repository import PartnerRepository
from tools.context import Principal, ToolContext
from tools.enterprise import audit_log
from tools.enterprise.rbac import is_staff, require_staff
from tools.errors import Conflict, NotFound
from tools.governance import audit_runs, explain, partner_audit
from tools.governance.partner_audit import Finding
from tools.identity.service import NoInput
from tools.partner_api.access import owned_plugin
from tools.partner_api.manifest import SLUG
from tools.registry import tool


class AuditRead(BaseModel):
    id: int
    plugin: str
    plugin_name: str
    partner_id: int
    partner_name: str
    demo: bool = Field(description="A demo partner's plugin: audited for real, never enforced")
    version: str
    trigger: str
    requested_by: str
    status: str
    result: str | None
    policy_version: int | None
    findings: list[Finding]
    checks: list[str]
    explanation: str
    explained_by: str = Field(description="template (offline) or llm (the auditor agent's model)")
    error: str | None
    deadline_at: dt.datetime | None
    notified_at: dt.datetime | None
    enforced_at: dt.datetime | None
    resolved_by_audit_id: int | None
    created_at: dt.datetime
    finished_at: dt.datetime | None


def audit_read(repo: PartnerRepository, a: PartnerAudit) -> AuditRead:
    plugin = repo.plugin(a.plugin_id)
    partner = repo.partner(a.partner_id)
    return AuditRead(
        id=a.id, plugin=plugin.slug if plugin else "", plugin_name=plugin.name if plugin else "",
        partner_id=a.partner_id, partner_name=partner.display_name if partner else "",
        demo=bool(partner and partner.demo), version=a.version,
        trigger=a.trigger, requested_by=a.requested_by, status=a.status, result=a.result,
        policy_version=a.policy_version, findings=[Finding.model_validate(f) for f in a.findings or []],
        checks=list(a.checks or []), explanation=a.explanation, explained_by=a.explained_by, error=a.error,
        deadline_at=a.deadline_at, notified_at=a.notified_at, enforced_at=a.enforced_at,
        resolved_by_audit_id=a.resolved_by_audit_id, created_at=a.created_at, finished_at=a.finished_at)


def _visible(ctx: ToolContext, a: PartnerAudit | None, audit_id: int) -> PartnerAudit:
    if a is not None and is_staff(ctx, read=True):
        return a
    partner = PartnerRepository(ctx.session).partner_for_org(ctx.principal.org_id) \
        if ctx.principal.org_id is not None else None
    if a is None or partner is None or partner.id != a.partner_id:
        raise NotFound(f"audit {audit_id} not found", field="audit_id")
    return a


# ---- partner and staff: ask for an audit, read them ----------------------------------------------

class AuditRequest(BaseModel):
    plugin: str = Field(min_length=3, max_length=64, pattern=SLUG)
    version: str | None = Field(None, max_length=64, description="Default: the listed version, else the newest")


@tool("governance.audit", risk="write")
def audit_now(ctx: ToolContext, params: AuditRequest) -> AuditRead:
    """Queue an audit of a plugin version now (its partner or staff); the API runs it at once, else the review cycle."""
    plugin = owned_plugin(ctx, params.plugin)
    repo = PartnerRepository(ctx.session)
    versions = repo.versions(plugin.id)
    if params.version:
        v = next((v for v in versions if v.version == params.version), None)
    else:
        v = next((v for v in versions if v.id == plugin.listed_version_id), versions[-1] if versions else None)
    if v is None:
        raise NotFound(f"version {params.version} of {plugin.slug} not found", field="version")
    audit = partner_audit.queue(ctx.session, plugin, v.version, "manual", ctx.principal.actor)
    if audit.status == "running" and audit.lease_until is not None and audit.lease_until > utcnow():
        raise Conflict(f"audit {audit.id} of this version is running", field="plugin")
    return audit_read(repo, audit)


class AuditQuery(BaseModel):
    plugin: str | None = Field(None, max_length=64, pattern=SLUG)
    result: Literal["pass", "pass_with_warnings", "fail"] | None = None
    limit: int = Field(50, ge=1, le=200)


class AuditList(BaseModel):
    items: list[AuditRead]


@tool("governance.list", risk="read")
def list_audits(ctx: ToolContext, params: AuditQuery) -> AuditList:
    """List partner audits, newest first: the caller's own plugins (partners) or all (Levqor staff)."""
    repo = PartnerRepository(ctx.session)
    plugin_id = owned_plugin(ctx, params.plugin).id if params.plugin else None
    partner_id = None
    if not is_staff(ctx, read=True):
        partner = repo.partner_for_org(ctx.principal.org_id) if ctx.principal.org_id is not None else None
        if partner is None:
            return AuditList(items=[])
        partner_id = partner.id
    rows = GovernanceRepository(ctx.session).audits(partner_id=partner_id, plugin_id=plugin_id, limit=params.limit)
    return AuditList(items=[audit_read(repo, a) for a in rows if params.result in (None, a.result)])


class AuditRef(BaseModel):
    audit_id: int = Field(ge=1, le=2**31 - 1)


@tool("governance.get", risk="read")
def get_audit(ctx: ToolContext, params: AuditRef) -> AuditRead:
    """Show one audit with its findings, explanation, deadline and enforcement."""
    a = _visible(ctx, GovernanceRepository(ctx.session).audit(params.audit_id), params.audit_id)
    return audit_read(PartnerRepository(ctx.session), a)


class AuditKeyRead(BaseModel):
    plugin: str
    secret: str = Field(description="Verify Levqor's audit test events (type levqor.audit.ping) with it")


class PluginRef(BaseModel):
    plugin: str = Field(min_length=3, max_length=64, pattern=SLUG)


@tool("governance.audit_key", risk="read")
def get_audit_key(ctx: ToolContext, params: PluginRef) -> AuditKeyRead:
    """Show the signing secret of a plugin's audit test events (its partner or staff)."""
    plugin = owned_plugin(ctx, params.plugin)
    return AuditKeyRead(plugin=plugin.slug, secret=partner_audit.audit_key(ctx.session, plugin.id))


# ---- the review cycle's steps (staff, system, agent:auditor) -------------------------------------

class ClaimRequest(BaseModel):
    limit: int = Field(20, ge=1, le=200)


class Claims(BaseModel):
    class Item(BaseModel):
        audit_id: int
        owner: str = Field(description="The lease holder: only it records the audit's outcome")

    items: list[Item]


@tool("governance.claim", risk="write")
def claim(ctx: ToolContext, params: ClaimRequest) -> Claims:
    """Lease queued partner audits (and ones whose auditor died) to run them outside this transaction."""
    require_staff(ctx, "run partner audits")
    return Claims(items=[Claims.Item(audit_id=c.audit_id, owner=c.owner)
                         for c in audit_runs.claim(ctx.session, params.limit)])


def run_claimed(claims: Claims, principal: Principal) -> list[int]:
    """Probe and record claimed audits (after the claim committed); the ids recorded."""
    return audit_runs.run([audit_runs.Claim(i.audit_id, i.owner) for i in claims.items], principal)


class Explanation(AuditRef):
    text: str = Field(min_length=1, max_length=6000)


@tool("governance.explain", risk="write")
def set_explanation(ctx: ToolContext, params: Explanation) -> AuditRead:
    """Store the auditor agent's plain-language explanation of an audit for its partner."""
    require_staff(ctx, "explain audits")
    a = GovernanceRepository(ctx.session).audit(params.audit_id)
    if a is None or a.status != "done":
        raise NotFound(f"finished audit {params.audit_id} not found", field="audit_id")
    text = explain.accept(params.text, a.deadline_at)
    if text is None:
        raise Conflict("the explanation is empty or too long", field="text")
    a.explanation, a.explained_by = text, "llm"
    ctx.session.flush()
    return audit_read(PartnerRepository(ctx.session), a)


class Pending(BaseModel):
    pending: list[int] = Field(description="Finished audits to explain and notify (failed, not notified yet)")


@tool("governance.pending", risk="read")
def pending(ctx: ToolContext, params: NoInput) -> Pending:
    """List failed audits whose partner has not been notified yet."""
    require_staff(ctx, "read partner audits", read=True)
    return Pending(pending=[a.id for a in GovernanceRepository(ctx.session).failed_open(enforceable=True)
                            if a.notified_at is None])


@tool("governance.notify", risk="write")
def notify(ctx: ToolContext, params: AuditRef) -> AuditRead:
    """Email the partner a failed audit's explanation and deadline (once per audit)."""
    require_staff(ctx, "notify partners")
    repo = PartnerRepository(ctx.session)
    a = GovernanceRepository(ctx.session).audit(params.audit_id)
    if a is None or a.result != "fail":
        raise NotFound(f"failed audit {params.audit_id} not found", field="audit_id")
    if a.notified_at is None:
        partner, plugin = repo.partner(a.partner_id), repo.plugin(a.plugin_id)
        if partner is not None and plugin is not None:
            repo.add_email(PartnerEmail(
                partner_id=partner.id, to=partner.contact_email,
                subject=f"[Levqor] Action needed: the audit of {plugin.name} {a.version} failed"[:300],
                body=f"{a.explanation}\n\nThe findings and their evidence: /partner/audits/{a.id}\n"))
        a.notified_at = utcnow()
        ctx.session.flush()
        audit_log.record(ctx, "governance.partner_notified", f"partner:{a.partner_id}",
                         after={"audit": a.id, "deadline": a.deadline_at.isoformat() if a.deadline_at else None})
    return audit_read(repo, a)


class Due(BaseModel):
    class Item(BaseModel):
        audit_id: int
        plugin: str
        partner_id: int
        deadline_at: dt.datetime

    items: list[Item]


@tool("governance.due", risk="read")
def due(ctx: ToolContext, params: NoInput) -> Due:
    """List failed audits past their deadline whose listing is not yet suspended."""
    require_staff(ctx, "read partner audits", read=True)
    now, repo = utcnow(), PartnerRepository(ctx.session)
    out = []
    for a in GovernanceRepository(ctx.session).failed_open(enforceable=True):  # never a demo partner
        plugin = repo.plugin(a.plugin_id)
        if a.notified_at is not None and a.deadline_at is not None and a.deadline_at <= now and plugin:
            out.append(Due.Item(audit_id=a.id, plugin=plugin.slug, partner_id=a.partner_id, deadline_at=a.deadline_at))
    return Due(items=out)


class Enforced(AuditRef):
    note: str = Field("", max_length=500)


@tool("governance.mark_enforced", risk="write")
def mark_enforced(ctx: ToolContext, params: Enforced) -> AuditRead:
    """Record that a failed audit's listing was suspended and payouts held."""
    require_staff(ctx, "enforce audits")
    a = GovernanceRepository(ctx.session).audit(params.audit_id)
    if a is None or a.result != "fail":
        raise NotFound(f"failed audit {params.audit_id} not found", field="audit_id")
    a.enforced_at = utcnow()
    ctx.session.flush()
    audit_log.record(ctx, "governance.enforced", f"partner:{a.partner_id}", after={"audit": a.id},
                     detail={"note": params.note})
    return audit_read(PartnerRepository(ctx.session), a)


def enforcement_reason(item: Due.Item) -> str:
    return f"audit {item.audit_id} failed and was not fixed by {item.deadline_at:%Y-%m-%d}"[:500]


def plan_enforcement(item: Due.Item) -> list[tuple[str, dict[str, Any]]]:
    """The tool calls that suspend the listing and hold the partner's payouts, as policy says."""
    rules = partner_audit.conduct().enforcement
    calls: list[tuple[str, dict[str, Any]]] = []
    if rules.suspend_listing:
        calls.append(("plugins.set_state", {"plugin": item.plugin, "state": "suspended",
                                            "reason": enforcement_reason(item)}))
    if rules.hold_payouts:
        calls.append(("partners.set_status", {"partner_id": item.partner_id, "status": "suspended",
                                              "reason": enforcement_reason(item)}))
    return calls
