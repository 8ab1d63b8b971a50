"""The examiner on the agent runtime: undecided free-text answers get a proposed mark that a person
approves (or edits) through the approvals before the attempt is re-graded; flagged attempts are reported;
offline and against the local fake OpenAI server."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from memory.db import session_scope
from tests.api.test_certification import right_answers, start
from tests.factories.orgs import OrgFixture
from tools.certification.bank import load
from tools.certification.matcher import mark

PARAPHRASE = "the unique message identifier header that stays the same on retries"


def _review_attempt(client: Any, org: OrgFixture, set_settings: Any, email: str) -> dict[str, Any]:
    set_settings(cert_pass_percent=100)
    # The draw is random and not stratified by type: with 8 free-text questions in the bank of 100, about
    # one draw of 40 in 60 has none (it failed CI once); such an attempt is left open and another candidate
    # (a retake of the same one would wait for the cooldown) starts one.
    for i in range(20):
        a = start(client, org, email if i == 0 else f"retry{i}-{email}")
        texts = [q["id"] for q in a["questions"] if q["type"] == "text"]
        if texts:
            break
    else:
        raise AssertionError("no free-text question in 20 draws")
    answers = right_answers(a)
    for qid in texts:
        answers[qid] = PARAPHRASE
    res = client.post(f"/v1/certification/exams/{a['id']}/submit", headers=org.headers(),
                      json={"answers": answers}).json()
    assert res["status"] == "review" and res["undecided"] == len(texts) and res["certificate_id"] is None, res
    return res


def test_matcher_says_when_it_cannot_decide() -> None:
    q = load().by_id()["auto-018"]
    assert q.rubric is not None
    assert mark("webhook-id", q.rubric) == "correct"
    assert mark("The Webhook-ID header.", q.rubric) == "correct"
    assert mark("webhook-timestamp", q.rubric) == "wrong"
    assert mark("no idea", q.rubric) == "wrong"
    assert mark(PARAPHRASE, q.rubric) == "undecided"


def test_examiner_asks_a_person_and_the_approved_marks_regrade(client, org: OrgFixture, set_settings) -> None:
    from agents.runtime import start_run
    from memory.agents.models import AgentApproval, AgentRun

    res = _review_attempt(client, org, set_settings, "eve@acme-test.io")
    run_id = start_run("examiner", org.org_id, "manual")
    with session_scope() as s:
        ap = s.scalar(select(AgentApproval).where(AgentApproval.run_id == run_id))
        assert ap is not None and ap.tool == "exam.resolve_review" and ap.args["attempt_id"] == res["id"]
        proposed = dict(ap.args["marks"])
        ap_id = ap.id
    assert set(proposed.values()) == {"wrong"}  # offline: no key term present, proposed wrong
    # The reviewer reads the paraphrase as right and approves with edited marks.
    edited = {"attempt_id": res["id"], "marks": {q: "correct" for q in proposed}}
    r = client.post(f"/v1/approvals/{ap_id}/approve", headers=org.headers(), json={"args": edited})
    assert r.status_code == 200, r.text
    after = client.get(f"/v1/certification/exams/{res['id']}", headers=org.headers()).json()
    assert after["status"] == "graded" and after["passed"] is True and after["certificate_id"]
    with session_scope() as s:
        run = s.get(AgentRun, run_id)
        assert run is not None and run.status == "succeeded", run.error if run else None
    actions = [e["action"] for e in client.get("/v1/audit", headers=org.headers()).json()["items"]]
    assert "certification.review_resolved" in actions


def test_examiner_uses_the_llm_when_configured(client, org: OrgFixture, set_settings, fake_llm) -> None:
    from agents.runtime import start_run
    from memory.agents.models import AgentApproval

    res = _review_attempt(client, org, set_settings, "llm-eve@acme-test.io")
    script = fake_llm(lambda body: {"content": '{"mark": "correct", "reason": "names the message id header"}'})
    run_id = start_run("examiner", org.org_id, "manual")
    with session_scope() as s:
        ap = s.scalar(select(AgentApproval).where(AgentApproval.run_id == run_id))
        assert ap is not None and ap.args["attempt_id"] == res["id"]
        assert set(ap.args["marks"].values()) == {"correct"}  # the model's marks, still for a person
    assert script.requests and PARAPHRASE in json.dumps(script.requests[0])


def test_examiner_is_listed_with_its_tools() -> None:
    from tools.agents.catalog import offered_tools

    offered = offered_tools("examiner")
    assert offered["exam.reviews"][1] == "allow" and offered["exam.resolve_review"][1] == "needs_approval"
    assert "certificates.revoke" not in offered
