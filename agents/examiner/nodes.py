"""Examiner nodes: scan (exam.reviews) -> propose (LLM or the offline matcher's partial reading) ->
resolve (exam.resolve_review per attempt, which policy sends to a person for approval) -> docs
(exam.docs_scan; a question drafted from each changed docs page, by the LLM or the offline template, recorded
with exam.propose_question) -> ask (exam.add_question per proposal, which a person approves, edits or
rejects) -> report."""

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
    def scan(state: ExaminerState) -> Command[Literal["propose", "docs"]]:
        res = deps.toolbox.call("exam.reviews", {"limit": 200}, call_key="scan")
        if not res.ok or res.data is None:
            return Command(goto="docs", update={"summary": f"Could not read exam reviews: {res.message}"})
        items, flagged = res.data.get("items", []), res.data.get("flagged", [])
        return Command(goto="propose" if items else "docs", update={"items": items, "flagged": flagged})

    def propose(state: ExaminerState) -> Command[Literal["resolve"]]:
        proposals: dict[str, dict[str, str]] = {}
        reasons: dict[str, str] = {}
        for item in state.get("items") or []:
            mark, why = llm_mark(deps, item) if deps.mode == "llm" else offline_mark(item)
            proposals.setdefault(str(item["attempt_id"]), {})[item["question_id"]] = mark
            reasons[f"{item['attempt_id']}:{item['question_id']}"] = why
        return Command(goto="resolve", update={"proposals": proposals, "reasons": reasons})

    def resolve(state: ExaminerState) -> Command[Literal["docs"]]:
        outcomes: list[dict[str, Any]] = []
        for attempt_id, marks in sorted((state.get("proposals") or {}).items()):
            # Needs a person's approval (policy): the run pauses here until they decide.
            res = deps.toolbox.call("exam.resolve_review", {"attempt_id": int(attempt_id), "marks": marks},
                                    call_key=f"resolve:{attempt_id}")
            outcomes.append({"attempt_id": int(attempt_id), "outcome": res.outcome, "approved_by": res.approved_by,
                             "passed": (res.data or {}).get("passed"), "message": "" if res.ok else res.message})
        return Command(goto="docs", update={"outcomes": outcomes})

    def docs(state: ExaminerState) -> Command[Literal["ask", "report"]]:
        res = deps.toolbox.call("exam.docs_scan", {"limit": 3}, call_key="docs-scan")
        if not res.ok or res.data is None:
            return Command(goto="report", update={"docs_note": f"Could not scan the docs: {res.message}"})
        if not res.data.get("watching"):
            return Command(goto="report", update={"docs_note": ""})
        made: list[dict[str, Any]] = []
        topics = list(res.data.get("topics") or [])
        for change in res.data.get("changes") or []:
            proposal = propose_from_docs(deps, change, topics)
            if proposal is not None:
                made.append({"change": change, "proposal": proposal})
        note = str(res.data.get("note") or "")
        return Command(goto="ask" if any(m["proposal"]["status"] == "pending" for m in made) else "report",
                       update={"docs_proposals": made, "docs_note": note})

    def ask(state: ExaminerState) -> Command[Literal["report"]]:
        outcomes: list[dict[str, Any]] = []
        for made in state.get("docs_proposals") or []:
            p, change = made["proposal"], made["change"]
            if p["status"] != "pending":
                continue
            # Needs a person's approval (policy): the run pauses here until they decide (they may edit it).
            res = deps.toolbox.call("exam.add_question", {"proposal_id": p["id"], "question": p["question"]},
                                    call_key=f"docs-add:{p['id']}",
                                    purpose=prompts.proposal_purpose(change, p["question_id"]))
            if not res.ok:
                deps.toolbox.call("exam.close_proposal", {"proposal_id": p["id"], "note": res.message[:2000]},
                                  call_key=f"docs-close:{p['id']}")
            outcomes.append({"proposal_id": p["id"], "outcome": res.outcome,
                             "question_id": (res.data or {}).get("question_id", p["question_id"])})
        return Command(goto="report", update={"question_outcomes": outcomes})

    def report(state: ExaminerState) -> dict[str, Any]:
        reviews = state.get("summary") or prompts.summary(dict(state))
        docs_part = prompts.docs_summary(dict(state)) if "docs_proposals" in state or state.get("docs_note") else ""
        return {"summary": f"{reviews} {docs_part}".strip()}

    return {"scan": scan, "propose": propose, "resolve": resolve, "docs": docs, "ask": ask, "report": report}


def llm_question(deps: RunDeps, change: dict[str, Any], topics: list[str]) -> dict[str, Any] | None:
    """The model's draft from a changed docs section, or None when its reply is not a question."""
    reply = deps.model.invoke([HumanMessage(prompts.question_prompt(change, topics))])
    deps.record_llm(reply)
    m = re.search(r"\{.*\}", str(reply.content), re.S)
    try:
        data = json.loads(m.group(0)) if m else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return None
    anchors = {h["anchor"] for h in change["headings"]}
    anchor = data.pop("anchor", None)
    data.pop("id", None)
    data["topic"] = change["topic"]
    data["ref"] = f"{change['path']}#{anchor if anchor in anchors else change['anchor']}"
    return data


def propose_from_docs(deps: RunDeps, change: dict[str, Any], topics: list[str]) -> dict[str, Any] | None:
    """Draft a question from one docs change (the model first when configured, else or when its draft is not
    a valid question the offline template) and record it; the proposal, or None when it could not be recorded."""
    key = f"{change['path']}:{change['digest'][:16]}"
    base = {"path": change["path"], "digest": change["digest"], "anchor": change["anchor"]}
    note = ""
    if deps.mode == "llm":
        draft = llm_question(deps, change, topics)
        if draft is not None:
            res = deps.toolbox.call("exam.propose_question", {**base, "source": "llm", "question": draft},
                                    call_key=f"docs-propose-llm:{key}")
            if res.ok and res.data is not None:
                return res.data
            note = f"the model's draft was refused ({res.message[:500]}); offline template instead"
        else:
            note = "the model gave no question; offline template instead"
    offline = prompts.template_question(change)
    if offline is None:
        note = (note + "; " if note else "") + "no offline draft (no usable sentence or no other heading)"
    res = deps.toolbox.call("exam.propose_question",
                            {**base, "source": "offline", "question": offline, "note": note},
                            call_key=f"docs-propose:{key}")
    return res.data if res.ok else None
