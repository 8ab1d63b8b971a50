"""Janitor evaluation cases (tests/evals/janitor/*.yaml): setup, trigger, expected tool calls and outcome.

Every case runs offline and in LLM mode against the local OpenAI-compatible fake (scripted tool calls,
real HTTP through langchain-openai). ``make evals`` adds the ``real`` mode against a configured model,
which may choose its own calls: only the outcome is checked there.
"""

from __future__ import annotations

import datetime as dt
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select, update

from memory.agents.models import AgentApproval, AgentRun, AgentToolCall
from memory.audit.models import AuditEntry
from memory.db import session_scope
from tests.factories.orgs import make_org
from tests.fakes import jobs_tools as fj
from tests.fakes.openai import FakeOpenAI, Script
from tests.support import ROOT

CASES = sorted((ROOT / "tests" / "evals" / "janitor").glob("*.yaml"))
MODES = ["offline", "llm"] + (["real"] if os.environ.get("LEVQOR_EVALS_REAL") == "1" else [])


def _load(path: Path) -> dict[str, Any]:
    case = yaml.safe_load(path.read_text())
    for key in ("name", "setup", "trigger", "expected"):
        assert key in case, f"{path.name}: missing {key!r}"
    return dict(case)


def _subst(value: Any, ids: list[int]) -> Any:
    if isinstance(value, str) and value.startswith("$job"):
        return ids[int(value[4:])]
    if isinstance(value, dict):
        return {k: _subst(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_subst(v, ids) for v in value]
    return value


def _decide(approval_id: int, org_id: int, how: str) -> None:
    from agents.runtime import expire_approvals, resume_after_commit
    from tools.agents.service import ApprovalDecision, approve, reject
    from tools.context import Principal, ToolContext

    if how == "expire":
        with session_scope() as s:
            s.execute(update(AgentApproval).where(AgentApproval.id == approval_id).values(
                expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
        expire_approvals()
        return
    person = Principal(kind="user", id="eval", org_id=org_id, role="admin", name="eval reviewer")
    with session_scope() as s:
        # As an edge does: decide with the tool, resume the run once the decision has committed.
        decide = approve if how == "approve" else reject
        out = decide(ToolContext(s, person), ApprovalDecision(approval_id=approval_id))
        resume_after_commit(s, out.id)


def _trigger(case: dict[str, Any], org_id: int) -> int:
    from agents.runtime import start_run
    from tools.events.service import emit
    from workers.dispatcher import dispatch_pending

    if case["trigger"] != "event":
        return start_run("janitor", org_id, case["trigger"])
    with session_scope() as s:
        emit(s, "job_failed", {"job_id": 1}, org_id=org_id)
    for _ in range(10):
        dispatch_pending()  # the janitor reacts to job_failed (janitor_on_job_failed sets the trigger)
        with session_scope() as s:
            run_id = s.scalar(select(AgentRun.id).where(AgentRun.org_id == org_id,
                                                        AgentRun.trigger == "event"))
        if run_id:
            return int(run_id)
    raise AssertionError("the job_failed event did not start the janitor")


@pytest.mark.usefixtures("fake_jobs", "janitor_on_job_failed")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_janitor_eval(path: Path, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    case = _load(path)
    org = make_org()
    ids: list[int] = []
    for spec in case["setup"]["jobs"]:
        spec = dict(spec)
        for _ in range(int(spec.pop("count", 1))):
            ids.append(fj.add_job(org.org_id, **spec))
    expected = {**case["expected"], **(case.get("llm_expected") or {} if mode == "llm" else {})}
    server = None
    if mode == "llm":
        server = FakeOpenAI(Script(_subst(case["llm_script"], ids)))
        monkeypatch.setenv("OPENAI_BASE_URL", server.__enter__())
        monkeypatch.setenv("OPENAI_API_KEY", "sk-fake")
        monkeypatch.setenv("LEVQOR_LLM_MAX_RETRIES", "0")
    elif mode == "real":
        monkeypatch.setenv("OPENAI_API_KEY", os.environ["LEVQOR_EVALS_OPENAI_API_KEY"])
        if os.environ.get("LEVQOR_EVALS_OPENAI_BASE_URL"):
            monkeypatch.setenv("OPENAI_BASE_URL", os.environ["LEVQOR_EVALS_OPENAI_BASE_URL"])
    try:
        run_id = _trigger(case, org.org_id)
        with session_scope() as s:
            ap_ids = list(s.scalars(select(AgentApproval.id).where(AgentApproval.run_id == run_id)))
        if case.get("decide") and ap_ids:
            _decide(ap_ids[0], org.org_id, case["decide"])
    finally:
        if server is not None:
            server.__exit__(None, None, None)
    with session_scope() as s:
        run = s.get(AgentRun, run_id)
        assert run is not None
        calls = [(c.tool, c.outcome) for c in s.scalars(
            select(AgentToolCall).where(AgentToolCall.run_id == run_id).order_by(AgentToolCall.id))]
        approvals = s.scalars(select(AgentApproval).where(AgentApproval.run_id == run_id)).all()
        audited = {e.action for e in s.scalars(select(AuditEntry).where(AuditEntry.org_id == org.org_id))}
        status, summary, run_mode = run.status, run.summary or "", run.mode
    assert run_mode == ("offline" if mode == "offline" else "llm")
    assert status == expected["status"], f"{path.name} [{mode}]: run {status}: {run.error}"
    states = Counter(fj.job(i)["state"] for i in ids)
    assert dict(states) == expected["jobs"], f"{path.name} [{mode}]: jobs {dict(states)}"
    if mode == "real":
        offered = {"jobs.list", "jobs.get", "jobs.retry", "jobs.retry_failed", "agents.recent_calls"}
        assert {t for t, o in calls if o not in ("refused", "denied")} <= offered
        return
    assert [t for t, _o in calls] == expected["tool_calls"], f"{path.name} [{mode}]: {calls}"
    outcomes = dict(calls)
    for tool, outcome in (expected.get("outcomes") or {}).items():
        assert outcomes[tool] == outcome, f"{path.name} [{mode}]: {tool} was {outcomes[tool]}"
    assert len(approvals) == expected["approvals"]
    for action in expected.get("audited") or []:
        assert action in audited, f"{path.name} [{mode}]: no {action} in the audit log"
    if mode == "offline":
        for text in expected.get("summary_contains") or []:
            assert text in summary, f"{path.name}: summary {summary!r} lacks {text!r}"
