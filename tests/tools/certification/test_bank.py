"""The question bank: it loads, it is whole, and its facts agree with the code they describe."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tools.certification import bank as bank_mod
from tools.certification.bank import BankError, check_ref, load, parse

BANK_TEXT = bank_mod.BANK_PATH.read_text(encoding="utf-8")


def _raw() -> dict:
    return yaml.safe_load(BANK_TEXT)


def test_bank_has_100_valid_questions_across_topics_types_and_difficulties() -> None:
    bank = load()
    assert len(bank.questions) == 100
    assert len({q.id for q in bank.questions}) == 100
    assert set(Counter(q.topic for q in bank.questions)) == {"automation", "integrity", "templates"}
    assert set(Counter(q.type for q in bank.questions)) == {"single", "multiple", "ordering", "text"}
    by_cell = Counter((q.topic, q.difficulty) for q in bank.questions)
    assert all(by_cell[(t, d)] >= 2 for t in bank.topics for d in ("easy", "medium", "hard")), by_cell
    for q in bank.questions:
        assert check_ref(q.ref) is None


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r["questions"].append(dict(r["questions"][0])), "duplicate id"),
    (lambda r: r["questions"][0].update(ref="docs/dev_portal/index.md#no-such-heading"), "no heading #no-such-heading"),
    (lambda r: r["questions"][0].update(ref="docs/nothing.md#x"), "no docs page docs/nothing.md"),
    (lambda r: r["questions"][0].update(answer=["z"]), "answer must name option ids"),
    (lambda r: r["questions"][0].update(answer=[]), "answer must name option ids"),
    (lambda r: r["questions"][0].pop("explanation"), "explanation"),
    (lambda r: r["questions"][0].update(colour="red"), "colour"),
    (lambda r: r["questions"][0].update(topic="cooking"), "unknown topic"),
    (lambda r: r["questions"][0].update(type="ordering"), "ordering answer lists every option"),
    (lambda r: r["questions"][1].update(answer=list(r["questions"][1]["options"])), "at least one wrong option"),
])
def test_a_broken_bank_does_not_load_and_names_the_fault(mutate, message) -> None:  # type: ignore[no-untyped-def]
    raw = _raw()
    mutate(raw)
    with pytest.raises(BankError, match=re.escape(message)):
        parse(yaml.safe_dump(raw))


def test_headings_in_code_fences_are_not_anchors(tmp_path: Path) -> None:
    page = tmp_path / "docs" / "p.md"
    page.parent.mkdir()
    page.write_text("# Real heading\n```bash\n# not a heading\n```\n## Rate limits and usage tiers\n")
    assert bank_mod.anchors(page) == {"real-heading", "rate-limits-and-usage-tiers"}
    assert check_ref("docs/p.md#not-a-heading", tmp_path) is not None


def _templates() -> list[dict]:
    text = (bank_mod.ROOT / "docs/dev_portal/pipelines.md").read_text()
    section = text.split("## Templates", 1)[1]
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", section, re.S)]


def test_every_documented_pipeline_template_is_a_valid_pipeline() -> None:
    from tools.jobs.pipelines import PipelineCreate

    templates = _templates()
    assert len(templates) == 5
    for t in templates:
        PipelineCreate.model_validate(t)


def _answer(qid: str) -> list[str]:
    q = load().by_id()[qid]
    return [q.options[a] for a in q.answer]


def test_answers_agree_with_the_code() -> None:
    """Facts in the bank, re-read from the code and policy they describe (a change there fails here)."""
    from policies.engine import get_engine
    from tools.enterprise.rbac import ROLE_PERMISSIONS
    from tools.events.service import KNOWN_EVENTS
    from tools.jobs import outcomes, pipelines
    from tools.jobs.pipelines import DelayStep, HttpStep, PipelineCreate, Trigger

    fields = PipelineCreate.model_fields
    assert _answer("auto-001") == [f"1 to {pipelines.MAX_STEPS}"]
    assert _answer("auto-003") == [str(fields["max_attempts"].default)]
    assert _answer("auto-038") == [f"{fields['timeout_s'].default} s"]
    assert _answer("auto-008") == [f"{outcomes.MAX_BACKOFF_S:g} s"]
    assert 2 * 2 * 0.5 == 2 and 2 * 2 * 1.5 == 6  # auto-007: base 2, after attempt 2, jitter 0.5..1.5
    assert _answer("tmpl-014") == [f"{DelayStep.model_fields['seconds'].metadata[1].le:g} s"]
    assert set(_answer("auto-011")) == set(Trigger.model_fields["type"].annotation.__args__)  # type: ignore[union-attr]
    kinds = {m.model_fields["kind"].annotation.__args__[0] for m in (HttpStep, pipelines.TransformStep,  # type: ignore[union-attr]
                                                                       DelayStep, pipelines.NotifyStep)}
    assert set(_answer("auto-002")) == kinds
    assert {"job_dead", "job_complete", "job_failed"} <= KNOWN_EVENTS
    assert set(_answer("integ-008")) == set(ROLE_PERMISSIONS)
    policy = get_engine().doc
    assert _answer("integ-030") == [f"{policy.revenue_share.max_partner_share:g}"]
    janitor = policy.actors["agent:janitor"]
    assert "jobs.retry_failed" in janitor.needs_approval
    assert "risk:destructive" in policy.actors["agent:*"].needs_approval


def test_the_examples_in_questions_behave_as_the_answers_say() -> None:
    from tools.jobs.outcomes import backoff_seconds
    from tools.jobs.pipelines import next_fire, render, search
    from tools.shared.ssrf import SSRFBlocked, check_url

    assert render({"n": "{{ input.count }}"}, {"input": {"count": 3}}) == {"n": 3}  # tmpl-003
    assert render("Count: {{ input.count }}", {"input": {"count": 3}}) == "Count: 3"  # tmpl-004
    assert search("prev.body.{id: id, email: email}",  # tmpl-023
                  {"prev": {"body": {"id": 1, "email": "a@b.c", "x": 2}}}) == {"id": 1, "email": "a@b.c"}
    assert search("length(prev.body.items)", {"prev": {"body": {"items": [1, 2]}}}) == 2  # tmpl-024
    assert search("steps[0]", {"steps": ["first", "second"]}) == "first"  # tmpl-006
    assert all(2.0 <= backoff_seconds(2.0, 2) <= 6.0 for _ in range(200))  # auto-007
    import datetime as dt
    fri = dt.datetime(2026, 12, 4, 8, 0, tzinfo=dt.UTC)  # a Friday after 07:00: next is Monday 07:00
    assert next_fire("0 7 * * mon-fri", fri) == dt.datetime(2026, 12, 7, 7, 0, tzinfo=dt.UTC)  # tmpl-011
    with pytest.raises(ValueError):
        next_fire("0 */5 * * * *", fri)  # auto-010: six fields are refused
    for url in ("http://localhost/", "http://127.1/", "http://[::ffff:127.0.0.1]/", "http://169.254.169.254/"):
        with pytest.raises(SSRFBlocked):  # integ-022
            check_url(url, resolve=False)
    assert int(999 * 0.7) == 699  # integ-031: floor(amount x share)
