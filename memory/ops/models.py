"""Operations: sampled time series (raw and 5-minute rollups), detector state, incidents, notifications."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from memory.db import Base, UTCDateTime, utcnow

_BigId = BigInteger().with_variant(Integer, "sqlite")
INCIDENT_STATES: tuple[str, ...] = ("open", "acknowledged", "mitigated", "resolved")
SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "critical")


class OpsSample(Base):
    """One point of one series. ``resolution`` raw (kept a day) or 5m (a rollup: mean, min, max, count)."""

    __tablename__ = "ops_samples"
    __table_args__ = (Index("ix_ops_samples_series_ts", "series", "resolution", "ts"),
                      Index("ix_ops_samples_res_ts", "resolution", "ts"))

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    series: Mapped[str] = mapped_column(String(200))
    resolution: Mapped[str] = mapped_column(String(8), default="raw")
    ts: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    value: Mapped[float] = mapped_column(Float)
    vmin: Mapped[float | None] = mapped_column(Float, nullable=True)
    vmax: Mapped[float | None] = mapped_column(Float, nullable=True)
    n: Mapped[int] = mapped_column(Integer, default=1)
    # The detector's score when the point arrived (raw) or the highest score in the bucket (5m).
    score: Mapped[float | None] = mapped_column(Float, nullable=True)


class OpsDetectorState(Base):
    """A series' anomaly detector snapshot, so a restarted monitor continues where it stopped."""

    __tablename__ = "ops_detector_state"

    series: Mapped[str] = mapped_column(String(200), primary_key=True)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    points: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Incident(Base):
    """One problem with one cause. At most one incident per cause is not resolved (de-duplication)."""

    __tablename__ = "ops_incidents"
    __table_args__ = (
        Index("uq_ops_incidents_open_cause", "cause", unique=True,
              sqlite_where=text("state != 'resolved'"), postgresql_where=text("state != 'resolved'")),
        Index("ix_ops_incidents_state", "state", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), nullable=True,
                                               index=True)
    cause: Mapped[str] = mapped_column(String(200))  # worker:<id> | pipeline:<id> | queue | api | partner:<id> ...
    fingerprint: Mapped[str] = mapped_column(String(300))  # the rule or series that opened it
    kind: Mapped[str] = mapped_column(String(16))  # rule | anomaly
    diagnosis: Mapped[str] = mapped_column(String(50))  # the rule name, or "anomaly"
    title: Mapped[str] = mapped_column(String(300))
    severity: Mapped[str] = mapped_column(String(10), default="medium")
    state: Mapped[str] = mapped_column(String(16), default="open")
    manual: Mapped[bool] = mapped_column(Boolean, default=False)  # escalated: a person must act
    flapping: Mapped[bool] = mapped_column(Boolean, default=False)
    subject: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # worker_id, pipeline_id, job_id ...
    signals: Mapped[list[str]] = mapped_column(JSON, default=list)  # fingerprints grouped into it
    summary: Mapped[str] = mapped_column(Text, default="")
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    reopens: Mapped[int] = mapped_column(Integer, default=0)
    heal_attempts: Mapped[int] = mapped_column(Integer, default=0)
    heal_pending: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # action awaiting verification
    next_heal_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    detected_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)  # first evidence
    opened_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    mitigated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    resolved_by: Mapped[str | None] = mapped_column(String(200), nullable=True)


class IncidentEvent(Base):
    """The incident's timeline: evidence, actions, state changes, notifications, notes."""

    __tablename__ = "ops_incident_events"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("ops_incidents.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(16))  # evidence | action | state | notification | note
    actor: Mapped[str] = mapped_column(String(200), default="")
    message: Mapped[str] = mapped_column(String(1000))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class OpsNotification(Base):
    """An incident notification waiting to be sent (email: recorded here, there is no SMTP; webhook)."""

    __tablename__ = "ops_notifications"
    __table_args__ = (Index("ix_ops_notifications_status", "status", "id"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("ops_incidents.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(16))  # email | webhook
    target: Mapped[str] = mapped_column(String(2000))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | sent | failed | blocked
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
