"""Governance: partner audits (run, list, read), the audit signing key, policy versions, and the
quarterly governance report (staff)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response
from pydantic import BaseModel, Field

from api.deps import require, writes
from tools.context import ToolContext
from tools.governance import audit_runs, policy_versions, report, service
from tools.governance.policy_versions import PolicyVersionList
from tools.governance.report import GovernanceSummary, QuarterRef
from tools.governance.service import AuditKeyRead, AuditList, AuditQuery, AuditRead, AuditRef, AuditRequest, PluginRef
from tools.identity.service import NoInput
from tools.partner_api.manifest import SLUG

router = APIRouter(prefix="/v1/governance", tags=["governance"])
Slug = Annotated[str, Path(min_length=3, max_length=64, pattern=SLUG)]


class AuditAsk(BaseModel):
    version: str | None = Field(None, max_length=64, description="Default: the listed version, else the newest")


@router.post("/plugins/{plugin}/audits", response_model=AuditRead)
def audit_plugin(plugin: Slug, body: AuditAsk, ctx: Annotated[ToolContext, require("plugins:write")]) -> AuditRead:
    """Audit a plugin version now (its partner or Levqor staff); the findings come back."""
    queued = service.audit_now(ctx, AuditRequest(plugin=plugin, version=body.version))
    # The edge commits the queued audit, so no transaction stays open while the endpoint is probed; the
    # audit is claimed, probed and recorded in transactions of its own (another auditor may have it).
    ctx.session.commit()
    audit_runs.run_now(queued.id, ctx.principal)
    ctx.session.expire_all()
    return service.get_audit(ctx, AuditRef(audit_id=queued.id))


@router.get("/plugins/{plugin}/audit-key", response_model=AuditKeyRead, dependencies=[writes()])
def audit_key(plugin: Slug, ctx: Annotated[ToolContext, require("plugins:read")]) -> AuditKeyRead:
    """Show the secret Levqor signs the plugin's audit test events with."""
    return service.get_audit_key(ctx, PluginRef(plugin=plugin))


@router.get("/audits", response_model=AuditList)
def list_audits(q: Annotated[AuditQuery, Depends()], ctx: Annotated[ToolContext, require("plugins:read")]) -> AuditList:
    """List audits, newest first: the caller's plugins (partners) or all (Levqor staff)."""
    return service.list_audits(ctx, q)


@router.get("/audits/{audit_id}", response_model=AuditRead)
def get_audit(audit_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
              ctx: Annotated[ToolContext, require("plugins:read")]) -> AuditRead:
    """Show one audit: findings with evidence and remedy, explanation, deadline, enforcement."""
    return service.get_audit(ctx, AuditRef(audit_id=audit_id))


@router.get("/policy-versions", response_model=PolicyVersionList)
def list_policy_versions(ctx: Annotated[ToolContext, require("policy:read")]) -> PolicyVersionList:
    """List the policy versions that have been in force, with what each changed."""
    return policy_versions.policy_versions(ctx, NoInput())


@router.get("/reports/{quarter}", response_model=GovernanceSummary, dependencies=[writes()])
def governance_report(quarter: Annotated[str, Path(min_length=7, max_length=7)],
                      ctx: Annotated[ToolContext, require("audit:read")]) -> GovernanceSummary:
    """The quarterly governance report's figures (Levqor staff)."""
    return report.report(ctx, QuarterRef(quarter=quarter))


@router.get("/reports/{quarter}/pdf", response_class=Response, dependencies=[writes()])
def governance_report_pdf(quarter: Annotated[str, Path(min_length=7, max_length=7)],
                          ctx: Annotated[ToolContext, require("audit:read")]) -> Response:
    """The quarterly governance report as a PDF (Levqor staff)."""
    pdf = report.build_pdf(report.report(ctx, QuarterRef(quarter=quarter)))
    return Response(pdf, media_type="application/pdf",
                    headers={"content-disposition": f'attachment; filename="levqor-governance-{quarter}.pdf"'})
