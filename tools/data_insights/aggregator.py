"""Platform usage into anonymised aggregates.

Finished jobs are folded, incrementally, into one row per organisation and day (a watermark over
``(finished_at, id)`` of the jobs table: each job is read once). A snapshot for a quarter is built from
those rows and the organisations' current pipelines and plugin installs, grouped by industry and size
band. Identifiers never leave this module: a snapshot holds only group labels from fixed lists and
figures over at least k organisations (``LEVQOR_INSIGHTS_K``), optionally with Laplace noise
(``LEVQOR_INSIGHTS_EPSILON``). Organisations that set ``insights_opt_out`` in their settings are left out.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from levqor.settings import get_settings
from memory.db import utcnow
from memory.identity.models import Organization
from memory.insights.models import InsightsSnapshot
from memory.insights.repository import InsightsRepository
from tools.context import ToolContext
from tools.data_insights.privacy import epsilon_note, noisy_count, pool_groups
from tools.enterprise import audit_log
from tools.enterprise.rbac import require_staff
from tools.errors import NotFound, Unprocessable
from tools.registry import tool

INDUSTRIES: dict[str, str] = {
    "software": "Software & SaaS", "retail": "Retail & e-commerce", "finance": "Financial services",
    "healthcare": "Healthcare", "manufacturing": "Manufacturing & logistics",
    "services": "Professional services", "media": "Media & marketing", "public": "Public sector & education",
    "other": "Other industry",
}
SIZE_BANDS: dict[str, str] = {"1-10": "1–10 people", "11-50": "11–50 people", "51-200": "51–200 people",
                              "201-1000": "201–1,000 people", "1000+": "Over 1,000 people"}
NOT_STATED = "Not stated"
POOLED = "Other (pooled)"
OPT_OUT = "insights_opt_out"

# Time a person would spend doing one successful step by hand (seconds). Documented estimate, shown in
# the methodology: an HTTP call to another system replaces a look-up or an entry by hand (~2 min); a
# transform replaces reformatting or checking a record (~3 min); a notification replaces writing a short
# message (~1 min); a delay saves nothing.
TIME_SAVED_S: dict[str, int] = {"http": 120, "transform": 180, "notify": 60, "delay": 0}
STEP_LABELS: dict[str, str] = {"http": "HTTP / plugin call", "transform": "Transform / check",
                               "notify": "Notification", "delay": "Delay"}
PERIOD_RE = re.compile(r"^(20\d{2})-Q([1-4])$")


def quarter_of(day: dt.date) -> str:
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


def quarter_bounds(period: str) -> tuple[dt.date, dt.date]:
    m = PERIOD_RE.match(period)
    if not m:
        raise Unprocessable(f"period: {period!r} is not YYYY-Qn", field="period")
    y, q = int(m.group(1)), int(m.group(2))
    start = dt.date(y, 3 * q - 2, 1)
    end = dt.date(y + (q == 4), 1 if q == 4 else 3 * q + 1, 1) - dt.timedelta(days=1)
    return start, end


def previous_quarter(period: str) -> str:
    start, _ = quarter_bounds(period)
    return quarter_of(start - dt.timedelta(days=1))


def coverage(period: str, now: dt.datetime) -> tuple[float, int]:
    """(days of ``period`` elapsed by ``now``, as a fraction; days in the quarter). A quarter still running
    is partial: its totals cover fewer days than a finished one's, so quarters are compared per day."""
    start, end = quarter_bounds(period)
    total = (end - start).days + 1
    begin = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
    elapsed = (min(begin + dt.timedelta(days=total), max(begin, now)) - begin).total_seconds() / 86400
    return elapsed, total


def _per_day(group: dict[str, Any], days: float) -> dict[str, Any]:
    return {**group, "days": round(days, 2),
            "jobs_per_day": round(group["jobs"] / days, 1) if days > 0 else None,
            "time_saved_hours_per_day": round(group["time_saved_hours"] / days, 1) if days > 0 else None}


# ---- incremental rollup ---------------------------------------------------------------------------

def rollup(session: Session, *, now: dt.datetime | None = None, batch: int = 2000, lag_s: float = 2.0) -> int:
    """Fold jobs finished since the watermark into the daily rows; return how many were read.

    Jobs finishing within ``lag_s`` of now wait for the next pass, so a transaction committing a slightly
    older ``finished_at`` late is not skipped."""
    until = (now or utcnow()) - dt.timedelta(seconds=lag_s)
    repo = InsightsRepository(session)
    wm = repo.watermark()
    opted_out = {o.id for o in repo.orgs() if (o.settings or {}).get(OPT_OUT)}
    total = 0
    while True:
        jobs = repo.finished_jobs_after(wm.finished_at, wm.job_id, until, batch)
        if not jobs:
            break
        steps: dict[int, dict[str, int]] = defaultdict(dict)
        for job_id, kind, n in repo.succeeded_steps([j.id for j in jobs]):
            steps[job_id][kind] = int(n)
        for j in jobs:
            if j.org_id not in opted_out:
                row = repo.org_day(j.org_id, j.finished_at.date())
                row.jobs += 1
                row.succeeded += j.state == "succeeded"
                row.failed += j.state != "succeeded"
                if j.started_at is not None:
                    row.latency_ms_sum += max(0.0, (j.finished_at - j.started_at).total_seconds() * 1000)
                    row.latency_n += 1
                merged = dict(row.steps or {})
                for kind, n in steps.get(j.id, {}).items():
                    merged[kind] = int(merged.get(kind, 0)) + n
                row.steps = merged
                row.updated_at = utcnow()
        wm.finished_at, wm.job_id = jobs[-1].finished_at, int(jobs[-1].id)
        wm.updated_at = utcnow()
        session.flush()
        total += len(jobs)
        if len(jobs) < batch:
            break
    return total


def scheduled_rollup() -> None:
    """Scheduled on the leader: fold newly finished jobs into the daily rows."""
    from memory.db import session_scope

    with session_scope() as s:
        rollup(s)


# ---- snapshot -------------------------------------------------------------------------------------

class _Org:
    __slots__ = ("industry", "size", "jobs", "succeeded", "lat_sum", "lat_n", "steps", "pipe_kinds",
                 "connectors", "plugin_cats", "demo", "weeks", "months")

    def __init__(self, o: Organization):
        self.industry = INDUSTRIES.get(o.industry or "", NOT_STATED)
        self.size = SIZE_BANDS.get(o.size_band or "", NOT_STATED)
        self.jobs = self.succeeded = 0
        self.lat_sum, self.lat_n = 0.0, 0
        self.steps: dict[str, int] = defaultdict(int)
        self.pipe_kinds: dict[str, int] = defaultdict(int)
        self.connectors: dict[str, int] = defaultdict(int)
        self.plugin_cats: set[str] = set()
        self.demo = bool((o.settings or {}).get("insights_demo"))
        self.weeks: dict[str, list[int]] = {}
        self.months: dict[str, int] = defaultdict(int)

    @property
    def active(self) -> bool:
        return self.jobs > 0 or bool(self.pipe_kinds)


def _collect(session: Session, start: dt.date, end: dt.date, clip: int) -> list[_Org]:
    repo = InsightsRepository(session)
    orgs = {o.id: _Org(o) for o in repo.orgs() if not (o.settings or {}).get(OPT_OUT)}
    for r in repo.org_days(start, end):
        a = orgs.get(r.org_id)
        if a is None:
            continue
        a.jobs += r.jobs
        a.succeeded += r.succeeded
        a.lat_sum += r.latency_ms_sum
        a.lat_n += r.latency_n
        for kind, n in (r.steps or {}).items():
            a.steps[kind] += int(n)
        wk = (r.day - dt.timedelta(days=r.day.weekday())).isoformat()
        w = a.weeks.setdefault(wk, [0, 0])
        w[0] += r.jobs
        w[1] += r.succeeded
        a.months[r.day.strftime("%Y-%m")] += r.jobs
    plugin_cat: dict[str, str] = {}
    for org_id, manifest in repo.active_installs():
        cats = list(manifest.get("categories") or []) or ["uncategorised"]
        plugin_cat[str(manifest.get("id", ""))] = cats[0]
        if org_id in orgs:
            orgs[org_id].plugin_cats.update(cats)
    for org_id, steps in repo.live_pipeline_steps():
        a = orgs.get(org_id)
        if a is None:
            continue
        for kind in {str(s.get("kind", "")) for s in steps if s.get("kind") in STEP_LABELS}:
            a.pipe_kinds[kind] += 1
        for s in steps:
            if s.get("kind") == "http":
                a.connectors["plugin: " + plugin_cat.get(str(s.get("plugin")), "uncategorised")
                             if s.get("plugin") else "Custom HTTP"] += 1
            elif s.get("kind") == "notify":
                a.connectors["Email" if s.get("channel") == "email" else "Webhook"] += 1
    for a in orgs.values():  # bound each organisation's weight (the noise's sensitivity)
        if a.jobs > clip:
            f = clip / a.jobs
            a.jobs, a.succeeded = clip, round(a.succeeded * f)
    return [a for a in orgs.values() if a.active]


class _Noise:
    def __init__(self, epsilon: float, clip: int):
        self.epsilon, self.clip = epsilon, clip

    def orgs(self, n: float) -> int:
        return round(noisy_count(n, sensitivity=1, epsilon=self.epsilon))

    def jobs(self, n: float) -> int:
        return round(noisy_count(n, sensitivity=self.clip, epsilon=self.epsilon))


def _cells(counts: Iterable[tuple[str, int, int]], k: int, noise: _Noise) -> list[dict[str, Any]]:
    """``(label, organisations, value)`` cells: only those with k or more organisations behind them."""
    return sorted(({"label": lab, "orgs": noise.orgs(n), "value": noise.jobs(v)} for lab, n, v in counts if n >= k),
                  key=lambda c: -c["value"])


def _group(members: list[_Org], k: int, noise: _Noise) -> dict[str, Any]:
    n = len(members)
    jobs = noise.jobs(sum(a.jobs for a in members))
    succ = min(jobs, noise.jobs(sum(a.succeeded for a in members)))
    saved_s = sum(sum(a.steps.get(kind, 0) * s for kind, s in TIME_SAVED_S.items()) for a in members)
    saved_h = noise.jobs(saved_s / 3600)
    lat_means = [a.lat_sum / a.lat_n for a in members if a.lat_n]
    lat = sorted(lat_means)
    kinds = {kind: ([a for a in members if a.pipe_kinds.get(kind)]) for kind in STEP_LABELS}
    step_cells = _cells(((STEP_LABELS[kind], len(ms), sum(a.pipe_kinds[kind] for a in ms))
                         for kind, ms in kinds.items()), k, noise)
    conns: dict[str, list[_Org]] = defaultdict(list)
    for a in members:
        for c in a.connectors:
            conns[c].append(a)
    conn_cells = _cells(((c, len(ms), sum(a.connectors[c] for a in ms)) for c, ms in conns.items()), k, noise)
    cats: dict[str, int] = defaultdict(int)
    for a in members:
        for c in a.plugin_cats:
            cats[c] += 1
    cat_cells = _cells(((c, m, m) for c, m in cats.items()), k, noise)
    adopters = noise.orgs(sum(1 for a in members if a.plugin_cats))
    shown_n = max(noise.orgs(n), 1)
    return {
        "orgs": shown_n, "jobs": jobs, "succeeded": succ,
        "success_rate": round(100 * succ / jobs, 1) if jobs else None,
        "latency_ms_median_org": round(lat[len(lat) // 2]) if len(lat) >= k else None,
        "latency_ms_p90_org": round(lat[min(len(lat) - 1, int(0.9 * len(lat)))]) if len(lat) >= k else None,
        "time_saved_hours": saved_h, "time_saved_hours_per_org": round(saved_h / shown_n, 1),
        "jobs_per_org": round(jobs / shown_n),
        "plugin_adoption_pct": round(min(100.0, 100 * adopters / shown_n), 1),
        "pipelines_by_step_kind": step_cells, "connectors": conn_cells, "plugin_categories": cat_cells,
    }


def _dimension(orgs: list[_Org], attr: str, k: int, noise: _Noise) -> dict[str, Any]:
    by: dict[str, list[_Org]] = defaultdict(list)
    for a in orgs:
        by[getattr(a, attr)].append(a)
    published, pooled = pool_groups({g: len(ms) for g, ms in by.items()}, k)
    groups = [{"label": g, **_group(by[g], k, noise)} for g in published]
    pool = [a for g in pooled for a in by[g]]
    if len(pool) >= k:
        groups.append({"label": POOLED, **_group(pool, k, noise)})
    return {"groups": groups, "suppressed_groups": len(pooled)}


def _trend(orgs: list[_Org], key: str, k: int, noise: _Noise) -> list[dict[str, Any]]:
    if key == "weeks":
        buckets = sorted({w for a in orgs for w in a.weeks})
        out = []
        for w in buckets:
            ms = [a for a in orgs if a.weeks.get(w, [0])[0] > 0]
            if len(ms) >= k:
                jobs = noise.jobs(sum(a.weeks[w][0] for a in ms))
                succ = min(jobs, noise.jobs(sum(a.weeks[w][1] for a in ms)))
                out.append({"week": w, "orgs": noise.orgs(len(ms)), "jobs": jobs,
                            "success_rate": round(100 * succ / jobs, 1) if jobs else None})
        return out
    months = sorted({m for a in orgs for m in a.months})
    res = []
    for m in months:
        ms = [a for a in orgs if a.months.get(m)]
        if len(ms) >= k:
            res.append({"month": m, "orgs": noise.orgs(len(ms)), "jobs": noise.jobs(sum(a.months[m] for a in ms))})
    return res


def compute(session: Session, period: str, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """The anonymised aggregates of ``period`` (YYYY-Qn), ready to publish: no identifiers, no small group.

    ``days``/``quarter_days`` say how much of the quarter the figures cover (``partial`` while it runs);
    the overall and previous-quarter figures carry per-day rates so quarters of different length compare."""
    s = get_settings()
    k, eps, clip = s.insights_k, s.insights_epsilon, s.insights_clip_jobs
    now = now or utcnow()
    start, end = quarter_bounds(period)
    days, quarter_days = coverage(period, now)
    prev_days, _ = coverage(previous_quarter(period), now)
    noise = _Noise(eps, clip)
    orgs = _collect(session, start, end, clip)
    prev_start, prev_end = quarter_bounds(previous_quarter(period))
    prev = _collect(session, prev_start, prev_end, clip)
    enough = len(orgs) >= k
    data: dict[str, Any] = {
        "period": period, "start": start.isoformat(), "end": end.isoformat(), "k": k,
        "epsilon": eps or None, "published": enough,
        "days": round(days, 2), "quarter_days": quarter_days, "partial": days < quarter_days,
        "through": min(end, now.date()).isoformat(),
        "includes_demo_data": any(a.demo for a in orgs),
        "overall": _per_day(_group(orgs, k, noise), days) if enough else None,
        "previous": ({"period": previous_quarter(period), **_per_day(_group(prev, k, noise), prev_days)}
                     if len(prev) >= k else None),
        "by_industry": _dimension(orgs, "industry", k, noise) if enough else {"groups": [], "suppressed_groups": 0},
        "by_size_band": _dimension(orgs, "size", k, noise) if enough else {"groups": [], "suppressed_groups": 0},
        "weekly": _trend(orgs, "weeks", k, noise) if enough else [],
        "time_saved_per_step_s": TIME_SAVED_S,
        "privacy": epsilon_note(eps, clip),
    }
    return data


def take_snapshot(session: Session, period: str) -> InsightsSnapshot:
    """Roll up new jobs, compute ``period`` and store it (the published figures)."""
    rollup(session)
    s = get_settings()
    return InsightsRepository(session).add_snapshot(InsightsSnapshot(
        period=period, computed_at=utcnow(), k=s.insights_k, epsilon=s.insights_epsilon or None,
        data=compute(session, period)))


# ---- tools ----------------------------------------------------------------------------------------

class InsightsRead(BaseModel):
    id: int
    period: str
    computed_at: dt.datetime
    k: int
    epsilon: float | None
    data: dict[str, Any]


def read(snap: InsightsSnapshot) -> InsightsRead:
    return InsightsRead(id=snap.id, period=snap.period, computed_at=snap.computed_at, k=snap.k,
                        epsilon=snap.epsilon, data=dict(snap.data))


class RefreshIn(BaseModel):
    period: str | None = Field(None, pattern=r"^20\d{2}-Q[1-4]$", description="YYYY-Qn; default: this quarter")


@tool("insights.refresh", risk="write")
def refresh(ctx: ToolContext, params: RefreshIn) -> InsightsRead:
    """Recompute and publish the anonymised platform aggregates for a quarter (Levqor staff)."""
    require_staff(ctx, "publish platform insights: they cover every organisation")
    snap = take_snapshot(ctx.session, params.period or quarter_of(utcnow().date()))
    audit_log.record(ctx, "insights.refreshed", f"insights:{snap.period}", detail={"snapshot": snap.id})
    return read(snap)


class NoInput(BaseModel):
    pass


@tool("insights.latest", risk="read")
def latest(ctx: ToolContext, params: NoInput) -> InsightsRead:
    """Show the latest published anonymised platform aggregates (public: no identifiers, no group below k)."""
    snap = InsightsRepository(ctx.session).latest_snapshot()
    if snap is None:
        raise NotFound("no insights have been published yet")
    return read(snap)


class ProfileIn(BaseModel):
    industry: str | None = Field(None, description="One of: " + ", ".join(INDUSTRIES) + "; empty clears it")
    size_band: str | None = Field(None, description="One of: " + ", ".join(SIZE_BANDS) + "; empty clears it")
    opt_out: bool | None = Field(None, description="Leave this organisation out of the platform insights")


class ProfileRead(BaseModel):
    industry: str | None
    size_band: str | None
    opt_out: bool


def _profile(o: Organization) -> ProfileRead:
    return ProfileRead(industry=o.industry, size_band=o.size_band, opt_out=bool((o.settings or {}).get(OPT_OUT)))


@tool("insights.set_profile", risk="write")
def set_profile(ctx: ToolContext, params: ProfileIn) -> ProfileRead:
    """Set the organisation's industry and size band for the benchmarks, or opt out of the insights."""
    o = ctx.session.get(Organization, ctx.org_id)
    if o is None:
        raise NotFound("organisation not found")
    before = _profile(o).model_dump()
    for field, allowed in (("industry", INDUSTRIES), ("size_band", SIZE_BANDS)):
        v = getattr(params, field)
        if v is not None and v != "" and v not in allowed:
            raise Unprocessable(f"{field}: {v!r} is not one of {', '.join(allowed)}", field=field)
        if v is not None:
            setattr(o, field, v or None)
    if params.opt_out is not None:
        o.settings = {**dict(o.settings or {}), OPT_OUT: params.opt_out}
    ctx.session.flush()
    after = _profile(o).model_dump()
    audit_log.record(ctx, "insights.profile_changed", f"org:{o.id}", before=before, after=after)
    return _profile(o)


@tool("insights.profile", risk="read")
def profile(ctx: ToolContext, params: NoInput) -> ProfileRead:
    """Show the organisation's industry, size band and insights opt-out."""
    o = ctx.session.get(Organization, ctx.org_id)
    if o is None:
        raise NotFound("organisation not found")
    return _profile(o)
