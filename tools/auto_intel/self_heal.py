"""Self-heal: one step at a time, an incident's playbook (:mod:`tools.auto_intel.playbooks`) acts, then is verified.

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
from dataclasses import dataclass
from typing import Any, Literal

from prometheus_client import Counter
from sqlalchemy.orm import Session

from levqor.settings import get_settings
from memory.agents.repository import AgentRepository
from memory.db import aware as _aware
from memory.db import session_scope, utcnow
from memory.ops.models import Incident
from memory.ops.repository import IncidentRepository
from tools.auto_intel.lifecycle import escalate, resolve
from tools.auto_intel.playbooks import NO_PLAYBOOK, OBSERVE_ONLY, PLAYBOOKS, Playbook, applies, find
from tools.context import Principal, ToolContext
from tools.enterprise import audit_log
from tools.errors import AppError, ApprovalRequired, PolicyDenied
from tools.registry import registry

log = logging.getLogger("levqor.ops.heal")

SELF_HEALS = Counter("levqor_ops_self_heals_total", "Self-heal steps by action and result", ["action", "result"])
HEALER = Principal(kind="agent", id="healer", org_id=None, role="agent", name="agent healer")
BACKOFF_BASE_S = 5.0

Outcome = Literal["acted", "healed", "waiting", "retry_later", "escalated", "observed", "skipped", "due",
                  "needs_approval"]


@dataclass
class HealStep:
    """What one step did to an incident, and with which playbook."""

    incident_id: int
    outcome: Outcome
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
            pb = find(pending["playbook"])
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
        proposed = find(prefer) if prefer else None
        if proposed is not None and proposed not in candidates:
            candidates.insert(0, proposed)
        elif proposed is not None:
            candidates.sort(key=lambda p: p is not proposed)
        pb = next((p for p in candidates if applies(p, session, inc)), None)
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
    run = AgentRepository(session).run(int(pending["run_id"]))
    return run.status if run is not None else None


def _awaiting(session: Session, inc: Incident, pending: dict[str, Any], now: dt.datetime) -> HealStep:
    """A step while an action awaits a person: the symptom may go meanwhile, or its run may have died."""
    status = _approval_run_status(session, pending)
    if status in (None, "succeeded", "failed"):
        escalate(session, inc, f"healer run {pending['run_id']} ended without recording the decision on "
                               f"{pending.get('tool')}", now=now)
        return HealStep(inc.id, "escalated", pending["playbook"], "approval run ended")
    pb = find(pending["playbook"])
    # While the run is resuming (running), the decision is being recorded: leave the incident to it.
    if status == "waiting_approval" and pb is not None and not applies(pb, session, inc):
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
        pending = inc.heal_pending or {}  # set: it awaits this run's approval
        pb = find(pending["playbook"])
        if pb is None:
            escalate(session, inc, f"playbook {pending['playbook']} no longer exists", now=now)
            return "the playbook no longer exists"
        if not applies(pb, session, inc):
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
            ap = AgentRepository(session).approval(approval_id)
            if ap is not None:
                status, by, note = ap.status, ap.decided_by or "", ap.note or ""
                if ap.status == "approved" and ap.edited_args is not None:
                    args = dict(ap.edited_args)
        ref = f"approval {approval_id}" if approval_id is not None else "no approval was needed in the end"
        who = ", ".join(x for x in (f"by {by}" if by else "", ref, note) if x)
        pb = find(pending["playbook"])
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


def open_incident_ids() -> list[int]:
    """Incidents the healer may still act on (not resolved, not with a person)."""
    with session_scope() as s:
        return [i.id for i in IncidentRepository(s).unresolved() if not i.manual]

