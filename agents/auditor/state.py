"""Auditor graph state: one review cycle (audits run, explained, notified, enforced; the quarter's report)."""

from __future__ import annotations

from typing import Any, TypedDict


class AuditorState(TypedDict, total=False):
    quarter: str | None  # set for the quarterly cycle: prepare this quarter's governance report
    audited: list[int]
    explained: list[dict[str, Any]]  # audit id and who wrote the explanation (llm | template)
    notified: list[int]
    enforced: list[dict[str, Any]]
    report: dict[str, Any] | None
    summary: str
