"""The offline free-text matcher: marks a short answer against its rubric, or says it cannot decide.

Rules, in order (text is lower-cased, punctuation other than ``-_/{}.`` dropped, spaces collapsed):

1. empty answer: ``wrong``;
2. equal to an ``accept`` entry: ``correct``;
3. contains a ``reject`` term: ``wrong`` (the answer names a known wrong thing);
4. every ``keywords`` group has one of its alternatives in the answer: ``correct``;
5. no group matches: ``wrong`` for a short answer (under four words), ``undecided`` for a longer one (it
   may say the right thing in other words);
6. some groups match but not all: ``undecided``.

``undecided`` answers are decided by a person: the examiner agent proposes a mark and asks through the
approvals.

The matcher never guesses: when the rubric does not settle an answer it says so.
"""

from __future__ import annotations

import re
from typing import Literal

from tools.certification.bank import Rubric

Mark = Literal["correct", "wrong", "undecided"]


def normalise(text: str) -> str:
    text = text.lower().strip()
    text = re.sub(r"[^\w\-_/{}.<> ]", " ", text)
    return re.sub(r"\s+", " ", text).strip().rstrip(".")


def mark(answer: str, rubric: Rubric) -> Mark:
    """Mark one free-text answer against ``rubric`` (see the module doc for the rules)."""
    a = normalise(answer)
    if not a:
        return "wrong"
    if a in {normalise(x) for x in rubric.accept}:
        return "correct"
    if any(normalise(r) and normalise(r) in a for r in rubric.reject):
        return "wrong"
    hits = [any(normalise(k) in a for k in group) for group in rubric.keywords]
    if all(hits):
        return "correct"
    if not any(hits):
        return "undecided" if len(a.split()) >= 4 else "wrong"
    return "undecided"
