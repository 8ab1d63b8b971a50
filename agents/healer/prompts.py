"""The healer's prompt, the incident brief the model sees, and the run summaries (offline templates)."""

from __future__ import annotations

import json
from typing import Any

SYSTEM = (
    "You are Levqor's on-call healer. Given an incident as JSON and the playbooks you may choose, answer with "
    'one JSON object {"summary": "<two or three plain sentences for an operator: what broke, the evidence, '
    'what will be done>", "playbook": "<one of the allowed names, or null>"} and nothing else.'
)
BRIEF_KEYS = ("id", "org_id", "title", "diagnosis", "severity", "state", "manual", "subject", "signals",
              "occurrences", "heal_attempts", "summary")


def brief(incident: dict[str, Any]) -> dict[str, Any]:
    """What the nodes keep of ``incidents.get``: the incident and its last ten timeline entries."""
    out = {k: incident.get(k) for k in BRIEF_KEYS}
    out["timeline"] = [f"{e['kind']}: {e['message']}" for e in (incident.get("timeline") or [])[-10:]]
    return out


def ask(inc: dict[str, Any], allowed: list[str]) -> str:
    keys = ("title", "diagnosis", "severity", "subject", "signals", "occurrences", "timeline")
    return json.dumps({"incident": {k: inc.get(k) for k in keys}, "allowed_playbooks": allowed}, default=str)


def parse(content: Any, allowed: list[str]) -> tuple[str, str | None]:
    """(summary, playbook) from the model's answer; a playbook not allowed is dropped. Raises on bad JSON."""
    text = str(content).strip().removeprefix("```json").removeprefix("```").removesuffix("```")
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("the answer is not a JSON object")
    summary = str(data.get("summary") or "").strip()[:4000]
    proposal = data.get("playbook")
    return summary, proposal if isinstance(proposal, str) and proposal in allowed else None


def label(inc: dict[str, Any]) -> str:
    return f"incident #{inc.get('id')} ({str(inc.get('diagnosis') or '').replace('_', ' ')}: {inc.get('title')})"


def purpose(inc: dict[str, Any], step: dict[str, Any]) -> str:
    """Heads the approval request: which incident, which playbook, which call."""
    args = json.dumps(step.get("args") or {}, sort_keys=True, default=str)
    return f"Healer, {label(inc)}: playbook {step.get('action')} wants {step.get('tool')} {args}"


def awaiting(inc: dict[str, Any], step: dict[str, Any]) -> str:
    return f"Waiting for a person to approve {step.get('tool')} for {label(inc)} (playbook {step.get('action')})."


def report(state: dict[str, Any]) -> str:
    """The run's summary, from what happened."""
    inc = state.get("incident") or {}
    step = state.get("step") or {}
    if state.get("incident_id") is None:
        return "No incident of this organisation is due: nothing to heal."
    head = label(inc) if inc else f"incident #{state.get('incident_id')}"
    parts = [head[0].upper() + head[1:] + "."]
    outcome = step.get("outcome")
    action = step.get("action") or "no playbook"
    if outcome:
        parts.append(f"Step: {action} {outcome}" + (f" ({step['detail']})" if step.get("detail") else "") + ".")
    ap = state.get("approval")
    if ap:
        who = f" by {ap['approved_by']}" if ap.get("approved_by") else ""
        ref = f" (approval {ap['approval_id']})" if ap.get("approval_id") else ""
        parts.append(f"Approval: {ap.get('outcome')}{who}{ref}" + (f": {ap['message']}" if ap.get("message")
                                                                    and ap.get("outcome") != "approved" else "")
                     + ".")
    ver = state.get("verified")
    if ver:
        parts.append("Verified: the symptom is gone; resolved." if ver.get("outcome") == "healed" else
                     f"Verification: {ver.get('outcome')} (the monitor keeps checking until the deadline).")
    return " ".join(parts)
