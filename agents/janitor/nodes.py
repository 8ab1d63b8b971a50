"""Janitor nodes. Offline: deterministic decisions. LLM mode: the model picks the tool calls.

Nodes reach the job queue only through the run's toolbox (policy-checked ``jobs.*`` tools).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from langchain_core.messages import AIMessage, SystemMessage, ToolMessage
from langgraph.types import Command

from agents.janitor import prompts
from agents.janitor.state import JanitorState
from agents.runtime import RunDeps
from levqor.settings import get_settings

LIST_PAGE = 100
MAX_SCAN = 500
# A job the janitor already retried this often lately keeps failing: leave it for a person
# (each retry starts fresh attempts, so without this a flapping job would loop on job_failed events).
MAX_RETRIES_PER_JOB = 2
RETRY_MEMORY_S = 3600
# The policy caps jobs.retry_failed's limit (arg_limits); the janitor asks within it.
BATCH_CAP = 50


def threshold() -> int:
    return get_settings().janitor_batch_threshold


def list_failed(deps: RunDeps, pipeline_id: int | None, key: str) -> tuple[int, list[dict[str, Any]], str | None]:
    """All failed jobs (up to MAX_SCAN): (count, the retryable ones, error message if listing failed)."""
    seen = 0
    retryable: list[dict[str, Any]] = []
    cursor: Any = None
    page = 0
    while seen < MAX_SCAN:
        args: dict[str, Any] = {"state": "failed", "limit": LIST_PAGE}
        if pipeline_id is not None:
            args["pipeline_id"] = pipeline_id
        if cursor is not None:
            args["cursor"] = cursor
        res = deps.toolbox.call("jobs.list", args, call_key=f"{key}:{page}")
        if not res.ok or res.data is None:
            return seen, retryable, res.message
        items = res.data.get("items") or []
        seen += len(items)
        retryable += [j for j in items if j.get("retryable") and j.get("state", "failed") == "failed"]
        cursor = res.data.get("next_cursor")
        page += 1
        if not cursor or not items:
            break
    return seen, retryable, None


def recently_retried(deps: RunDeps) -> dict[int, int]:
    """How often the janitor retried each job in the last RETRY_MEMORY_S seconds (its own calls)."""
    if "agents.recent_calls" not in deps.toolbox.offered:
        return {}
    counts: dict[int, int] = {}
    res = deps.toolbox.call("agents.recent_calls", {"tools": ["jobs.retry", "jobs.retry_failed"],
                                                    "since_s": RETRY_MEMORY_S}, call_key="memory")
    for item in (res.data or {}).get("items", []) if res.ok else []:
        ids = ([item["args"].get("job_id")] if item["tool"] == "jobs.retry"
               else (item.get("result") or {}).get("job_ids", []))
        for jid in ids:
            if isinstance(jid, int):
                counts[jid] = counts.get(jid, 0) + 1
    return counts


def offline_nodes(deps: RunDeps) -> dict[str, Callable[..., Any]]:
    def scan(state: JanitorState) -> Command[Literal["retry_each", "retry_batch", "report"]]:
        failed, cands, error = list_failed(deps, state.get("pipeline_id"), "scan")
        update: dict[str, Any] = {"failed": failed, "candidates": cands}
        if error:
            return Command(goto="report", update={**update, "summary": f"Could not list failed jobs: {error}"})
        seen = recently_retried(deps) if cands else {}
        flapping = [j for j in cands if seen.get(int(j["id"]), 0) >= MAX_RETRIES_PER_JOB]
        if flapping:
            # Still counted in ``failed``: a batch retry would pick them up too, so none is asked for.
            cands = [j for j in cands if j not in flapping]
            update = {"failed": failed, "candidates": cands, "skipped": [
                {"job_id": j["id"], "reason": f"retried {seen[int(j['id'])]} times in the last hour; "
                                              "left for a person"} for j in flapping]}
        if not cands:
            return Command(goto="report", update=update)
        if len(cands) <= threshold():
            return Command(goto="retry_each", update=update)
        if failed == len(cands):
            return Command(goto="retry_batch", update=update)
        # jobs.retry_failed would also retry the permanent failures among them: retry up to the
        # threshold one by one and leave the rest for the next run.
        return Command(goto="retry_each", update={**update, "candidates": cands[: threshold()],
                                                  "remaining": len(cands) - threshold()})

    def retry_each(state: JanitorState) -> Command[Literal["report"]]:
        retried: list[int] = []
        skipped: list[dict[str, Any]] = list(state.get("skipped") or [])
        for job in state.get("candidates") or []:
            res = deps.toolbox.call("jobs.retry", {"job_id": job["id"]}, call_key=f"retry:{job['id']}")
            if res.ok:
                retried.append(int(job["id"]))
            else:
                skipped.append({"job_id": job["id"], "reason": f"{res.outcome}: {res.message}"[:200]})
        return Command(goto="report", update={"retried": retried, "skipped": skipped})

    def retry_batch(state: JanitorState) -> Command[Literal["report"]]:
        cands = state.get("candidates") or []
        limit = min(len(cands), BATCH_CAP)
        args: dict[str, Any] = {"limit": limit}
        if state.get("pipeline_id") is not None:
            args["pipeline_id"] = state["pipeline_id"]
        # One approval for the whole batch (interrupts here until a person decides).
        res = deps.toolbox.call("jobs.retry_failed", args, call_key="retry_batch")
        count = _count(res.data) if res.ok else 0
        batch = {"asked": limit, "outcome": res.outcome, "retried": count, "approved_by": res.approved_by,
                 "message": "" if res.ok else res.message}
        return Command(goto="report", update={"batch": batch, "remaining": max(0, len(cands) - limit)})

    def report(state: JanitorState) -> dict[str, Any]:
        if state.get("summary"):
            return {}
        return {"summary": prompts.summary(dict(state), threshold())}

    return {"scan": scan, "retry_each": retry_each, "retry_batch": retry_batch, "report": report}


def _count(data: dict[str, Any] | None) -> int:
    if not data:
        return 0
    for key in ("retried", "count", "total"):
        if isinstance(data.get(key), int):
            return int(data[key])
        if isinstance(data.get(key), list):
            return len(data[key])
    items = data.get("items") or data.get("job_ids") or data.get("jobs")
    return len(items) if isinstance(items, list) else 0


def llm_nodes(deps: RunDeps) -> dict[str, Callable[..., Any]]:
    system = SystemMessage(prompts.SYSTEM.format(threshold=threshold(), cap=BATCH_CAP))

    def model(state: JanitorState) -> Command[Literal["tools", "finish"]]:
        bound = deps.model.bind_tools(deps.toolbox.langchain_tools())
        reply = bound.invoke([system, *state.get("messages", [])])
        deps.record_llm(reply)
        goto: Literal["tools", "finish"] = "tools" if getattr(reply, "tool_calls", None) else "finish"
        return Command(goto=goto, update={"messages": [reply]})

    def tools(state: JanitorState) -> Command[Literal["model"]]:
        msgs = state.get("messages", [])
        last = msgs[-1]
        assert isinstance(last, AIMessage)
        out = []
        retried = list(state.get("retried") or [])
        for tc in last.tool_calls:
            # The key is stable when this node is replayed after an approval.
            res = deps.toolbox.call(tc["name"], dict(tc["args"]), call_key=f"tc:{len(msgs)}:{tc['id']}"[:100])
            if res.ok and res.tool == "jobs.retry":
                retried.append(int(tc["args"].get("job_id", 0)))
            out.append(ToolMessage(content=res.for_model(), tool_call_id=tc["id"] or "", name=tc["name"]))
        return Command(goto="model", update={"messages": out, "retried": retried})

    def finish(state: JanitorState) -> dict[str, Any]:
        msgs = state.get("messages", [])
        text = msgs[-1].content if msgs else ""
        return {"summary": str(text).strip() or "The model ended without a summary."}

    return {"model": model, "tools": tools, "finish": finish}
