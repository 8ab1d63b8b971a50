"""The Pulse store: daily KPI snapshots, the latest value of each KPI, and their history."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from memory.db import utcnow
from memory.pulse.repository import PulseRepository
from tools.context import ToolContext
from tools.errors import Unprocessable
from tools.pulse.kpis import KPIS, read_all
from tools.pulse.measure import DEMO_SOURCE, measure_series, needed
from tools.registry import tool


class KpiValue(BaseModel):
    kpi: str
    label: str
    unit: str
    day: dt.date
    value: float | None
    available: bool
    reason: str | None = None
    source: str = ""


class Snapshot(BaseModel):
    day: dt.date
    items: list[KpiValue]
    written: int


def _today() -> dt.date:
    return utcnow().date()


def snapshot_day(ctx: ToolContext, day: dt.date) -> Snapshot:
    """Read every KPI for ``day`` and upsert one row per KPI (idempotent: rerunning updates in place)."""
    repo = PulseRepository(ctx.session)
    readings = read_all(ctx, day)
    now = utcnow()
    repo.upsert_snapshots(org_id=ctx.org_id, day=day, now=now,
                          values={name: (r.value, r.available, r.reason, r.source) for name, r in readings.items()})
    items = []
    for name, r in readings.items():
        d = KPIS[name]
        items.append(KpiValue(kpi=name, label=d.label, unit=d.unit, day=day, value=r.value, available=r.available,
                              reason=r.reason, source=r.source))
    return Snapshot(day=day, items=items, written=len(items))


def day_is_final(session: Session, org_id: int, day: dt.date) -> bool:
    """A day's snapshot is final once it was written after the day ended."""
    rows = PulseRepository(session).snapshot_rows(org_id, day)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    return bool(rows) and all(r.updated_at >= end for r in rows.values())


class SnapshotIn(BaseModel):
    day: dt.date | None = Field(None, description="Day to snapshot (UTC); default today")


@tool("pulse.snapshot", risk="write")
def take_snapshot(ctx: ToolContext, params: SnapshotIn) -> Snapshot:
    """Take (or refresh) today's KPI snapshot for the organisation's Pulse."""
    day = params.day or _today()
    if day > _today():
        raise Unprocessable("day: cannot snapshot a future day", field="day")
    if day < dt.date(2000, 1, 1):
        raise Unprocessable("day: must be 2000-01-01 or later", field="day")
    return snapshot_day(ctx, day)


class LatestIn(BaseModel):
    pass


class LatestKpis(BaseModel):
    as_of: dt.date | None
    items: list[KpiValue]


def latest(session: Session, org_id: int) -> LatestKpis:
    """Per KPI, the latest available value (and, if the newest reading is missing, why)."""
    repo = PulseRepository(session)
    last = repo.latest_day(org_id)
    if last is None:
        return LatestKpis(as_of=None, items=[KpiValue(kpi=k, label=d.label, unit=d.unit, day=_today(), value=None,
                                                      available=False, reason="no snapshot taken yet")
                                             for k, d in KPIS.items()])
    rows = repo.history(org_id, since=last - dt.timedelta(days=120), until=last)
    newest: dict[str, KpiValue] = {}
    for r in rows:
        d = KPIS.get(r.kpi)
        if d is None:
            continue
        cur = newest.get(r.kpi)
        v = KpiValue(kpi=r.kpi, label=d.label, unit=d.unit, day=r.day, value=r.value, available=r.available,
                     reason=r.reason, source=r.source)
        if r.available or cur is None or not cur.available:
            newest[r.kpi] = v
        elif cur is not None and cur.available and r.day > cur.day:
            newest[r.kpi] = cur.model_copy(update={"reason": f"latest reading ({r.day}) not available: {r.reason}"})
    items = [newest.get(k) or KpiValue(kpi=k, label=d.label, unit=d.unit, day=last, value=None, available=False,
                                       reason="never recorded") for k, d in KPIS.items()]
    return LatestKpis(as_of=last, items=items)


@tool("pulse.kpis", risk="read")
def kpis(ctx: ToolContext, params: LatestIn) -> LatestKpis:
    """Show every Pulse KPI's latest value, or why it is not available."""
    return latest(ctx.session, ctx.org_id)


class HistoryIn(BaseModel):
    kpi: str = Field(description="KPI name, e.g. revenue, uptime, spend")
    days: int = Field(30, ge=1, le=730)
    until: dt.date | None = None


class Point(BaseModel):
    day: dt.date
    value: float | None
    reason: str | None = None


class History(BaseModel):
    kpi: str
    days: int
    label: str
    unit: str
    points: list[Point]
    first: float | None
    last: float | None
    mean: float | None
    change_pct: float | None
    # The KPI over the whole window, as every surface reads it (tools.pulse.measure): its own aggregate
    # (sum of amounts, mean of rates, last of a level); ``partial`` when the window runs past the last
    # snapshot or misses days.
    value: float | None = None
    aggregate: str = "sum"
    since: dt.date | None = None
    until: dt.date | None = None
    partial: bool = False
    days_with_data: int = 0
    demo: bool = False  # the demo seed's invented figures, not real records


@tool("pulse.history", risk="read")
def history(ctx: ToolContext, params: HistoryIn) -> History:
    """Show one KPI's daily history over the last N days with first, last, mean and change."""
    if params.kpi not in KPIS:
        raise Unprocessable(f"kpi: unknown KPI {params.kpi!r}; one of {', '.join(KPIS)}", field="kpi")
    until = params.until or PulseRepository(ctx.session).latest_day(ctx.org_id) or _today()
    since = until - dt.timedelta(days=params.days - 1)
    every = PulseRepository(ctx.session).history(ctx.org_id, since=since, until=until, kpis=needed([params.kpi]))
    rows = [r for r in every if r.kpi == params.kpi]
    parts: dict[str, list[tuple[dt.date, float | None]]] = {}
    for r in every:
        parts.setdefault(r.kpi, []).append((r.day, r.value))
    pts = [Point(day=r.day, value=r.value, reason=r.reason) for r in rows]
    vals = [p.value for p in pts if p.value is not None]
    d = KPIS[params.kpi]
    first, last_v = (vals[0], vals[-1]) if vals else (None, None)
    change = round(100.0 * (last_v - first) / abs(first), 2) if first and last_v is not None else None
    mean = round(sum(vals) / len(vals), 4) if vals else None
    m = measure_series(params.kpi, [(p.day, p.value) for p in pts], since, until,
                       PulseRepository(ctx.session).latest_day(ctx.org_id),
                       demo_days={r.day for r in rows if r.source == DEMO_SOURCE},
                       parts={k: parts.get(k, []) for k in needed([params.kpi])})
    if m.aggregate == "ratio":  # a share's mean over the window is its ratio of sums, not a mean of ratios
        mean = m.value
    return History(kpi=params.kpi, days=params.days, label=d.label, unit=d.unit, points=pts, first=first,
                   last=last_v, mean=mean, change_pct=change, value=m.value, aggregate=m.aggregate, since=since,
                   until=until, partial=m.partial, days_with_data=m.days_with_data, demo=m.demo)
