"""Examiner nodes: scan (exam.reviews) -> propose (LLM or the offline matcher's partial reading) ->
resolve (exam.resolve_review per attempt, which policy sends to a person for approval) -> report."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, Literal

from langchain_core.messages import HumanMessage
from langgraph.types import Command

from agents.examiner import prompts
from agents.examiner.state import ExaminerState
from agents.runtime import RunDeps


def offline_mark(item: dict[str, Any]) -> tuple[str, str]:
    """A proposal from how many key-term groups the answer has (the matcher found some, not all)."""
    text = " ".join(str(item["answer"]).lower().split())
    groups = item.get("keywords") or []
    hits = sum(1 for g in groups if any(k.lower() in text for k in g))
    return ("correct" if hits * 2 >= len(groups) and hits else "wrong"), prompts.offline_reason(hits, len(groups))


def llm_mark(deps: RunDeps, item: dict[str, Any]) -> tuple[str, str]:
    reply = deps.model.invoke([HumanMessage(prompts.grade_prompt(item))])
    deps.record_llm(reply)
    m = re.search(r"\{.*\}", str(reply.content), re.S)
    try:
        data = json.loads(m.group(0)) if m else {}
    except ValueError:
        data = {}
    mark = data.get("mark")
    if mark not in ("correct", "wrong"):
        return offline_mark(item)[0], "the model gave no clear mark; offline matcher's proposal"
    return str(mark), f"model: {str(data.get('reason', ''))[:200]}"


def nodes(deps: RunDeps) -> dict[str, Callable[..., Any]]:
    def scan(state: ExaminerState) -> Command[Literal["propose", "report"]]:
        res = deps.toolbox.call("exam.reviews", {"limit": 200}, call_key="scan")
        if not res.ok or res.data is None:
            return Command(goto="report", update={"summary": f"Could not read exam reviews: {res.message}"})
        items, flagged = res.data.get("items", []), res.data.get("flagged", [])
        return Command(goto="propose" if items else "report", update={"items": items, "flagged": flagged})

    def propose(state: ExaminerState) -> Command[Literal["resolve"]]:
        proposals: dict[str, dict[str, str]] = {}
        reasons: dict[str, str] = {}
        for item in state.get("items") or []:
            mark, why = llm_mark(deps, item) if deps.mode == "llm" else offline_mark(item)
            proposals.setdefault(str(item["attempt_id"]), {})[item["question_id"]] = mark
            reasons[f"{item['attempt_id']}:{item['question_id']}"] = why
        return Command(goto="resolve", update={"proposals": proposals, "reasons": reasons})

    def resolve(state: ExaminerState) -> Command[Literal["report"]]:
        outcomes: list[dict[str, Any]] = []
        for attempt_id, marks in sorted((state.get("proposals") or {}).items()):
            # Needs a person's approval (policy): the run pauses here until they decide.
            res = deps.toolbox.call("exam.resolve_review", {"attempt_id": int(attempt_id), "marks": marks},
                                    call_key=f"resolve:{attempt_id}")
            outcomes.append({"attempt_id": int(attempt_id), "outcome": res.outcome, "approved_by": res.approved_by,
                             "passed": (res.data or {}).get("passed"), "message": "" if res.ok else res.message})
        return Command(goto="report", update={"outcomes": outcomes})

    def report(state: ExaminerState) -> dict[str, Any]:
        if state.get("summary"):
            return {}
        return {"summary": prompts.summary(dict(state))}

    return {"scan": scan, "propose": propose, "resolve": resolve, "report": report}
