"""One typed feed over the Pulse store, the Cost DB and an optional Notion "Pulse" data source.

Notion (``notion-client`` 3.x, API 2025-09-03) is enabled by ``LEVQOR_NOTION_TOKEN`` and
``LEVQOR_NOTION_DATA_SOURCE_ID``. Each Notion page is one day: a ``Day`` date property and one
number property per KPI name (``uptime``, ``revenue`` …). Local snapshots win over Notion rows for
the same day and KPI; Notion fills the days the local store does not have (e.g. history kept there).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from levqor.settings import get_settings
from memory.db import utcnow
from memory.pulse.repository import PulseRepository
from tools.context import ToolContext
from tools.errors import AppError, Conflict, Unprocessable
from tools.pulse.costs import summarize
from tools.pulse.kpis import KPIS
from tools.pulse.measure import Measure, measure_series, needed
from tools.registry import tool

log = logging.getLogger("levqor.feed")


class FeedPoint(BaseModel):
    day: dt.date
    kpi: str
    value: float | None
    source: str  # pulse | costs | notion
    reason: str | None = None


class NotionUnavailable(AppError):
    status_code = 503
    title = "Notion unavailable"
    type_slug = "notion-unavailable"


@dataclass
class NotionPulse:
    """The Notion Pulse data source (one page per day, one number property per KPI)."""

    token: str
    data_source_id: str
    base_url: str = ""

    @classmethod
    def from_settings(cls) -> NotionPulse | None:
        s = get_settings()
        if not (s.notion_token and s.notion_data_source_id):
            return None
        return cls(s.notion_token, s.notion_data_source_id, s.notion_base_url)

    def client(self) -> Any:
        from notion_client import Client  # kept lazy: start-up time (only with Notion configured)

        opts: dict[str, Any] = {"auth": self.token, "timeout_ms": 10_000}
        if self.base_url:
            opts["base_url"] = self.base_url.rstrip("/")
        return Client(**opts)

    def query(self, since: dt.date, until: dt.date) -> list[FeedPoint]:
        """Every KPI number on pages whose Day is in ``[since, until]`` (follows pagination)."""
        # kept lazy: start-up time (as in client)
        from notion_client.errors import APIResponseError, HTTPResponseError, RequestTimeoutError

        client = self.client()
        body: dict[str, Any] = {"filter": {"and": [
            {"property": "Day", "date": {"on_or_after": since.isoformat()}},
            {"property": "Day", "date": {"on_or_before": until.isoformat()}}]},
            "sorts": [{"property": "Day", "direction": "ascending"}], "page_size": 100}
        out: list[FeedPoint] = []
        cursor: str | None = None
        try:
            while True:
                page = client.data_sources.query(self.data_source_id, **body,
                                                 **({"start_cursor": cursor} if cursor else {}))
                for result in page.get("results", []):
                    out.extend(_points_of(result))
                if not page.get("has_more"):
                    break
                cursor = page.get("next_cursor")
        except (APIResponseError, HTTPResponseError, RequestTimeoutError) as exc:
            raise NotionUnavailable(f"Notion query failed: {exc}") from None
        except Exception as exc:  # connection errors from httpx
            raise NotionUnavailable(f"Notion unreachable: {type(exc).__name__}: {exc}") from None
        return out

    def write_day(self, day: dt.date, values: dict[str, float | None]) -> str:
        """Create the page for ``day`` with the available KPI numbers; return the page id."""
        props: dict[str, Any] = {
            "Name": {"title": [{"text": {"content": f"Pulse {day.isoformat()}"}}]},
            "Day": {"date": {"start": day.isoformat()}},
        }
        for kpi, v in values.items():
            if v is not None:
                props[kpi] = {"number": v}
        try:
            page = self.client().pages.create(parent={"data_source_id": self.data_source_id}, properties=props)
        except Exception as exc:
            raise NotionUnavailable(f"Notion write failed: {type(exc).__name__}: {exc}") from None
        return str(page.get("id", ""))


def _points_of(page: dict[str, Any]) -> list[FeedPoint]:
    props = page.get("properties", {})
    day_raw = (props.get("Day", {}).get("date") or {}).get("start")
    if not day_raw:
        return []
    day = dt.date.fromisoformat(str(day_raw)[:10])
    out = []
    for name, prop in props.items():
        if name in KPIS and prop.get("type", "number") == "number" and prop.get("number") is not None:
            out.append(FeedPoint(day=day, kpi=name, value=float(prop["number"]), source="notion"))
    return out


class MetricsFeed:
    """What the planner, simulator, advisor and report read: daily KPI points and costs."""

    def __init__(self, ctx: ToolContext, notion: NotionPulse | None = None, *, use_notion: bool = True):
        self.ctx = ctx
        self.notion = notion if notion is not None else (NotionPulse.from_settings() if use_notion else None)
        self.notion_error: str | None = None

    def points(self, since: dt.date, until: dt.date, kpis: list[str] | None = None) -> list[FeedPoint]:
        repo = PulseRepository(self.ctx.session)
        local = [FeedPoint(day=r.day, kpi=r.kpi, value=r.value, source="pulse", reason=r.reason)
                 for r in repo.history(self.ctx.org_id, since=since, until=until, kpis=kpis)]
        have = {(p.day, p.kpi) for p in local if p.value is not None}
        merged = list(local)
        if self.notion is not None:
            try:
                remote = self.notion.query(since, until)
            except NotionUnavailable as exc:
                self.notion_error = exc.detail
                remote = []
            for p in remote:
                if (kpis is None or p.kpi in kpis) and (p.day, p.kpi) not in have:
                    merged = [m for m in merged if not (m.day == p.day and m.kpi == p.kpi)] + [p]
        return sorted(merged, key=lambda p: (p.day, p.kpi))

    def series(self, kpi: str, since: dt.date, until: dt.date) -> list[tuple[dt.date, float | None]]:
        return [(p.day, p.value) for p in self.points(since, until, [kpi])]

    def values(self, kpi: str, days: int, until: dt.date | None = None) -> list[float]:
        until = until or self.latest_day()
        return [v for _, v in self.series(kpi, until - dt.timedelta(days=days - 1), until) if v is not None]

    def mean(self, kpi: str, days: int = 30) -> float | None:
        vals = self.values(kpi, days)
        return sum(vals) / len(vals) if vals else None

    def latest_day(self) -> dt.date:
        return PulseRepository(self.ctx.session).latest_day(self.ctx.org_id) or utcnow().date()

    def costs_by_source(self, days: int = 30) -> dict[str, int]:
        return {s.source: s.total_cents for s in summarize(self.ctx, days).by_source}


# ---- tools ---------------------------------------------------------------------------------------

class FeedIn(BaseModel):
    kpis: list[str] | None = Field(None, max_length=len(KPIS))
    days: int = Field(30, ge=1, le=730)
    until: dt.date | None = Field(None, ge=dt.date(1900, 1, 1),
                                  description="Last day of the window (default: latest snapshot)")


class FeedOut(BaseModel):
    since: dt.date
    until: dt.date
    points: list[FeedPoint]
    notion: str  # disabled | ok | error message
    # Each KPI over the whole window from the merged points, as every surface reads a period
    # (tools.pulse.measure): partial when the window runs past the last day with data or misses days.
    measures: list[Measure] = []


@tool("decision.feed", risk="read")
def feed(ctx: ToolContext, params: FeedIn) -> FeedOut:
    """Read daily KPI points from the Pulse store, merged with the Notion Pulse data source if enabled."""
    for k in params.kpis or []:
        if k not in KPIS:
            raise Unprocessable(f"kpis: unknown KPI {k!r}", field="kpis")
    f = MetricsFeed(ctx)
    until = params.until or f.latest_day()
    since = until - dt.timedelta(days=params.days - 1)
    wanted = params.kpis or list(KPIS)
    every = f.points(since, until, needed(wanted))
    points = [p for p in every if p.kpi in wanted] if params.kpis else every
    status = "disabled" if f.notion is None else (f.notion_error or "ok")
    by: dict[str, list[tuple[dt.date, float | None]]] = {k: [] for k in needed(wanted)}
    for p in every:
        by[p.kpi].append((p.day, p.value))
    seen = [p.day for p in every if p.value is not None]
    local = PulseRepository(ctx.session).latest_day(ctx.org_id)
    last = max([*seen, *([local] if local else [])], default=None)
    measures = [measure_series(k, by[k], since, until, last, parts=by) for k in wanted]
    return FeedOut(since=since, until=until, points=points, notion=status, measures=measures)


class NotionPushIn(BaseModel):
    day: dt.date | None = None


class NotionPushOut(BaseModel):
    day: dt.date
    page_id: str
    kpis: int


@tool("pulse.notion_push", risk="write")
def notion_push(ctx: ToolContext, params: NotionPushIn) -> NotionPushOut:
    """Write a day's KPI snapshot to the Notion Pulse data source."""
    notion = NotionPulse.from_settings()
    if notion is None:
        raise Conflict("Notion is not configured: set LEVQOR_NOTION_TOKEN and LEVQOR_NOTION_DATA_SOURCE_ID",
                       field="notion")
    repo = PulseRepository(ctx.session)
    day = params.day or repo.latest_day(ctx.org_id)
    if day is None:
        raise Conflict("no snapshot to push yet", field="day")
    values = {k: r.value for k, r in repo.snapshot_rows(ctx.org_id, day).items()}
    page_id = notion.write_day(day, values)
    return NotionPushOut(day=day, page_id=page_id, kpis=sum(v is not None for v in values.values()))
