"""Jobs runtime: pipelines, jobs (the queue is the ``jobs`` table), step runs, workers, credits."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from memory.db import Base, UTCDateTime, utcnow

JOB_STATES: tuple[str, ...] = ("queued", "running", "succeeded", "failed", "dead", "cancelled")
TERMINAL_STATES: tuple[str, ...] = ("succeeded", "failed", "dead", "cancelled")


class Pipeline(Base):
    """A trigger and ordered steps; each run of it is a :class:`Job`."""

    __tablename__ = "pipelines"
    __table_args__ = (UniqueConstraint("org_id", "mode", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    # live | test: created with a test-mode key, seen only by test-mode keys (migration 1101)
    mode: Mapped[str] = mapped_column(String(8), default="live", server_default="live")
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(1000), default="")
    trigger: Mapped[dict[str, Any]] = mapped_column(JSON)
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    timeout_s: Mapped[int] = mapped_column(Integer, default=300)
    retry_backoff_s: Mapped[float] = mapped_column(default=2.0)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    # sha256 of the secret in the webhook URL (``/v1/hooks/{secret}``); the secret is shown once.
    webhook_secret_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    trigger_event: Mapped[str | None] = mapped_column(String(100), nullable=True, index=True)
    next_run_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Job(Base):
    """One run of a pipeline. Rows in state ``queued`` with ``run_at <= now`` are the queue."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("org_id", "mode", "idempotency_key"),
        Index("ix_jobs_queue", "state", "run_at"),
        Index("ix_jobs_org_state", "org_id", "state", "id"),
        # Never reuse a purged job's id: ledger rows and events keep pointing at it.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipelines.id", ondelete="CASCADE"), index=True)
    mode: Mapped[str] = mapped_column(String(8), default="live", server_default="live")  # its pipeline's
    state: Mapped[str] = mapped_column(String(16), default="queued")
    trigger: Mapped[str] = mapped_column(String(16), default="manual")
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    input: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    output: Mapped[Any] = mapped_column(JSON, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    retryable: Mapped[bool] = mapped_column(Boolean, default=False)
    cost: Mapped[int] = mapped_column(Integer, default=0)
    run_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Bumped by every claim: a worker may only record results under the fence it claimed with.
    fence: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    created_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    enqueued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class JobStep(Base):
    """The result and log of one step of one attempt."""

    __tablename__ = "job_steps"
    __table_args__ = (UniqueConstraint("job_id", "run", "position"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    # The job's fence at the time: one number per run, never reused (attempts reset on retry).
    run: Mapped[int] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    output: Mapped[Any] = mapped_column(JSON, nullable=True)
    log: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class QueueState(Base):
    """Per-organisation queue switch (paused or not); pipelines pause on their own row."""

    __tablename__ = "job_queue_state"

    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(200), default="")


class Worker(Base):
    """A worker process, registered at start and kept fresh by its heartbeat."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    concurrency: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="running")  # running|draining|stopping|stopped
    command: Mapped[str | None] = mapped_column(String(16), nullable=True)  # drain|restart
    current_jobs: Mapped[list[int]] = mapped_column(JSON, default=list)
    jobs_done: Mapped[int] = mapped_column(Integer, default=0)
    cpu_percent: Mapped[float | None] = mapped_column(nullable=True)
    rss_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class CreditAccount(Base):
    """An organisation's credit balance; only ever changed by a conditional UPDATE."""

    __tablename__ = "credit_accounts"

    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True)
    balance: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class CreditLedger(Base):
    """Every balance change. ``(job_id, reason)`` is unique: a job is charged (or refunded) once."""

    __tablename__ = "credit_ledger"
    __table_args__ = (UniqueConstraint("job_id", "reason"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    delta: Mapped[int] = mapped_column(Integer)
    balance_after: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    reason: Mapped[str] = mapped_column(String(32))  # job_run | refund | grant | test_reset
    # test rows change the test balance (:class:`SandboxCreditAccount`), never the live one
    mode: Mapped[str] = mapped_column(String(8), default="live", server_default="live")
    job_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), nullable=True)
    actor: Mapped[str] = mapped_column(String(200), default="")
    note: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class SandboxCreditAccount(Base):
    """An organisation's test-mode credits: apart from the live balance, refilled each month (``period``)."""

    __tablename__ = "test_credit_accounts"

    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True)
    balance: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), default=0)
    period: Mapped[str] = mapped_column(String(7))  # YYYY-MM of the last refill
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookEndpoint(Base):
    """A customer's registered webhook URL (live or test) and its Standard Webhooks signing secret."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_org_mode", "org_id", "mode"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    mode: Mapped[str] = mapped_column(String(8), default="live")
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(500), default="")
    secret: Mapped[str] = mapped_column(String(100))  # whsec_...
    created_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    rotated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
