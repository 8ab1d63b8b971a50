"""The advisor's intent model on its held-out questions: accuracy and the intents it mixes up.

The model (tools/decision_engine/intents.py) is trained on the paraphrase bank
(tools/decision_engine/advisor_bank.yaml); tests/evals/advisor/heldout.yaml is written apart from it and
never used to tune the bank, the model or its confidence threshold. A held-out question the bank also holds
is an error (the figure would not be held out). Prints accuracy per intent, the confusions (the intent
meant -> what the model read, "asked_back" when it was not confident), and last a one-line summary:
``advisor: heldout=N bank=M total=T right=R accuracy=0.xxx asked_back=A confusions=meant>read:n,...``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
HELDOUT = ROOT / "tests" / "evals" / "advisor" / "heldout.yaml"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--heldout", type=Path, default=HELDOUT, help="held-out questions (YAML list)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON before the summary line")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from tools.decision_engine import intents

    cases = [(c["question"], c["type"]) for c in yaml.safe_load(args.heldout.read_text())]
    bank = intents.bank()
    seen = {q.strip().lower() for q, _ in bank}
    leaked = [q for q, _ in cases if q.strip().lower() in seen]
    if leaked:
        print(f"held-out questions also in the training bank: {leaked}", file=sys.stderr)
        return 1
    t0 = time.perf_counter()
    intents.model()
    train_s = time.perf_counter() - t0
    ev = intents.evaluate(cases)
    if args.json:
        print(json.dumps({"heldout": ev.total, "bank": len(bank), "right": ev.right, "accuracy": ev.accuracy,
                          "asked_back": ev.asked_back, "per_intent": ev.per_intent,
                          "confusion": [[m, g, n] for (m, g), n in ev.confusion.most_common()]}, indent=2))
    else:
        print(f"training bank: {len(bank)} questions; held-out: {ev.total} ({args.heldout.relative_to(ROOT)}); "
              f"trained in {train_s:.2f} s; confidence threshold {intents.CONFIDENCE_THRESHOLD}")
        print(f"{'intent':24} {'right':>5} {'of':>4} {'accuracy':>9}")
        for intent, (right, total) in ev.per_intent.items():
            print(f"{intent:24} {right:>5} {total:>4} {right / total:>8.1%}")
        print("confusions (meant -> read):")
        for (meant, got), n in ev.confusion.most_common():
            print(f"  {meant} -> {got}: {n}")
    confusions = ",".join(f"{m}>{g}:{n}" for (m, g), n in ev.confusion.most_common()) or "none"
    print(f"advisor: heldout={ev.total} bank={len(bank)} total={ev.total + len(bank)} right={ev.right} "
          f"accuracy={ev.accuracy:.3f} asked_back={ev.asked_back} confusions={confusions}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
