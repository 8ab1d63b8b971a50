"""The policy engine: strict loading that names the line, decisions, rate limits, audited denials."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import select, update

import policies.engine as engine_mod
from memory.audit.models import AuditEntry
from memory.db import session_scope
from memory.policy.models import PolicyDecision
from policies.engine import PolicyDocument, PolicyEngine, PolicyError, load_policy
from tests.factories.orgs import OrgFixture
from tests.support import ROOT
from tests.support.processes import levqor_env
from tools.context import Principal, ToolContext
from tools.errors import ApprovalRequired, PolicyDenied
from tools.registry import ToolSpec, registry

BASE: dict[str, Any] = {
    "version": 1,
    "revenue_share": {"min_partner_share": 0.5, "max_partner_share": 0.85, "platform_fee_floor": 0.15},
}


def doc(actors: dict[str, Any]) -> PolicyDocument:
    return PolicyDocument.model_validate({**BASE, "actors": actors})


def spec(name: str, risk: str = "read") -> ToolSpec:
    return ToolSpec(name, lambda ctx, p: p, BaseModel, BaseModel, risk, "x")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.json"
    path.write_text(text)
    return path


def line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


# ---- loading ------------------------------------------------------------------------------------

def test_shipped_policy_is_valid_and_has_the_janitor() -> None:
    from levqor.settings import get_settings

    loaded = load_policy(get_settings().policy_path)
    janitor = loaded.actors["agent:janitor"]
    assert "jobs.retry" in janitor.allow and janitor.rate_limits and janitor.arg_limits


def test_unknown_key_is_refused_naming_key_and_line(tmp_path: Path) -> None:
    text = json.dumps({**BASE, "actors": {
        "human": {"allow": ["*"]},
        "agent:janitor": {"allow": ["jobs.list"], "rate_limits": [
            {"tool": "jobs.list", "max": 1, "window_s": 60},
            {"tool": "jobs.get", "max": 1, "window_s": 60, "windw": 5}]},
    }}, indent=2)
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    msg = str(caught.value)
    line = line_of(text, '"windw"')
    assert msg.startswith(f"{path}:{line}:"), msg
    assert "unknown key 'windw'" in msg and "actors.agent:janitor.rate_limits.1" in msg
    top = write(tmp_path, json.dumps({**BASE, "actors": {}, "approvals": {}}, indent=2))
    with pytest.raises(PolicyError, match=r"policy.json:\d+: unknown key 'approvals'"):
        load_policy(top)


def test_broken_json_names_the_line(tmp_path: Path) -> None:
    text = '{\n  "version": 1,\n  "actors": {\n    "human": {"allow": ["*"]}\n    "system": {}\n  }\n}\n'
    with pytest.raises(PolicyError, match=r"policy.json:5:\d+: invalid JSON"):
        load_policy(write(tmp_path, text))


@pytest.mark.parametrize(("where", "bad"), [
    ("allow", "jobs.GET"), ("deny", "risk:dangerous"), ("needs_approval", "jobs"), ("allow", "*.list"),
])
def test_bad_pattern_is_refused_naming_its_line(tmp_path: Path, where: str, bad: str) -> None:
    text = json.dumps({**BASE, "actors": {"agent:x": {where: ["jobs.list", bad]}}}, indent=2)
    with pytest.raises(PolicyError) as caught:
        load_policy(write(tmp_path, text))
    msg = str(caught.value)
    assert f":{line_of(text, json.dumps(bad))}:" in msg and "bad pattern" in msg and bad in msg, msg


@pytest.mark.parametrize(("actors", "expect"), [
    ({"agents:janitor": {}}, "bad actor"),
    ({"agent:x": {"rate_limits": [{"tool": "jobs", "max": 1, "window_s": 60}]}}, "bad pattern"),
    ({"agent:x": {"rate_limits": [{"tool": "jobs.list", "max": 1, "window_s": 0}]}}, "greater than 0"),
    ({"agent:x": {"arg_limits": {"jobs": {"limit": 5}}}}, "bad tool name"),
])
def test_other_mistakes_are_refused(tmp_path: Path, actors: dict[str, Any], expect: str) -> None:
    with pytest.raises(PolicyError, match=expect):
        load_policy(write(tmp_path, json.dumps({**BASE, "actors": actors}, indent=2)))


def test_revenue_share_must_be_consistent(tmp_path: Path) -> None:
    bad = {**BASE, "actors": {}, "revenue_share": {"min_partner_share": 0.9, "max_partner_share": 0.8,
                                                   "platform_fee_floor": 0.1}}
    with pytest.raises(PolicyError, match="min_partner_share"):
        load_policy(write(tmp_path, json.dumps(bad)))


def test_bad_policy_stops_start_up_naming_the_line(tmp_path: Path) -> None:
    text = json.dumps({**BASE, "actors": {"human": {"allow": ["*"], "alow": []}}}, indent=2)
    path = write(tmp_path, text)
    env = {**levqor_env(tmp_path, None, LEVQOR_POLICY_PATH=str(path)), "COLUMNS": "400"}
    for cmd in (["policy", "check"], ["api"]):
        out = subprocess.run([sys.executable, "-m", "api.cli", *cmd], env=env, cwd=ROOT, capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 2, out
        line = line_of(text, '"alow"')
        assert "unknown key 'alow'" in out.stderr and f":{line}:" in out.stderr


# ---- decisions (pure) -------------------------------------------------------------------------

def test_allow_lists_by_name_area_and_risk() -> None:
    eng = PolicyEngine(doc({
        "agent:a": {"allow": ["jobs.list", "audit.*", "risk:read"]},
        "agent:*": {"allow": []},
    }))
    assert eng.evaluate("agent:a", "agent", spec("jobs.list", "read"), {}).outcome == "allow"
    assert eng.evaluate("agent:a", "agent", spec("audit.checkpoint", "write"), {}).outcome == "allow"
    assert eng.evaluate("agent:a", "agent", spec("org.get", "read"), {}).outcome == "allow"
    d = eng.evaluate("agent:a", "agent", spec("jobs.retry", "write"), {})
    assert d.outcome == "deny" and "not in agent:a's allow-list" in d.reason
    assert eng.evaluate("agent:b", "agent", spec("jobs.list"), {}).outcome == "deny"  # falls back to agent:*


def test_deny_wins_and_needs_approval() -> None:
    eng = PolicyEngine(doc({"agent:a": {
        "allow": ["*"], "deny": ["risk:financial", "keys.create"], "needs_approval": ["jobs.*"]}}))
    d = eng.evaluate("agent:a", "agent", spec("payouts.send", "financial"), {})
    assert d.outcome == "deny" and "deny risk:financial" in d.reason
    assert eng.evaluate("agent:a", "agent", spec("keys.create", "write"), {}).outcome == "deny"
    d = eng.evaluate("agent:a", "agent", spec("jobs.retry", "write"), {})
    assert d.outcome == "needs_approval" and "jobs.*" in d.reason
    both = PolicyEngine(doc({"agent:a": {"allow": ["jobs.retry"], "deny": ["jobs.retry"],
                                         "needs_approval": ["jobs.retry"]}}))
    assert both.evaluate("agent:a", "agent", spec("jobs.retry", "write"), {}).outcome == "deny"


def test_a_tool_named_in_allow_is_pre_approved_over_approval_patterns() -> None:
    eng = PolicyEngine(doc({"agent:h": {
        "allow": ["workers.restart", "jobs.*"], "needs_approval": ["risk:destructive", "jobs.retry"]}}))
    # Destructive in general needs a person; the tool named in allow is pre-approved.
    assert eng.evaluate("agent:h", "agent", spec("workers.restart", "destructive"), {}).outcome == "allow"
    assert eng.evaluate("agent:h", "agent", spec("workers.kill", "destructive"), {}).outcome == "needs_approval"
    # A pattern in allow (jobs.*) is no pre-approval; an exact name in needs_approval always applies.
    assert eng.evaluate("agent:h", "agent", spec("jobs.purge", "destructive"), {}).outcome == "needs_approval"
    assert eng.evaluate("agent:h", "agent", spec("jobs.retry", "write"), {}).outcome == "needs_approval"


def test_shipped_healer_policy_pre_approves_its_playbook_actions_only() -> None:
    from levqor.settings import get_settings

    eng = PolicyEngine(load_policy(get_settings().policy_path))
    for name in ("workers.restart", "jobs.dead_letter"):
        assert eng.evaluate("agent:healer", "agent", registry.get(name), {}).outcome == "allow", name
    for name, risk in (("pipelines.pause_all", "destructive"), ("payouts.run", "financial")):
        assert eng.evaluate("agent:healer", "agent", spec(name, risk), {}).outcome == "needs_approval", name
    assert eng.evaluate("agent:healer", "agent", registry.get("jobs.dead_purge"), {}).outcome == "deny"


def test_actor_fallbacks() -> None:
    eng = PolicyEngine(doc({"human": {"allow": ["risk:write"]}, "system": {"allow": ["*"]},
                            "user:7": {"allow": []}}))
    assert eng.evaluate("user:3", "user", spec("org.update", "write"), {}).outcome == "allow"
    assert eng.evaluate("api_key:lvq_live_x", "api_key", spec("org.update", "write"), {}).outcome == "allow"
    assert eng.evaluate("user:7", "user", spec("org.update", "write"), {}).outcome == "deny"
    assert eng.evaluate("system:levqor", "system", spec("x.y", "destructive"), {}).outcome == "allow"
    assert eng.evaluate("agent:z", "agent", spec("x.y"), {}).outcome == "deny"  # no agent entry at all


def test_arg_limits_on_numbers_and_list_lengths() -> None:
    eng = PolicyEngine(doc({"agent:a": {"allow": ["*"], "arg_limits": {"jobs.retry_failed": {
        "limit": 50, "job_ids": 3}}}}))
    s = spec("jobs.retry_failed", "write")
    assert eng.evaluate("agent:a", "agent", s, {"limit": 50, "job_ids": [1, 2, 3]}).outcome == "allow"
    d = eng.evaluate("agent:a", "agent", s, {"limit": 51})
    assert d.outcome == "deny" and "limit=51" in d.reason and "limit 50" in d.reason
    d = eng.evaluate("agent:a", "agent", s, {"job_ids": [1, 2, 3, 4]})
    assert d.outcome == "deny" and "job_ids=4" in d.reason
    assert eng.evaluate("agent:a", "agent", s, {"limit": True, "job_ids": None}).outcome == "allow"
    assert eng.evaluate("agent:a", "agent", spec("jobs.list"), {"limit": 999}).outcome == "allow"


def test_rate_limit_patterns_are_counted_by_pattern() -> None:
    eng = PolicyEngine(doc({"agent:a": {"allow": ["*"], "rate_limits": [
        {"tool": "jobs.*", "max": 2, "window_s": 60}]}}))
    seen: list[tuple[str, int]] = []

    def count(used: int) -> Any:
        def f(pattern: str, window_s: int) -> int:
            seen.append((pattern, window_s))
            return used
        return f

    assert eng.evaluate("agent:a", "agent", spec("jobs.get"), {}, recent_count=count(1)).outcome == "allow"
    d = eng.evaluate("agent:a", "agent", spec("jobs.retry"), {}, recent_count=count(2))
    assert d.outcome == "deny" and "rate limit" in d.reason
    assert seen == [("jobs.*", 60), ("jobs.*", 60)]
    assert eng.evaluate("agent:a", "agent", spec("audit.search"), {}, recent_count=count(99)).outcome == "allow"


# ---- decide() through the registry: recorded, rate-limited, audited --------------------------------

@pytest.fixture()
def policy(monkeypatch: pytest.MonkeyPatch) -> Any:
    def install(actors: dict[str, Any]) -> PolicyEngine:
        eng = PolicyEngine(doc({"human": {"allow": ["*"]}, "system": {"allow": ["*"]}, **actors}))
        monkeypatch.setattr(engine_mod, "_engine", eng)
        return eng
    return install


def agent_ctx(s: Any, org: OrgFixture, name: str) -> ToolContext:
    return ToolContext(s, Principal(kind="agent", id=name, org_id=org.org_id, role="admin"),
                       request_id=f"req-{name}")


def denials(actor: str) -> list[AuditEntry]:
    with session_scope() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.actor == actor,
                                                       AuditEntry.action == "policy.denied")
                              .order_by(AuditEntry.seq)))


def test_rate_limit_counts_recorded_agent_decisions_in_the_window(policy: Any, org: OrgFixture) -> None:
    name = f"rate{org.org_id}"
    policy({f"agent:{name}": {"allow": ["audit.*"], "rate_limits": [
        {"tool": "audit.search", "max": 3, "window_s": 60}, {"tool": "audit.*", "max": 5, "window_s": 60}]}})
    for _ in range(3):
        with session_scope() as s:
            registry.invoke("audit.search", agent_ctx(s, org, name), {})
    with pytest.raises(PolicyDenied, match="rate limit.*audit.search 3 times per 60s"):
        with session_scope() as s:
            registry.invoke("audit.search", agent_ctx(s, org, name), {})
    for _ in range(2):  # another tool of the area is only under the area-wide limit
        with session_scope() as s:
            registry.invoke("audit.verify", agent_ctx(s, org, name), {})
    with pytest.raises(PolicyDenied, match=r"audit\.\* 5 times"):
        with session_scope() as s:
            registry.invoke("audit.verify", agent_ctx(s, org, name), {})
    with session_scope() as s:
        rows = list(s.scalars(select(PolicyDecision).where(PolicyDecision.actor == f"agent:{name}")))
        assert [r.decision for r in rows] == ["allow"] * 5 and rows[0].tool == "audit.search"
        # Once the recorded decisions are older than the window, calls are allowed again.
        s.execute(update(PolicyDecision).where(PolicyDecision.actor == f"agent:{name}")
                  .values(ts=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=61)))
    with session_scope() as s:
        registry.invoke("audit.search", agent_ctx(s, org, name), {})
    assert len(denials(f"agent:{name}")) == 2


def test_every_denial_is_audited_even_when_the_caller_rolls_back(policy: Any, org: OrgFixture) -> None:
    name = f"deny{org.org_id}"
    policy({f"agent:{name}": {"allow": ["audit.search"], "arg_limits": {"audit.search": {"limit": 100}},
                              "needs_approval": ["audit.checkpoint"]}})
    from tools.enterprise.audit_log import append

    with pytest.raises(PolicyDenied) as caught:
        with session_scope() as s:
            # The caller already holds the chain head (and on SQLite the write lock): the denial
            # must still be written, after this transaction ends, without waiting on it.
            append(s, actor=f"agent:{name}", action="test.rolled_back", org_id=org.org_id)
            registry.invoke("audit.search", agent_ctx(s, org, name), {"limit": 200})
    assert caught.value.status_code == 403 and "limit=200" in caught.value.detail
    with pytest.raises(PolicyDenied, match="allow-list"):
        with session_scope() as s:
            registry.invoke("events.retry", agent_ctx(s, org, name), {"delivery_id": 1})
    with pytest.raises(ApprovalRequired):
        with session_scope() as s:
            registry.invoke("audit.checkpoint", agent_ctx(s, org, name), {})
    got = denials(f"agent:{name}")
    assert [(e.target, e.outcome) for e in got] == [("audit.search", "denied"), ("events.retry", "denied")]
    assert got[0].detail is not None and got[0].detail["args"]["limit"] == 200
    assert "over the policy limit" in got[0].detail["reason"] and got[0].request_id == f"req-{name}"
    assert got[0].org_id == org.org_id
    with session_scope() as s:
        assert not list(s.scalars(select(AuditEntry).where(AuditEntry.action == "test.rolled_back",
                                                           AuditEntry.actor == f"agent:{name}")))
        from tools.enterprise.audit_log import verify_chain

        assert verify_chain(s).ok


def test_a_denial_the_caller_catches_is_audited_once(policy: Any, org: OrgFixture) -> None:
    name = f"catch{org.org_id}"
    policy({f"agent:{name}": {"allow": []}})
    with session_scope() as s:
        with pytest.raises(PolicyDenied):
            registry.invoke("audit.search", agent_ctx(s, org, name), {})
        from tools.enterprise.audit_log import append

        append(s, actor=f"agent:{name}", action="test.after_denial", org_id=org.org_id)
    got = [e.action for e in denials(f"agent:{name}")]
    assert got == ["policy.denied"]
    with session_scope() as s:  # the denial was written after the caller's own entry committed
        rows = list(s.scalars(select(AuditEntry.action).where(AuditEntry.actor == f"agent:{name}")
                              .order_by(AuditEntry.seq)))
    assert rows == ["test.after_denial", "policy.denied"]
