"""The planner's prompts: the system prompt and the request for its reasoning over a deterministic run."""

from __future__ import annotations

import json
from typing import Any

SYSTEM = ("You are Levqor's planner. Read the KPI targets, find what is missed or at risk and why, "
          "and propose roadmap adjustments with evidence, the simulator's expected effect and a confidence.")

REASON = ("Below are the KPI findings (missed or at risk) and the planner's suggestions, computed by the "
          "deterministic planner and the simulator. In at most 120 words of plain prose, explain to the "
          "business owner why these KPIs slipped and which suggestion to act on first and why. Use only the "
          "numbers given; never invent one. Do not repeat suggestions that were already decided.")


def ask(findings: list[dict[str, Any]], data: dict[str, Any]) -> str:
    """The user message: the findings, the new suggestions and those not made again."""
    brief = {
        "findings": findings,
        "new_suggestions": [{k: s.get(k) for k in ("id", "kpi", "title", "rationale", "expected_effect", "confidence")}
                            for s in data.get("suggestions", [])],
        "not_proposed_again": data.get("already", []),
    }
    return REASON + "\n\n" + json.dumps(brief, default=str)[:12000]
