"""Agents: list, runs, manual runs, approvals, chat (server-sent events), LLM spend."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from agents.runtime import chat_stream, execute_after_commit, resume_after_commit
from api.deps import require
from tools.agents import service as agent_tools
from tools.agents.service import (
    AgentList,
    ApprovalDecision,
    ApprovalPage,
    ApprovalQuery,
    ApprovalRead,
    ChatStart,
    CostList,
    CostQuery,
    NoInput,
    RunId,
    RunPage,
    RunQuery,
    RunRead,
    RunStart,
    ThreadGet,
    ThreadRead,
)
from tools.context import ToolContext

router = APIRouter(prefix="/v1", tags=["agents"])
AgentPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[a-z_]+$")]
IdPath = Annotated[int, Path(ge=1, le=2**31 - 1)]


class RunRequest(BaseModel):
    pipeline_id: int | None = Field(None, ge=1, le=2**31 - 1)


class DecisionBody(BaseModel):
    args: dict[str, Any] | None = Field(None, description="Edited arguments (the policy's limits still apply)")
    note: str | None = Field(None, max_length=1000)


class RejectBody(BaseModel):
    note: str | None = Field(None, max_length=1000)


class ChatRequest(BaseModel):
    message: str = Field(min_length=1, max_length=8000)
    thread_id: int | None = Field(None, ge=1, le=2**31 - 1)


@router.get("/agents", response_model=AgentList)
def list_agents(ctx: Annotated[ToolContext, require("agents:read")]) -> AgentList:
    """List agents, their schedules, triggers and offered tools, and the LLM mode."""
    return agent_tools.list_agents(ctx, NoInput())


@router.get("/agents/runs", response_model=RunPage)
def list_runs(q: Annotated[RunQuery, Depends()], ctx: Annotated[ToolContext, require("agents:read")]) -> RunPage:
    """List agent runs, newest first."""
    return agent_tools.list_runs(ctx, q)


@router.get("/agents/runs/{run_id}", response_model=RunRead)
def get_run(run_id: IdPath, ctx: Annotated[ToolContext, require("agents:read")]) -> RunRead:
    """Show one run with its tool calls and their policy outcomes."""
    return agent_tools.get_run(ctx, RunId(run_id=run_id))


@router.get("/agents/costs", response_model=CostList)
def costs(q: Annotated[CostQuery, Depends()], ctx: Annotated[ToolContext, require("agents:read")]) -> CostList:
    """LLM spend per day, agent and model."""
    return agent_tools.costs(ctx, q)


@router.post("/agents/{agent}/runs", response_model=RunRead, status_code=202)
def start_run(agent: AgentPath, ctx: Annotated[ToolContext, require("agents:run")],
              body: Annotated[RunRequest | None, Body()] = None) -> RunRead:
    """Start an agent run now; it executes once the request commits (poll the run for its outcome)."""
    run = agent_tools.start_run(ctx, RunStart(agent=agent, pipeline_id=body.pipeline_id if body else None))
    execute_after_commit(ctx.session, run.id)
    return run


@router.post("/agents/{agent}/chat", response_class=StreamingResponse,
             responses={200: {"content": {"text/event-stream": {}},
                              "description": "events: token, tool_call, tool_result, done (or error)"}})
def chat(agent: AgentPath, body: ChatRequest, ctx: Annotated[ToolContext, require("agents:run")]) -> StreamingResponse:
    """Ask an agent; the answer streams as server-sent events and is stored in your thread."""
    started = agent_tools.chat_start(ctx, ChatStart(agent=agent, message=body.message, thread_id=body.thread_id))
    return StreamingResponse(_sse(started.run_id, started.thread_id), media_type="text/event-stream",
                             headers={"cache-control": "no-cache", "x-accel-buffering": "no"})


def _sse(run_id: int, thread_id: int) -> Iterator[str]:
    # Iterated after the request's session has committed: the run and message rows exist.
    yield f"event: start\ndata: {json.dumps({'thread_id': thread_id, 'run_id': run_id})}\n\n"
    for ev in chat_stream(run_id, thread_id):
        yield f"event: {ev.event}\ndata: {json.dumps(ev.data, default=str)}\n\n"


@router.get("/agents/{agent}/threads/{thread_id}", response_model=ThreadRead)
def get_thread(agent: AgentPath, thread_id: IdPath, ctx: Annotated[ToolContext, require("agents:read")]) -> ThreadRead:
    """Show one of your chat threads with its messages."""
    return agent_tools.get_thread(ctx, ThreadGet(agent=agent, thread_id=thread_id))


@router.get("/approvals", response_model=ApprovalPage)
def list_approvals(q: Annotated[ApprovalQuery, Depends()],
                   ctx: Annotated[ToolContext, require("approvals:read")]) -> ApprovalPage:
    """List agent approvals, newest first (filter by status)."""
    return agent_tools.list_approvals(ctx, q)


@router.post("/approvals/{approval_id}/approve", response_model=ApprovalRead)
def approve(approval_id: IdPath, ctx: Annotated[ToolContext, require("approvals:write")],
            body: Annotated[DecisionBody | None, Body()] = None) -> ApprovalRead:
    """Approve a paused agent call (optionally with edited arguments); the run resumes."""
    decision = ApprovalDecision(approval_id=approval_id, args=body.args if body else None,
                                note=body.note if body else None)
    out = agent_tools.approve(ctx, decision)
    resume_after_commit(ctx.session, out.id)
    return out


@router.post("/approvals/{approval_id}/reject", response_model=ApprovalRead)
def reject(approval_id: IdPath, ctx: Annotated[ToolContext, require("approvals:write")],
           body: Annotated[RejectBody | None, Body()] = None) -> ApprovalRead:
    """Reject a paused agent call; the run resumes without it."""
    out = agent_tools.reject(ctx, ApprovalDecision(approval_id=approval_id, note=body.note if body else None))
    resume_after_commit(ctx.session, out.id)
    return out
