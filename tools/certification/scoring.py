"""Exams: a stratified random draw from the bank, shuffled options, a deadline, grading on submit.

Everything a candidate must not see stays here: the attempt row keeps the drawn question ids, the order
options were shown in and the deadline; answers and explanations never leave the server before the
attempt is graded, and even then only per-topic feedback and the docs to revisit are returned.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from levqor.settings import get_settings
from memory.certification.models import ExamAttempt
from memory.certification.repository import CertificationRepository
from memory.db import aware, utcnow
from tools.certification import bank as bank_mod
from tools.certification.bank import Question
from tools.certification.matcher import mark
from tools.context import ToolContext
from tools.enterprise import audit_log
from tools.errors import Conflict, NotFound, RateLimited, Unprocessable
from tools.registry import tool

SUBMIT_GRACE_S = 60  # network slack after the deadline
MIN_SECONDS_PER_QUESTION = 5  # faster than this on average is flagged for a person


def draw(questions: list[Question], n: int, rng: random.Random) -> list[Question]:
    """``n`` questions, stratified by (topic, difficulty): each cell gets its share (largest remainder)."""
    cells: dict[tuple[str, str], list[Question]] = {}
    for q in questions:
        cells.setdefault((q.topic, q.difficulty), []).append(q)
    n = min(n, len(questions))
    exact = {c: n * len(qs) / len(questions) for c, qs in cells.items()}
    take = {c: int(v) for c, v in exact.items()}
    for c in sorted(exact, key=lambda c: (exact[c] - take[c], rng.random()), reverse=True)[: n - sum(take.values())]:
        take[c] += 1
    out = [q for c in sorted(cells) for q in rng.sample(cells[c], min(take[c], len(cells[c])))]
    rng.shuffle(out)
    return out


class ExamStart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    candidate_name: str = Field(min_length=1, max_length=200, description="Name printed on the certificate")
    candidate_email: EmailStr


class OptionOut(BaseModel):
    id: str
    text: str


class QuestionOut(BaseModel):
    id: str
    topic: str
    difficulty: str
    type: str
    prompt: str
    options: list[OptionOut] = Field(default_factory=list, description="In the order shown; ordering: shuffled")


class TopicFeedback(BaseModel):
    correct: int
    total: int
    percent: int
    revisit: list[str] = Field(default_factory=list, description="Docs to read again (questions missed)")


class AttemptRead(BaseModel):
    id: int
    status: Literal["open", "graded", "review", "expired"]
    candidate_name: str
    candidate_email: str
    started_at: dt.datetime
    deadline: dt.datetime
    submitted_at: dt.datetime | None = None
    questions: list[QuestionOut] = Field(default_factory=list)
    score: int | None = None
    total: int
    percent: int | None = None
    pass_percent: int
    passed: bool | None = None
    undecided: int = 0
    per_topic: dict[str, TopicFeedback] = Field(default_factory=dict)
    flags: list[str] = Field(default_factory=list)
    certificate_id: str | None = None


class AttemptRef(BaseModel):
    attempt_id: int = Field(ge=1, le=2**31 - 1)


class ExamSubmit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    attempt_id: int = Field(ge=1, le=2**31 - 1)
    answers: dict[str, list[str] | str] = Field(
        max_length=100, description="question id -> option ids (single, multiple), option ids in order "
                                    "(ordering) or text (text); unanswered questions count as wrong")


def _question_out(q: Question, order: list[str]) -> QuestionOut:
    return QuestionOut(id=q.id, topic=q.topic, difficulty=q.difficulty, type=q.type, prompt=q.prompt,
                       options=[OptionOut(id=o, text=q.options[o]) for o in order])


def read_attempt(ctx: ToolContext, a: ExamAttempt) -> AttemptRead:
    qs = bank_mod.current(ctx.session).by_id()
    s = get_settings()
    cert = CertificationRepository(ctx.session).certificate_for_attempt(a.id)
    show = a.status == "open"
    return AttemptRead(
        id=a.id, status=a.status, candidate_name=a.candidate_name, candidate_email=a.candidate_email,  # type: ignore[arg-type]
        started_at=a.started_at, deadline=a.deadline, submitted_at=a.submitted_at,
        questions=[_question_out(qs[i], a.option_order.get(i, [])) for i in a.question_ids] if show else [],
        score=a.score, total=a.total, pass_percent=s.cert_pass_percent, passed=a.passed,
        percent=None if a.score is None else round(100 * a.score / max(1, a.total)),
        undecided=sum(1 for m in (a.marks or {}).values() if m == "undecided"),
        per_topic={k: TopicFeedback(**v) for k, v in (a.per_topic or {}).items()}, flags=list(a.flags or []),
        certificate_id=cert.id if cert else None)


def _attempt(ctx: ToolContext, attempt_id: int, *, lock: bool = False) -> ExamAttempt:
    a = CertificationRepository(ctx.session).attempt(ctx.org_id, attempt_id, lock=lock)
    if a is None:
        raise NotFound(f"no exam attempt {attempt_id}", field="attempt_id")
    return a


@tool("exam.start", risk="write")
def start_exam(ctx: ToolContext, params: ExamStart) -> AttemptRead:
    """Start a certification exam for a candidate: draw the questions, shuffle options, set the deadline."""
    s = get_settings()
    repo = CertificationRepository(ctx.session)
    now = utcnow()
    email = str(params.candidate_email).lower()
    for open_one in repo.attempts_of(ctx.org_id, email, status="open"):
        if aware(open_one.deadline) + dt.timedelta(seconds=SUBMIT_GRACE_S) > now:
            return read_attempt(ctx, open_one)  # one open attempt at a time: resume it
        open_one.status = "expired"
    recent = [a for a in repo.attempts_of(ctx.org_id, email) if aware(a.started_at) > now - dt.timedelta(days=365)]
    if len(recent) >= s.cert_attempt_limit:
        raise Conflict(f"{email} has used all {s.cert_attempt_limit} attempts of the last 365 days",
                       field="candidate_email", extra={"attempt_limit": s.cert_attempt_limit})
    failed = [a for a in recent if a.passed is False and a.submitted_at is not None]
    if failed:
        wait_until = max(aware(a.submitted_at) for a in failed if a.submitted_at) + dt.timedelta(
            seconds=s.cert_retake_cooldown_s)
        if wait_until > now:
            secs = int((wait_until - now).total_seconds()) + 1
            raise RateLimited(f"a retake is possible after {wait_until.isoformat()} ({secs} s)",
                              field="candidate_email", extra={"retry_after_s": secs},
                              headers={"Retry-After": str(secs)})
    rng = random.SystemRandom()
    chosen = draw(bank_mod.current(ctx.session).questions, s.cert_exam_questions, rng)  # type: ignore[arg-type]
    order: dict[str, list[str]] = {}
    for q in chosen:
        ids = list(q.options)
        rng.shuffle(ids)
        order[q.id] = ids
    a = ExamAttempt(org_id=ctx.org_id, candidate_email=email, candidate_name=params.candidate_name.strip(),
                    actor=ctx.principal.actor, question_ids=[q.id for q in chosen], option_order=order,
                    status="open", started_at=now, deadline=now + dt.timedelta(minutes=s.cert_exam_minutes),
                    total=len(chosen))
    repo.add(a)
    audit_log.record(ctx, "certification.exam_started", f"cert_attempt:{a.id}",
                     after={"candidate": email, "questions": len(chosen)})
    return read_attempt(ctx, a)


@tool("exam.get", risk="read")
def get_attempt(ctx: ToolContext, params: AttemptRef) -> AttemptRead:
    """Show an exam attempt: its questions while open (never the answers), its result once graded."""
    return read_attempt(ctx, _attempt(ctx, params.attempt_id))


def _check_answer(q: Question, given: list[str] | str, field: str) -> None:
    if q.type == "text":
        if not isinstance(given, str) or len(given) > 500:
            raise Unprocessable("a text answer is a string of at most 500 characters", field=field)
        return
    if not isinstance(given, list) or any(o not in q.options for o in given):
        raise Unprocessable(f"answer with option ids of {q.id}: {sorted(q.options)}", field=field)
    if len(set(given)) != len(given):
        raise Unprocessable("an option is given twice", field=field)
    if q.type == "single" and len(given) > 1:
        raise Unprocessable("a single-choice question takes one option", field=field)
    if q.type == "ordering" and given and set(given) != set(q.options):
        raise Unprocessable("an ordering answer lists every option once", field=field)


def grade_one(q: Question, given: list[str] | str | None) -> str:
    """``correct``, ``wrong`` or (free text the matcher cannot settle) ``undecided``."""
    if given is None or given == [] or given == "":
        return "wrong"
    if q.type == "text":
        assert q.rubric is not None
        return mark(str(given), q.rubric)
    if q.type == "ordering":
        return "correct" if list(given) == q.answer else "wrong"
    return "correct" if set(given) == set(q.answer) else "wrong"


def _flags(ctx: ToolContext, a: ExamAttempt, answers: dict[str, Any], now: dt.datetime) -> list[str]:
    flags: list[str] = []
    took = (now - aware(a.started_at)).total_seconds()
    if a.total and took < MIN_SECONDS_PER_QUESTION * a.total:
        flags.append(f"fast: {took:.0f} s for {a.total} questions (under {MIN_SECONDS_PER_QUESTION} s each)")
    repo = CertificationRepository(ctx.session)
    for qid, text in answers.items():
        if isinstance(text, str) and len(text.strip()) >= 20:
            others = repo.same_text_answers(ctx.org_id, a.id, a.candidate_email, qid, text)
            if others:
                flags.append(f"identical free text on {qid} as attempt(s) {sorted(others)}")
    return flags


@tool("exam.submit", risk="write")
def submit_exam(ctx: ToolContext, params: ExamSubmit) -> AttemptRead:
    """Submit an exam's answers and grade them; a pass issues the certificate."""
    from tools.certification import cert_issue

    a = _attempt(ctx, params.attempt_id, lock=True)
    if a.status != "open":
        raise Conflict(f"attempt {a.id} is {a.status}, not open", field="attempt_id")
    now = utcnow()
    qs = bank_mod.current(ctx.session).by_id()
    drawn = set(a.question_ids)
    for qid, given in params.answers.items():
        if qid not in drawn:
            raise Unprocessable(f"question {qid} is not part of this attempt", field=f"answers.{qid}")
        _check_answer(qs[qid], given, f"answers.{qid}")
    a.submitted_at = now
    a.answers = dict(params.answers)
    if now > aware(a.deadline) + dt.timedelta(seconds=SUBMIT_GRACE_S):
        a.status, a.passed, a.score, a.marks = "expired", False, 0, {}
        audit_log.record(ctx, "certification.exam_expired", f"cert_attempt:{a.id}")
        return read_attempt(ctx, a)
    marks = {qid: grade_one(qs[qid], params.answers.get(qid)) for qid in a.question_ids}
    a.marks = marks
    topics: dict[str, dict[str, Any]] = {}
    for qid in a.question_ids:
        q = qs[qid]
        t = topics.setdefault(q.topic, {"correct": 0, "total": 0, "revisit": []})
        t["total"] += 1
        if marks[qid] == "correct":
            t["correct"] += 1
        elif q.ref not in t["revisit"]:
            t["revisit"].append(q.ref)
    for t in topics.values():
        t["percent"] = round(100 * t["correct"] / t["total"])
    a.per_topic = topics
    counts = Counter(marks.values())
    a.score = counts["correct"]
    need = get_settings().cert_pass_percent
    passes_now = 100 * counts["correct"] >= need * a.total
    could_pass = 100 * (counts["correct"] + counts["undecided"]) >= need * a.total
    a.flags = _flags(ctx, a, params.answers, now)
    if passes_now or not could_pass:
        a.status, a.passed = "graded", passes_now
    else:
        a.status, a.passed = "review", None  # a person decides the undecided free-text answers
    audit_log.record(ctx, "certification.exam_graded", f"cert_attempt:{a.id}",
                     after={"score": a.score, "total": a.total, "status": a.status, "passed": a.passed,
                            "undecided": counts["undecided"], "flags": a.flags})
    if a.passed:
        cert_issue.issue_for(ctx, a)
    return read_attempt(ctx, a)
