"""Governance pages: partner audit results with history, for a partner (its plugins) and staff (all)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse

from api.deps import require
from api.pages.router import render
from levqor.llm import mode_info
from policies.engine import get_engine
from tools.context import ToolContext
from tools.enterprise.rbac import is_staff
from tools.governance import service
from tools.governance.review_cycle import previous_quarter
from tools.governance.service import AuditQuery, AuditRef

router = APIRouter(tags=["pages"], include_in_schema=False)
RESULT_BADGE = {"pass": ("ok", "Pass"), "pass_with_warnings": ("warn", "Pass with warnings"), "fail": ("bad", "Fail")}


@router.get("/governance")
def governance_page(request: Request, ctx: Annotated[ToolContext, require("plugins:read")]) -> HTMLResponse:
    """Show audit results, newest first: the partner's own plugins, or all for Levqor staff."""
    import datetime as dt

    audits = service.list_audits(ctx, AuditQuery(limit=200)).items
    staff = is_staff(ctx, read=True)
    return render(request, "governance.html", ctx, audits=audits, staff=staff, badges=RESULT_BADGE,
                  policy_version=get_engine().doc.version, mode=mode_info(),
                  quarter=previous_quarter(dt.date.today()))


@router.get("/governance/audits/{audit_id}")
def audit_page(request: Request, audit_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
               ctx: Annotated[ToolContext, require("plugins:read")]) -> HTMLResponse:
    """Show one audit: result, plain-language explanation, findings with evidence and remedy, history."""
    audit = service.get_audit(ctx, AuditRef(audit_id=audit_id))
    history = service.list_audits(ctx, AuditQuery(plugin=audit.plugin, limit=50)).items
    return render(request, "governance_audit.html", ctx, audit=audit, history=history, badges=RESULT_BADGE)
