"""API usage: one row per organisation, UTC day, key, mode, method and route template, with counts.

API processes add to these rows in batches (``tools/dev_portal/tiers.py``), never one write per request.
No foreign key on ``org_id``: usage is a log, like the rate-limit counters; rows of a deleted
organisation are only unreachable (every read is scoped to the caller's organisation).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from memory.db import Base


class ApiUsage(Base):
    """Requests (accepted) and refusals (429) of one key on one endpoint on one UTC day."""

    __tablename__ = "api_usage"
    __table_args__ = (UniqueConstraint("org_id", "day", "key_prefix", "mode", "method", "route",
                                       name="uq_api_usage_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(Integer)
    day: Mapped[dt.date] = mapped_column(Date)
    key_prefix: Mapped[str] = mapped_column(String(32))
    mode: Mapped[str] = mapped_column(String(8))
    method: Mapped[str] = mapped_column(String(10))
    route: Mapped[str] = mapped_column(String(200))
    requests: Mapped[int] = mapped_column(Integer, default=0)
    refused: Mapped[int] = mapped_column(Integer, default=0)
