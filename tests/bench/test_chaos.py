"""The chaos suite end to end: real worker processes (and an API process), each fault detected and healed
with no person, no job lost, no action outside policy.

``make test`` runs the six scenarios that take seconds each in one ``levqor chaos run`` (one scratch
database, one start-up); the two slower ones (``api_slowdown`` starts an API process and holds the fault;
``traffic_spike`` drains a burst) run end to end in ``make bench-chaos`` (all eight, the table and its
``chaos:`` line) and in process here: the API's injected latency through the real middleware to the
slow-route rule, and the capacity rule through the healer's ``workers.scale`` to the supervisor
(``tests/test_ops_control_tools.py``). The scenarios of :data:`BENCH_ONLY` (issue 23) run only in
``make bench-chaos``; their mechanisms are tested where each lives (named beside each).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT

SUMMARY = re.compile(r"chaos: detected=(\d+)/(\d+) healed=(\d+)/(\d+) lost=(\d+) unsafe=(\d+) "
                     r"mttr_worker_crash_s=(\S+)")

# scenario -> the healer's verified action it must record
FAST = {
    "worker_kill9": "restart_worker: verified",
    "worker_hang": "restart_worker: verified",
    "memory_leak": "recycle_worker: verified",
    "expired_leases": "requeue_expired: verified",
    "poison_job": "dead_letter_poison_job: verified",
    "partner_500s": "disable_partner_endpoint: verified",
}


# scenario -> the tests of its mechanisms (the scenario itself runs in `make bench-chaos` only)
BENCH_ONLY = {
    "supervisor_kill9": "tests/workers/test_supervisor_death.py, tests/workers/test_supervisor.py",
    "scheduler_kill9": "tests/workers/test_scheduler_failover.py, tests/workers/test_scheduler_lease.py",
    "llm_outage": "tests/agents/runtime/test_llm_guard.py",
    "db_outage": "tests/api/test_db_outage.py, tests/workers/test_db_outage_backoff.py, "
                 "tests/tools/auto_intel/test_db_outage_rule.py",
    "api_kill9": "tests/workers/test_api_process_death.py, tests/tools/dev_portal/test_sdk_example.py",
    "disk_full": "tests/tools/auto_intel/test_disk_full.py",
}


def _chaos(*args: str, tmp: Path) -> str:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("LEVQOR_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env["LEVQOR_VAR_DIR"] = str(tmp)
    p = subprocess.run([sys.executable, "-m", "api.cli", "chaos", "run", *args], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    if p.returncode != 0:  # name where it broke: the project's own frames, the error, the last output
        frames = [line for line in p.stderr.splitlines() if 'File "' in line and ".venv" not in line]
        raise AssertionError("\n".join(["chaos run failed; project frames:", *frames[-15:], "stderr tail:",
                                        p.stderr[-1500:], "stdout tail:", p.stdout[-1500:]]))
    return p.stdout


@pytest.fixture(scope="module")
def fast_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("chaos")
    out = _chaos(*FAST, "--json", str(tmp / "results.json"), tmp=tmp)
    results = {r["scenario"]: r for r in json.loads((tmp / "results.json").read_text())}
    return out, results


def test_the_fast_scenarios_print_the_table_and_the_summary_line(fast_run: tuple[str, Any]) -> None:
    out, _ = fast_run
    last = out.strip().splitlines()[-1]
    print(last)  # noqa: T201  (the summary line, shown with -s)
    m = SUMMARY.fullmatch(last)
    assert m, last
    # counted out of the six that ran, not out of the whole suite
    assert tuple(int(m.group(i)) for i in range(1, 7)) == (6, 6, 6, 6, 0, 0), out
    assert float(m.group(7)) < 5.0  # a killed worker is back within 5 s
    for name in FAST:
        assert name in out


@pytest.mark.parametrize("scenario", list(FAST))
def test_chaos_scenario_is_detected_and_healed_without_loss(scenario: str, fast_run: tuple[str, Any]) -> None:
    out, results = fast_run
    r = results[scenario]
    assert r["detected"] and r["recovered"] and not r["human"], r
    assert r["lost"] == 0 and r["unsafe"] == 0, r
    assert r["ttd_s"] is not None and r["ttr_s"] is not None and r["ttr_s"] >= r["ttd_s"], r
    assert any(a.startswith(FAST[scenario]) for a in r["actions"]), r
    if scenario == "poison_job":  # innocent jobs kept arriving beside the poison one; every one succeeded
        n = re.search(r"(\d+)/(\d+) innocent jobs succeeded", r["note"])
        assert n and n.group(1) == n.group(2) and int(n.group(2)) >= 6, r
    if scenario == "partner_500s":
        assert re.search(r"healthy endpoint received (\d+)/\1 events, partner emailed", r["note"]), r


def test_unknown_scenario_is_refused(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "api.cli", "chaos", "run", "worker_kill9", "nope"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60,
                       env={"PATH": "/usr/bin:/bin", "LEVQOR_VAR_DIR": str(tmp_path)})
    assert p.returncode == 2 and "unknown scenario 'nope'" in p.stderr


def test_every_scenario_is_built_and_covered() -> None:
    from bench.chaos import scenarios as chaos

    assert set(chaos.SCENARIOS) == set(chaos.ALL_SCENARIOS)
    assert set(FAST) | {"api_slowdown", "traffic_spike"} | set(BENCH_ONLY) == set(chaos.ALL_SCENARIOS)
    for tests in BENCH_ONLY.values():
        assert all((ROOT / t).exists() for t in tests.split(", ")), tests
