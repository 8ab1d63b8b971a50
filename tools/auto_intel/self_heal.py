"""Self-heal: playbooks that map an incident's diagnosis to one control action, then verify it.

Each step of :func:`heal` runs as ``agent:healer`` through ``registry.invoke``, so the policy engine
applies (allow-list, rate limits, approvals; ``policies/policy.json``). Before acting, the playbook's
precondition must still hold (otherwise the symptom is gone and the incident resolves), and a
per-target limit (``max_per_target`` actions on one worker, job or pipeline within ``window_s``) must
not be reached. After acting the incident waits, with ``heal_pending``, for the symptom to go; when it
does the incident resolves, when it does not within ``ops_heal_verify_s`` the next attempt waits an
exponential back-off, and after ``ops_heal_max_attempts`` (or a denial, an approval request, a missing
playbook, a reached limit) it escalates to a person. Nothing here loops: every call does one step.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter
from sqlalchemy.orm import Session

from levqor.settings import get_settings
from memory.db import after_close, session_scope, utcnow
from memory.jobs.models import Job, Pipeline, Worker
from memory.ops.models import Incident
from memory.ops.repository import IncidentRepository, SignalSourceRepository
from tools.auto_intel.incidents import escalate, resolve
from tools.context import Principal, ToolContext
from tools.enterprise import audit_log
from tools.errors import AppError, ApprovalRequired, PolicyDenied
from tools.events.service import on_event

log = logging.getLogger("levqor.ops.heal")

SELF_HEALS = Counter("levqor_ops_self_heals_total", "Self-heal steps by action and result", ["action", "result"])
HEALER = Principal(kind="agent", id="healer", org_id=None, role="agent", name="agent healer")
BACKOFF_BASE_S = 5.0


def _aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _worker(session: Session, inc: Incident) -> Worker | None:
    wid = (inc.subject or {}).get("worker_id")
    return session.get(Worker, wid) if wid else None


def _alive(w: Worker) -> bool | None:
    import psutil

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

# diagnosis -> playbooks tried in order (the first whose precondition holds runs).
PLAYBOOKS: dict[str, tuple[Playbook, ...]] = {
    "worker_dead": (RESTART,),
    "worker_hung": (RESTART,),
    "worker_leak": (RECYCLE,),
    "expired_leases": (REQUEUE,),
    "queue_age": (REQUEUE,),
    "poison_job": (DEAD_LETTER,),
    "failure_rate": (RETRY, PAUSE),
}
# Diagnoses with no automatic action: a person decides (the reason is written on the incident).
NO_PLAYBOOK: dict[str, str] = {
    "partner_errors": "no control tool disables a partner endpoint yet; the hooks runtime disables it after "
                      "LEVQOR_HOOKS_DISABLE_AFTER_S of failures",
    "capacity": "no control tool adds worker processes; scale the worker deployment",
}


@dataclass
class HealStep:
    incident_id: int
    outcome: str  # acted | healed | waiting | retry_later | escalated | observed | skipped
    action: str = ""
    detail: str = ""


def _ctx(session: Session) -> ToolContext:
    return ToolContext(session, HEALER)


def _record_action(session: Session, inc: Incident, pb: Playbook, args: dict[str, Any], result: str,
                   now: dt.datetime, detail: str = "") -> None:
    target = str(args.get(pb.target_key, "")) if pb.target_key else ""
    IncidentRepository(session).add_event(
        inc.id, "action", f"{pb.name}: {result}" + (f" ({detail})" if detail else ""), actor=HEALER.actor,
        data={"tool": pb.tool, "args": args, "result": result, pb.target_key or "target": target}, at=now)
    SELF_HEALS.labels(action=pb.name, result=result).inc()


def heal(incident_id: int, now: dt.datetime | None = None, *, prefer: str | None = None) -> HealStep:
    """Take one healing step on an incident (act, verify, back off or escalate) and commit it.

    ``prefer`` names a playbook proposed by the healer's LLM: tried first when its precondition holds;
    it runs through the same policy checks, limits and verification as any other."""
    now = now or utcnow()
    s = get_settings()
    with session_scope() as session:
        repo = IncidentRepository(session)
        inc = repo.get(incident_id, lock=True)
        if inc is None or inc.state == "resolved" or inc.manual:
            return HealStep(incident_id, "skipped", detail="resolved or with a person")
        pending = inc.heal_pending
        if pending:
            pb = _find(pending["playbook"])
            if pb is not None and pb.verify(session, inc):
                _record_action(session, inc, pb, pending.get("args", {}), "verified", now)
                inc.mitigated_at = now
                resolve(session, inc, HEALER.actor, f"{pb.name} worked", now)
                return HealStep(incident_id, "healed", pb.name)
            if now < dt.datetime.fromisoformat(pending["deadline"]):
                return HealStep(incident_id, "waiting", pending["playbook"])
            if pb is not None:
                _record_action(session, inc, pb, pending.get("args", {}), "not_verified", now,
                               "the symptom is still there")
            inc.heal_pending = None
            if inc.heal_attempts >= s.ops_heal_max_attempts:
                escalate(session, inc, f"{inc.heal_attempts} healing attempt(s) did not remove the symptom", now=now)
                return HealStep(incident_id, "escalated", pending["playbook"], "attempts exhausted")
            inc.next_heal_at = now + dt.timedelta(seconds=BACKOFF_BASE_S * 2 ** (inc.heal_attempts - 1))
            return HealStep(incident_id, "retry_later", pending["playbook"])
        if inc.next_heal_at is not None and _aware(inc.next_heal_at) > now:
            return HealStep(incident_id, "waiting", detail="backing off")
        if inc.diagnosis == "anomaly":
            return HealStep(incident_id, "observed", detail="an anomaly alone has no playbook; watching")
        if inc.diagnosis in NO_PLAYBOOK or inc.diagnosis not in PLAYBOOKS:
            escalate(session, inc, NO_PLAYBOOK.get(inc.diagnosis, f"no playbook for {inc.diagnosis}"), now=now)
            return HealStep(incident_id, "escalated", detail="no playbook")
        candidates = list(PLAYBOOKS[inc.diagnosis])
        proposed = _find(prefer) if prefer else None
        if proposed is not None and proposed not in candidates:
            candidates.insert(0, proposed)
        elif proposed is not None:
            candidates.sort(key=lambda p: p is not proposed)
        pb = next((p for p in candidates if _applies(p, session, inc)), None)
        if pb is None:
            first = PLAYBOOKS[inc.diagnosis][0]
            if first.verify(session, inc):
                resolve(session, inc, HEALER.actor, "the symptom went away before any action", now)
                return HealStep(incident_id, "healed", detail="symptom gone")
            escalate(session, inc, "no playbook's precondition holds", now=now)
            return HealStep(incident_id, "escalated", detail="no precondition")
        args = pb.args(inc)
        if pb.target_key:
            done = repo.actions_on(f"{pb.name}: acted", pb.target_key, str(args[pb.target_key]),
                                   now - dt.timedelta(seconds=pb.window_s))
            if done >= pb.max_per_target:
                escalate(session, inc, f"{pb.name} already ran {done} time(s) on {pb.target_key} "
                                       f"{args[pb.target_key]} in {pb.window_s}s", now=now)
                SELF_HEALS.labels(action=pb.name, result="limit").inc()
                return HealStep(incident_id, "escalated", pb.name, "per-target limit")
        from tools.registry import registry

        ctx = _ctx(session)
        try:
            with session.begin_nested():
                out = registry.invoke(pb.tool, ctx, args)
        except (PolicyDenied, ApprovalRequired) as exc:
            result = "denied" if isinstance(exc, PolicyDenied) else "needs_approval"
            _record_action(session, inc, pb, args, result, now, exc.detail)
            escalate(session, inc, f"{pb.tool}: {exc.detail}", now=now)
            return HealStep(incident_id, "escalated", pb.name, result)
        except AppError as exc:
            inc.heal_attempts += 1
            _record_action(session, inc, pb, args, "failed", now, exc.detail)
            if inc.heal_attempts >= s.ops_heal_max_attempts:
                escalate(session, inc, f"{pb.tool} failed: {exc.detail}", now=now)
                return HealStep(incident_id, "escalated", pb.name, exc.detail)
            inc.next_heal_at = now + dt.timedelta(seconds=BACKOFF_BASE_S * 2 ** (inc.heal_attempts - 1))
            return HealStep(incident_id, "retry_later", pb.name, exc.detail)
        inc.heal_attempts += 1
        deadline = now + dt.timedelta(seconds=s.ops_heal_verify_s)
        inc.heal_pending = {"playbook": pb.name, "args": args, "at": now.isoformat(), "deadline": deadline.isoformat()}
        _record_action(session, inc, pb, args, "acted", now)
        audit_log.record(ctx, "ops.self_heal", f"incident:{inc.id}",
                         detail={"playbook": pb.name, "tool": pb.tool, "args": args,
                                 "result": out.model_dump(mode="json")})
        return HealStep(incident_id, "acted", pb.name)


def _applies(pb: Playbook, session: Session, inc: Incident) -> bool:
    """The playbook's precondition holds (a playbook for another diagnosis may lack its subject)."""
    try:
        pb.args(inc)
        return pb.precondition(session, inc)
    except (KeyError, TypeError, ValueError):
        return False


def _find(name: str) -> Playbook | None:
    for pbs in PLAYBOOKS.values():
        for pb in pbs:
            if pb.name == name:
                return pb
    return None


def open_incident_ids() -> list[int]:
    """Incidents the healer may still act on (not resolved, not with a person)."""
    with session_scope() as s:
        return [i.id for i in IncidentRepository(s).unresolved() if not i.manual]


def heal_open(now: dt.datetime | None = None) -> list[HealStep]:
    """One step on every incident that is neither resolved nor with a person."""
    with session_scope() as s:
        ids = [i.id for i in IncidentRepository(s).unresolved() if not i.manual]
    steps = []
    for iid in ids:
        try:
            steps.append(heal(iid, now))
        except Exception:
            log.exception("healing step failed", extra={"fields": {"incident": iid}})
            steps.append(HealStep(iid, "error"))
    return steps


@on_event("incident_opened", handler_name="ops.healer")
def _on_incident_opened(session: Session, event: Any) -> None:
    iid = int(event.payload["incident_id"])
    after_close(session, lambda: _safe_heal(iid))


def _safe_heal(incident_id: int) -> None:
    try:
        from agents.healer.graph import run_healer

        run_healer(incident_id)
    except Exception:
        log.exception("healer failed", extra={"fields": {"incident": incident_id}})


def playbook_names(diagnosis: str | None = None) -> list[str]:
    """Playbooks the healer may choose (for one diagnosis, or all)."""
    if diagnosis is not None:
        return [p.name for p in PLAYBOOKS.get(diagnosis, ())]
    return sorted({p.name for pbs in PLAYBOOKS.values() for p in pbs})


def invoke_as_healer(tool_name: str, args: dict[str, Any]) -> dict[str, Any]:
    """Run one tool as ``agent:healer`` in its own transaction (policy-checked); its output as a dict."""
    from tools.registry import registry

    with session_scope() as s:
        return registry.invoke(tool_name, _ctx(s), args).model_dump(mode="json")
