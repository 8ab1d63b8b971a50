"""The auditor agent's prompt (shared with the tools' explanation checks) and its run summary."""

from __future__ import annotations

from typing import Any

from tools.governance.explain import SYSTEM

__all__ = ["SYSTEM", "summary"]


def summary(state: dict[str, Any]) -> str:
    """One line for the runs list: what the cycle did."""
    parts = [f"{len(state.get('audited') or [])} audits run", f"{len(state.get('notified') or [])} partners notified",
             f"{len(state.get('enforced') or [])} listings suspended with payouts held"]
    if state.get("report"):
        parts.append(f"governance report {state['quarter']} prepared")
    by_llm = sum(1 for e in state.get("explained") or [] if e.get("by") == "llm")
    if by_llm:
        parts.append(f"{by_llm} explanations written by the model")
    return "Auditor agent: " + ", ".join(parts) + "."
