"""KPI targets (from settings, seeded with the roadmap's), evaluated daily: status, trend, error budget."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Literal

from prometheus_client import Gauge
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from levqor.settings import get_settings
from memory.db import utcnow
from memory.pulse.repository import PulseRepository
from tools.context import ToolContext
from tools.pulse.kpis import KPIS
from tools.pulse.measure import DEMO_SOURCE, fmt, measure_all, measure_series, needed
from tools.pulse.store import latest
from tools.registry import tool

Status = Literal["met", "at_risk", "missed", "not_available"]
STATUS_VALUE = {"met": 1.0, "at_risk": 0.5, "missed": 0.0, "not_available": -1.0}

# Set by whichever process evaluated last (scheduler, API); "mostrecent" keeps that process's value.
KPI_GAUGE = Gauge("levqor_pulse_kpi", "Latest Pulse KPI value (money in cents, rates in percent)",
                  ["org", "kpi"], multiprocess_mode="mostrecent")
TARGET_GAUGE = Gauge("levqor_pulse_target", "Pulse KPI target value", ["org", "kpi"],
                     multiprocess_mode="mostrecent")
TARGET_STATUS = Gauge("levqor_pulse_target_status", "Target status: 1 met, 0.5 at risk, 0 missed, -1 no data",
                      ["org", "kpi"], multiprocess_mode="mostrecent")
# The calendar month to date of every KPI, as every other surface reads it (tools.pulse.measure), and how
# many of the month's days it covers (below the month's length while it is in progress or misses days).
MONTH_GAUGE = Gauge("levqor_pulse_kpi_month", "Pulse KPI over the calendar month to date (money in cents, rates "
                    "in percent; a share is the ratio of its parts' sums)", ["org", "kpi", "month"],
                    multiprocess_mode="mostrecent")
MONTH_DAYS = Gauge("levqor_pulse_kpi_month_days", "Days of the month the month gauge covers",
                   ["org", "kpi", "month"], multiprocess_mode="mostrecent")
MONTH_PARTIAL = Gauge("levqor_pulse_kpi_month_partial", "1 while the month gauge is to date (month in progress "
                      "or days missing), 0 for a whole month", ["org", "kpi", "month"], multiprocess_mode="mostrecent")
ERROR_BUDGET = Gauge("levqor_pulse_error_budget_remaining_seconds",
                     "Uptime error budget left this month (seconds)", ["org"], multiprocess_mode="mostrecent")

OP_WORDS = {">=": "at least", ">": "above", "<=": "at most", "<": "below"}
WINDOW_WORDS = {"day": "on the latest day", "month": "this month", "quarter": "this quarter", "latest": "now"}
AT_RISK_MARGIN = 0.10  # within 10 % of a limit (or 75 % of an error budget used) is "at risk"


class TargetSpec(BaseModel):
    op: Literal[">=", ">", "<=", "<"]
    value: float
    window: Literal["day", "month", "quarter", "latest"] = "day"


class Trend(BaseModel):
    direction: Literal["improving", "worsening", "flat", "unknown"]
    slope_per_day: float | None
    days: int


class ErrorBudget(BaseModel):
    allowed_minutes: float
    used_minutes: float
    remaining_minutes: float
    used_pct: float


class TargetEval(BaseModel):
    kpi: str
    label: str
    unit: str
    op: str
    target: float
    window: str
    actual: float | None
    status: Status
    reason: str
    trend: Trend
    error_budget: ErrorBudget | None = None
    period_start: dt.date | None = None
    period_end: dt.date | None = None
    partial: bool = False  # a month or quarter still in progress: the value is to date
    demo: bool = False  # the period holds the demo seed's invented figures


class TargetsReport(BaseModel):
    day: dt.date
    items: list[TargetEval]
    met: int
    at_risk: int
    missed: int


def targets_from_settings() -> dict[str, TargetSpec]:
    out: dict[str, TargetSpec] = {}
    for kpi, raw in get_settings().pulse_targets.items():
        if kpi not in KPIS:
            raise ValueError(f"LEVQOR_PULSE_TARGETS: unknown KPI {kpi!r}")
        out[kpi] = TargetSpec.model_validate(raw)
    return out


def _window_start(day: dt.date, window: str) -> dt.date:
    if window == "month":
        return day.replace(day=1)
    if window == "quarter":
        return day.replace(month=3 * ((day.month - 1) // 3) + 1, day=1)
    if window == "latest":
        return day - dt.timedelta(days=30)
    return day - dt.timedelta(days=6)  # "day": the latest day with data in the last week


def _window_end(day: dt.date, window: str) -> dt.date:
    """The last day of the calendar window holding ``day`` (month, quarter); ``day`` otherwise."""
    if window == "month":
        return (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
    if window == "quarter":
        first = _window_start(day, "quarter")
        nxt = dt.date(first.year + (first.month + 3 > 12), (first.month + 2) % 12 + 1, 1)
        return nxt - dt.timedelta(days=1)
    return day


def satisfies(actual: float, op: str, target: float) -> bool:
    return {">=": actual >= target, ">": actual > target, "<=": actual <= target, "<": actual < target}[op]


def slope(values: list[float]) -> float | None:
    """Least-squares slope per step (None with fewer than 3 points)."""
    n = len(values)
    if n < 3:
        return None
    mx = (n - 1) / 2
    my = sum(values) / n
    den = sum((i - mx) ** 2 for i in range(n))
    return sum((i - mx) * (v - my) for i, v in enumerate(values)) / den if den else 0.0


def trend_of(values: list[float], higher_is_better: bool) -> Trend:
    s = slope(values)
    if s is None:
        return Trend(direction="unknown", slope_per_day=None, days=len(values))
    scale = max(abs(sum(values) / len(values)), 1e-9)
    if abs(s) * 14 / scale < 0.02:  # under 2 % over two weeks
        direction = "flat"
    else:
        direction = "improving" if (s > 0) == higher_is_better else "worsening"
    return Trend(direction=direction, slope_per_day=round(s, 4), days=len(values))


def evaluate_one(kpi: str, spec: TargetSpec, series: list[tuple[dt.date, float | None, str | None]],
                 day: dt.date, demo_days: set[dt.date] | None = None,
                 parts: Mapping[str, list[tuple[dt.date, float | None]]] | None = None) -> TargetEval:
    """Evaluate one target over its window from a daily series ending at ``day`` (``parts``: the daily
    series of a ratio KPI's numerator and denominator)."""
    d = KPIS[kpi]
    start = _window_start(day, spec.window)
    in_window = [(x, v) for x, v, _ in series if start <= x <= day and v is not None]
    recent = [v for x, v, _ in series if x > day - dt.timedelta(days=14) and v is not None]
    trend = trend_of(recent, d.higher_is_better)
    base: dict[str, Any] = {"kpi": kpi, "label": d.label, "unit": d.unit, "op": spec.op, "target": spec.value,
                            "window": spec.window, "trend": trend}
    if not in_window:
        missing = [r for x, v, r in series if x == day and v is None]
        why = missing[0] if missing and missing[0] else f"no data for this {spec.window}"
        return TargetEval(**base, actual=None, status="not_available", reason=why)
    values = [v for _, v in in_window]
    # The window's value is the one every surface reads for this period (tools.pulse.measure); a day or
    # "latest" window is its last reading.
    m = measure_series(kpi, [(x, v) for x, v, _ in series], start, day, day,
                       how="last" if spec.window in ("latest", "day") else None, demo_days=demo_days,
                       parts=parts)
    actual = round(float(m.value if m.value is not None else values[-1]), 4)
    base["period_start"], base["period_end"] = start, day
    base["partial"] = spec.window in ("month", "quarter") and m.end < _window_end(day, spec.window)
    base["demo"] = m.demo
    budget = None
    ok = satisfies(actual, spec.op, spec.value)
    if kpi == "uptime":
        days_in_month = 30
        allowed = round((100.0 - spec.value) / 100.0 * days_in_month * 24 * 60, 2)
        used = round(sum((100.0 - v) / 100.0 * 1440 for v in values), 2)
        budget = ErrorBudget(allowed_minutes=allowed, used_minutes=used,
                             remaining_minutes=round(allowed - used, 2),
                             used_pct=round(100.0 * used / allowed, 1) if allowed else 100.0)
        if used > allowed:
            status, reason = "missed", (f"{used:,.1f} min of downtime this month, over the {allowed:,.1f} min "
                                        "error budget")
        elif used > 0.75 * allowed:
            status, reason = "at_risk", f"{budget.used_pct:.0f} % of this month's error budget used"
        else:
            status, reason = "met", f"{budget.used_pct:.0f} % of this month's error budget used"
        return TargetEval(**base, actual=actual, status=status, reason=reason, error_budget=budget)
    shown, goal = fmt(actual, d.unit), f"{OP_WORDS[spec.op]} {fmt(spec.value, d.unit)}"
    when = WINDOW_WORDS[spec.window]
    if not ok:
        status, reason = "missed", f"{shown} {when}; the target is {goal}"
    else:
        near = abs(actual - spec.value) <= AT_RISK_MARGIN * max(abs(spec.value), 1e-9)
        if spec.op in ("<", "<=") and spec.window == "quarter" and spec.value <= 1:
            near = False
        if near or trend.direction == "worsening" and abs(actual - spec.value) <= 0.25 * abs(spec.value):
            status, reason = "at_risk", (f"{shown} {when}, close to the target ({goal})"
                                         + (f", {trend.direction}" if trend.direction != "unknown" else ""))
        else:
            status, reason = "met", f"{shown} {when}; the target is {goal}"
    return TargetEval(**base, actual=actual, status=status, reason=reason)


def evaluate(session: Session, org_id: int, day: dt.date | None = None) -> TargetsReport:
    """Evaluate every configured target on ``day`` (default: the latest snapshot day)."""
    repo = PulseRepository(session)
    day = day or repo.latest_day(org_id) or utcnow().date()
    specs = targets_from_settings()
    kpis = needed(specs)
    rows = repo.history(org_id, since=day - dt.timedelta(days=95), until=day, kpis=kpis)
    series: dict[str, list[tuple[dt.date, float | None, str | None]]] = {k: [] for k in kpis}
    demo: dict[str, set[dt.date]] = {k: set() for k in kpis}
    for r in rows:
        series[r.kpi].append((r.day, r.value, r.reason))
        if r.source == DEMO_SOURCE:
            demo[r.kpi].add(r.day)
    parts = {k: [(x, v) for x, v, _ in s] for k, s in series.items()}
    items = [evaluate_one(k, spec, series[k], day, demo[k], parts) for k, spec in specs.items()]
    return TargetsReport(day=day, items=items, met=sum(i.status == "met" for i in items),
                         at_risk=sum(i.status == "at_risk" for i in items),
                         missed=sum(i.status == "missed" for i in items))


def publish_gauges(ctx: ToolContext, report: TargetsReport) -> None:
    """Set the Prometheus gauges for every KPI and target of this organisation, when
    ``LEVQOR_METRICS_TENANT_KPIS`` allows organisations' business figures on /metrics."""
    if not get_settings().metrics_tenant_kpis:
        return
    org = str(ctx.org_id)
    for item in latest(ctx.session, ctx.org_id).items:
        if item.value is not None:
            KPI_GAUGE.labels(org=org, kpi=item.kpi).set(item.value)
    start = report.day.replace(day=1)
    month = start.strftime("%Y-%m")
    for kpi, m in measure_all(ctx.session, ctx.org_id, KPIS, start, _window_end(start, "month")).items():
        if m.value is not None:
            MONTH_GAUGE.labels(org=org, kpi=kpi, month=month).set(m.value)
            MONTH_DAYS.labels(org=org, kpi=kpi, month=month).set(m.days_with_data)
            MONTH_PARTIAL.labels(org=org, kpi=kpi, month=month).set(1.0 if m.partial else 0.0)
    for t in report.items:
        TARGET_GAUGE.labels(org=org, kpi=t.kpi).set(t.target)
        TARGET_STATUS.labels(org=org, kpi=t.kpi).set(STATUS_VALUE[t.status])
        if t.error_budget is not None:
            ERROR_BUDGET.labels(org=org).set(t.error_budget.remaining_minutes * 60)


class TargetsIn(BaseModel):
    day: dt.date | None = Field(None, description="Evaluate as of this day (default: latest snapshot)")


@tool("pulse.targets", risk="read")
def targets(ctx: ToolContext, params: TargetsIn) -> TargetsReport:
    """Evaluate every KPI target: status (met, at risk, missed), trend and error budget."""
    report = evaluate(ctx.session, ctx.org_id, params.day)
    publish_gauges(ctx, report)
    return report
