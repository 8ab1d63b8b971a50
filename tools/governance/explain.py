"""Plain-language explanations of an audit for the partner: the offline template, and the prompt and
answer check for a model (the auditor agent uses them when an LLM is configured)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from memory.governance.models import PartnerAudit

RESULT_WORDS = {"pass": "passed", "pass_with_warnings": "passed with warnings", "fail": "failed"}
SYSTEM = (
    "You are Levqor's auditor agent. Explain a partner plugin audit to the partner's developers in plain, "
    "friendly language: what was checked, what is wrong, why it matters to their customers, and exactly "
    "what to do, in order of severity. Keep every fact (codes, numbers, URLs, the deadline) as given; invent "
    "nothing. Answer with plain text only, at most 250 words."
)


def template(audit: PartnerAudit, plugin_name: str | None = None, *, demo: bool = False) -> str:
    """The offline explanation: the result, then each finding as what was found and what to do."""
    name = plugin_name or f"plugin #{audit.plugin_id}"
    findings: list[dict[str, Any]] = list(audit.findings or [])
    real = [f for f in findings if f["severity"] != "info"]
    lines = [f"The audit of {name} {audit.version} {RESULT_WORDS.get(audit.result or '', 'did not finish')}."]
    if not real:
        lines.append("Every check met the Levqor code of conduct. Nothing to do.")
    else:
        lines.append(f"{len(real)} finding{'s' if len(real) != 1 else ''}, most serious first:")
        for i, f in enumerate(real, 1):
            lines.append(f"{i}. [{f['severity']}] {f['title']}. We saw: {f['evidence']}. To fix: {f['remedy']}")
    if audit.result == "fail" and audit.deadline_at is not None:
        lines.append(f"Please fix the critical and high findings by {audit.deadline_at:%Y-%m-%d %H:%M} UTC and ask "
                     "for a new audit; after that date the listing is suspended and payouts are held until an "
                     "audit passes.")
    if demo:
        lines.append("This is a demo plugin of a demo partner: the audit ran for real, but its findings are never "
                     "enforced (no suspension, no payout hold).")
    return "\n".join(lines)


def ask(audit: dict[str, Any]) -> str:
    """The model's input: the audit (as ``governance.get`` returns it) as JSON."""
    return json.dumps({"plugin": audit["plugin_name"], "version": audit["version"], "result": audit["result"],
                       "deadline_utc": audit.get("deadline_at"),
                       "findings": [{k: f[k] for k in ("code", "severity", "title", "evidence", "remedy")}
                                    for f in audit.get("findings") or [] if f["severity"] != "info"]}, default=str)


def accept(answer: str, deadline_at: dt.datetime | None) -> str | None:
    """The model's text when usable: not empty, and naming the deadline when there is one; else None."""
    text = answer.strip()
    if not text or len(text) > 6000:
        return None
    if deadline_at is not None and deadline_at.strftime("%Y-%m-%d") not in text:
        text += f"\n\nDeadline: {deadline_at:%Y-%m-%d %H:%M} UTC."
    return text
