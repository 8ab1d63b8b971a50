"""The question bank (``exam.yaml``): loaded once, validated strictly, never sent out with its answers.

Validation on load: the pydantic schema (``extra="forbid"``), unique ids, an answer key that fits the
question type (every option id exists; single has one answer, ordering names every option once, text
has a rubric), and a ``ref`` that resolves to an existing docs page and one of its headings' anchors.
A bank that fails any of these does not load (``BankError``), so a broken bank never reaches a candidate.

The bank in force (:func:`current`) is ``exam.yaml`` plus the questions the examiner proposed from docs
changes and a person approved, stored in the database (``cert_bank_questions``); each of those passed the
same checks against the whole bank when it was added (:func:`validate_new`).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy.orm import Session

from levqor.settings import get_settings
from memory.certification.repository import CertificationRepository

ROOT = Path(__file__).resolve().parents[2]
BANK_PATH = Path(__file__).with_name("exam.yaml")

QType = Literal["single", "multiple", "ordering", "text"]
Difficulty = Literal["easy", "medium", "hard"]
DIFFICULTIES: tuple[str, ...] = ("easy", "medium", "hard")


class BankError(ValueError):
    """The bank is not valid; the message names the question and the fault."""


class Rubric(BaseModel):
    """How a free-text answer is marked (see ``tools.certification.matcher``)."""

    model_config = ConfigDict(extra="forbid")
    accept: list[str] = Field(min_length=1)
    keywords: list[list[str]] = Field(min_length=1)
    reject: list[str] = Field(default_factory=list)


class Question(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=r"^[a-z]+-\d{3}$")
    topic: str
    difficulty: Difficulty
    type: QType
    prompt: str = Field(min_length=10, max_length=600)
    options: dict[str, str] = Field(default_factory=dict)
    answer: list[str] = Field(default_factory=list)
    rubric: Rubric | None = None
    explanation: str = Field(min_length=10)
    ref: str = Field(pattern=r"^docs/[a-z_/]+\.md#[a-z0-9-]+$")

    @model_validator(mode="after")
    def _key(self) -> Question:
        if self.type == "text":
            if self.rubric is None or self.options or self.answer:
                raise ValueError("a text question has a rubric and no options or answer")
            return self
        if self.rubric is not None:
            raise ValueError("only text questions have a rubric")
        if len(self.options) < 2:
            raise ValueError("a choice or ordering question needs at least two options")
        unknown = [a for a in self.answer if a not in self.options]
        if unknown or not self.answer:
            raise ValueError(f"answer must name option ids; unknown {unknown}")
        if len(set(self.answer)) != len(self.answer):
            raise ValueError("answer repeats an option")
        if self.type == "single" and len(self.answer) != 1:
            raise ValueError("a single-choice question has exactly one answer")
        if self.type == "multiple" and len(self.answer) >= len(self.options):
            raise ValueError("a multiple-choice question needs at least one wrong option")
        if self.type == "ordering" and set(self.answer) != set(self.options):
            raise ValueError("an ordering answer lists every option once")
        return self


class Bank(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int
    pass_mark_hint: str = ""
    topics: dict[str, str]
    questions: list[Question]

    def by_id(self) -> dict[str, Question]:
        return {q.id: q for q in self.questions}


def slug(heading: str) -> str:
    """The anchor of a Markdown heading, as GitHub and the docs pages make it."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file (headings inside code fences are not headings)."""
    out: set[str] = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        m = re.match(r"^#{1,6}\s+(.+?)\s*$", line)
        if m and not fenced:
            out.add(slug(m.group(1)))
    return out


def check_ref(ref: str, root: Path = ROOT) -> str | None:
    """None when ``ref`` (``docs/page.md#anchor``) names an existing page and heading, else why not."""
    page, _, anchor = ref.partition("#")
    path = root / page
    if not path.is_file():
        return f"no docs page {page}"
    if anchor not in anchors(path):
        return f"no heading #{anchor} in {page}"
    return None


def parse(text: str, *, root: Path = ROOT) -> Bank:
    """Parse and validate a bank; BankError naming the question and field on the first fault found."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BankError(f"exam.yaml is not valid YAML: {exc}") from None
    try:
        bank = Bank.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = first["loc"]
        where = ""
        if len(loc) >= 2 and loc[0] == "questions" and isinstance(loc[1], int) and isinstance(raw, dict):
            qs = raw.get("questions") or []
            qid = qs[loc[1]].get("id", f"#{loc[1]}") if loc[1] < len(qs) and isinstance(qs[loc[1]], dict) else loc[1]
            where = f"question {qid}: "
        raise BankError(f"{where}{'.'.join(str(p) for p in loc)}: {first['msg']}") from None
    seen: set[str] = set()
    for q in bank.questions:
        check_in_bank(q, seen, bank.topics, root)
        seen.add(q.id)
    return bank


def check_in_bank(q: Question, ids: set[str] | dict[str, Question], topics: dict[str, str], root: Path) -> None:
    """BankError unless ``q`` has an id not in ``ids``, a known topic and a ref that resolves under ``root``."""
    if q.id in ids:
        raise BankError(f"question {q.id}: duplicate id")
    if q.topic not in topics:
        raise BankError(f"question {q.id}: unknown topic {q.topic!r}")
    why = check_ref(q.ref, root)
    if why:
        raise BankError(f"question {q.id}: ref {q.ref}: {why}")


@lru_cache(maxsize=1)
def load() -> Bank:
    """The shipped bank, validated (cached for the process)."""
    return parse(BANK_PATH.read_text(encoding="utf-8"))


def docs_root() -> Path:
    """The directory holding the ``docs/`` pages the examiner watches and added questions refer to."""
    return get_settings().cert_docs_root or ROOT


def current(session: Session) -> Bank:
    """The bank in force: ``exam.yaml`` and, on top, the questions approved proposals added (the overlay)."""
    base = load()
    rows = CertificationRepository(session).bank_questions()
    if not rows:
        return base
    # Each was validated against the whole bank when it was added (``validate_new``).
    extra = [Question.model_validate(r.data) for r in rows]
    return base.model_copy(update={"questions": [*base.questions, *extra]})


def validate_new(bank: Bank, data: dict[str, Any], root: Path) -> Question:
    """A question to add, validated like ``exam.yaml``'s (schema, unique id, known topic, a ref that resolves
    under ``root``); BankError naming the fault."""
    try:
        q = Question.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise BankError(f"question {data.get('id', '?')}: {'.'.join(str(p) for p in first['loc'])}: "
                        f"{first['msg']}") from None
    check_in_bank(q, bank.by_id(), bank.topics, root)
    return q
