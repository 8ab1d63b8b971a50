"""Agent runs, their tool calls, approvals, LLM costs and chat threads."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from memory.db import Base, UTCDateTime, utcnow

BigInt = BigInteger().with_variant(Integer(), "sqlite")


class AgentRun(Base):
    """One run of an agent graph (its LangGraph thread is ``run-<id>``)."""

    __tablename__ = "agent_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    agent: Mapped[str] = mapped_column(String(64), index=True)
    trigger: Mapped[str] = mapped_column(String(16))  # schedule | event | chat | manual
    # queued | running | waiting_approval | succeeded | declined | failed
    status: Mapped[str] = mapped_column(String(20), index=True)
    mode: Mapped[str] = mapped_column(String(16))  # offline | llm
    # The LangGraph checkpointer thread (unique across databases sharing a checkpoint store).
    thread_id: Mapped[str] = mapped_column(String(64), unique=True)
    model: Mapped[str | None] = mapped_column(String(100), nullable=True)
    input: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    requested_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    steps: Mapped[int] = mapped_column(Integer, default=0)
    tools_called: Mapped[int] = mapped_column(Integer, default=0)
    tokens_in: Mapped[int] = mapped_column(Integer, default=0)
    tokens_out: Mapped[int] = mapped_column(Integer, default=0)
    # Millionths of a US dollar (integer minor units, never floats).
    cost_micro_usd: Mapped[int] = mapped_column(BigInt, default=0)
    summary: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class AgentToolCall(Base):
    """A tool call an agent asked for, with the policy outcome and a summary of the result."""

    __tablename__ = "agent_tool_calls"
    __table_args__ = (UniqueConstraint("run_id", "call_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("agent_runs.id", ondelete="CASCADE"), index=True)
    call_key: Mapped[str] = mapped_column(String(100))
    agent: Mapped[str] = mapped_column(String(64))
    tool: Mapped[str] = mapped_column(String(100), index=True)
    args: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # ok | denied | refused | needs_approval | approved | rejected | error
    outcome: Mapped[str] = mapped_column(String(20))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    result_summary: Mapped[str] = mapped_column(Text, default="")
    duration_ms: Mapped[float] = mapped_column(default=0.0)
    approved_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class AgentApproval(Base):
    """A paused tool call waiting for a person: pending -> approved | rejected | expired."""

    __tablename__ = "agent_approvals"
    __table_args__ = (UniqueConstraint("run_id", "call_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    agent: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[int] = mapped_column(ForeignKey("agent_runs.id", ondelete="CASCADE"), index=True)
    call_key: Mapped[str] = mapped_column(String(100))
    tool: Mapped[str] = mapped_column(String(100))
    args: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    reason: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16), index=True)
    requested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    note: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    edited_args: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Set by the one process that resumes the paused run (a conditional update claims it).
    resumed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class LlmCost(Base):
    """Tokens and spend per day, organisation, agent and model (KPIs read spend per day)."""

    __tablename__ = "llm_costs"
    __table_args__ = (UniqueConstraint("day", "org_id", "agent", "model"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, index=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    agent: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(100))
    calls: Mapped[int] = mapped_column(Integer, default=0)
    tokens_in: Mapped[int] = mapped_column(BigInt, default=0)
    tokens_out: Mapped[int] = mapped_column(BigInt, default=0)
    cost_micro_usd: Mapped[int] = mapped_column(BigInt, default=0)


class AgentThread(Base):
    """A chat thread between one person and one agent."""

    __tablename__ = "agent_threads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    owner: Mapped[str] = mapped_column(String(200), index=True)
    agent: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class AgentMessage(Base):
    """One message of a chat thread: user, assistant or tool."""

    __tablename__ = "agent_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    thread_id: Mapped[int] = mapped_column(ForeignKey("agent_threads.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    tool_calls: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("agent_runs.id", ondelete="SET NULL"),
                                               nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class LlmBreaker(Base):
    """The circuit breaker of one LLM endpoint, shared by every process: ``closed`` (calls go),
    ``open`` (calls refused until ``retry_at``: agents run offline), ``half_open`` (one probe call is out,
    until ``probe_until``)."""

    __tablename__ = "llm_breakers"

    endpoint: Mapped[str] = mapped_column(String(300), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default="closed")
    failures: Mapped[int] = mapped_column(Integer, default=0)
    opened_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    retry_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    probe_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
    changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
