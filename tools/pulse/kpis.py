"""The KPI catalogue and the one registry of KPI providers.

Each area registers how its KPIs are read with :func:`register_kpi`; a provider gets the tool
context and the day and returns a :class:`Reading`. A provider never makes up a zero: when its
data source is missing it returns ``Reading.missing(reason)``. The built-in providers for areas
built elsewhere read them only through their registered tools (``registry.invoke``), by contract::

    jobs.kpis          {"day": "YYYY-MM-DD"} -> {jobs_run, job_success_rate, active_orgs?}
    credits.kpis       {"day": ...} -> {credits_sold, credits_spent}
    partners.kpis      {"day": ...} -> {partner_revenue_cents, plugin_installs_day} per day, or totals to
                       date {partner_revenue_minor, plugin_installs} (daily = difference of daily totals)
    billing.kpis       {"day": ...} -> {revenue_cents, refunds_cents, mrr_cents, ...} (the revenue ledger)
    certification.kpis {"day": ...} -> {certified_users}
    auto_intel.kpis    {"day": ...} -> {anomalies_detected, self_heals, manual_incidents}, else counted
                       from incidents.list (detected, manual, mitigated by the healer that day)

and report "not available" naming the tool while it is not registered.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from levqor.settings import get_settings
from memory.db import aware as _aware
from memory.db import utcnow
from memory.pulse.repository import PulseRepository
from tools.context import ToolContext
from tools.errors import AppError
from tools.registry import registry


@dataclass(frozen=True)
class KpiDef:
    name: str
    label: str
    unit: str  # count | percent | cents | credits
    higher_is_better: bool
    aggregate: str = "sum"  # how days combine into a month: sum | mean | last | ratio
    # For aggregate "ratio": (numerator, denominator) KPIs; the period's value is 100 * their sums' ratio
    # over the days the KPI has a value, never a mean of daily ratios (a small day weighs what it earned).
    ratio_of: tuple[str, str] | None = None


KPIS: dict[str, KpiDef] = {k.name: k for k in (
    KpiDef("active_orgs", "Active organisations", "count", True, "last"),
    KpiDef("jobs_run", "Jobs run", "count", True),
    KpiDef("job_success_rate", "Job success rate", "percent", True, "mean"),
    KpiDef("credits_sold", "Credits sold", "credits", True),
    KpiDef("credits_spent", "Credits spent", "credits", True),
    KpiDef("revenue", "Revenue", "cents", True),
    KpiDef("partner_revenue", "Partner revenue", "cents", True),
    KpiDef("partner_revenue_share", "Partner revenue share", "percent", True, "ratio",
           ("partner_revenue", "revenue")),
    KpiDef("plugin_installs", "Plugin installs", "count", True),
    KpiDef("certified_users", "Certified users", "count", True, "last"),
    KpiDef("anomalies_detected", "Anomalies detected", "count", False),
    KpiDef("self_heals", "Self-heals triggered", "count", True),
    KpiDef("manual_incidents", "Manual incidents", "count", False),
    KpiDef("ai_suggestions_made", "AI suggestions made", "count", True),
    KpiDef("ai_suggestions_accepted", "AI suggestions accepted", "count", True),
    KpiDef("suggestion_acceptance_rate", "Suggestion acceptance rate", "percent", True, "last"),
    KpiDef("uptime", "Uptime", "percent", True, "mean"),
    KpiDef("spend", "Spend", "cents", False),
)}


@dataclass(frozen=True)
class Reading:
    """A KPI value for one day, or the reason it is not available."""

    value: float | None
    source: str
    reason: str | None = None

    @property
    def available(self) -> bool:
        return self.value is not None

    @classmethod
    def missing(cls, reason: str, source: str = "") -> Reading:
        return cls(None, source, reason)


Provider = Callable[[ToolContext, dt.date], Reading]
_providers: dict[str, Provider] = {}


def register_kpi(name: str, provider: Provider) -> Provider:
    """Register (or replace) the provider of KPI ``name``; the one place areas plug their KPIs in."""
    if name not in KPIS:
        raise KeyError(f"unknown KPI {name!r}; add it to tools.pulse.kpis.KPIS")
    _providers[name] = provider
    return provider


def providers() -> dict[str, Provider]:
    _load_builtin()
    return dict(_providers)


def read_all(ctx: ToolContext, day: dt.date) -> dict[str, Reading]:
    """Every KPI for ``day``; a provider that fails degrades to "not available", never a crash."""
    out: dict[str, Reading] = {}
    cache: dict[str, Any] = {}
    ctx.extra["kpi_cache"] = cache
    for name in KPIS:
        provider = providers().get(name)
        if provider is None:
            out[name] = Reading.missing("no provider registered for this KPI")
            continue
        try:
            nested = ctx.session.begin_nested()
            try:
                out[name] = provider(ctx, day)
                nested.commit()
            except BaseException:
                nested.rollback()
                raise
        except Exception as exc:  # a broken area must not stop the snapshot
            out[name] = Reading.missing(f"provider failed: {type(exc).__name__}: {exc}"[:300])
    ctx.extra.pop("kpi_cache", None)
    return out


# ---- built-in providers --------------------------------------------------------------------------

def _day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


def _tool_payload(ctx: ToolContext, tool: str, day: dt.date) -> dict[str, Any] | str:
    """The tool's output for ``day`` (cached per snapshot), or why it cannot be read."""
    cache = cast(dict[str, dict[str, Any] | str], ctx.extra.setdefault("kpi_cache", {}))
    key = f"{tool}:{day.isoformat()}"
    if key not in cache:
        names = {s.name for s in registry.all()}
        if tool not in names:
            cache[key] = f"tool {tool} is not registered (that area is not installed yet)"
        else:
            try:
                cache[key] = registry.invoke(tool, ctx, {"day": day.isoformat()}).model_dump(mode="json")
            except AppError as exc:
                cache[key] = f"{tool} failed: {exc.detail}"
    return cache[key]


def from_tool(tool: str, field: str) -> Provider:
    """A provider reading ``field`` of tool ``tool``'s output for the day."""

    def provider(ctx: ToolContext, day: dt.date) -> Reading:
        data = _tool_payload(ctx, tool, day)
        if isinstance(data, str):
            return Reading.missing(data, tool)
        value = data.get(field)
        if value is None:
            return Reading.missing(f"{tool} does not report {field}", tool)
        return Reading(float(value), tool)

    return provider


def _revenue(ctx: ToolContext, day: dt.date) -> Reading:
    """Total revenue is the billing area's revenue ledger (subscriptions, prorations and credit packs, less
    refunds), read through ``billing.kpis``; partner revenue is measured separately from the payouts ledger."""
    return from_tool("billing.kpis", "revenue_cents")(ctx, day)


# Incidents that mean the platform was down for its users (opened by the monitor's ``api_down`` rule
# from failed /readyz probes, or by a person); their span counts as downtime even where no probe ran.
OUTAGE_DIAGNOSES: tuple[str, ...] = ("api_down", "db_outage")


def _merge(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted(s for s in spans if s[1] > s[0]):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _length(spans: list[tuple[float, float]]) -> float:
    return sum(b - a for a, b in _merge(spans))


def uptime_percent(probes: list[tuple[dt.datetime, bool]],
                   outages: list[tuple[dt.datetime, dt.datetime | None, dt.datetime]],
                   start: dt.datetime, end: dt.datetime, interval_s: float) -> tuple[float, float, float] | None:
    """(uptime %, downtime seconds, observed seconds) over ``[start, end)``, or None when nothing was observed.

    Each probe stands for the time until the next probe, at most two intervals (a gap longer than that
    was not observed, e.g. the scheduler was stopped). Downtime is the union of the spans of failed
    probes and of outage incidents (first evidence until one probe interval after it was last seen, or
    its resolution if sooner: an outage a person resolves late does not count the wait). The observed
    time is the union of all probe spans and outage spans, so an outage counts even where the prober
    itself was down."""
    t0, t1 = start.timestamp(), end.timestamp()

    def clip(a: float, b: float) -> tuple[float, float]:
        return max(a, t0), min(b, t1)

    observed: list[tuple[float, float]] = []
    down: list[tuple[float, float]] = []
    stamps = [(_aware(ts).timestamp(), ok) for ts, ok in probes]
    for i, (ts, ok) in enumerate(stamps):
        nxt = stamps[i + 1][0] if i + 1 < len(stamps) else ts + interval_s
        span = clip(ts, min(nxt, ts + 2 * interval_s))
        observed.append(span)
        if not ok:
            down.append(span)
    for first, resolved, last_seen in outages:
        until = _aware(last_seen).timestamp() + interval_s
        if resolved is not None:
            until = min(until, _aware(resolved).timestamp())
        span = clip(_aware(first).timestamp(), until)
        observed.append(span)
        down.append(span)
    seen = _length(observed)
    if seen <= 0:
        return None
    lost = _length(down)
    return round(100.0 * (1 - lost / seen), 4), lost, seen


def _uptime(ctx: ToolContext, day: dt.date) -> Reading:
    repo = PulseRepository(ctx.session)
    start, end = _day_bounds(day)
    end = min(end, utcnow())
    if end <= start:
        return Reading.missing("this day has not started yet", "readiness_probes")
    measured = uptime_percent(repo.probes(start, end), repo.outages(start, end, OUTAGE_DIAGNOSES), start, end,
                              float(get_settings().pulse_probe_interval_s))
    if measured is None:
        return Reading.missing("no /readyz probes or outage incidents were recorded on this day "
                               "(is the scheduler running?)", "readiness_probes")
    return Reading(measured[0], "readiness_probes+outage_incidents")


def _spend(ctx: ToolContext, day: dt.date) -> Reading:
    rows = PulseRepository(ctx.session).cost_totals(ctx.org_id, day, day)
    if not rows:
        return Reading.missing("no cost entries for this day in the Cost DB", "cost_entries")
    return Reading(float(sum(r[2] for r in rows)), "cost_entries")


def _active_orgs(ctx: ToolContext, day: dt.date) -> Reading:
    start, end = _day_bounds(day)
    n = PulseRepository(ctx.session).active_org_count(end - dt.timedelta(days=30), end)
    return Reading(float(n), "identity (logins and API key use, 30 days)")


def _suggestions(field: str) -> Provider:
    def provider(ctx: ToolContext, day: dt.date) -> Reading:
        repo = PulseRepository(ctx.session)
        start, end = _day_bounds(day)
        if field == "rate":
            accepted, decided = repo.decided_totals(ctx.org_id, end)
            if decided == 0:
                return Reading.missing("no suggestion has been accepted or rejected yet", "pulse_suggestions")
            return Reading(round(100.0 * accepted / decided, 2), "pulse_suggestions")
        counts = repo.suggestion_counts(ctx.org_id, start, end)
        return Reading(float(counts[field]), "pulse_suggestions")

    return provider


def _partner_share(ctx: ToolContext, day: dt.date) -> Reading:
    partner = providers()["partner_revenue"](ctx, day)
    revenue = providers()["revenue"](ctx, day)
    if not partner.available:
        return Reading.missing(f"partner revenue not available: {partner.reason}", partner.source)
    if not revenue.available:
        return Reading.missing(f"revenue not available: {revenue.reason}", revenue.source)
    if not revenue.value:
        return Reading.missing("no revenue on this day (share undefined)", revenue.source)
    return Reading(round(100.0 * (partner.value or 0) / revenue.value, 2), "partner_revenue / revenue")


def from_total(tool: str, field: str, total_kpi: str, day_field: str) -> Provider:
    """A daily figure from a tool that reports totals to date (``partners.kpis``): today's total is kept
    as a helper row ``total_kpi`` and the day's figure is its difference from the previous day's total.
    A tool answering the per-day contract (``day_field``) is used directly."""

    def provider(ctx: ToolContext, day: dt.date) -> Reading:
        data = _tool_payload(ctx, tool, day)
        if isinstance(data, str):
            return Reading.missing(data, tool)
        if data.get(day_field) is not None:
            return Reading(float(data[day_field]), tool)
        if data.get(field) is None:
            return Reading.missing(f"{tool} does not report {field}", tool)
        repo = PulseRepository(ctx.session)
        if day == utcnow().date():
            repo.upsert_snapshot(org_id=ctx.org_id, day=day, kpi=total_kpi, value=float(data[field]),
                                 available=True, reason=None, source=tool)
        today = repo.snapshot_rows(ctx.org_id, day).get(total_kpi)
        prev = repo.snapshot_rows(ctx.org_id, day - dt.timedelta(days=1)).get(total_kpi)
        if today is None or today.value is None:
            return Reading.missing(f"{tool} reports totals to date only; no total was recorded on this day", tool)
        if prev is None or prev.value is None:
            return Reading.missing(f"{tool} reports totals to date ({today.value:g}); the daily figure "
                                   "needs the previous day's total (first day of measurement)", tool)
        return Reading(today.value - prev.value, f"{tool} (daily difference of totals)")

    return provider


def _incidents(ctx: ToolContext, day: dt.date) -> list[dict[str, Any]] | str:
    """The organisation's incidents that touch ``day`` (detected or mitigated), via ``incidents.list``."""
    cache = cast(dict[str, list[dict[str, Any]] | str], ctx.extra.setdefault("kpi_cache", {}))
    key = f"incidents:{day.isoformat()}"
    if key in cache:
        return cache[key]
    if "incidents.list" not in {s.name for s in registry.all()}:
        cache[key] = "tool incidents.list is not registered (the incidents area is not installed yet)"
        return cache[key]
    start, end = _day_bounds(day)
    out: list[dict[str, Any]] = []
    cursor: int | None = None
    try:
        for _page in range(50):
            page = registry.invoke("incidents.list", ctx, {"limit": 500, "cursor": cursor}).model_dump(mode="json")
            items = page.get("items", [])
            for it in items:
                det = dt.datetime.fromisoformat(it["detected_at"])
                mit = dt.datetime.fromisoformat(it["mitigated_at"]) if it.get("mitigated_at") else None
                if start <= det < end or (mit is not None and start <= mit < end):
                    out.append(it)
            oldest = min((dt.datetime.fromisoformat(i["opened_at"]) for i in items), default=None)
            cursor = page.get("next_cursor")
            if not cursor or (oldest is not None and oldest < start - dt.timedelta(days=30)):
                break
    except AppError as exc:
        cache[key] = f"incidents.list failed: {exc.detail}"
        return cache[key]
    cache[key] = out
    return out


def from_incidents(what: str) -> Provider:
    """Anomalies detected, self-heals and manual incidents on a day, counted from ``incidents.list``."""

    def provider(ctx: ToolContext, day: dt.date) -> Reading:
        fallback = from_tool("auto_intel.kpis", what)(ctx, day)
        if fallback.available:
            return fallback
        items = _incidents(ctx, day)
        if isinstance(items, str):
            return Reading.missing(items, "incidents.list")
        start, end = _day_bounds(day)

        def on_day(ts: str | None) -> bool:
            return ts is not None and start <= dt.datetime.fromisoformat(ts) < end

        if what == "anomalies_detected":
            n = sum(1 for i in items if on_day(i["detected_at"]) and not i.get("manual"))
        elif what == "manual_incidents":
            n = sum(1 for i in items if on_day(i["detected_at"]) and i.get("manual"))
        else:  # self-heals: incidents the healer mitigated that day
            n = sum(1 for i in items if on_day(i.get("mitigated_at")) and i.get("heal_attempts", 0) > 0
                    and not i.get("manual"))
        return Reading(float(n), "incidents.list")

    return provider


_builtin_loaded = False


def _load_builtin() -> None:
    global _builtin_loaded
    if _builtin_loaded:
        return
    _builtin_loaded = True
    defaults: dict[str, Provider] = {
        "active_orgs": _active_orgs,
        "jobs_run": from_tool("jobs.kpis", "jobs_run"),
        "job_success_rate": from_tool("jobs.kpis", "job_success_rate"),
        "credits_sold": from_tool("credits.kpis", "credits_sold"),
        "credits_spent": from_tool("credits.kpis", "credits_spent"),
        "revenue": _revenue,
        "partner_revenue": from_total("partners.kpis", "partner_revenue_minor", "partner_revenue_total",
                                      "partner_revenue_cents"),
        "partner_revenue_share": _partner_share,
        "plugin_installs": from_total("partners.kpis", "plugin_installs", "plugin_installs_total",
                                      "plugin_installs_day"),
        "certified_users": from_tool("certification.kpis", "certified_users"),
        "anomalies_detected": from_incidents("anomalies_detected"),
        "self_heals": from_incidents("self_heals"),
        "manual_incidents": from_incidents("manual_incidents"),
        "ai_suggestions_made": _suggestions("made"),
        "ai_suggestions_accepted": _suggestions("accepted"),
        "suggestion_acceptance_rate": _suggestions("rate"),
        "uptime": _uptime,
        "spend": _spend,
    }
    for name, provider in defaults.items():
        # An area that registered its own provider first keeps it.
        _providers.setdefault(name, provider)
