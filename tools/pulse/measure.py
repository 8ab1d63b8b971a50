"""One KPI, one number: the value of a KPI over a period, read the same way by every surface.

The Pulse page's targets, the API (``pulse.targets``, ``pulse.history``), the advisor, the monthly PDF and
the Prometheus gauges all ask :func:`measure` for "KPI k over [start, end]": the days with data in the
period combine by the KPI's own aggregate (sum of daily amounts, mean of daily rates, last of a level).
A period that has not ended yet (the month in progress), or with days missing, is ``partial`` and says
how many of its days it covers, so no surface shows a month-to-date figure as a whole month.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from pydantic import BaseModel
from sqlalchemy.orm import Session

from memory.pulse.repository import PulseRepository
from tools.pulse.kpis import KPIS

# The source of the snapshots ``make run``'s seed writes (tools/demo/pulse.py): invented figures that every
# surface labels "demo data" until real records replace them.
DEMO_SOURCE = "demo seed"


class Measure(BaseModel):
    kpi: str
    label: str
    unit: str
    aggregate: str
    start: dt.date
    end: dt.date
    value: float | None
    days_with_data: int
    days_in_period: int
    as_of: dt.date | None  # the last day with a snapshot (the period's end when it is over)
    partial: bool
    demo: bool = False  # some of the period's days are the demo seed's invented figures

    @property
    def coverage(self) -> str:
        """"5 of 31 days" for a partial period, "" for a whole one."""
        return f"{self.days_with_data} of {self.days_in_period} days" if self.partial else ""


def fmt(value: float | None, unit: str) -> str:
    """A KPI value for people: money from cents ($1,234.56), percent (99.980 %), counts with separators."""
    if value is None:
        return "n/a"
    if unit == "cents":
        return f"${value / 100:,.2f}"
    if unit == "percent":
        return f"{value:.3f} %" if value > 99 else f"{value:.2f} %"
    if unit == "credits":
        return f"{value:,.0f} credits"
    return f"{value:,.0f}"


def combine(values: list[float], how: str) -> float | None:
    """The period's value from its daily values: sum | mean | last (None without data)."""
    if not values:
        return None
    if how == "sum":
        return round(sum(values), 4)
    if how == "mean":
        return round(sum(values) / len(values), 4)
    return values[-1]


def measure_series(kpi: str, series: Iterable[tuple[dt.date, float | None]], start: dt.date, end: dt.date,
                   latest_day: dt.date | None, *, how: str | None = None,
                   demo_days: set[dt.date] | None = None) -> Measure:
    """:func:`measure` over an already read daily series (``how`` overrides the KPI's aggregate)."""
    d = KPIS[kpi]
    how = how or d.aggregate
    days = sorted((x, v) for x, v in series if start <= x <= end and v is not None)
    n_days = (end - start).days + 1
    as_of = min(end, latest_day) if latest_day is not None else None
    partial = latest_day is None or latest_day < end or len(days) < n_days
    return Measure(kpi=kpi, label=d.label, unit=d.unit, aggregate=how, start=start, end=end,
                   value=combine([v for _, v in days], how), days_with_data=len(days), days_in_period=n_days,
                   as_of=as_of, partial=partial,
                   demo=any(start <= x <= end for x in demo_days or ()))


def measure(session: Session, org_id: int, kpi: str, start: dt.date, end: dt.date) -> Measure:
    """KPI ``kpi`` of the organisation over ``[start, end]`` (both days included)."""
    repo = PulseRepository(session)
    rows = repo.history(org_id, since=start, until=end, kpis=[kpi])
    return measure_series(kpi, [(r.day, r.value) for r in rows], start, end, repo.latest_day(org_id),
                          demo_days={r.day for r in rows if r.source == DEMO_SOURCE})
