"""The incident lifecycle: findings open, group into, reopen, resolve and escalate incidents.

A finding names its *cause*. At most one incident per cause is unresolved: a new finding with the same
cause adds evidence to it (grouping; the unique partial index makes this hold under races too). A cause
that comes back within ``ops_flap_window_s`` of being resolved reopens its incident; after
``ops_flap_max`` reopens it is *flapping* and escalates to a person instead of being healed again.
Incidents not seen for ``ops_resolve_quiet_s`` resolve themselves. Opening and resolving emit
``incident_opened`` and ``incident_resolved`` through the outbox and queue notifications
(:mod:`tools.auto_intel.notifications`). Everything here works in the caller's session and only flushes.
"""

from __future__ import annotations

import datetime as dt

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from levqor.settings import get_settings
from memory.db import aware as _aware
from memory.db import utcnow
from memory.ops.models import INCIDENT_STATES, SEVERITIES, Incident
from memory.ops.repository import IncidentRepository
from tools.auto_intel.findings import Finding
from tools.auto_intel.notifications import incident_payload, notify
from tools.events.service import emit

INCIDENTS_OPENED = Counter("levqor_ops_incidents_opened_total", "Incidents opened or reopened", ["diagnosis"])
INCIDENTS = Gauge("levqor_ops_incidents", "Incidents by state", ["state"], multiprocess_mode="livemostrecent")
TIME_TO_DETECT = Histogram("levqor_ops_time_to_detect_seconds", "From first symptom to incident opened",
                           buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 900))
TIME_TO_RECOVER = Histogram("levqor_ops_time_to_recover_seconds", "From first symptom to incident resolved",
                            buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 900, 3600))

_SEV_RANK = {s: i for i, s in enumerate(SEVERITIES)}


def open_or_update(session: Session, f: Finding, now: dt.datetime) -> tuple[Incident, str]:
    """Record finding ``f``: ``(incident, "opened" | "reopened" | "updated")``."""
    s = get_settings()
    repo = IncidentRepository(session)
    inc = repo.open_for_cause(f.cause)
    if inc is not None:
        inc.last_seen_at = now
        inc.occurrences += 1
        if _SEV_RANK.get(f.severity, 1) > _SEV_RANK.get(inc.severity, 1):
            inc.severity = f.severity
        new_signal = f.fingerprint not in (inc.signals or [])
        if new_signal:
            inc.signals = [*(inc.signals or []), f.fingerprint][:50]
            if inc.kind == "anomaly" and f.kind == "rule":  # a rule explains an anomaly: it drives healing
                inc.kind, inc.diagnosis, inc.title, inc.fingerprint = "rule", f.diagnosis, f.title[:300], f.fingerprint
                inc.subject = {**(inc.subject or {}), **f.subject}
        if new_signal or inc.occurrences & (inc.occurrences - 1) == 0:  # new cause, or 2, 4, 8, ... sightings
            repo.add_event(inc.id, "evidence", f.title, actor="agent:monitor",
                           data={"fingerprint": f.fingerprint, **f.evidence}, at=now)
        session.flush()
        return inc, "updated"
    prev = repo.recently_resolved(f.cause, now - dt.timedelta(seconds=s.ops_flap_window_s))
    if prev is not None:
        prev.state, prev.resolved_at, prev.resolved_by, prev.mitigated_at = "open", None, None, None
        prev.reopens += 1
        prev.last_seen_at, prev.occurrences = now, prev.occurrences + 1
        prev.heal_pending, prev.next_heal_at = None, None
        repo.add_event(prev.id, "state", f"reopened ({prev.reopens}): {f.title}", actor="agent:monitor",
                       data={"fingerprint": f.fingerprint, **f.evidence}, at=now)
        if prev.reopens >= s.ops_flap_max and not prev.flapping:
            prev.flapping = True
            escalate(session, prev, f"flapping: came back {prev.reopens} times within "
                                    f"{s.ops_flap_window_s:g}s of being resolved", now=now)
        session.flush()
        INCIDENTS_OPENED.labels(diagnosis=prev.diagnosis).inc()
        emit(session, "incident_opened", {**incident_payload(prev), "reopened": True}, org_id=prev.org_id)
        return prev, "reopened"
    detected = _aware(f.symptom_at) if f.symptom_at else now
    inc = Incident(org_id=f.org_id, cause=f.cause, fingerprint=f.fingerprint, kind=f.kind, diagnosis=f.diagnosis,
                   title=f.title[:300], severity=f.severity, state="open", subject=f.subject, signals=[f.fingerprint],
                   detected_at=min(detected, now), opened_at=now, last_seen_at=now)
    try:
        with session.begin_nested():
            repo.add(inc)
    except IntegrityError:  # another monitor opened it first: group into that one
        return open_or_update(session, f, now)
    repo.add_event(inc.id, "evidence", f.title, actor="agent:monitor", data={"fingerprint": f.fingerprint,
                                                                             **f.evidence}, at=now)
    inc.summary = summary_template(inc)
    TIME_TO_DETECT.observe(max(0.0, (now - inc.detected_at).total_seconds()))
    INCIDENTS_OPENED.labels(diagnosis=inc.diagnosis).inc()
    emit(session, "incident_opened", incident_payload(inc), org_id=inc.org_id)
    notify(session, inc, "opened")
    return inc, "opened"


def summary_template(inc: Incident) -> str:
    """The offline incident summary (the healer's LLM, when configured, writes a better one)."""
    subject = ", ".join(f"{k} {v}" for k, v in (inc.subject or {}).items() if k != "job_ids") or "the platform"
    return (f"{inc.severity.capitalize()} {inc.diagnosis.replace('_', ' ')} affecting {subject}: {inc.title}. "
            f"First seen {inc.detected_at:%Y-%m-%d %H:%M:%S} UTC; {len(inc.signals or [])} signal(s) grouped.")


def resolve(session: Session, inc: Incident, actor: str, note: str, now: dt.datetime | None = None) -> None:
    now = now or utcnow()
    if inc.state == "resolved":
        return
    inc.state, inc.resolved_at, inc.resolved_by, inc.heal_pending = "resolved", now, actor, None
    IncidentRepository(session).add_event(inc.id, "state", f"resolved: {note}", actor=actor, at=now)
    TIME_TO_RECOVER.observe(max(0.0, (now - _aware(inc.detected_at)).total_seconds()))
    emit(session, "incident_resolved", {**incident_payload(inc), "resolved_by": actor,
                                        "ttr_s": (now - _aware(inc.detected_at)).total_seconds()},
         org_id=inc.org_id)
    if inc.manual:
        notify(session, inc, "resolved")


def escalate(session: Session, inc: Incident, reason: str, *, now: dt.datetime | None = None) -> None:
    """Hand the incident to a person: flag it manual, say why, notify."""
    if inc.manual:
        return
    inc.manual = True
    inc.heal_pending = None
    if _SEV_RANK.get(inc.severity, 1) < _SEV_RANK["high"]:
        inc.severity = "high"
    IncidentRepository(session).add_event(inc.id, "state", f"escalated to a person: {reason}",
                                          actor="agent:healer", at=now or utcnow(), data={"reason": reason})
    notify(session, inc, "needs a person")


def resolve_quiet(session: Session, now: dt.datetime, seen: set[str]) -> list[int]:
    """Resolve incidents (not escalated) whose cause was not seen for ``ops_resolve_quiet_s``."""
    quiet = dt.timedelta(seconds=get_settings().ops_resolve_quiet_s)
    done = []
    for inc in IncidentRepository(session).unresolved():
        if inc.cause in seen or inc.manual or now - _aware(inc.last_seen_at) < quiet:
            continue
        resolve(session, inc, "agent:monitor", "symptom gone", now)
        done.append(inc.id)
    return done


def refresh_gauges(session: Session) -> None:
    counts = IncidentRepository(session).counts_by_state()
    for st in INCIDENT_STATES:
        INCIDENTS.labels(state=st).set(counts.get(st, 0))
