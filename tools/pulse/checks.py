"""What Pulse runs on a clock: the /readyz uptime probe, and the checks that snapshot the KPIs every day,
evaluate the targets, ask for the weekly planner run and archive last month's PDF."""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field

import httpx
from sqlalchemy.orm import Session

from levqor.settings import get_settings
from memory.agents.repository import AgentRepository
from memory.db import session_scope, utcnow
from memory.pulse.models import ReadinessProbe
from memory.pulse.repository import PulseRepository
from tools.context import Principal, ToolContext
from tools.pulse import report, targets
from tools.pulse.costs import sync_llm_costs
from tools.pulse.store import day_is_final, snapshot_day
from tools.schedules import RunRequest, Schedule

log = logging.getLogger("levqor.pulse")


# ---- readiness probes (uptime) --------------------------------------------------------------------

def probe_readiness(url: str | None = None, timeout_s: float = 5.0) -> ReadinessProbe:
    """GET ``/readyz`` once and store the answer (connection failures count as down)."""
    url = url or get_settings().base_url.rstrip("/") + "/readyz"
    started = time.perf_counter()
    try:
        r = httpx.get(url, timeout=timeout_s)
        probe = ReadinessProbe(ts=utcnow(), ok=r.status_code == 200, status_code=r.status_code,
                               latency_ms=round((time.perf_counter() - started) * 1000, 2),
                               detail=None if r.status_code == 200 else r.text[:300])
    except httpx.HTTPError as exc:
        probe = ReadinessProbe(ts=utcnow(), ok=False, status_code=None,
                               latency_ms=round((time.perf_counter() - started) * 1000, 2),
                               detail=f"{type(exc).__name__}: {exc}"[:300])
    with session_scope() as s:
        PulseRepository(s).add_probe(probe)
    return probe


# ---- the scheduled check -------------------------------------------------------------------------

def system_ctx(session: Session, org_id: int) -> ToolContext:
    return ToolContext(session=session, principal=Principal(kind="system", id="pulse", org_id=org_id,
                                                            role="admin", name="pulse scheduler"))


def _iso_week(now: dt.datetime) -> str:
    iso = now.isocalendar()
    return f"{iso.year}-W{iso.week:02d}"


def _weekly_planner_due(org_id: int, now: dt.datetime) -> bool:
    """True until the planner agent has run on schedule for ``now``'s ISO week (once a week, idempotent)."""
    week = _iso_week(now)
    with session_scope() as s:
        runs = AgentRepository(s).runs(org_id, agent="planner", limit=50)
        return not any(r.trigger == "schedule" and (r.input or {}).get("week") == week and r.status != "failed"
                       for r in runs)


@dataclass
class PulseChecks:
    """What one scheduled check did, and the planner runs it asks the edge to start."""

    snapshots: int = 0
    reports: int = 0
    runs: list[RunRequest] = field(default_factory=list)


def run_checks(now: dt.datetime | None = None, org_ids: list[int] | None = None) -> PulseChecks:
    """Scheduler job (idempotent): snapshot today (and finish yesterday), evaluate targets, ask for the
    planner agent once a week (a :class:`RunRequest`, trigger ``schedule``), and make last month's PDF
    on the 1st."""
    now = now or utcnow()
    today = now.date()
    done = PulseChecks()
    started = time.monotonic()
    if org_ids is None:  # the least recently snapshotted first: a long pass serves new organisations at once
        with session_scope() as s:
            org_ids = PulseRepository(s).org_ids_stalest_first(today - dt.timedelta(days=1))
    for org_id in org_ids:
        try:
            with session_scope() as s:
                sync_llm_costs(system_ctx(s, org_id), today - dt.timedelta(days=2))
            with session_scope() as s:
                ctx = system_ctx(s, org_id)
                yesterday = today - dt.timedelta(days=1)
                if not day_is_final(s, org_id, yesterday):
                    snapshot_day(ctx, yesterday)
                snapshot_day(ctx, today)
                done.snapshots += 1
                targets.publish_gauges(ctx, targets.evaluate(ctx.session, org_id, today))
            if _weekly_planner_due(org_id, now):
                done.runs.append(RunRequest("planner", org_id, "schedule", input={"week": _iso_week(now)},
                                            requested_by="scheduler"))
            prev_month = (today.replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")
            with session_scope() as s:
                if today.day == 1 and PulseRepository(s).report(org_id, prev_month) is None:
                    report.generate(system_ctx(s, org_id), prev_month)
                    done.reports += 1
        except Exception:
            log.exception("pulse check failed", extra={"fields": {"org_id": org_id}})
    took = time.monotonic() - started
    interval = float(get_settings().pulse_check_interval_s)
    if took > interval:  # the next pass starts late; the stalest organisations still go first (operations.md)
        log.warning("pulse checks took longer than their interval",
                    extra={"fields": {"orgs": len(org_ids), "seconds": round(took, 1), "interval_s": interval}})
    return done


def _scheduled_checks() -> list[RunRequest]:
    return run_checks().runs


def run_probe() -> None:
    """Scheduler job: one /readyz probe; keep 400 days of them."""
    probe_readiness()
    with session_scope() as s:
        PulseRepository(s).prune_probes(utcnow() - dt.timedelta(days=400))


def schedules() -> list[Schedule]:
    """The uptime probe and the Pulse checks (daily snapshot, weekly planner, monthly PDF), at their settings."""
    s = get_settings()
    return [Schedule("pulse.probe", float(s.pulse_probe_interval_s), run_probe),
            Schedule("pulse.checks", float(s.pulse_check_interval_s), _scheduled_checks)]
