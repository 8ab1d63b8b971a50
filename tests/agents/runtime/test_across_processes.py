"""Across processes: an approval round trip (pause in one process, approve and resume in another)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from memory.agents.models import AgentApproval, AgentRun
from memory.db import session_scope
from tests.factories.orgs import OrgFixture
from tests.fakes import jobs_tools as fj
from tests.support import ROOT
from tests.support.processes import levqor_env


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tests.fakes.jobs_cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_approval_round_trip_across_two_processes(tmp_path: Path, org: OrgFixture) -> None:
    store = tmp_path / "jobs.json"
    env = levqor_env(LEVQOR_FAKE_JOBS=str(store))
    os.environ["LEVQOR_FAKE_JOBS"] = str(store)
    try:
        fj.reset()
        fj.clear_agent_decisions()
        ids = [fj.add_job(org.org_id) for _ in range(7)]
        # Process 1 runs the janitor: over the threshold, it pauses on one approval and exits.
        first = _cli("agents", "run", "janitor", "--org", org.slug, "--json", env=env)
        assert first.returncode == 0, first.stderr[-3000:]
        out = json.loads(first.stdout)
        run_id, approval = out["run"]["id"], out["approvals"][0]
        assert out["run"]["status"] == "waiting_approval" and approval["tool"] == "jobs.retry_failed"
        assert all(fj.job(i)["state"] == "failed" for i in ids)
        listed = _cli("approvals", "list", "--org", org.slug, "--json", env=env)
        assert approval["id"] in [a["id"] for a in json.loads(listed.stdout)["items"]]
        # A second process approves as a person and resumes the run from the checkpoint.
        second = _cli("approvals", "approve", str(approval["id"]), "--by", org.admin_email, "--org", org.slug,
                      env=env)
        assert second.returncode == 0, second.stderr[-3000:]
        assert "approved" in second.stdout and "succeeded" in second.stdout
    finally:
        os.environ.pop("LEVQOR_FAKE_JOBS", None)
    with session_scope() as s:
        run = s.get(AgentRun, run_id)
        ap = s.get(AgentApproval, approval["id"])
        assert run is not None and ap is not None
        assert run.status == "succeeded" and run.steps >= 3
        assert ap.status == "approved" and ap.decided_by is not None and ap.decided_by.startswith("user:")
    os.environ["LEVQOR_FAKE_JOBS"] = str(store)
    try:
        assert {fj.job(i)["state"] for i in ids} == {"queued"}
        assert {fj.job(i)["retried_by"] for i in ids} == {f"system:approval-{approval['id']}"}
    finally:
        os.environ.pop("LEVQOR_FAKE_JOBS", None)


def test_cli_refuses_an_unknown_approver(org: OrgFixture, tmp_path: Path) -> None:
    env = levqor_env(LEVQOR_FAKE_JOBS=str(tmp_path / "jobs.json"))
    r = _cli("approvals", "approve", "1", "--by", "nobody@acme-test.io", "--org", org.slug, env=env)
    assert r.returncode == 1 and "no active user" in r.stderr
