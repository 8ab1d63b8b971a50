"""Data insights: per-organisation daily rollups (internal, never published), the rollup watermark,
published anonymised snapshots and the quarterly Insights Report archive."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from memory.db import Base, UTCDateTime, utcnow

BigInt = BigInteger().with_variant(Integer(), "sqlite")


class InsightsOrgDay(Base):
    """One organisation's job activity on one day, folded in incrementally from finished jobs.

    Internal to the aggregator: rows carry ``org_id`` and are only ever read to build k-anonymous
    group aggregates."""

    __tablename__ = "insights_org_days"
    __table_args__ = (UniqueConstraint("org_id", "day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    day: Mapped[dt.date] = mapped_column(Date, index=True)
    jobs: Mapped[int] = mapped_column(Integer, default=0)
    succeeded: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    latency_ms_sum: Mapped[float] = mapped_column(Float, default=0.0)
    latency_n: Mapped[int] = mapped_column(Integer, default=0)
    # step kind -> succeeded step runs (the basis of the time-saved estimate)
    steps: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # "demo" for seeded demo history, "jobs" for rows folded from real jobs
    source: Mapped[str] = mapped_column(String(16), default="jobs")
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class InsightsWatermark(Base):
    """How far the rollup has read the jobs table: ``(finished_at, job_id)`` of the last job folded in."""

    __tablename__ = "insights_watermarks"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    job_id: Mapped[int] = mapped_column(BigInt, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class InsightsSnapshot(Base):
    """Published, anonymised aggregates for one quarter (noise is drawn once, here, not per request)."""

    __tablename__ = "insights_snapshots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    period: Mapped[str] = mapped_column(String(8), index=True)  # YYYY-Qn
    computed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    k: Mapped[int] = mapped_column(Integer)
    epsilon: Mapped[float | None] = mapped_column(Float, nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class InsightsReport(Base):
    """One archived quarterly Insights Report PDF, and where it was published."""

    __tablename__ = "insights_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    period: Mapped[str] = mapped_column(String(8), index=True)
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("insights_snapshots.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    created_by: Mapped[str] = mapped_column(String(200), default="")
    size_bytes: Mapped[int] = mapped_column(Integer)
    pages: Mapped[int] = mapped_column(Integer)
    pdf: Mapped[bytes] = mapped_column(LargeBinary)
    drive_file_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    drive_link: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    notion_page_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    publish_note: Mapped[str] = mapped_column(String(1000), default="")
    demo: Mapped[bool] = mapped_column(Boolean, default=False)
