"""What the examiner agent works with: attempts waiting for a person (free-text answers the matcher could
not settle, which could change the result) and flagged attempts; and resolving a review, which re-grades
the attempt and issues the certificate when it now passes."""

from __future__ import annotations

from collections import Counter
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from levqor.settings import get_settings
from memory.certification.models import ExamAttempt
from tools.certification import bank as bank_mod
from tools.certification.scoring import AttemptRead, _attempt, read_attempt
from tools.context import ToolContext
from tools.enterprise import audit_log
from tools.errors import Conflict, Unprocessable
from tools.registry import tool


class ReviewItem(BaseModel):
    attempt_id: int
    question_id: str
    prompt: str
    answer: str
    accept: list[str]
    keywords: list[list[str]]


class FlaggedAttempt(BaseModel):
    attempt_id: int
    candidate_email: str
    flags: list[str]


class ReviewList(BaseModel):
    items: list[ReviewItem]
    flagged: list[FlaggedAttempt]


class ReviewQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int = Field(50, ge=1, le=200)


@tool("exam.reviews", risk="read")
def list_reviews(ctx: ToolContext, params: ReviewQuery) -> ReviewList:
    """List free-text answers waiting for a decision (attempts in review) and flagged attempts."""
    qs = bank_mod.current(ctx.session).by_id()
    rows = list(ctx.session.scalars(select(ExamAttempt).where(ExamAttempt.org_id == ctx.org_id)
                                    .order_by(ExamAttempt.id.desc()).limit(500)))
    items: list[ReviewItem] = []
    for a in rows:
        if a.status != "review":
            continue
        for qid, m in (a.marks or {}).items():
            q = qs.get(qid)
            if m == "undecided" and q is not None and q.rubric is not None:
                items.append(ReviewItem(attempt_id=a.id, question_id=qid, prompt=q.prompt,
                                        answer=str((a.answers or {}).get(qid, "")), accept=q.rubric.accept,
                                        keywords=q.rubric.keywords))
    flagged = [FlaggedAttempt(attempt_id=a.id, candidate_email=a.candidate_email, flags=list(a.flags))
               for a in rows if a.flags]
    return ReviewList(items=items[: params.limit], flagged=flagged[: params.limit])


class ReviewResolve(BaseModel):
    model_config = ConfigDict(extra="forbid")
    attempt_id: int = Field(ge=1, le=2**31 - 1)
    marks: dict[str, Literal["correct", "wrong"]] = Field(
        min_length=1, max_length=100, description="question id -> decision, for each undecided answer")


@tool("exam.resolve_review", risk="write")
def resolve_review(ctx: ToolContext, params: ReviewResolve) -> AttemptRead:
    """Decide an attempt's undecided free-text answers, re-grade it and issue the certificate if it passes."""
    from tools.certification import cert_issue

    a = _attempt(ctx, params.attempt_id, lock=True)
    if a.status != "review":
        raise Conflict(f"attempt {a.id} is {a.status}, not waiting for a review", field="attempt_id")
    marks = dict(a.marks or {})
    undecided = {q for q, m in marks.items() if m == "undecided"}
    if set(params.marks) != undecided:
        raise Unprocessable(f"decide exactly the undecided answers: {sorted(undecided)}", field="marks")
    marks.update(params.marks)
    a.marks = marks
    qs = bank_mod.current(ctx.session).by_id()
    topics = dict(a.per_topic or {})
    for qid, m in params.marks.items():
        t = topics.get(qs[qid].topic)
        if t is not None and m == "correct":
            t["correct"] += 1
            t["percent"] = round(100 * t["correct"] / t["total"])
    a.per_topic = topics
    a.score = Counter(marks.values())["correct"]
    a.passed = 100 * a.score >= get_settings().cert_pass_percent * a.total
    a.status = "graded"
    audit_log.record(ctx, "certification.review_resolved", f"cert_attempt:{a.id}",
                     after={"marks": params.marks, "score": a.score, "passed": a.passed})
    if a.passed:
        cert_issue.issue_for(ctx, a)
    return read_attempt(ctx, a)
