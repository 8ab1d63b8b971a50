"""Audit log: search, JSONL export, verification, signed checkpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse

from api.deps import require, writes
from tools.context import ToolContext
from tools.enterprise import audit_tools
from tools.enterprise.audit_log import VerifyResult
from tools.enterprise.audit_tools import AuditPage, AuditSearch, CheckpointList, NoInput

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get("", response_model=AuditPage)
def search(q: Annotated[AuditSearch, Depends()], ctx: Annotated[ToolContext, require("audit:read")]) -> AuditPage:
    """List the organisation's audit entries, newest first (cursor = seq of the last one seen)."""
    return audit_tools.search(ctx, q)


@router.get("/export", response_class=Response, dependencies=[writes()],  # the export is audited
            responses={200: {"content": {"application/x-ndjson": {}}, "description": "JSON lines"}})
def export(q: Annotated[AuditSearch, Depends()], ctx: Annotated[ToolContext, require("audit:export")]) -> Response:
    """Export matching audit entries as JSON lines, oldest first."""
    return Response(audit_tools.export_audited(ctx, q), media_type="application/x-ndjson",
                    headers={"content-disposition": 'attachment; filename="levqor-audit.jsonl"'})


@router.get("/verify", response_model=VerifyResult, responses={409: {"model": VerifyResult}})
def verify(ctx: Annotated[ToolContext, require("audit:verify")]) -> Response:
    """Verify the whole hash chain and the signed checkpoints (409 names the first bad entry)."""
    result = audit_tools.verify(ctx, NoInput())
    return JSONResponse(result.model_dump(), status_code=200 if result.ok else 409)


@router.get("/checkpoints", response_model=CheckpointList)
def checkpoints(ctx: Annotated[ToolContext, require("audit:read")]) -> CheckpointList:
    """List signed checkpoints and the Ed25519 public key that verifies them."""
    return audit_tools.checkpoints(ctx, NoInput())


@router.post("/checkpoints", response_model=CheckpointList)
def checkpoint(ctx: Annotated[ToolContext, require("audit:write")]) -> CheckpointList:
    """Sign a checkpoint of the chain head now."""
    return audit_tools.checkpoint(ctx, NoInput())
