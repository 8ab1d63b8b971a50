"""The Cost DB: spend by source and day in integer cents (LLM tokens, infrastructure bills, payment fees).

CSV import format (header required, extra columns refused)::

    day,source,amount_cents,description,ref
    2026-10-01,infrastructure,12345,Hetzner invoice 1234,hetzner-2026-10

``amount_cents`` is a whole number of cents (no decimals, no currency signs); ``ref`` is optional and
makes re-imports idempotent (default: ``csv:<day>:<source>:<description>``).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any, Literal, cast

from pydantic import BaseModel, Field

from memory.agents.repository import AgentRepository
from memory.db import utcnow
from memory.pulse.models import CostEntry
from memory.pulse.repository import PulseRepository
from tools.context import ToolContext
from tools.enterprise import audit_log
from tools.errors import Unprocessable
from tools.registry import registry, tool

SOURCES: tuple[str, ...] = ("llm", "infrastructure", "payment_fees", "other")
Source = Literal["llm", "infrastructure", "payment_fees", "other"]
CSV_COLUMNS: tuple[str, ...] = ("day", "source", "amount_cents", "description", "ref")
MAX_CENTS = 10**12


class CostIn(BaseModel):
    day: dt.date = Field(ge=dt.date(2000, 1, 1), le=dt.date(2100, 12, 31))
    source: Source
    amount_cents: int = Field(ge=0, le=MAX_CENTS, description="Amount in integer cents (USD)")
    description: str = Field("", max_length=300)
    ref: str | None = Field(None, max_length=200, description="Idempotency reference")


class CostRead(BaseModel):
    id: int
    day: dt.date
    source: str
    amount_cents: int
    description: str
    ref: str

    @classmethod
    def of(cls, e: CostEntry) -> CostRead:
        return cls(id=e.id, day=e.day, source=e.source, amount_cents=e.amount_cents, description=e.description,
                   ref=e.ref)


def add_entry(ctx: ToolContext, item: CostIn) -> tuple[CostEntry, bool]:
    """Upsert one spend entry by its ref; (the row, whether it is new)."""
    ref = item.ref or f"manual:{item.day}:{item.source}:{item.description}"[:200]
    return PulseRepository(ctx.session).upsert_cost(CostEntry(
        org_id=ctx.org_id, day=item.day, source=item.source, amount_cents=item.amount_cents, currency="USD",
        description=item.description, ref=ref, created_by=ctx.principal.actor[:200], created_at=utcnow()))


@tool("costs.add", risk="write")
def add_cost(ctx: ToolContext, params: CostIn) -> CostRead:
    """Record a spend entry (e.g. an infrastructure bill) for a day and source, in cents."""
    row, _new = add_entry(ctx, params)
    audit_log.record(ctx, "costs.added", f"cost:{row.id}", detail=params.model_dump(mode="json"))
    return CostRead.of(row)


class CsvError(Unprocessable):
    pass


def parse_csv(text: str) -> list[CostIn]:
    """Parse and validate a cost CSV; raise naming the first bad row and column."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        return _parse_rows(reader)
    except csv.Error as exc:
        raise CsvError(f"row {reader.line_num}: not valid CSV: {exc}", field="file") from None


def _parse_rows(reader: csv.DictReader[str]) -> list[CostIn]:
    header = [h.strip() for h in (reader.fieldnames or [])]
    if not header:
        raise CsvError("the file is empty: expected a header row day,source,amount_cents[,description,ref]",
                       field="header")
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if unknown:
        raise CsvError(f"row 1 (header): unknown column {unknown[0]!r}; allowed: {', '.join(CSV_COLUMNS)}",
                       field=unknown[0])
    for col in ("day", "source", "amount_cents"):
        if col not in header:
            raise CsvError(f"row 1 (header): missing required column {col!r}", field=col)
    out: list[CostIn] = []
    for i, raw in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        if None in raw:
            raise CsvError(f"row {i}: more values than header columns", field="row")
        if not any(row.values()):
            continue
        try:
            day = dt.date.fromisoformat(row["day"])
        except ValueError:
            raise CsvError(f"row {i}, column day: {row['day']!r} is not a date (YYYY-MM-DD)", field="day") from None
        if not dt.date(2000, 1, 1) <= day <= dt.date(2100, 12, 31):
            raise CsvError(f"row {i}, column day: {day} is outside 2000-2100", field="day")
        if row["source"] not in SOURCES:
            raise CsvError(f"row {i}, column source: {row['source']!r} is not one of {', '.join(SOURCES)}",
                           field="source")
        amount = row["amount_cents"]
        if not amount.lstrip("-").isdigit():
            raise CsvError(f"row {i}, column amount_cents: {amount!r} is not a whole number of cents",
                           field="amount_cents")
        cents = int(amount)
        if cents < 0 or cents > MAX_CENTS:
            raise CsvError(f"row {i}, column amount_cents: {cents} is out of range (0..{MAX_CENTS})",
                           field="amount_cents")
        desc = row.get("description", "")
        if len(desc) > 300:
            raise CsvError(f"row {i}, column description: longer than 300 characters", field="description")
        ref = row.get("ref") or f"csv:{day}:{row['source']}:{desc}"[:200]
        if len(ref) > 200:
            raise CsvError(f"row {i}, column ref: longer than 200 characters", field="ref")
        out.append(CostIn(day=day, source=cast(Source, row["source"]), amount_cents=cents, description=desc,
                          ref=ref))
    return out


class CostImportIn(BaseModel):
    csv: str = Field(max_length=5_000_000, description="CSV text: day,source,amount_cents[,description,ref]")


class CostImportOut(BaseModel):
    rows: int
    created: int
    updated: int
    total_cents: int


@tool("costs.import_csv", risk="write")
def import_csv(ctx: ToolContext, params: CostImportIn) -> CostImportOut:
    """Import spend entries from a CSV bill (all rows or none; re-import updates by ref)."""
    items = parse_csv(params.csv)
    created = updated = 0
    for item in items:
        _row, new = add_entry(ctx, item)
        created, updated = created + new, updated + (not new)
    total = sum(i.amount_cents for i in items)
    audit_log.record(ctx, "costs.imported", "costs", detail={"rows": len(items), "created": created,
                                                             "updated": updated, "total_cents": total})
    return CostImportOut(rows=len(items), created=created, updated=updated, total_cents=total)


class CostSummaryIn(BaseModel):
    days: int = Field(30, ge=1, le=730)
    until: dt.date | None = None


class SourceTotal(BaseModel):
    source: str
    total_cents: int
    share_pct: float
    per_day_cents: int


class DayTotal(BaseModel):
    day: dt.date
    total_cents: int
    by_source: dict[str, int]


class CostSummary(BaseModel):
    since: dt.date
    until: dt.date
    days: int
    total_cents: int
    per_day_cents: int
    by_source: list[SourceTotal]
    by_day: list[DayTotal]


def summarize(ctx: ToolContext, days: int, until: dt.date | None = None) -> CostSummary:
    repo = PulseRepository(ctx.session)
    if until is None:
        rows = repo.cost_totals(ctx.org_id, dt.date(1970, 1, 1), utcnow().date())
        until = max((r[0] for r in rows), default=utcnow().date())
    since = until - dt.timedelta(days=days - 1)
    rows = repo.cost_totals(ctx.org_id, since, until)
    total = sum(r[2] for r in rows)
    by_source: dict[str, int] = {}
    by_day: dict[dt.date, dict[str, int]] = {}
    for day, source, cents in rows:
        by_source[source] = by_source.get(source, 0) + cents
        by_day.setdefault(day, {})[source] = cents
    return CostSummary(
        since=since, until=until, days=days, total_cents=total, per_day_cents=round(total / days),
        by_source=[SourceTotal(source=s, total_cents=c, share_pct=round(100.0 * c / total, 1) if total else 0.0,
                               per_day_cents=round(c / days))
                   for s, c in sorted(by_source.items(), key=lambda kv: -kv[1])],
        by_day=[DayTotal(day=d, total_cents=sum(v.values()), by_source=v) for d, v in sorted(by_day.items())])


@tool("costs.summary", risk="read")
def cost_summary(ctx: ToolContext, params: CostSummaryIn) -> CostSummary:
    """Break spend down by source and day over the last N days (cents)."""
    return summarize(ctx, params.days, params.until)


class SyncIn(BaseModel):
    since: dt.date | None = None


class SyncOut(BaseModel):
    days: int
    total_cents: int
    source: str


def sync_llm_costs(ctx: ToolContext, since: dt.date | None = None) -> SyncOut:
    """Copy LLM spend per day from the agent runtime into the Cost DB (micro-USD rounded to cents)."""
    since = since or (utcnow().date() - dt.timedelta(days=7))
    per_day: dict[dt.date, int] = {}
    names = {s.name for s in registry.all()}
    source = ""
    if "agents.costs" in names:
        days = min(366, max(1, (utcnow().date() - since).days + 1))
        out: Any = registry.invoke("agents.costs", ctx, {"days": days})
        for item in out.model_dump(mode="json").get("items", []):
            day = dt.date.fromisoformat(str(item["day"]))
            micro = item["cost_micro_usd"] if "cost_micro_usd" in item else round(float(item["cost_usd"]) * 1e6)
            per_day[day] = per_day.get(day, 0) + int(micro)
        source = "agents.costs"
    else:
        for row in AgentRepository(ctx.session).costs(ctx.org_id, since):
            per_day[row.day] = per_day.get(row.day, 0) + int(row.cost_micro_usd)
        source = "llm_costs"
    total = 0
    for day, micro in per_day.items():
        cents = round(micro / 10_000)
        total += cents
        add_entry(ctx, CostIn(day=day, source="llm", amount_cents=cents, description="LLM tokens (agent runs)",
                              ref=f"llm:{day.isoformat()}"))
    return SyncOut(days=len(per_day), total_cents=total, source=source)


@tool("costs.sync_llm", risk="write")
def sync_llm(ctx: ToolContext, params: SyncIn) -> SyncOut:
    """Copy LLM token spend per day from agent runs into the Cost DB."""
    return sync_llm_costs(ctx, params.since)
