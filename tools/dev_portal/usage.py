"""API usage reports: requests per key, endpoint, mode and day (``api_usage``), as JSON or CSV.

The rows are written in batches by the API processes (``tools/dev_portal/tiers.py``), so a request
shows up here within ``LEVQOR_RATE_LIMIT_SYNC_S`` seconds.
"""

from __future__ import annotations

import csv
import datetime as dt
import io

from pydantic import BaseModel, ConfigDict, Field

from memory.identity.repository import IdentityRepository
from memory.usage.repository import UsageRepository
from tools.context import ToolContext
from tools.dev_portal.tiers import limiter, tier_for
from tools.errors import NotFound, Unprocessable
from tools.registry import tool

MAX_DAYS = 366
DEFAULT_DAYS = 30
MAX_ROWS = 50_000


class UsageQuery(BaseModel):
    """Which usage to report: UTC days ``from`` to ``to`` (inclusive; default the last 30), one key or all."""

    model_config = ConfigDict(populate_by_name=True)

    start: dt.date | None = Field(None, alias="from", description="First UTC day (default: 29 days before `to`).")
    end: dt.date | None = Field(None, alias="to", description="Last UTC day (default: today).")
    key: str | None = Field(None, min_length=1, max_length=32, pattern=r"^lvq_(live|test)_[A-Za-z0-9]+$",
                            description="Only this API key (its prefix, e.g. lvq_live_3fA9xQ2b).")

    def days(self, today: dt.date) -> tuple[dt.date, dt.date]:
        """The resolved (first, last) day; at most ``MAX_DAYS`` days."""
        end = self.end or today
        start = self.start or max(dt.date.min, end - dt.timedelta(days=min(DEFAULT_DAYS - 1, (end - dt.date.min).days)))
        if start > end:
            raise Unprocessable("from must not be after to", field="from")
        if (end - start).days + 1 > MAX_DAYS:
            raise Unprocessable(f"at most {MAX_DAYS} days per report", field="from")
        return start, end


class UsageRow(BaseModel):
    day: dt.date
    key: str = Field(description="The API key's prefix.")
    mode: str = Field(description="live or test.")
    method: str
    endpoint: str = Field(description="The route template, e.g. /v1/jobs/{job_id}.")
    requests: int = Field(description="Requests answered (any status but a rate-limit refusal).")
    refused: int = Field(description="Requests refused with 429 by a rate limit or the quota.")


class UsageDay(BaseModel):
    day: dt.date
    requests: int
    refused: int


class TierRead(BaseModel):
    plan: str
    key_per_second: int
    org_per_second: int
    key_per_day: int
    org_per_day: int
    org_per_month: int


class UsageReport(BaseModel):
    start: dt.date = Field(serialization_alias="from")
    end: dt.date = Field(serialization_alias="to")
    key: str | None
    total_requests: int
    total_refused: int
    tier: TierRead = Field(description="The organisation's plan and its limits.")
    days: list[UsageDay] = Field(description="Every day of the range, zeros included (for charts).")
    rows: list[UsageRow]


def _today() -> dt.date:
    """Today (UTC) by the limiter's clock, the one the usage rows are dated with."""
    return dt.datetime.fromtimestamp(limiter.clock(), dt.UTC).date()


@tool("usage.read", risk="read")
def usage_report(ctx: ToolContext, params: UsageQuery) -> UsageReport:
    """Report the organisation's API requests per day, key, mode and endpoint over a range of UTC days."""
    start, end = params.days(_today())
    org_id = ctx.org_id
    if params.key is not None and IdentityRepository(ctx.session).key_by_prefix(org_id, params.key) is None:
        raise NotFound(f"no API key {params.key} in your organisation", field="key")
    rows = UsageRepository.from_session(ctx.session).rows(org_id, start=start, end=end, key_prefix=params.key,
                                                          limit=MAX_ROWS)
    out = [UsageRow(day=r.day, key=r.key_prefix, mode=r.mode, method=r.method, endpoint=r.route,
                    requests=r.requests, refused=r.refused) for r in rows]
    per_day: dict[dt.date, list[int]] = {}
    for r in out:
        c = per_day.setdefault(r.day, [0, 0])
        c[0] += r.requests
        c[1] += r.refused
    days = []
    for i in range((end - start).days + 1):  # (no day after `end`: it may be date.max)
        d = start + dt.timedelta(days=i)
        c = per_day.get(d, [0, 0])
        days.append(UsageDay(day=d, requests=c[0], refused=c[1]))
    org = IdentityRepository(ctx.session).org(org_id)
    plan = org.plan if org is not None else "free"
    return UsageReport(start=start, end=end, key=params.key, total_requests=sum(r.requests for r in out),
                       total_refused=sum(r.refused for r in out),
                       tier=TierRead(plan=plan, **tier_for(plan).model_dump()), days=days, rows=out)


CSV_COLUMNS = ("day", "key", "mode", "method", "endpoint", "requests", "refused")


def usage_csv(report: UsageReport) -> str:
    """The report's rows as CSV (RFC 4180: header row, CRLF line ends, quoted when needed)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    for r in report.rows:
        w.writerow([r.day.isoformat(), r.key, r.mode, r.method, r.endpoint, r.requests, r.refused])
    return buf.getvalue()
