"""One KPI, one number: the value of a KPI over a period, read the same way by every surface.

The Pulse page's targets, the API (``pulse.targets``, ``pulse.history``), the advisor, the monthly PDF and
the Prometheus gauges all ask :func:`measure` for "KPI k over [start, end]": the days with data in the
period combine by the KPI's own aggregate (sum of daily amounts, mean of daily rates, last of a level, and
for a share such as partner revenue share the ratio of its parts' sums: never a mean of daily ratios).
A period that has not ended yet (the month in progress), or with days missing, is ``partial`` and says
how many of its days it covers, so no surface shows a month-to-date figure as a whole month.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

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


Series = Iterable[tuple[dt.date, float | None]]


def needed(kpis: Iterable[str]) -> list[str]:
    """``kpis`` and the parts their values are computed from (a ratio's numerator and denominator)."""
    out: list[str] = []
    for k in kpis:
        for x in (k, *(KPIS[k].ratio_of or ())):
            if x not in out:
                out.append(x)
    return out


def ratio(days: Iterable[dt.date], num: Series, den: Series) -> float | None:
    """100 * sum(num) / sum(den) over ``days`` where both parts have a value (None without any, or a zero
    denominator)."""
    n, d = dict(num), dict(den)
    both = [x for x in days if n.get(x) is not None and d.get(x) is not None]
    total = sum(d[x] or 0.0 for x in both)
    if not both or not total:
        return None
    return round(100.0 * sum(n[x] or 0.0 for x in both) / total, 4)


def measure_series(kpi: str, series: Series, start: dt.date, end: dt.date,
                   latest_day: dt.date | None, *, how: str | None = None,
                   demo_days: set[dt.date] | None = None, parts: Mapping[str, Series] | None = None) -> Measure:
    """:func:`measure` over an already read daily series (``how`` overrides the KPI's aggregate).

    A ratio KPI needs ``parts``: the daily series of its numerator and denominator (see :func:`needed`)."""
    d = KPIS[kpi]
    how = how or d.aggregate
    days = sorted((x, v) for x, v in series if start <= x <= end and v is not None)
    n_days = (end - start).days + 1
    as_of = min(end, latest_day) if latest_day is not None else None
    partial = latest_day is None or latest_day < end or len(days) < n_days
    if how == "ratio":
        if d.ratio_of is None or parts is None or not all(p in parts for p in d.ratio_of):
            raise ValueError(f"{kpi}: a ratio over a period needs the series of {d.ratio_of}")
        value = ratio([x for x, _ in days], parts[d.ratio_of[0]], parts[d.ratio_of[1]])
    else:
        value = combine([v for _, v in days], how)
    return Measure(kpi=kpi, label=d.label, unit=d.unit, aggregate=how, start=start, end=end,
                   value=value, days_with_data=len(days), days_in_period=n_days,
                   as_of=as_of, partial=partial,
                   demo=any(start <= x <= end for x in demo_days or ()))


def measure_all(session: Session, org_id: int, kpis: Iterable[str], start: dt.date,
                end: dt.date) -> dict[str, Measure]:
    """Each of ``kpis`` of the organisation over ``[start, end]`` (both days included), read at once."""
    repo = PulseRepository(session)
    wanted = list(kpis)
    every = needed(wanted)
    rows = repo.history(org_id, since=start, until=end, kpis=every)
    by: dict[str, list[tuple[dt.date, float | None]]] = {k: [] for k in every}
    demo: dict[str, set[dt.date]] = {k: set() for k in every}
    for r in rows:
        by[r.kpi].append((r.day, r.value))
        if r.source == DEMO_SOURCE:
            demo[r.kpi].add(r.day)
    latest_day = repo.latest_day(org_id)
    return {k: measure_series(k, by[k], start, end, latest_day, demo_days=demo[k], parts=by) for k in wanted}


def measure(session: Session, org_id: int, kpi: str, start: dt.date, end: dt.date) -> Measure:
    """KPI ``kpi`` of the organisation over ``[start, end]`` (both days included)."""
    return measure_all(session, org_id, [kpi], start, end)[kpi]
