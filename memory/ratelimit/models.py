"""Rate-limit counters: one row per key, shared by every API process (the `limits` storage's table)."""

from __future__ import annotations

from sqlalchemy import Float, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from memory.db import Base


class RateLimitCounter(Base):
    """A fixed-window counter: ``count`` hits until ``expires_at`` (Unix seconds), then it starts again."""

    __tablename__ = "rate_limit_counters"
    __table_args__ = (Index("ix_rate_limit_counters_expires_at", "expires_at"),)

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    count: Mapped[int] = mapped_column(default=0)
    expires_at: Mapped[float] = mapped_column(Float(precision=53))
