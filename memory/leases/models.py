"""Leases: named rows one process holds for a while (the scheduler leader)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from memory.db import Base, UTCDateTime


class Lease(Base):
    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # Bumped each time the lease changes hands: a fencing token for work done under it.
    epoch: Mapped[int] = mapped_column(default=1)
