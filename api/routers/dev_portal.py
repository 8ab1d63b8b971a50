"""Developer portal API: key rotation, teammate invitations and API usage (sign-up itself is the /developer pages)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from fastapi.responses import PlainTextResponse

from api.deps import require
from tools.context import ToolContext
from tools.dev_portal import accounts
from tools.dev_portal import keys as portal_keys
from tools.dev_portal import usage as usage_tools
from tools.dev_portal.accounts import InviteCreate, InviteId, InviteList, InviteRead
from tools.dev_portal.keys import KeyRotate, KeyRotated
from tools.dev_portal.usage import UsageQuery, UsageReport

router = APIRouter(prefix="/v1", tags=["identity"])
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.post("/keys/{key_id}/rotate", response_model=KeyRotated, status_code=status.HTTP_201_CREATED)
def rotate_key(key_id: Id, ctx: Annotated[ToolContext, require("keys:write")]) -> KeyRotated:
    """Replace an API key (same name, role, mode); the old key works for LEVQOR_KEY_ROTATION_GRACE_S more."""
    return portal_keys.rotate_key(ctx, KeyRotate(key_id=key_id))


@router.get("/invites", response_model=InviteList)
def list_invites(ctx: Annotated[ToolContext, require("users:read")]) -> InviteList:
    """List pending teammate invitations."""
    return accounts.list_invites(ctx, accounts.NoInput())


@router.post("/invites", response_model=InviteRead, status_code=status.HTTP_201_CREATED)
def invite(body: InviteCreate, ctx: Annotated[ToolContext, require("users:write")]) -> InviteRead:
    """Email a teammate a one-time link to join the organisation with a role."""
    return accounts.invite(ctx, body)


@router.delete("/invites/{invite_id}", response_model=InviteRead)
def cancel_invite(invite_id: Id, ctx: Annotated[ToolContext, require("users:write")]) -> InviteRead:
    """Cancel a pending invitation."""
    return accounts.cancel_invite(ctx, InviteId(invite_id=invite_id))


UsageFrom = Annotated[dt.date | None, Query(alias="from", description="First UTC day (YYYY-MM-DD).")]
UsageTo = Annotated[dt.date | None, Query(alias="to", description="Last UTC day (YYYY-MM-DD).")]
UsageKey = Annotated[str | None, Query(description="Only this API key (its prefix, lvq_live_… or lvq_test_…).",
                                       min_length=1, max_length=32, pattern=r"^lvq_(live|test)_[A-Za-z0-9]+$")]


@router.get("/usage", response_model=UsageReport, response_model_by_alias=True)
def usage(ctx: Annotated[ToolContext, require("usage:read")], start: UsageFrom = None, end: UsageTo = None,
          key: UsageKey = None) -> UsageReport:
    """Report API requests per UTC day, key, mode and endpoint (default: the last 30 days), with the plan's limits."""
    return usage_tools.usage_report(ctx, UsageQuery(start=start, end=end, key=key))


@router.get("/usage.csv", response_class=PlainTextResponse,
            responses={200: {"content": {"text/csv": {}}, "description": "One row per day, key, mode and endpoint."}})
def usage_csv(ctx: Annotated[ToolContext, require("usage:read")], start: UsageFrom = None, end: UsageTo = None,
              key: UsageKey = None) -> Response:
    """Export API usage as CSV: day, key, mode, method, endpoint, requests, refused."""
    report = usage_tools.usage_report(ctx, UsageQuery(start=start, end=end, key=key))
    name = f"levqor-usage-{report.start.isoformat()}-{report.end.isoformat()}.csv"
    return Response(usage_tools.usage_csv(report), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
