"""The real scheduler process probes the real API's /readyz (uptime) and takes the daily snapshot."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import func, select

from tests.factories.orgs import make_org
from tests.support import wait_for
from tests.support.processes import Proc, levqor_env, start_api


def test_scheduler_probes_readyz_and_snapshots(tmp_path: Path) -> None:
    from memory.db import session_scope
    from memory.leases.models import Lease
    from memory.pulse.models import PulseSnapshot, ReadinessProbe

    org = make_org()
    started = dt.datetime.now(dt.UTC)
    api, base = start_api(tmp_path)
    port = base.rsplit(":", 1)[1]
    with session_scope() as s:
        s.execute(Lease.__table__.delete().where(Lease.name == "scheduler"))
    sched = Proc.levqor("scheduler", env=levqor_env(LEVQOR_PORT=port, LEVQOR_PULSE_PROBE_INTERVAL_S="1",
                                                    LEVQOR_PULSE_CHECK_INTERVAL_S="2",
                                                    LEVQOR_SCHEDULER_LEASE_S="3"), logdir=tmp_path)
    try:
        def probes_ok() -> int:
            assert sched.popen.poll() is None, sched.stderr[-3000:]
            with session_scope() as s:
                return int(s.scalar(select(func.count(ReadinessProbe.id)).where(
                    ReadinessProbe.ts >= started, ReadinessProbe.ok.is_(True))) or 0)

        wait_for(lambda: probes_ok() >= 2, 90, "two successful /readyz probes by the scheduler")

        def snapshot() -> int:
            assert sched.popen.poll() is None, sched.stderr[-3000:]
            with session_scope() as s:
                return int(s.scalar(select(func.count(PulseSnapshot.id)).where(
                    PulseSnapshot.org_id == org.org_id, PulseSnapshot.kpi == "uptime",
                    PulseSnapshot.value.is_not(None))) or 0)

        wait_for(snapshot, 180, "the scheduler's snapshot with a measured uptime")
    finally:
        sched.stop()
        api.stop()
    with session_scope() as s:
        s.execute(Lease.__table__.delete().where(Lease.name == "scheduler"))
