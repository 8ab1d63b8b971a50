"""Agents page: agents, recent runs, pending approvals, and the active LLM mode."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from api.deps import require
from api.pages.router import render
from tools.agents.service import ApprovalQuery, NoInput, RunQuery, list_agents, list_approvals, list_runs
from tools.context import ToolContext
from tools.enterprise.rbac import allowed

router = APIRouter(tags=["pages"], include_in_schema=False)


@router.get("/agents")
def agents_page(request: Request, ctx: Annotated[ToolContext, require("agents:read")],
                agent: str | None = None) -> HTMLResponse:
    """Show the agents, their recent runs and pending approvals."""
    agents = list_agents(ctx, NoInput())
    runs = list_runs(ctx, RunQuery(agent=agent or None, limit=50))
    approvals = (list_approvals(ctx, ApprovalQuery(status="pending"))
                 if allowed(ctx.principal.role, "approvals:read") else None)
    return render(request, "agents.html", ctx, agents=agents, runs=runs.items,
                  approvals=approvals.items if approvals else [], mode=agents.mode, agent=agent or "")
