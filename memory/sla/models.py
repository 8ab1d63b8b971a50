"""SLA: maintenance windows announced by Levqor staff (excluded from measured downtime)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from memory.db import Base, UTCDateTime, utcnow


class MaintenanceWindow(Base):
    """Planned maintenance announced in advance; ``org_id`` None means every organisation."""

    __tablename__ = "sla_maintenance_windows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), nullable=True,
                                               index=True)
    starts_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    ends_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    announced_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    announced_by: Mapped[str] = mapped_column(String(200), default="")
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    demo: Mapped[bool] = mapped_column(Boolean, default=False)
