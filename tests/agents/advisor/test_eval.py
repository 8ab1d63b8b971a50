"""Advisor evaluation (offline mode): every in-scope question in tests/evals/advisor/ is answered with
the expected tools and numbers; every figure in an answer appears in that turn's tool results; questions
outside the documented types are refused plainly; the SSE endpoint streams tool calls and the answer."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from tests.factories.orgs import OrgFixture, org_ctx
from tests.factories.pulse import seeded_org
from tests.support import ROOT

CASES: list[dict[str, Any]] = yaml.safe_load((ROOT / "tests" / "evals" / "advisor" /
                                              "questions.yaml").read_text())


@pytest.fixture(scope="module")
def sorg() -> OrgFixture:
    return seeded_org()


def _resolve(result: Any, path: str) -> Any:
    for part in path.split("."):
        result = result[int(part)] if isinstance(result, list) else result[part]
    return result


def _format(value: Any, how: str) -> str:
    from tools.pulse.report import fmt

    if how in ("cents", "percent", "count"):
        return fmt(float(value), how)
    if how == "signed":
        return f"{value:+}"
    return str(value)


NUMBER = re.compile(r"(?<![\w.\-])[-+]?\$?\d[\d,]*(?:\.\d+)?")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _numbers_in(value: Any, out: set[float], strings: set[str]) -> None:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int | float):
        out.add(float(value))
    elif isinstance(value, str):
        strings.add(value)
        for m in NUMBER.findall(value):
            out.add(float(m.replace("$", "").replace(",", "")))
    elif isinstance(value, dict):
        for k, v in value.items():
            _numbers_in(k, out, strings)
            _numbers_in(v, out, strings)
    elif isinstance(value, list):
        # a list's length and its items' ranks are grounded too ("Ranking of 2 listed plugins: 1. ... 2. ...")
        out.update(float(i) for i in range(len(value) + 1))
        for v in value:
            _numbers_in(v, out, strings)


def ungrounded_numbers(answer: str, calls: list[Any]) -> list[str]:
    """Figures in ``answer`` that no tool result (or argument) of the turn explains."""
    found: set[float] = set()
    strings: set[str] = set()
    for c in calls:
        _numbers_in(c.result, found, strings)
        _numbers_in(c.args, found, strings)
    candidates = set(found)
    for v in found:  # the advisor shows cents as dollars and rounds for display
        for x in (v, v / 100):
            for d in (0, 1, 2, 3):
                candidates.add(round(x, d))
    text = answer
    for d in DATE.findall(answer):
        assert any(d in s for s in strings), f"date {d} not in tool results"
        text = text.replace(d, " ")
    bad = []
    for raw in NUMBER.findall(text):
        v = float(raw.replace("$", "").replace(",", ""))
        if not any(abs(v - c) < 1e-9 or abs(abs(v) - abs(c)) < 1e-9 for c in candidates):
            bad.append(raw)
    return bad


@pytest.mark.parametrize("case", CASES, ids=[c["question"][:50] for c in CASES])
def test_eval_case(sorg: OrgFixture, case: dict[str, Any]) -> None:
    from memory.db import session_scope
    from tools.decision_engine.advisor import answer

    with session_scope() as s:
        out = answer(org_ctx(s, sorg.org_id), case["question"])
    assert out.question_type == case["type"], (case["question"], out.question_type)
    assert out.in_scope == (case["type"] is not None)
    assert [c.tool for c in out.tool_calls] == case["tools"], out.tool_calls
    assert all(c.error is None for c in out.tool_calls), out.answer
    for phrase in case["phrases"]:
        assert phrase in out.answer, (phrase, out.answer)
    results = {c.tool: c.result for c in out.tool_calls}
    for ref in case["numbers"]:
        spec, how = ref.split("|")
        tool_name, path = spec.split(":")
        expected = _format(_resolve(results[tool_name], path), how)
        assert expected in out.answer, (ref, expected, out.answer)
    assert ungrounded_numbers(out.answer, out.tool_calls) == [], out.answer
    if case["type"] is None:
        assert not re.search(r"\d", out.answer.split("I can answer")[0])


def test_eval_set_is_large_enough_and_covers_every_type() -> None:
    from tools.decision_engine.advisor import QUESTION_TYPES

    in_scope = [c for c in CASES if c["type"]]
    assert len(in_scope) >= 30
    assert {c["type"] for c in in_scope} == set(QUESTION_TYPES)


def test_grounding_check_catches_an_invented_number() -> None:
    from tools.decision_engine.advisor import ToolCallRecord

    calls = [ToolCallRecord(tool="costs.summary", args={"days": 30}, result={"total_cents": 12345})]
    assert ungrounded_numbers("Spend was $123.45 over 30 days.", calls) == []
    assert ungrounded_numbers("Spend was $123.45 over 30 days, up 12 %.", calls) == ["12"]
    ranked = [ToolCallRecord(tool="marketplace.list", args={}, result={"plugins": [{"installs": 1}, {"installs": 0}]})]
    assert ungrounded_numbers("Ranking of 2 listed plugins: 1. Beta (1 installs) 2. Alpha (0 installs)", ranked) == []
    assert ungrounded_numbers("Ranking of 3 listed plugins: 1. Beta (1 installs)", ranked) == ["3"]


def test_sse_endpoint_streams_tool_calls_and_answer(client, sorg: OrgFixture) -> None:
    r = client.post("/v1/advisor/ask", json={"question": "What if Pro goes from $29 to $35?"},
                    headers=sorg.headers("viewer"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = []
    for block in r.text.strip().split("\n\n"):
        name = re.search(r"^event: (.*)$", block, re.M).group(1)  # type: ignore[union-attr]
        data = json.loads(re.search(r"^data: (.*)$", block, re.M).group(1))  # type: ignore[union-attr]
        events.append((name, data))
    names = [n for n, _ in events]
    assert names[0] == "mode" and names[-1] == "done"
    assert ("tool_call" in names) and names.index("tool_call") < names.index("tool_result") < names.index("token")
    call = next(d for n, d in events if n == "tool_call")
    assert call == {"tool": "decision.simulate_price", "args": {"plan": "pro", "new_price_cents": 3500,
                                                                "current_price_cents": 2900}}
    streamed = "".join(d["text"] for n, d in events if n == "token")
    assert streamed == events[-1][1]["answer"] and events[-1][1]["in_scope"]
    js = client.post("/v1/advisor/ask", params={"stream": "false"}, json={"question": "Sing a song"},
                     headers=sorg.headers("viewer")).json()
    assert js["in_scope"] is False and js["tool_calls"] == []
    assert client.post("/v1/advisor/ask", json={"question": ""}, headers=sorg.headers()).status_code == 422
