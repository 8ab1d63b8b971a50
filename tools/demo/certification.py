"""Certification demo data for ``make run``: real exam attempts taken through the exam tools (drawn,
answered, graded; passes issue signed certificates), labelled demo. No certified-user figure is made up:
Pulse counts these certificates through ``certification.kpis``."""

from __future__ import annotations

import random
from typing import Any

from memory.certification.models import Certificate, ExamAttempt
from tools.certification.bank import load
from tools.certification.cert_issue import ListingIn, set_listing
from tools.certification.scoring import AttemptRead, ExamStart, ExamSubmit, start_exam, submit_exam
from tools.context import ToolContext

# (name, email, share of questions answered right, listed in the directory)
CANDIDATES: tuple[tuple[str, str, float, bool], ...] = (
    ("Amara Okafor", "amara.okafor@demo.levqor.ai", 1.0, True),
    ("Jonas Weber", "jonas.weber@demo.levqor.ai", 0.85, True),
    ("Priya Natarajan", "priya.natarajan@demo.levqor.ai", 0.78, False),
    ("Lucas Martin", "lucas.martin@demo.levqor.ai", 0.55, False),
    ("Sofia Rossi", "sofia.rossi@demo.levqor.ai", 0.4, False),
)


def _answers(attempt: AttemptRead, share: float, rng: random.Random) -> dict[str, Any]:
    qs = load().by_id()
    out: dict[str, Any] = {}
    for q in attempt.questions:
        b = qs[q.id]
        right = rng.random() < share
        if b.type == "text":
            out[q.id] = b.rubric.accept[0] if right and b.rubric else "not sure"
        elif right:
            out[q.id] = list(b.answer)
        else:
            wrong = [o for o in b.options if o not in b.answer] or list(reversed(b.answer))
            out[q.id] = wrong[:1] if b.type != "ordering" else list(reversed(b.answer))
    return out


def seed_certification(ctx: ToolContext) -> None:
    """Five candidates take the exam through the tools; three pass, two of them opt in to the directory."""
    rng = random.Random(17)
    for name, email, share, listed in CANDIDATES:
        attempt = start_exam(ctx, ExamStart(candidate_name=name, candidate_email=email))
        result = submit_exam(ctx, ExamSubmit(attempt_id=attempt.id, answers=_answers(attempt, share, rng)))
        row = ctx.session.get(ExamAttempt, attempt.id)
        if row is not None:
            row.demo = True
        if result.certificate_id:
            cert = ctx.session.get(Certificate, result.certificate_id)
            if cert is not None:
                cert.demo = True
            if listed:
                set_listing(ctx, ListingIn(certificate_id=result.certificate_id, listed=True))
