"""Examiner graph state."""

from __future__ import annotations

from typing import Any, TypedDict


class ExaminerState(TypedDict, total=False):
    org_id: int
    trigger: str
    items: list[dict[str, Any]]  # undecided free-text answers (exam.reviews)
    flagged: list[dict[str, Any]]
    proposals: dict[str, dict[str, str]]  # attempt id -> question id -> correct | wrong
    reasons: dict[str, str]  # "attempt:question" -> why that mark was proposed
    outcomes: list[dict[str, Any]]
    docs_proposals: list[dict[str, Any]]  # {"change": exam.docs_scan change, "proposal": exam.propose_question}
    docs_note: str
    question_outcomes: list[dict[str, Any]]  # per proposal: approved (added) | rejected | error
    summary: str
