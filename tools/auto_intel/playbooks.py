"""Playbooks: for each diagnosis, the control actions that may heal it, when they apply and how to tell they worked.

A :class:`Playbook` names one control tool (called by name, as the healer agent: see
:mod:`tools.auto_intel.self_heal`), the arguments it takes from the incident, a precondition that must
still hold before acting, a check that the symptom went away, and a per-target limit. Diagnoses without
a playbook go to a person; some are only watched (:data:`OBSERVE_ONLY`).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from levqor import diskspace
from levqor.settings import get_settings
from memory.db import aware as _aware
from memory.db import utcnow
from memory.jobs.models import Job, Pipeline, Worker
from memory.ops.models import Incident
from memory.ops.repository import SignalSourceRepository
from memory.partner.models import PluginInstall
from tools.auto_intel.capacity import measure
from tools.jobs.workers import scale_decision


def _worker(session: Session, inc: Incident) -> Worker | None:
    wid = (inc.subject or {}).get("worker_id")
    return session.get(Worker, wid) if wid else None


def _alive(w: Worker) -> bool | None:
    import psutil  # kept lazy: start-up time

    return psutil.pid_exists(w.pid) if w.host == socket.gethostname() else None


def _worker_gone(session: Session, inc: Incident) -> bool:
    """The worker deregistered, or was told to restart and its process is gone (a replacement runs)."""
    w = _worker(session, inc)
    if w is None:
        return True
    session.refresh(w)
    return w.command == "restart" and _alive(w) is False


def _worker_fine(session: Session, inc: Incident) -> bool:
    """The worker left, or beats again from a live process."""
    if _worker_gone(session, inc):
        return True
    w = _worker(session, inc)
    assert w is not None
    fresh = (utcnow() - _aware(w.heartbeat_at)).total_seconds() <= max(3.0, float(get_settings().job_lease_s))
    return fresh and _alive(w) is not False


def _no_expired(session: Session, inc: Incident) -> bool:
    return not SignalSourceRepository(session).expired_leases(utcnow())


def _job_dead(session: Session, inc: Incident) -> bool:
    job = session.get(Job, (inc.subject or {}).get("job_id"))
    if job is not None:
        session.refresh(job)
    return job is None or job.state in ("dead", "succeeded", "cancelled")


def _has_retryable(session: Session, inc: Incident) -> bool:
    pid = (inc.subject or {}).get("pipeline_id")
    return pid is not None and SignalSourceRepository(session).retryable_failed(int(pid)) > 0


def _pipeline_paused(session: Session, inc: Incident) -> bool:
    p = session.get(Pipeline, (inc.subject or {}).get("pipeline_id"))
    if p is not None:
        session.refresh(p)
    return p is None or p.paused


def _endpoint_enabled(session: Session, inc: Incident) -> bool:
    inst = session.get(PluginInstall, (inc.subject or {}).get("install_id"))
    if inst is not None:
        session.refresh(inst)
    return inst is not None and inst.status == "active" and inst.endpoint_disabled_at is None


@dataclass(frozen=True)
class Playbook:
    """One action for one diagnosis: when it applies, with which arguments, and how to tell it worked."""

    name: str
    tool: str
    args: Callable[[Incident], dict[str, Any]]
    precondition: Callable[[Session, Incident], bool]
    verify: Callable[[Session, Incident], bool]
    target_key: str = ""
    max_per_target: int = 3
    window_s: int = 600
    verify_min_s: float = 0.0  # the symptom may take this long to go (e.g. new processes start)


def _worker_ref(inc: Incident) -> dict[str, Any]:
    return {"worker_id": inc.subject["worker_id"]}


RESTART = Playbook("restart_worker", "workers.restart", _worker_ref, lambda s, i: not _worker_fine(s, i),
                   _worker_fine, "worker_id")
RECYCLE = Playbook("recycle_worker", "workers.restart", _worker_ref, lambda s, i: not _worker_gone(s, i),
                   _worker_gone, "worker_id")
REQUEUE = Playbook("requeue_expired", "jobs.requeue_expired", lambda i: {},
                   lambda s, i: not _no_expired(s, i), _no_expired, max_per_target=10)
DEAD_LETTER = Playbook("dead_letter_poison_job", "jobs.dead_letter", lambda i: {"job_id": i.subject["job_id"]},
                       lambda s, i: not _job_dead(s, i), _job_dead, "job_id", max_per_target=1)
RETRY = Playbook("retry_transient_failures", "jobs.retry_failed",
                 lambda i: {"pipeline_id": i.subject["pipeline_id"], "limit": 50}, _has_retryable,
                 lambda s, i: not _has_retryable(s, i), "pipeline_id", max_per_target=2)
PAUSE = Playbook("pause_pipeline", "queues.pause", lambda i: {"pipeline_id": i.subject["pipeline_id"]},
                 lambda s, i: not _pipeline_paused(s, i), _pipeline_paused, "pipeline_id", max_per_target=1)

DISABLE_ENDPOINT = Playbook(
    "disable_partner_endpoint", "plugins.disable_endpoint",
    lambda i: {"install_id": i.subject["install_id"],
               "reason": f"incident {i.id}: most deliveries to this endpoint failed ({i.title})"[:400]},
    _endpoint_enabled, lambda s, i: not _endpoint_enabled(s, i), "install_id", max_per_target=1)

SCALE_HOLD_S = 600  # added workers stay this long, then the supervisor returns to its own count


def _scale_args(inc: Incident) -> dict[str, Any]:
    # each further attempt (the shortage outlived the last one) asks for one more worker
    want = int(inc.subject["desired"]) + inc.heal_attempts
    return {"desired": min(get_settings().workers_max, want), "for_s": SCALE_HOLD_S,
            "reason": f"incident {inc.id}: {inc.title}"[:500]}


def _capacity_short(session: Session) -> bool:
    cap = measure(session, utcnow())
    return cap is not None and cap.short


def _scale_helps(session: Session, inc: Incident) -> bool:
    """Still short, and the count asked for is above the one in force (else: at the limit, a person)."""
    if not _capacity_short(session):
        return False
    decision = scale_decision(session)
    current = decision[0] if decision is not None else int((inc.subject or {}).get("healthy_workers", 0))
    return int(_scale_args(inc)["desired"]) > current


SCALE_UP = Playbook("add_workers", "workers.scale", _scale_args, _scale_helps,
                    lambda s, i: not _capacity_short(s), verify_min_s=15.0)

def _disk_short(session: Session, inc: Incident) -> bool:
    return diskspace.free_bytes() < get_settings().ops_disk_free_min_bytes


# Only what policy lets go (rotated logs, expired exports); when nothing of it is left and space is still
# short, no precondition holds and the incident goes to a person.
FREE_DISK = Playbook("free_disk_space", "ops.free_disk_space",
                     lambda i: {"reason": f"incident {i.id}: {i.title}"[:500]},
                     lambda s, i: _disk_short(s, i) and bool(diskspace.freeable()),
                     lambda s, i: not _disk_short(s, i), max_per_target=3)

# diagnosis -> playbooks tried in order (the first whose precondition holds runs).
PLAYBOOKS: dict[str, tuple[Playbook, ...]] = {
    "worker_dead": (RESTART,),
    "worker_hung": (RESTART,),
    "worker_leak": (RECYCLE,),
    "expired_leases": (REQUEUE,),
    "queue_age": (REQUEUE,),
    "poison_job": (DEAD_LETTER,),
    "failure_rate": (RETRY, PAUSE),
    "partner_errors": (DISABLE_ENDPOINT,),
    "capacity": (SCALE_UP,),
    "disk_full": (FREE_DISK,),
}
# Diagnoses with no automatic action: a person decides (the reason is written on the incident).
NO_PLAYBOOK: dict[str, str] = {}
# Diagnoses the healer only watches, as no control tool helps: the incident resolves when the symptom goes.
# diagnosis -> (why, the setting after which a person is called, or None).
OBSERVE_ONLY: dict[str, tuple[str, str | None]] = {
    "anomaly": ("an anomaly alone has no playbook; watching", None),
    "api_slow": ("no control action speeds up the API; watching until its latency is back under the limit", None),
    # `levqor up` (or the orchestrator) restarts a dead API process; a person only if the outage outlasts that.
    "api_down": ("API outage; waiting for the supervisor's restart", "ops_api_down_escalate_s"),
    # The fan-out's admission control is the action: shed work is recorded and replayable.
    "webhook_shedding": ("the webhook fan-out sheds new work beyond its backlog limits (recorded for replay); "
                         "watching until the backlog drains", None),
    # Its children stopped with it (parent-death signal, parent watch) and hand back their jobs; the service
    # manager (systemd, the orchestrator) starts `levqor up` again. A person if the API stays down.
    "supervisor_dead": ("levqor up died; its processes stopped with it; waiting for it to be started again",
                        "ops_api_down_escalate_s"),
    # uvicorn's manager starts a replacement at once while the other API processes serve the shared
    # socket; a person only if the API stays short of processes (then /readyz fails too: api_down).
    "api_process_died": ("an API process died; uvicorn's manager replaces it while the others serve; "
                         "watching until as many serve as before", "ops_api_down_escalate_s"),
    # The lease is the control: a standby scheduler (or the restarted one) takes it within its length and
    # re-runs each unfinished tick once (tools.schedules). The monitor itself runs on the leader.
    "scheduler_failover": ("the next scheduler leader re-runs each tick its predecessor left unfinished, once; "
                           "watching", None),
    # The circuit breaker is the control (tools.agents.llm_guard): agents run offline while it is open and
    # a half-open probe closes it once the endpoint answers.
    "llm_outage": ("agents run offline while the LLM endpoint fails (circuit breaker open); watching until a "
                   "probe call answers", None),
    # Backoff and reconnect are built into every process (levqor.db_outage): the API answers 503 with
    # Retry-After, workers keep finished runs' outcomes and the outbox keeps events until it answers.
    "db_outage": ("the database is unavailable; every process backs off and reconnects by itself, the API "
                  "answers 503 with Retry-After; watching until it answers", None),
    # The cap is the control: the agent's model calls are refused for the rest of the day.
    "llm_cost_cap": ("the agent's LLM calls are refused until tomorrow (daily cost cap in policy.json); a person "
                     "may look into why it spent so much", None),
}


def applies(pb: Playbook, session: Session, inc: Incident) -> bool:
    """The playbook's precondition holds (a playbook for another diagnosis may lack its subject)."""
    try:
        pb.args(inc)
        return pb.precondition(session, inc)
    except (KeyError, TypeError, ValueError):
        return False


def find(name: str) -> Playbook | None:
    """The playbook called ``name`` (None when there is none, e.g. one removed since it was recorded)."""
    for pbs in PLAYBOOKS.values():
        for pb in pbs:
            if pb.name == name:
                return pb
    return None


def playbook_names(diagnosis: str | None = None) -> list[str]:
    """Playbooks the healer may choose (for one diagnosis, or all)."""
    if diagnosis is not None:
        return [p.name for p in PLAYBOOKS.get(diagnosis, ())]
    return sorted({p.name for pbs in PLAYBOOKS.values() for p in pbs})

