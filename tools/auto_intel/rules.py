"""The monitor's rules: breaches it recognises from the sampled signals and the stores, each one a finding.

Queue age, expired leases, dead, hung or leaking workers, failing pipelines, slow API routes, an API
that fails its readiness probes, failing partner endpoints, partner webhooks shed under overload, poison
jobs, a capacity shortage (measured and forecast, :mod:`tools.auto_intel.capacity`) and a ``levqor up``
supervisor or API process that died without stopping cleanly, a scheduler leader that died mid-tick, a
failing LLM endpoint (its circuit breaker open), an agent over its daily LLM cost cap, a database outage
(noted by the processes outside the database while it lasted) and a var directory short of space.
Thresholds are settings (``LEVQOR_OPS_*``).
"""

from __future__ import annotations

import datetime as dt
import re
import socket
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from levqor import diskspace
from levqor.db_outage import Span, prune_spans, read_spans
from levqor.settings import get_settings
from memory.agents.repository import LlmBreakerRepository
from memory.db import aware as _aware
from memory.jobs.models import Pipeline
from memory.ops.models import Incident
from memory.ops.repository import IncidentRepository, SignalRepository, SignalSourceRepository
from memory.partner.models import PluginInstall
from memory.partner.repository import PartnerRepository
from memory.pulse.models import ReadinessProbe
from policies.engine import get_engine as get_policy_engine
from tools.auto_intel.capacity import measure
from tools.auto_intel.findings import Finding
from tools.auto_intel.signals import parse_series
from tools.jobs.workers import api_process_stopped, api_processes, supervisors
from tools.schedules import failover

DB_CAUSE = "database"


def rule_findings(session: Session, now: dt.datetime, points: list[tuple[str, float]]) -> list[Finding]:
    """Evaluate the rule breaches: queue age, expired leases, dead, hung or leaking workers,
    failing pipelines, slow API routes, failing partner endpoints, poison jobs, capacity shortage."""
    import psutil  # kept lazy: start-up time

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
    outage = _db_outage(session, now)
    if outage is not None:
        out.append(outage)
    # Leases that expired during a database outage are renewed by their holders once it is back.
    expired = [] if _outage_settling(now, 2.0 * s.job_lease_s) else src.expired_leases(now)
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

    # Shedding is the fan-out's own control (tools.partner_api.admission); the incident makes it seen.
    window = dt.timedelta(seconds=max(30.0, 3 * s.ops_sample_interval_s))
    for org_id, shed, first, reason in PartnerRepository(session).shedding_since(now - window):
        out.append(Finding(f"webhooks:org:{org_id}", "rule:webhook_shedding", "rule", "webhook_shedding",
                           f"Partner webhook fan-out shed {shed} deliveries of organisation {org_id} "
                           f"({reason.replace('_', ' ')}); recorded for replay", "high",
                           subject={"org_id": org_id}, evidence={"shed": shed, "reason": reason},
                           org_id=org_id, symptom_at=first))

    fo = failover(session, float(s.scheduler_lease_s), window.total_seconds())
    if fo.left or fo.taken:
        what = (f"{len(fo.left)} tick(s) unfinished" if fo.left else "") + \
            ("; " if fo.left and fo.taken else "") + (f"{len(fo.taken)} re-run by the new leader" if fo.taken else "")
        out.append(Finding("scheduler", "rule:scheduler_failover", "rule", "scheduler_failover",
                           f"A scheduler leader died mid-tick: {what}", "high",
                           evidence={"unfinished": fo.left[:50], "taken_over": fo.taken[:50]},
                           symptom_at=fo.since or now))

    out += _llm_findings(session, now)
    disk = _disk_full(now)
    if disk is not None:
        out.append(disk)

    outage = _api_down(session, now)
    if outage is not None:
        out.append(outage)
    died = _api_process_died(session, now)
    if died is not None:
        out.append(died)
    for host, pid in supervisors(session):
        if host == socket.gethostname() and not psutil.pid_exists(pid):
            out.append(Finding(f"supervisor:{host}", "rule:supervisor_dead", "rule", "supervisor_dead",
                               f"levqor up (pid {pid}) on {host} died without stopping cleanly; its children "
                               "stop with it (parent-death signal, parent watch)", "critical",
                               subject={"host": host, "pid": pid}, evidence={"pid": pid}, symptom_at=now))

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


def _llm_findings(session: Session, now: dt.datetime) -> list[Finding]:
    """An LLM endpoint whose circuit breaker is open (agents run offline), and agents whose LLM spend in
    an organisation reached today's cap (``llm_daily_cost_cap_usd``: their calls are refused)."""
    out: list[Finding] = []
    repo = LlmBreakerRepository(session)
    for b in repo.all():
        if b.state != "closed":
            out.append(Finding(f"llm:{b.endpoint}", "rule:llm_outage", "rule", "llm_outage",
                               f"LLM endpoint {b.endpoint} is failing ({b.failures} failed call(s)); agents run "
                               "offline until a probe call answers", "high", subject={"endpoint": b.endpoint},
                               evidence={"state": b.state, "failures": b.failures,
                                         "last_error": (b.last_error or "")[:300]},
                               symptom_at=_aware(b.opened_at) if b.opened_at else now))
    engine = get_policy_engine()
    for org_id, agent, spent in repo.spend_by_agent(now.date()):
        cap = engine.llm_cost_cap_micro_usd(agent)
        if cap is not None and spent >= cap:
            out.append(Finding(f"llm_cost:{org_id}:{agent}", f"rule:llm_cost_cap:{agent}", "rule", "llm_cost_cap",
                               f"Agent {agent} spent ${spent / 1e6:.2f} on LLM calls today (cap ${cap / 1e6:.2f}): "
                               "its calls are refused until tomorrow (it runs offline)", "medium",
                               subject={"agent": agent, "org_id": org_id},
                               evidence={"spent_micro_usd": spent, "cap_micro_usd": cap}, org_id=org_id,
                               symptom_at=now))
    return out


def _disk_full(now: dt.datetime) -> Finding | None:
    """Free space in the var directory under ``ops_disk_free_min_bytes`` (what the healer may free, and the
    ENOSPC errors this process met, are evidence)."""
    limit = get_settings().ops_disk_free_min_bytes
    free = diskspace.free_bytes()
    if free >= limit:
        return None
    can = diskspace.freeable()
    return Finding("disk:var", "rule:disk_full", "rule", "disk_full",
                   f"The var directory has {free / 1e6:.1f} MB free (limit {limit / 1e6:.1f} MB); "
                   f"{sum(n for _, n, _ in can) / 1e6:.1f} MB of rotated logs and expired exports may be freed",
                   "critical", subject={"path": str(diskspace.var_dir())},
                   evidence={"free_bytes": free, "limit_bytes": limit, "freeable_files": len(can),
                             "freeable_bytes": sum(n for _, n, _ in can), "enospc": diskspace.enospc_counts()},
                   symptom_at=now)


def _db_outage(session: Session, now: dt.datetime) -> Finding | None:
    """A database outage the processes noted outside the database while it lasted (:mod:`levqor.db_outage`),
    not yet recorded: it started at the first failure any process saw, and ended when one first committed
    after the last process to see it fail (or, when none did yet, when this monitor's tick that opened
    the incident committed). Spans that started before the last recorded outage ended are recorded; spans
    shorter than ``ops_db_outage_min_s`` are left out."""
    var_dir = get_settings().var_dir
    prune_spans(var_dir, now - dt.timedelta(days=1))
    recorded = session.scalar(select(func.max(Incident.resolved_at)).where(Incident.cause == DB_CAUSE))
    spans = [sp for sp in _lasting(now) if recorded is None or sp.start > _aware(recorded)]
    if not spans:
        return None
    start, last_failure = min(sp.start for sp in spans), max(sp.start for sp in spans)
    ends = [sp.end for sp in spans if sp.end is not None and sp.end >= last_failure]
    end = min(ends) if ends else None
    if end is None:
        opened = session.scalar(select(Incident.opened_at).where(Incident.cause == DB_CAUSE,
                                                                 Incident.state != "resolved"))
        end = _aware(opened) if opened is not None else None
    what = f"over after {(end - start).total_seconds():.0f}s" if end is not None else "still going on"
    return Finding(DB_CAUSE, "rule:db_outage", "rule", "db_outage",
                   f"The database was unavailable from {start:%H:%M:%S} UTC ({what}); {len(spans)} process(es) "
                   "backed off and reconnected", "critical",
                   evidence={"started_at": start.isoformat(), "ended_at": end.isoformat() if end else None,
                             "processes": [{"host": sp.host, "pid": sp.pid, "start": sp.start.isoformat(),
                                            "end": sp.end.isoformat() if sp.end else None} for sp in spans][:20],
                             "error": next((sp.error for sp in spans if sp.error), "")},
                   symptom_at=start, ended_at=end)


def _lasting(now: dt.datetime) -> list[Span]:
    """The noted outage spans that lasted (or have lasted so far) ``ops_db_outage_min_s`` or more: a
    connection dropped and replaced at once is no outage."""
    s = get_settings()
    return [sp for sp in read_spans(s.var_dir)
            if ((sp.end or now) - sp.start).total_seconds() >= s.ops_db_outage_min_s]


def _outage_settling(now: dt.datetime, grace_s: float) -> bool:
    """A database outage is going on (a live process of this host noted it) or ended less than ``grace_s`` ago."""
    import psutil  # kept lazy: start-up time

    host = socket.gethostname()
    for sp in _lasting(now):
        if sp.end is None and (sp.host != host or psutil.pid_exists(sp.pid)):
            return True
        if sp.end is not None and (now - sp.end).total_seconds() < grace_s:
            return True
    return False


def _paused(session: Session, pipeline_id: int) -> bool:
    p = session.get(Pipeline, pipeline_id)
    return bool(p is not None and p.paused)


def _api_down(session: Session, now: dt.datetime) -> Finding | None:
    """An outage: the scheduler's last ``ops_api_down_probes`` /readyz probes (all recent) failed.

    The incident's first evidence is the first failed probe of the streak; it resolves itself once a probe
    succeeds, and its span is downtime in the uptime KPI (``tools.pulse.kpis.OUTAGE_DIAGNOSES``)."""
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


def _api_process_died(session: Session, now: dt.datetime) -> Finding | None:
    """API processes on this host that died without stopping (SIGKILL, the OOM killer): their records
    are left (:func:`tools.jobs.workers.api_processes`). uvicorn's manager starts a replacement while the
    others serve; once the incident has recorded the death and as many processes serve again as before,
    the dead ones' records are forgotten and the incident resolves after its quiet time."""
    import psutil  # kept lazy: start-up time

    host = socket.gethostname()
    procs = [p for p in api_processes(session) if p.host == host]
    dead = sorted(p.pid for p in procs if not psutil.pid_exists(p.pid))
    if not dead:
        return None
    serving, want = len(procs) - len(dead), max(p.serving for p in procs)
    cause = f"api-processes:{host}"
    if serving >= want and IncidentRepository(session).open_for_cause(cause) is not None:
        for pid in dead:  # seen and replaced
            api_process_stopped(session, pid, host)
        return None
    return Finding(cause, "rule:api_process_died", "rule", "api_process_died",
                   f"{len(dead)} API process(es) on {host} died without stopping (pid "
                   f"{', '.join(map(str, dead))}); {serving} of {want} serving", "high",
                   subject={"host": host}, evidence={"pids": dead, "serving": serving, "expected": want},
                   symptom_at=now)


def _endpoint_disabled(session: Session, install_id: int) -> bool:
    """A disabled endpoint gets no deliveries: its past failures are no longer a live symptom."""
    inst = session.get(PluginInstall, install_id)
    return inst is not None and inst.endpoint_disabled_at is not None


def _expiries(job: Any) -> int:
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
