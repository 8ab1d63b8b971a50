"""Self-heal: playbooks that map an incident's diagnosis to one control action, then verify it.

Each step of :func:`heal` runs as ``agent:healer`` through ``registry.invoke``, so the policy engine
applies (allow-list, rate limits, approvals; ``policies/policy.json``). Before acting, the playbook's
precondition must still hold (otherwise the symptom is gone and the incident resolves), and a
per-target limit (``max_per_target`` actions on one worker, job or pipeline within ``window_s``) must
not be reached. After acting the incident waits, with ``heal_pending``, for the symptom to go; when it
does the incident resolves, when it does not within ``ops_heal_verify_s`` the next attempt waits an
exponential back-off, and after ``ops_heal_max_attempts`` (or a denial, a missing playbook, a reached
limit) it escalates to a person. An action the policy wants approved pauses the healer's agent run
(``agents/healer``) until a person decides (:func:`approval_decided`); outside a run it escalates.
Nothing here loops: every call does one step.
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
from memory.db import aware as _aware
from memory.db import session_scope, utcnow
from memory.jobs.models import Job, Pipeline, Worker
from memory.ops.models import Incident
from memory.ops.repository import IncidentRepository, SignalSourceRepository
from tools.auto_intel.incidents import escalate, resolve
from tools.context import Principal, ToolContext
from tools.enterprise import audit_log
from tools.errors import AppError, ApprovalRequired, PolicyDenied

log = logging.getLogger("levqor.ops.heal")

SELF_HEALS = Counter("levqor_ops_self_heals_total", "Self-heal steps by action and result", ["action", "result"])
HEALER = Principal(kind="agent", id="healer", org_id=None, role="agent", name="agent healer")
BACKOFF_BASE_S = 5.0


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

def _endpoint_enabled(session: Session, inc: Incident) -> bool:
    from memory.partner.models import PluginInstall

    inst = session.get(PluginInstall, (inc.subject or {}).get("install_id"))
    if inst is not None:
        session.refresh(inst)
    return inst is not None and inst.status == "active" and inst.endpoint_disabled_at is None


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
    from tools.auto_intel.capacity import measure

    cap = measure(session, utcnow())
    return cap is not None and cap.short


def _scale_helps(session: Session, inc: Incident) -> bool:
    """Still short, and the count asked for is above the one in force (else: at the limit, a person)."""
    from tools.jobs.workers import scale_decision

    if not _capacity_short(session):
        return False
    decision = scale_decision(session)
    current = decision[0] if decision is not None else int((inc.subject or {}).get("healthy_workers", 0))
    return int(_scale_args(inc)["desired"]) > current


SCALE_UP = Playbook("add_workers", "workers.scale", _scale_args, _scale_helps,
                    lambda s, i: not _capacity_short(s), verify_min_s=15.0)

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
}
# Diagnoses with no automatic action: a person decides (the reason is written on the incident).
NO_PLAYBOOK: dict[str, str] = {}
# Diagnoses the healer only watches: no control tool helps, the incident resolves when the symptom goes.
# Diagnoses the healer only watches: (why, the setting after which a person is called, or None).
OBSERVE_ONLY: dict[str, tuple[str, str | None]] = {
    "anomaly": ("an anomaly alone has no playbook; watching", None),
    "api_slow": ("no control action speeds up the API; watching until its latency is back under the limit", None),
    # `levqor up` (or the orchestrator) restarts a dead API process; a person only if the outage outlasts that.
    "api_down": ("API outage; waiting for the supervisor's restart", "ops_api_down_escalate_s"),
}


@dataclass
class HealStep:
    incident_id: int
    # acted | healed | waiting | retry_later | escalated | observed | skipped | due | needs_approval
    outcome: str
    action: str = ""
    detail: str = ""
    tool: str = ""  # needs_approval: the tool and arguments a person must approve
    args: dict[str, Any] | None = None


def _ctx(session: Session) -> ToolContext:
    return ToolContext(session, HEALER)


def _record_action(session: Session, inc: Incident, pb: Playbook, args: dict[str, Any], result: str,
                   now: dt.datetime, detail: str = "") -> None:
    target = str(args.get(pb.target_key, "")) if pb.target_key else ""
    IncidentRepository(session).add_event(
        inc.id, "action", f"{pb.name}: {result}" + (f" ({detail})" if detail else ""), actor=HEALER.actor,
        data={"tool": pb.tool, "args": args, "result": result, pb.target_key or "target": target}, at=now)
    SELF_HEALS.labels(action=pb.name, result=result).inc()


def heal(incident_id: int, now: dt.datetime | None = None, *, prefer: str | None = None,
         run_id: int | None = None, act: bool = True) -> HealStep:
    """Take one healing step on an incident (act, verify, back off or escalate) and commit it.

    ``prefer`` names a playbook proposed by the healer's LLM: tried first when its precondition holds;
    it runs through the same policy checks, limits and verification as any other. ``act=False`` stops
    where a playbook would be chosen and returns ``due`` (the healer then starts an agent run for it).
    In healer run ``run_id`` an action that needs approval returns ``needs_approval`` and the incident
    waits for the person's decision (:func:`approval_decided`); outside a run it escalates."""
    now = now or utcnow()
    s = get_settings()
    with session_scope() as session:
        repo = IncidentRepository(session)
        inc = repo.get(incident_id, lock=True)
        if inc is None or inc.state == "resolved" or inc.manual:
            return HealStep(incident_id, "skipped", detail="resolved or with a person")
        pending = inc.heal_pending
        if pending and pending.get("awaiting_approval"):
            return _awaiting(session, inc, pending, now)
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
        if inc.diagnosis in OBSERVE_ONLY:
            why, limit = OBSERVE_ONLY[inc.diagnosis]
            lasted = (now - _aware(inc.detected_at)).total_seconds()
            if limit is None or lasted < float(getattr(s, limit)):
                return HealStep(incident_id, "observed", detail=why)
            escalate(session, inc, f"still there after {lasted:.0f}s of watching ({why})", now=now)
            return HealStep(incident_id, "escalated", detail="watched too long")
        if not act:
            return HealStep(incident_id, "due")
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
            if isinstance(exc, ApprovalRequired) and run_id is not None:
                return _await_approval(session, inc, pb, args, run_id, exc.detail, now)
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
        deadline = now + dt.timedelta(seconds=max(s.ops_heal_verify_s, pb.verify_min_s))
        inc.heal_pending = {"playbook": pb.name, "args": args, "at": now.isoformat(), "deadline": deadline.isoformat()}
        _record_action(session, inc, pb, args, "acted", now)
        audit_log.record(ctx, "ops.self_heal", f"incident:{inc.id}",
                         detail={"playbook": pb.name, "tool": pb.tool, "args": args,
                                 "result": out.model_dump(mode="json")})
        return HealStep(incident_id, "acted", pb.name)


# ---- actions a person must approve (the healer's agent runs pause for them) -----------------------

def _await_approval(session: Session, inc: Incident, pb: Playbook, args: dict[str, Any], run_id: int,
                    reason: str, now: dt.datetime) -> HealStep:
    """The policy wants a person to approve ``pb``: the incident waits for healer run ``run_id``."""
    inc.heal_pending = {"playbook": pb.name, "tool": pb.tool, "args": args, "at": now.isoformat(),
                        "awaiting_approval": True, "run_id": run_id}
    IncidentRepository(session).add_event(
        inc.id, "action", f"{pb.name}: awaiting approval of {pb.tool} by a person (healer run {run_id})",
        actor=HEALER.actor, at=now,
        data={"tool": pb.tool, "args": args, "result": "awaiting_approval", "run_id": run_id, "reason": reason})
    SELF_HEALS.labels(action=pb.name, result="needs_approval").inc()
    return HealStep(inc.id, "needs_approval", pb.name, reason, tool=pb.tool, args=args)


def _approval_run_status(session: Session, pending: dict[str, Any]) -> str | None:
    from memory.agents.repository import AgentRepository

    run = AgentRepository(session).run(int(pending["run_id"]))
    return run.status if run is not None else None


def _awaiting(session: Session, inc: Incident, pending: dict[str, Any], now: dt.datetime) -> HealStep:
    """A step while an action awaits a person: the symptom may go meanwhile, or its run may have died."""
    status = _approval_run_status(session, pending)
    if status in (None, "succeeded", "failed"):
        escalate(session, inc, f"healer run {pending['run_id']} ended without recording the decision on "
                               f"{pending.get('tool')}", now=now)
        return HealStep(inc.id, "escalated", pending["playbook"], "approval run ended")
    pb = _find(pending["playbook"])
    # While the run is resuming (running), the decision is being recorded: leave the incident to it.
    if status == "waiting_approval" and pb is not None and not _applies(pb, session, inc):
        resolve(session, inc, HEALER.actor, f"the symptom went away while {pb.name} awaited approval", now)
        return HealStep(inc.id, "healed", pb.name, "symptom gone before the approval")
    return HealStep(inc.id, "waiting", pending["playbook"], "awaiting approval")


def _awaits(inc: Incident | None, run_id: int) -> bool:
    pending = inc.heal_pending if inc is not None else None
    return bool(pending and pending.get("awaiting_approval") and pending.get("run_id") == run_id)


def approval_still_needed(incident_id: int, run_id: int) -> str | None:
    """None while the incident waits for run ``run_id``'s approval and its symptom is there; else why not.

    A healer run asks this before it asks for (and again before it executes) an approved action, so a
    person's late approval never acts on an incident that healed, resolved or went to a person meanwhile."""
    now = utcnow()
    with session_scope() as session:
        inc = IncidentRepository(session).get(incident_id, lock=True)
        if inc is None or inc.state == "resolved":
            return "the incident is resolved"
        if inc.manual:
            return "the incident is with a person"
        if not _awaits(inc, run_id):
            return "the incident no longer waits for this approval"
        pb = _find(inc.heal_pending["playbook"])  # type: ignore[index]
        if pb is None:
            escalate(session, inc, f"playbook {inc.heal_pending['playbook']} no longer exists", now=now)  # type: ignore[index]
            return "the playbook no longer exists"
        if not _applies(pb, session, inc):
            resolve(session, inc, HEALER.actor, f"the symptom went away while {pb.name} awaited approval", now)
            return "the symptom went away before the action ran"
        return None


def approval_decided(incident_id: int, *, run_id: int, outcome: str, message: str = "",
                     approval_id: int | None = None, result: dict[str, Any] | None = None,
                     now: dt.datetime | None = None) -> HealStep:
    """Record what became of an action healer run ``run_id`` asked a person to approve, and go on from there.

    ``outcome`` is the runtime's: ``approved`` (it ran as a system call naming the approver; ``ok`` when the
    policy no longer asked), ``rejected`` (rejected or expired), ``denied`` or ``refused`` (the policy refused
    it even so) or ``error``. Approved: the action is recorded and verified like any other; rejected or denied: a person
    takes the incident; an error backs off like a failed action (the next attempt asks again)."""
    now = now or utcnow()
    s = get_settings()
    with session_scope() as session:
        inc = IncidentRepository(session).get(incident_id, lock=True)
        if inc is None or not _awaits(inc, run_id):
            return HealStep(incident_id, "skipped", detail="the incident no longer waits for this approval")
        pending = dict(inc.heal_pending or {})
        args = dict(pending.get("args") or {})
        status, by, note = outcome, "", ""
        if approval_id is not None:
            from memory.agents.repository import AgentRepository

            ap = AgentRepository(session).approval(approval_id)
            if ap is not None:
                status, by, note = ap.status, ap.decided_by or "", ap.note or ""
                if ap.status == "approved" and ap.edited_args is not None:
                    args = dict(ap.edited_args)
        ref = f"approval {approval_id}" if approval_id is not None else "no approval was needed in the end"
        who = ", ".join(x for x in (f"by {by}" if by else "", ref, note) if x)
        pb = _find(pending["playbook"])
        if pb is None:
            escalate(session, inc, f"playbook {pending['playbook']} no longer exists; {pending.get('tool')} "
                                   f"was {status} ({who})", now=now)
            return HealStep(incident_id, "escalated", pending["playbook"], "unknown playbook")
        inc.heal_pending = None
        if outcome in ("approved", "ok"):
            inc.heal_attempts += 1
            deadline = now + dt.timedelta(seconds=max(s.ops_heal_verify_s, pb.verify_min_s))
            inc.heal_pending = {"playbook": pb.name, "args": args, "at": now.isoformat(),
                                "deadline": deadline.isoformat(), "approval_id": approval_id}
            _record_action(session, inc, pb, args, "acted", now, f"approved {who}" if by else who)
            audit_log.record(_ctx(session), "ops.self_heal", f"incident:{inc.id}",
                             detail={"playbook": pb.name, "tool": pb.tool, "args": args, "result": result,
                                     "approval_id": approval_id, "approved_by": by or None})
            return HealStep(incident_id, "acted", pb.name, f"approved {who}" if by else who)
        if outcome == "rejected":
            _record_action(session, inc, pb, args, status, now, who)
            escalate(session, inc, f"{pb.tool} was {status} ({who}); a person decides what to do", now=now)
            return HealStep(incident_id, "escalated", pb.name, status)
        if outcome in ("denied", "refused"):
            _record_action(session, inc, pb, args, "denied", now, message)
            escalate(session, inc, f"{pb.tool}: {message}", now=now)
            return HealStep(incident_id, "escalated", pb.name, "denied")
        inc.heal_attempts += 1
        _record_action(session, inc, pb, args, "failed", now, message)
        if inc.heal_attempts >= s.ops_heal_max_attempts:
            escalate(session, inc, f"{pb.tool} failed: {message}", now=now)
            return HealStep(incident_id, "escalated", pb.name, message)
        inc.next_heal_at = now + dt.timedelta(seconds=BACKOFF_BASE_S * 2 ** (inc.heal_attempts - 1))
        return HealStep(incident_id, "retry_later", pb.name, message)


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
