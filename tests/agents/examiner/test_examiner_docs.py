"""The examiner proposes new questions when the docs change: the first scan is a baseline; a changed page
gets a drafted question (offline template, or the model against the local fake OpenAI server) that a person
approves (it joins the bank through the overlay, validated like exam.yaml), edits or rejects; a version of a
page that was proposed is never proposed again. Only the organisation that owns the bank watches."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select

from memory.certification.models import BankQuestion, DocPage, QuestionProposal
from memory.db import session_scope
from tests.factories.orgs import OrgFixture, make_org
from tools.certification import bank as bank_mod

REPO = Path(__file__).resolve().parents[3]
PAGE = "docs/dev_portal/pipelines.md"
NEW_SECTION = ("\n## Dry runs\n\nA dry run validates every step of a pipeline without calling any endpoint. "
               "It costs no credits.\n")


def _wipe() -> None:
    with session_scope() as s:
        for model in (BankQuestion, QuestionProposal, DocPage):
            s.execute(delete(model))


@pytest.fixture()
def docs(tmp_path: Path, org: OrgFixture, set_settings: Any) -> Iterator[Path]:
    """A docs tree of two real pages under a scratch root, watched for ``org`` (the bank's owner); the
    watch's tables are emptied before and after (the bank overlay must not reach other tests' exams)."""
    for rel in (PAGE, "docs/dev_portal/integrity.md"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / rel, tmp_path / rel)
    set_settings(cert_docs_root=str(tmp_path), staff_orgs=[org.slug])
    _wipe()
    yield tmp_path / PAGE
    _wipe()


def _run(org: OrgFixture) -> int:
    from agents.runtime import start_run

    return start_run("examiner", org.org_id, "manual")


def _run_state(run_id: int) -> tuple[str, str]:
    from memory.agents.models import AgentRun

    with session_scope() as s:
        run = s.get(AgentRun, run_id)
        assert run is not None
        return run.status, str(run.summary or run.error or "")


def _approval(run_id: int) -> tuple[int, dict[str, Any]]:
    from memory.agents.models import AgentApproval

    with session_scope() as s:
        ap = s.scalar(select(AgentApproval).where(AgentApproval.run_id == run_id))
        assert ap is not None and ap.tool == "exam.add_question", ap
        return ap.id, dict(ap.args)


def _proposals() -> list[tuple[str, str, str]]:
    with session_scope() as s:
        rows = s.scalars(select(QuestionProposal).order_by(QuestionProposal.id))
        return [(p.status, p.source, p.digest) for p in rows]


def test_docs_change_offline_draft_approved_joins_bank_rejected_never_again(
        client, org: OrgFixture, docs: Path) -> None:
    outsider = make_org()
    run = _run(outsider)  # not the bank's owner: no scan, nothing recorded
    assert _run_state(run)[0] == "succeeded"
    with session_scope() as s:
        assert s.scalar(select(DocPage.path)) is None

    run = _run(org)
    status, summary = _run_state(run)
    assert status == "succeeded" and "baseline" in summary, summary
    assert _proposals() == []

    docs.write_text(docs.read_text(encoding="utf-8") + NEW_SECTION, encoding="utf-8")
    run = _run(org)
    assert _run_state(run)[0] == "waiting_approval"
    ap_id, args = _approval(run)
    q = args["question"]
    assert q["type"] == "single" and q["ref"] == f"{PAGE}#dry-runs"
    assert q["topic"] == "templates"  # as most questions on the page
    assert "A dry run validates every step of a pipeline without calling any endpoint" in q["prompt"]
    assert q["options"][q["answer"][0]] == "Dry runs" and len(q["options"]) == 4
    qid = q["id"]
    assert qid == "tmpl-026"  # the next free id of the topic's prefix
    r = client.post(f"/v1/approvals/{ap_id}/approve", headers=org.headers(), json={})
    assert r.status_code == 200, r.text
    assert _run_state(run)[0] == "succeeded"
    with session_scope() as s:
        bank = bank_mod.current(s)
        assert len(bank.questions) == 101 and bank.by_id()[qid].ref == f"{PAGE}#dry-runs"
    assert [p[0] for p in _proposals()] == ["approved"]
    actions = [e["action"] for e in client.get("/v1/audit", headers=org.headers()).json()["items"]]
    assert "certification.question_added" in actions

    run = _run(org)  # nothing changed since: nothing proposed
    assert _run_state(run)[0] == "succeeded" and len(_proposals()) == 1

    version_b = (docs.read_text(encoding="utf-8")
                 + "\n## Pausing\n\nA paused queue keeps its jobs queued until it resumes.\n")
    docs.write_text(version_b, encoding="utf-8")
    run = _run(org)
    ap_id, args = _approval(run)
    assert args["question"]["id"] == "tmpl-027"
    client.post(f"/v1/approvals/{ap_id}/reject", headers=org.headers(), json={"note": "too trivial"})
    assert _run_state(run)[0] == "succeeded"
    assert [p[0] for p in _proposals()] == ["approved", "rejected"]

    docs.write_text(version_b + "\n## Draining\n\nA drained worker finishes its current job and takes no new one.\n",
                    encoding="utf-8")
    run = _run(org)
    ap_id, _ = _approval(run)
    client.post(f"/v1/approvals/{ap_id}/reject", headers=org.headers(), json={})
    docs.write_text(version_b, encoding="utf-8")  # back to the rejected version: never proposed again
    run = _run(org)
    assert _run_state(run)[0] == "succeeded"
    assert [p[0] for p in _proposals()] == ["approved", "rejected", "rejected"]
    with session_scope() as s:
        assert len(bank_mod.current(s).questions) == 101


def test_edited_approval_is_validated_like_the_bank(client, org: OrgFixture, docs: Path) -> None:
    _run(org)
    docs.write_text(docs.read_text(encoding="utf-8") + NEW_SECTION, encoding="utf-8")
    run = _run(org)
    ap_id, args = _approval(run)
    bad = {**args, "question": {**args["question"], "ref": f"{PAGE}#no-such-heading"}}
    client.post(f"/v1/approvals/{ap_id}/approve", headers=org.headers(), json={"args": bad})
    assert _run_state(run)[0] == "succeeded"
    with session_scope() as s:
        assert len(bank_mod.current(s).questions) == 100
        p = s.scalar(select(QuestionProposal))
        assert p is not None and p.status == "rejected" and "no heading #no-such-heading" in p.note


def test_llm_drafts_the_question_and_a_bad_draft_falls_back_to_the_template(
        client, org: OrgFixture, docs: Path, fake_llm: Any) -> None:
    _run(org)
    drafted = {"type": "multiple", "difficulty": "easy", "prompt": "What does a dry run of a pipeline do?",
               "options": {"a": "Validates every step", "b": "Calls no endpoint", "c": "Charges credits",
                           "d": "Deletes the pipeline"},
               "answer": ["a", "b"], "explanation": "A dry run validates every step and calls no endpoint.",
               "anchor": "dry-runs"}
    replies = [json.dumps(drafted), "I would rather not."]
    script = fake_llm(lambda body: {"content": replies.pop(0)})
    docs.write_text(docs.read_text(encoding="utf-8") + NEW_SECTION, encoding="utf-8")
    run = _run(org)
    ap_id, args = _approval(run)
    q = args["question"]
    assert q["prompt"] == drafted["prompt"] and q["answer"] == ["a", "b"] and q["ref"] == f"{PAGE}#dry-runs"
    assert "A dry run validates every step" in json.dumps(script.requests[0])
    client.post(f"/v1/approvals/{ap_id}/approve", headers=org.headers(), json={})
    with session_scope() as s:
        assert bank_mod.current(s).by_id()[q["id"]].type == "multiple"

    docs.write_text(docs.read_text(encoding="utf-8") + "\n## Pausing\n\nA paused queue keeps its jobs queued.\n",
                    encoding="utf-8")
    run = _run(org)
    _, args = _approval(run)
    assert args["question"]["prompt"].startswith(f"Which section of {PAGE} says")
    assert [p[:2] for p in _proposals()] == [("approved", "llm"), ("pending", "offline")]
    with session_scope() as s:
        note = s.scalars(select(QuestionProposal.note).order_by(QuestionProposal.id.desc())).first()
        assert note is not None and "the model gave no question" in note
