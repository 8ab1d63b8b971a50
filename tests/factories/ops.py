"""Operations state: a clean slate of incidents and samples, incidents as rows, jobs moved out of the
measuring windows."""

from __future__ import annotations

import socket
import subprocess
import sys

from sqlalchemy import delete, or_, update

from memory.db import session_scope
from memory.jobs.models import Job, Worker
from memory.leases.models import Lease
from memory.ops.models import Incident, OpsDetectorState, OpsSample
from tests.factories.jobs import ago
from tests.factories.rows import detached
from tools.auto_intel.anomalies import detectors
from tools.jobs.workers import API_PROCESS_LEASE


def clean_ops() -> None:
    """Resolve every incident and drop samples so a test sees only its own findings (and the records of
    API processes that other tests' servers left behind when they were killed). The incidents are
    dated resolved a day back: a finding with the cause of another test's incident opens its own
    rather than reopening that one within the flap window (three reopens made it "flapping", and the
    healer escalated it instead of acting). The database outages other tests' processes noted are
    forgotten too: one that ended moments ago makes the monitor hold back expired leases while it
    settles (``rules._outage_settling``), and a test's expired lease then went unreported."""
    from levqor.db_outage import SPAN_DIR
    from levqor.settings import get_settings

    for path in (get_settings().var_dir / SPAN_DIR).glob("*.json"):
        path.unlink(missing_ok=True)
    long_ago = ago(86400)
    with session_scope() as s:
        s.execute(update(Incident).where(Incident.state != "resolved").values(state="resolved"))
        s.execute(update(Incident).where(or_(Incident.resolved_at.is_(None), Incident.resolved_at > long_ago))
                  .values(resolved_at=long_ago))
        s.execute(delete(Lease).where(Lease.name.startswith(API_PROCESS_LEASE, autoescape=True)))
        s.execute(delete(OpsSample))
        s.execute(delete(OpsDetectorState))
    detectors.forget()


def incident(iid: int) -> Incident:
    """Incident ``iid`` as a detached row (read in its own session)."""
    return detached(Incident, iid)


def dead_worker(tag: str) -> str:
    """A worker row on this host whose process has exited (its pid is free), last heartbeat 2 s ago;
    return its id."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    wid = f"{socket.gethostname()}:{gone.pid}:{tag}"
    with session_scope() as s:
        s.add(Worker(id=wid, host=socket.gethostname(), pid=gone.pid, concurrency=1, heartbeat_at=ago(2)))
    return wid


def jobs_out_of_the_windows() -> None:
    """Throughput, arrivals and start latency are measured from the jobs that came, started or finished
    lately: move other tests' jobs an hour back and cancel their queued ones, so a test sees only its own."""
    with session_scope() as s:
        s.execute(update(Job).where(Job.finished_at >= ago(3600)).values(finished_at=ago(7200)))
        s.execute(update(Job).where(Job.started_at >= ago(3600)).values(started_at=ago(7200)))
        s.execute(update(Job).where(Job.enqueued_at >= ago(3600)).values(enqueued_at=ago(7200)))
        s.execute(update(Job).where(Job.state.in_(("queued", "running"))).values(state="cancelled"))
