"""The advisor's question understanding: an intent classifier over a paraphrase bank, plus slot extraction.

Intent: TF-IDF features of character n-grams (2-4, within words: robust to typos and inflections) and
word n-grams (1-2), L2-normalised, fed to a multinomial logistic regression trained on
``advisor_bank.yaml`` (paraphrases written the way people ask, per intent, including ``out_of_scope``).
numpy only (scikit-learn is not a dependency; the whole model is ~100 lines and trains in well under a
second at first use). The predicted intent's probability is its confidence: below
:data:`CONFIDENCE_THRESHOLD` the advisor asks back, naming the two likeliest readings, instead of guessing.

Slots (periods such as "last month" or "last 14 days", dollar amounts, percentages, plans, KPIs, partner
counts, models) are extracted by rules: they are closed vocabularies where rules are exact.

The held-out questions in ``tests/evals/advisor/heldout.yaml`` are never read here nor used to tune.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

BANK = Path(__file__).resolve().parent / "advisor_bank.yaml"
CONFIDENCE_THRESHOLD = 0.40
OUT_OF_SCOPE = "out_of_scope"

_WORD = re.compile(r"[a-z0-9$%]+(?:[.'-][a-z0-9]+)*")


def _normalise(text: str) -> str:
    t = text.lower()
    t = re.sub(r"\$\s?\d[\d,]*(?:\.\d+)?", " $amount ", t)
    t = re.sub(r"\b\d+(?:\.\d+)?\s*(?:%|percent)", " pctvalue ", t)
    t = re.sub(r"\b\d+\b", " num ", t)
    return t


def _features(text: str) -> Counter[str]:
    t = _normalise(text)
    words = _WORD.findall(t)
    feats: Counter[str] = Counter()
    for w in words:
        feats["w:" + w] += 1
        padded = f" {w} "
        for n in (2, 3, 4):
            for i in range(len(padded) - n + 1):
                feats[f"c{n}:" + padded[i:i + n]] += 1
    for a, b in zip(words, words[1:], strict=False):
        feats[f"b:{a} {b}"] += 1
    return feats


@dataclass
class IntentModel:
    vocab: dict[str, int]
    idf: np.ndarray
    weights: np.ndarray  # (features + 1, intents)
    labels: list[str]

    def vector(self, text: str) -> np.ndarray:
        x = np.zeros(len(self.vocab) + 1)
        for f, c in _features(text).items():
            j = self.vocab.get(f)
            if j is not None:
                x[j] = (1 + math.log(c)) * self.idf[j]
        norm = np.linalg.norm(x[:-1])
        if norm:
            x[:-1] /= norm
        x[-1] = 1.0  # bias
        return x

    def probabilities(self, text: str) -> dict[str, float]:
        z = self.vector(text) @ self.weights
        z = np.exp(z - z.max())
        p = z / z.sum()
        return {lab: float(p[i]) for i, lab in enumerate(self.labels)}


def train(examples: list[tuple[str, str]], *, epochs: int = 400, lr: float = 2.0, l2: float = 1e-4) -> IntentModel:
    """Fit the model on (question, intent) pairs."""
    docs = [_features(q) for q, _ in examples]
    df: Counter[str] = Counter()
    for d in docs:
        df.update(d.keys())
    vocab = {f: i for i, f in enumerate(sorted(df))}
    n = len(docs)
    idf = np.array([math.log((1 + n) / (1 + df[f])) + 1 for f in sorted(df)] + [1.0])
    labels = sorted({lab for _, lab in examples})
    model = IntentModel(vocab, idf, np.zeros((len(vocab) + 1, len(labels))), labels)
    x = np.stack([model.vector(q) for q, _ in examples])
    y = np.zeros((n, len(labels)))
    for i, (_, lab) in enumerate(examples):
        y[i, labels.index(lab)] = 1.0
    w = model.weights
    for _ in range(epochs):  # full-batch gradient descent on the softmax cross-entropy
        z = x @ w
        z = np.exp(z - z.max(axis=1, keepdims=True))
        p = z / z.sum(axis=1, keepdims=True)
        w -= lr * (x.T @ (p - y) / n + l2 * w)
    model.weights = w
    return model


def bank() -> list[tuple[str, str]]:
    """The paraphrase bank as (question, intent) pairs."""
    data: dict[str, list[str]] = yaml.safe_load(BANK.read_text())
    return [(q, intent) for intent, qs in data.items() for q in qs]


_model: list[IntentModel] = []
_lock = threading.Lock()


def model() -> IntentModel:
    """The model trained on the bank (once per process)."""
    with _lock:
        if not _model:
            _model.append(train(bank()))
        return _model[0]


@dataclass
class Reading:
    """The likeliest intent, its confidence, and the runner-up (for asking back)."""

    intent: str
    confidence: float
    runner_up: str
    runner_up_confidence: float

    @property
    def confident(self) -> bool:
        return self.confidence >= CONFIDENCE_THRESHOLD


def classify(question: str) -> Reading:
    """Read ``question``'s intent with the bank's model."""
    probs = sorted(model().probabilities(question).items(), key=lambda kv: -kv[1])
    (a, pa), (b, pb) = probs[0], probs[1]
    return Reading(a, pa, b, pb)


@dataclass
class Evaluation:
    """How the model reads labelled questions: the right ones, and (meant, read) pairs it got wrong."""

    total: int
    right: int
    asked_back: int  # questions it asked back on (right for out-of-scope ones: it did not answer them)
    confusion: Counter[tuple[str, str]]
    per_intent: dict[str, tuple[int, int]]  # intent -> (right, total)

    @property
    def accuracy(self) -> float:
        return self.right / self.total if self.total else 0.0


def evaluate(cases: list[tuple[str, str]]) -> Evaluation:
    """Score ``(question, intent)`` cases: a confident reading must be the intent meant; an out-of-scope
    question is also read right when the model asks back (it answers nothing)."""
    confusion: Counter[tuple[str, str]] = Counter()
    per: dict[str, list[int]] = {}
    right = asked = 0
    for question, meant in cases:
        r = classify(question)
        got = r.intent if r.confident else "asked_back"
        asked += got == "asked_back"
        ok = got == meant or (meant == OUT_OF_SCOPE and got == "asked_back")
        right += ok
        tally = per.setdefault(meant, [0, 0])
        tally[0] += ok
        tally[1] += 1
        if not ok:
            confusion[(meant, got)] += 1
    return Evaluation(total=len(cases), right=right, asked_back=asked, confusion=confusion,
                      per_intent={k: (v[0], v[1]) for k, v in sorted(per.items())})


# ---- slots ----------------------------------------------------------------------------------------

MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december")


def period(q: str) -> dict[str, Any]:
    """The period a question names: ``{"days": n}`` for a rolling window, ``{"month": "last"|"this"|k}``
    for a calendar month (k = 1..12), or {} when it names none."""
    q = q.lower()
    m = re.search(r"(?:last|past|previous|over)\s+(\d{1,3})\s+days?", q)
    if m:
        return {"days": max(1, min(365, int(m.group(1))))}
    if re.search(r"\b(last|previous|past) month\b|\bin the previous month\b", q):
        return {"month": "last"}
    if re.search(r"\b(this|current) month\b|\bmonth to date\b|\bmtd\b|\bso far this month\b", q):
        return {"month": "this"}
    for i, name in enumerate(MONTHS, start=1):
        if re.search(rf"\b(in|for|during|of)\s+{name}\b", q):
            return {"month": i}
    if re.search(r"\b(two weeks|fortnight|14 days)\b", q):
        return {"days": 14}
    if re.search(r"\b(week|7 days)\b", q):
        return {"days": 7}
    if re.search(r"\bquarter\b|90 days|three months", q):
        return {"days": 90}
    if re.search(r"\byear\b|12 months|365 days", q):
        return {"days": 365}
    return {}


def money(text: str) -> list[int]:
    """Dollar amounts in ``text`` as cents ("$29", "$1,200.50", "35 dollars")."""
    out = [round(float(m.replace(",", "")) * 100) for m in re.findall(r"\$\s?(-?\d[\d,]*(?:\.\d+)?)", text)]
    out += [round(float(m) * 100) for m in re.findall(r"\b(\d+(?:\.\d+)?)\s*(?:dollars|usd)\b", text.lower())]
    return out


def percents(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"(-?\d+(?:\.\d+)?)\s*(?:%|percent)", text.lower())]
