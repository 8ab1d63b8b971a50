"""Janitor graph state."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages


class JanitorState(TypedDict, total=False):
    org_id: int
    pipeline_id: int | None
    trigger: str
    failed: int  # failed jobs seen
    candidates: list[dict[str, Any]]  # failed jobs whose error is retryable
    retried: list[int]
    skipped: list[dict[str, Any]]  # {"job_id", "reason"}
    batch: dict[str, Any] | None  # {"asked", "outcome", "retried", "approved_by", "message"}
    remaining: int
    summary: str
    messages: Annotated[list[AnyMessage], add_messages]  # LLM mode only
