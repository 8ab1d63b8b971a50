"""The chaos suite end to end: real worker processes, a kill -9 and vanished leases, healed with no person."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _chaos(*args: str, tmp: Path) -> str:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("LEVQOR_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env["LEVQOR_VAR_DIR"] = str(tmp)
    p = subprocess.run([sys.executable, "-m", "api.cli", "chaos", "run", *args], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stderr[-3000:]
    return p.stdout


@pytest.mark.parametrize("scenario", ["worker_kill9", "expired_leases", "poison_job"])
def test_chaos_scenario_is_detected_and_healed_without_loss(scenario: str, tmp_path: Path) -> None:
    out = _chaos(scenario, tmp=tmp_path)
    last = out.strip().splitlines()[-1]
    m = re.fullmatch(r"chaos: detected=(\d)/8 healed=(\d)/8 lost=(\d+) unsafe=(\d+) mttr_worker_crash_s=(\S+)", last)
    assert m, last
    assert m.group(1) == "1" and m.group(2) == "1" and m.group(4) == "0", out
    if scenario != "poison_job":  # killing the poison job's worker also kills the job beside it (collateral)
        assert m.group(3) == "0", out
    if scenario == "worker_kill9":
        assert float(m.group(5)) < 5.0
        assert "restart_worker: verified" in out
    elif scenario == "expired_leases":
        assert "requeue_expired" in out
    else:
        assert "dead_letter_poison_job: verified" in out


def test_unknown_scenario_is_refused(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "api.cli", "chaos", "run", "nope"], cwd=ROOT, capture_output=True,
                       text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "LEVQOR_VAR_DIR": str(tmp_path)})
    assert p.returncode == 2 and "unknown scenario" in p.stderr
