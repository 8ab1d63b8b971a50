"""Incidents: anomalies and rule breaches become incidents, de-duplicated and grouped by cause.

A finding names its *cause* (``worker:<id>``, ``pipeline:<id>``, ``queue``, ``partner:<id>``, ...). At
most one incident per cause is unresolved: a new finding with the same cause adds evidence to it
(grouping; the unique partial index makes this hold under races too). A cause that comes back within
``ops_flap_window_s`` of being resolved reopens its incident; after ``ops_flap_max`` reopens it is
*flapping* and escalates to a person instead of being healed again. Incidents not seen for
``ops_resolve_quiet_s`` resolve themselves. Opening and resolving emit ``incident_opened`` and
``incident_resolved`` through the outbox and queue notifications (email recorded in
``ops_notifications`` and the log, there is no SMTP here; webhooks through the SSRF guard).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from levqor.settings import get_settings
from memory.db import aware as _aware
from memory.db import session_scope, utcnow
from memory.ops.models import INCIDENT_STATES, SEVERITIES, Incident, IncidentEvent, OpsNotification
from memory.ops.repository import IncidentRepository, SignalRepository, SignalSourceRepository
from tools.context import ToolContext
from tools.enterprise import audit_log
from tools.errors import Conflict, NotFound
from tools.events.service import emit
from tools.registry import tool

log = logging.getLogger("levqor.ops")

ANOMALIES = Counter("levqor_ops_anomalies_total", "Anomalous points detected by the monitor", ["signal"])
INCIDENTS_OPENED = Counter("levqor_ops_incidents_opened_total", "Incidents opened or reopened", ["diagnosis"])
INCIDENTS = Gauge("levqor_ops_incidents", "Incidents by state", ["state"], multiprocess_mode="livemostrecent")
TIME_TO_DETECT = Histogram("levqor_ops_time_to_detect_seconds", "From first symptom to incident opened",
                           buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 900))
TIME_TO_RECOVER = Histogram("levqor_ops_time_to_recover_seconds", "From first symptom to incident resolved",
                            buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 900, 3600))

# Series the detector watches (prefixes); the rest are kept for charts and rules only.
ANOMALY_SERIES: tuple[str, ...] = (
    "jobs.failure_rate", "jobs.failed", "jobs.queue.depth", "jobs.queue.oldest_age_s", "jobs.start_latency_s.p95",
    "api.latency_s.p95", "api.error_rate", "worker.rss_bytes", "partner.error_rate",
)
_SEV_RANK = {s: i for i, s in enumerate(SEVERITIES)}


@dataclass
class Finding:
    """One symptom seen now: a rule breach or an anomalous point."""

    cause: str
    fingerprint: str
    kind: str  # rule | anomaly
    diagnosis: str
    title: str
    severity: str = "medium"
    subject: dict[str, Any] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)
    org_id: int | None = None
    symptom_at: dt.datetime | None = None


# ---- anomaly scoring --------------------------------------------------------------------------------

class Detectors:
    """One H4 :class:`AnomalyDetector` per series, kept in memory and snapshotted to the database."""

    SAVE_EVERY = 12

    def __init__(self) -> None:
        self._dets: dict[str, Any] = {}
        self._points: dict[str, int] = {}
        self.lock = threading.Lock()

    def _get(self, repo: SignalRepository, series: str) -> Any:
        from tools.auto_intel.anomaly_detector import AnomalyDetector, DetectorConfig

        det = self._dets.get(series)
        if det is None:
            row = repo.detector(series)
            if row is not None:
                det = AnomalyDetector.restore(row.state)
                self._points[series] = row.points
            else:
                det = AnomalyDetector(DetectorConfig(warmup=get_settings().ops_detector_warmup))
                self._points[series] = 0
            self._dets[series] = det
        return det

    def score(self, session: Session, ts: dt.datetime,
              points: list[tuple[str, float]]) -> list[tuple[str, float, float | None]]:
        repo = SignalRepository(session)
        out: list[tuple[str, float, float | None]] = []
        with self.lock:
            for series, value in points:
                if not series.startswith(ANOMALY_SERIES):
                    out.append((series, value, None))
                    continue
                det = self._get(repo, series)
                score = float(det.update(value, ts.timestamp()))
                n = self._points[series] = self._points.get(series, 0) + 1
                if n % self.SAVE_EVERY == 1:
                    repo.save_detector(series, det.snapshot(), n)
                out.append((series, value, score))
        return out

    def forget(self) -> None:
        with self.lock:
            self._dets.clear()
            self._points.clear()


detectors = Detectors()


def _cause_of(series: str) -> tuple[str, dict[str, Any]]:
    from tools.auto_intel.signals import parse_series

    name, labels = parse_series(series)
    if "worker" in labels:
        return f"worker:{labels['worker']}", {"worker_id": labels["worker"]}
    if "pipeline" in labels:
        return f"pipeline:{labels['pipeline']}", {"pipeline_id": int(labels["pipeline"])}
    if "install" in labels:
        return f"partner:{labels['install']}", {"install_id": int(labels["install"])}
    if "route" in labels:
        return f"api:{labels['route']}", {"route": labels["route"]}
    if name.startswith("jobs.queue") or name.startswith("jobs.start_latency"):
        return "queue", {}
    return name.split(".")[0], {}


def anomaly_findings(scored: list[tuple[str, float, float | None]], ts: dt.datetime) -> list[Finding]:
    threshold = get_settings().ops_anomaly_threshold
    out = []
    for series, value, score in scored:
        if score is None or score < threshold:
            continue
        ANOMALIES.labels(signal=series.split("{")[0]).inc()
        cause, subject = _cause_of(series)
        out.append(Finding(cause=cause, fingerprint=f"anomaly:{series}", kind="anomaly", diagnosis="anomaly",
                           title=f"Unusual {series}: {value:g} (score {score:.2f})",
                           severity="high" if score >= 0.9 else "medium", subject=subject,
                           evidence={"series": series, "value": value, "score": round(score, 4)}, symptom_at=ts))
    return out


# ---- rules --------------------------------------------------------------------------------------------

def rule_findings(session: Session, now: dt.datetime, points: list[tuple[str, float]]) -> list[Finding]:
    """Evaluate the rule breaches: queue age, expired leases, dead, hung or leaking workers,
    failing pipelines, slow API routes, failing partner endpoints, poison jobs, capacity shortage."""
    import socket

    import psutil

    from tools.auto_intel.signals import parse_series

    s = get_settings()
    src = SignalSourceRepository(session)
    values = dict(points)
    out: list[Finding] = []

    age = values.get("jobs.queue.oldest_age_s", 0.0)
    if age > s.ops_queue_age_max_s:
        out.append(Finding("queue", "rule:queue_age", "rule", "queue_age",
                           f"Oldest due job has waited {age:.0f}s (limit {s.ops_queue_age_max_s:g}s)", "high",
                           evidence={"oldest_age_s": age, "depth": values.get("jobs.queue.depth")},
                           symptom_at=now - dt.timedelta(seconds=age - s.ops_queue_age_max_s)))
    expired = src.expired_leases(now)
    if expired:
        since = min(_aware(j.lease_until) for j in expired if j.lease_until is not None)
        out.append(Finding("queue:leases", "rule:expired_leases", "rule", "expired_leases",
                           f"{len(expired)} running job(s) hold an expired lease", "high",
                           subject={"job_ids": [j.id for j in expired][:50]},
                           evidence={"job_ids": [j.id for j in expired][:50]}, symptom_at=since))

    stale_after = max(3.0, float(s.job_lease_s))
    host = socket.gethostname()
    for w in src.workers():
        hb_age = (now - _aware(w.heartbeat_at)).total_seconds()
        alive = psutil.pid_exists(w.pid) if w.host == host else None
        if w.command == "restart" and alive is False:
            continue  # restarted and gone: retired, the supervisor runs a replacement
        if alive is False:
            out.append(Finding(f"worker:{w.id}", "rule:worker_dead", "rule", "worker_dead",
                               f"Worker {w.id} (pid {w.pid}) is gone without deregistering", "critical",
                               subject={"worker_id": w.id, "pid": w.pid},
                               evidence={"heartbeat_age_s": hb_age, "jobs": list(w.current_jobs or [])},
                               symptom_at=_aware(w.heartbeat_at)))
        elif hb_age > stale_after:
            out.append(Finding(f"worker:{w.id}", "rule:worker_hung", "rule", "worker_hung",
                               f"Worker {w.id} has not sent a heartbeat for {hb_age:.0f}s", "high",
                               subject={"worker_id": w.id, "pid": w.pid},
                               evidence={"heartbeat_age_s": hb_age, "jobs": list(w.current_jobs or [])},
                               symptom_at=_aware(w.heartbeat_at) + dt.timedelta(seconds=stale_after)))
        elif w.rss_bytes is not None:
            recent = SignalRepository(session).recent(f"worker.rss_bytes{{worker={w.id}}}", 11)
            xs = [r.value for r in recent] + [float(w.rss_bytes)]
            growing = len(xs) >= 6 and all(b >= a * 0.99 for a, b in zip(xs, xs[1:], strict=False))
            if growing and xs[-1] - xs[0] >= s.ops_rss_growth_bytes:
                out.append(Finding(f"worker:{w.id}", "rule:worker_leak", "rule", "worker_leak",
                                   f"Worker {w.id} RSS grew {(xs[-1] - xs[0]) / 1e6:.0f} MB steadily", "medium",
                                   subject={"worker_id": w.id, "pid": w.pid},
                                   evidence={"rss_bytes": xs[-1], "growth_bytes": xs[-1] - xs[0]},
                                   symptom_at=_aware(recent[0].ts) if recent else now))

    for series, value in points:
        name, labels = parse_series(series)
        if name == "jobs.failure_rate" and "pipeline" in labels and value > s.ops_failure_rate_max:
            pid = int(labels["pipeline"])
            n = values.get(f"jobs.finished{{pipeline={pid}}}", 0.0)
            # A paused pipeline's recent failures are handled (paused by the healer or a person): the
            # rule would only reopen the incident until they age out of the window.
            if n >= s.ops_failure_min_jobs and not _paused(session, pid):
                out.append(Finding(f"pipeline:{pid}", f"rule:failure_rate:{pid}", "rule", "failure_rate",
                                   f"Pipeline {pid}: {value:.0%} of {n:.0f} recent jobs failed", "high",
                                   subject={"pipeline_id": pid}, evidence={"failure_rate": value, "finished": n},
                                   org_id=src.pipeline_org(pid), symptom_at=now))
        elif name == "api.latency_s.p95" and "route" in labels and value > s.ops_api_p95_max_s:
            route = labels["route"]
            n = values.get(f"api.requests{{route={route}}}", 0.0)
            if n >= 3:  # one slow request is not a slow route
                out.append(Finding(f"api:{route}", f"rule:api_slow:{route}", "rule", "api_slow",
                                   f"API {route}: p95 latency {value:.2f}s over {n:.0f} requests "
                                   f"(limit {s.ops_api_p95_max_s:g}s)", "high", subject={"route": route},
                                   evidence={"p95_s": value, "requests": n}, symptom_at=now))
        elif name == "partner.error_rate" and "install" in labels and value > s.ops_partner_error_rate_max:
            iid = int(labels["install"])
            n = values.get(f"partner.attempts{{install={iid}}}", 0.0)
            if n >= s.ops_failure_min_jobs and not _endpoint_disabled(session, iid):
                out.append(Finding(f"partner:{iid}", f"rule:partner_errors:{iid}", "rule", "partner_errors",
                                   f"Partner endpoint of install {iid}: {value:.0%} of {n:.0f} deliveries failed",
                                   "medium", subject={"install_id": iid}, evidence={"error_rate": value},
                                   symptom_at=now))

    outage = _api_down(session, now)
    if outage is not None:
        out.append(outage)

    from tools.auto_intel.capacity import measure

    cap = measure(session, now, depth=int(values.get("jobs.queue.depth", 0)))
    if cap is not None and cap.short:
        want = min(s.workers_max, cap.workers_needed())
        out.append(Finding("capacity", "rule:capacity", "rule", "capacity", cap.describe(), "high",
                           subject={"desired": want, "healthy_workers": cap.healthy_workers},
                           evidence={"depth": cap.depth, "drain_s": round(cap.drain_s, 2),
                                     "throughput_per_s": round(cap.throughput_per_s, 3),
                                     "mean_run_s": round(cap.mean_run_s, 3), "forecast_peak": cap.forecast_peak,
                                     "workers_needed": cap.workers_needed()}, symptom_at=now))

    for job in _poison(src.suspected_poison(now - dt.timedelta(days=1))):
        out.append(Finding(f"job:{job.id}", f"rule:poison_job:{job.id}", "rule", "poison_job",
                           f"Job {job.id} lost its worker {job.attempts} times (it may crash workers)", "high",
                           subject={"job_id": job.id, "pipeline_id": job.pipeline_id},
                           evidence={"attempts": job.attempts, "last_error": (job.last_error or "")[:300]},
                           org_id=job.org_id, symptom_at=now))
    return out


def _paused(session: Session, pipeline_id: int) -> bool:
    from memory.jobs.models import Pipeline

    p = session.get(Pipeline, pipeline_id)
    return bool(p is not None and p.paused)


def _api_down(session: Session, now: dt.datetime) -> Finding | None:
    """An outage: the scheduler's last ``ops_api_down_probes`` /readyz probes (all recent) failed.

    The incident's first evidence is the first failed probe of the streak; it resolves itself once a probe
    succeeds, and its span is downtime in the uptime KPI (``tools.pulse.kpis.OUTAGE_DIAGNOSES``)."""
    from sqlalchemy import select

    from memory.pulse.models import ReadinessProbe

    s = get_settings()
    n = max(1, s.ops_api_down_probes)
    recent_since = now - dt.timedelta(seconds=s.pulse_probe_interval_s * (n + 1))
    rows = list(session.execute(select(ReadinessProbe.ts, ReadinessProbe.ok, ReadinessProbe.status_code,
                                       ReadinessProbe.detail)
                                .where(ReadinessProbe.ts >= recent_since)
                                .order_by(ReadinessProbe.ts.desc()).limit(n)))
    if len(rows) < n or any(r.ok for r in rows):
        return None
    first = _aware(rows[-1].ts)
    return Finding("api", "rule:api_down", "rule", "api_down",
                   f"The API failed its last {n} readiness probes (/readyz)", "critical",
                   evidence={"probes": [{"at": _aware(r.ts).isoformat(), "status": r.status_code,
                                         "detail": (r.detail or "")[:200]} for r in rows]},
                   symptom_at=first)


def _endpoint_disabled(session: Session, install_id: int) -> bool:
    """A disabled endpoint gets no deliveries: its past failures are no longer a live symptom."""
    from memory.partner.models import PluginInstall

    inst = session.get(PluginInstall, install_id)
    return inst is not None and inst.endpoint_disabled_at is not None


def _expiries(job: Any) -> int:
    import re

    m = re.match(r"lease expired on attempt (\d+)", job.last_error or "")
    return int(m.group(1)) if m else 0


def _poison(suspects: list[Any]) -> list[Any]:
    """Jobs that crashed their workers more often than any other suspect, or three times or more.

    A job running beside a poison job dies with the same worker: two suspects with the same count are
    not told apart until the poison one crashes another worker (dead-lettering an innocent job is worse
    than one more crash)."""
    if not suspects:
        return []
    top = max(_expiries(j) for j in suspects)
    leaders = [j for j in suspects if _expiries(j) == top]
    return [j for j in suspects if _expiries(j) >= 3 or (len(leaders) == 1 and j is leaders[0])]


# ---- opening, grouping, flapping, resolving ---------------------------------------------------------

def _event_payload(inc: Incident) -> dict[str, Any]:
    return {"incident_id": inc.id, "cause": inc.cause, "diagnosis": inc.diagnosis, "severity": inc.severity,
            "title": inc.title, "state": inc.state, "manual": inc.manual, "flapping": inc.flapping}


def notify(session: Session, inc: Incident, what: str) -> int:
    """Queue an email per configured address and a webhook call for ``what`` (opened, resolved, escalated)."""
    s = get_settings()
    subject = f"[levqor {inc.severity}] incident {inc.id} {what}: {inc.title}"[:300]
    body = json.dumps({**_event_payload(inc), "event": what, "summary": inc.summary}, default=str)
    repo = IncidentRepository(session)
    n = 0
    for to in s.ops_notify_emails:
        repo.add_notification(OpsNotification(incident_id=inc.id, channel="email", target=to, subject=subject,
                                              body=body))
        n += 1
    if s.ops_notify_webhook:
        repo.add_notification(OpsNotification(incident_id=inc.id, channel="webhook", target=s.ops_notify_webhook,
                                              subject=subject, body=body))
        n += 1
    if n:
        repo.add_event(inc.id, "notification", f"{n} notification(s) queued: {what}", actor="system")
    return n


def send_notifications(limit: int = 50) -> int:
    """Send queued notifications: email goes to the log (no SMTP), webhooks through the SSRF guard."""
    from tools.jobs import ssrf

    sent = 0
    with session_scope() as s:
        for n in IncidentRepository(s).pending_notifications(limit):
            n.attempts += 1
            if n.channel == "email":
                log.warning("incident email", extra={"fields": {"to": n.target, "subject": n.subject}})
                n.status, n.sent_at = "sent", utcnow()
                sent += 1
                continue
            try:
                resp = ssrf.request("POST", n.target, headers={"content-type": "application/json"},
                                    content=n.body.encode(), timeout=10.0)
            except ssrf.SSRFBlocked as exc:
                n.status, n.error = "blocked", str(exc)[:1000]
                continue
            except Exception as exc:
                n.error = f"{type(exc).__name__}: {exc}"[:1000]
                n.status = "failed" if n.attempts >= 5 else "pending"
                continue
            if 200 <= resp.status_code < 300:
                n.status, n.sent_at = "sent", utcnow()
                sent += 1
            else:
                n.error = f"HTTP {resp.status_code}"
                n.status = "failed" if n.attempts >= 5 else "pending"
    return sent


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
        emit(session, "incident_opened", {**_event_payload(prev), "reopened": True}, org_id=prev.org_id)
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
    emit(session, "incident_opened", _event_payload(inc), org_id=inc.org_id)
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
    emit(session, "incident_resolved", {**_event_payload(inc), "resolved_by": actor,
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


# ---- the monitor's tick -----------------------------------------------------------------------------

@dataclass
class TickResult:
    sampled: int = 0
    findings: list[Finding] = field(default_factory=list)
    opened: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)
    error: str | None = None


_last_maintenance: list[dt.datetime] = []


def monitor_tick(now: dt.datetime | None = None, *, api_text: str | None = None) -> TickResult:
    """Sample, score, evaluate rules, correlate, open/update/resolve incidents. Never raises: a dead
    database connection is reported and the next tick starts afresh (detector state is in memory)."""
    from tools.auto_intel import signals

    res = TickResult()
    now = now or utcnow()
    try:
        with session_scope() as s:
            points = signals.collect(s, now, api_text=api_text)
            scored = detectors.score(s, now, points)
            res.sampled = signals.store(s, now, scored)
            res.findings = rule_findings(s, now, points) + anomaly_findings(scored, now)
            for f in res.findings:
                inc, what = open_or_update(s, f, now)
                (res.opened if what in ("opened", "reopened") else res.updated).append(inc.id)
            res.resolved = resolve_quiet(s, now, {f.cause for f in res.findings})
            if not _last_maintenance or now - _last_maintenance[0] >= dt.timedelta(minutes=5):
                signals.maintain(s, now)
                _last_maintenance[:] = [now]
            refresh_gauges(s)
    except Exception as exc:
        from sqlalchemy.exc import DBAPIError

        res.error = f"{type(exc).__name__}: {exc}"[:500]
        log.exception("monitor tick failed; retrying next tick")
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            from memory.db import get_engine

            get_engine().dispose()
    return res


# ---- tools ---------------------------------------------------------------------------------------------

class IncidentRead(BaseModel):
    id: int
    org_id: int | None
    cause: str
    kind: str
    diagnosis: str
    title: str
    severity: str
    state: str
    manual: bool
    flapping: bool
    subject: dict[str, Any]
    signals: list[str]
    summary: str
    occurrences: int
    reopens: int
    heal_attempts: int
    detected_at: dt.datetime
    opened_at: dt.datetime
    last_seen_at: dt.datetime
    acknowledged_at: dt.datetime | None
    acknowledged_by: str | None
    mitigated_at: dt.datetime | None
    resolved_at: dt.datetime | None
    resolved_by: str | None

    @classmethod
    def of(cls, i: Incident) -> IncidentRead:
        return cls.model_validate(i, from_attributes=True)


class TimelineEntry(BaseModel):
    at: dt.datetime
    kind: str
    actor: str
    message: str
    data: dict[str, Any]

    @classmethod
    def of(cls, e: IncidentEvent) -> TimelineEntry:
        return cls(at=e.at, kind=e.kind, actor=e.actor, message=e.message, data=e.data or {})


class NotificationRead(BaseModel):
    channel: str
    target: str
    status: str
    created_at: dt.datetime
    sent_at: dt.datetime | None


class IncidentDetail(IncidentRead):
    timeline: list[TimelineEntry]
    notifications: list[NotificationRead]


class IncidentQuery(BaseModel):
    state: list[str] | None = Field(None, max_length=4, description="open, acknowledged, mitigated, resolved")
    cursor: int | None = Field(None, ge=1, le=2**31 - 1)
    limit: int = Field(50, ge=1, le=500)


class IncidentPage(BaseModel):
    items: list[IncidentRead]
    next_cursor: int | None
    counts: dict[str, int]


class IncidentRef(BaseModel):
    incident_id: int = Field(ge=1, le=2**31 - 1)


class IncidentResolve(IncidentRef):
    note: str = Field("", max_length=1000)


def _scope(ctx: ToolContext) -> int | None:
    """Platform incidents (no organisation) are for Levqor staff and the platform's own principals."""
    from tools.identity.service import is_staff

    p = ctx.principal
    if p.kind in ("system", "agent") and p.org_id is None:
        return None
    if is_staff(ctx):
        return None
    return ctx.org_id


def _visible(ctx: ToolContext, incident_id: int, *, lock: bool = False) -> Incident:
    inc = IncidentRepository(ctx.session).get(incident_id, lock=lock)
    scope = _scope(ctx)
    if inc is None or (scope is not None and inc.org_id != scope):
        raise NotFound(f"incident {incident_id} not found", field="incident_id")
    return inc


@tool("incidents.list", risk="read")
def list_incidents(ctx: ToolContext, params: IncidentQuery) -> IncidentPage:
    """List incidents, newest first, optionally by state."""
    for st in params.state or []:
        if st not in INCIDENT_STATES:
            from tools.errors import Unprocessable

            raise Unprocessable(f"state must be one of {', '.join(INCIDENT_STATES)}", field="state")
    scope = _scope(ctx)
    repo = IncidentRepository(ctx.session)
    rows = repo.search(scope, states=params.state, before_id=params.cursor, limit=params.limit + 1)
    if scope is not None:
        rows = [r for r in rows if r.org_id == scope]
    more = len(rows) > params.limit
    rows = rows[:params.limit]
    counts: dict[str, int] = {}
    for r in repo.search(scope, states=None, before_id=None, limit=5000):
        if scope is None or r.org_id == scope:
            counts[r.state] = counts.get(r.state, 0) + 1
    return IncidentPage(items=[IncidentRead.of(r) for r in rows], next_cursor=rows[-1].id if more else None,
                        counts=counts)


@tool("incidents.get", risk="read")
def get_incident(ctx: ToolContext, params: IncidentRef) -> IncidentDetail:
    """Show one incident with its timeline of evidence and actions and its notifications."""
    inc = _visible(ctx, params.incident_id)
    repo = IncidentRepository(ctx.session)
    return IncidentDetail(**IncidentRead.of(inc).model_dump(),
                          timeline=[TimelineEntry.of(e) for e in repo.events(inc.id)],
                          notifications=[NotificationRead.model_validate(n, from_attributes=True)
                                         for n in repo.notifications(inc.id)])


@tool("incidents.ack", risk="write")
def ack_incident(ctx: ToolContext, params: IncidentRef) -> IncidentRead:
    """Acknowledge an open incident: a person is looking at it."""
    inc = _visible(ctx, params.incident_id, lock=True)
    if inc.state == "resolved":
        raise Conflict(f"incident {inc.id} is resolved", field="incident_id")
    if inc.state == "open":
        now = utcnow()
        inc.state, inc.acknowledged_at, inc.acknowledged_by = "acknowledged", now, ctx.principal.actor
        IncidentRepository(ctx.session).add_event(inc.id, "state", "acknowledged", actor=ctx.principal.actor, at=now)
        audit_log.record(ctx, "incidents.acknowledged", f"incident:{inc.id}")
    return IncidentRead.of(inc)


@tool("incidents.resolve", risk="write")
def resolve_incident(ctx: ToolContext, params: IncidentResolve) -> IncidentRead:
    """Resolve an incident, with a note on what was done."""
    inc = _visible(ctx, params.incident_id, lock=True)
    if inc.state == "resolved":
        raise Conflict(f"incident {inc.id} is already resolved", field="incident_id")
    resolve(ctx.session, inc, ctx.principal.actor, params.note or "resolved by hand")
    audit_log.record(ctx, "incidents.resolved", f"incident:{inc.id}", detail={"note": params.note})
    return IncidentRead.of(inc)


class IncidentSummary(IncidentRef):
    summary: str = Field(min_length=1, max_length=4000)


@tool("incidents.summarize", risk="write")
def summarize_incident(ctx: ToolContext, params: IncidentSummary) -> IncidentRead:
    """Replace an incident's plain-language summary (written by the healer or a person)."""
    inc = _visible(ctx, params.incident_id, lock=True)
    inc.summary = params.summary
    IncidentRepository(ctx.session).add_event(inc.id, "note", "summary updated", actor=ctx.principal.actor,
                                              data={"summary": params.summary[:1000]})
    return IncidentRead.of(inc)
