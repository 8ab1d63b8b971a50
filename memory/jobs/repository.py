"""SQL for the jobs runtime: pipelines, the job queue (claim, lease, fenced finish), workers, credits."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Select, Table, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from memory.db import utcnow
from memory.jobs.models import (
    CreditAccount,
    CreditLedger,
    Job,
    JobStep,
    Pipeline,
    QueueState,
    SandboxCreditAccount,
    WebhookEndpoint,
    Worker,
)

_JOBS = cast(Table, Job.__table__)
# ``last_error`` of a job whose run lost its worker (tools.jobs.outcomes.requeue_expired writes it)
LOST_WORKER_ERROR = "lease expired on attempt"
_STEPS = cast(Table, JobStep.__table__)


def _rowcount(result: Any) -> int:
    return int(result.rowcount or 0)


class PipelineRepository:
    def __init__(self, session: Session):
        self.session = session

    @classmethod
    def from_session(cls, session: Session) -> PipelineRepository:
        return cls(session)

    def add(self, p: Pipeline) -> Pipeline:
        self.session.add(p)
        self.session.flush()
        return p

    def get(self, org_id: int, pipeline_id: int, mode: str | None = None) -> Pipeline | None:
        """The pipeline when it is ``org_id``'s and (given a mode) of that mode, else None."""
        p = self.session.get(Pipeline, pipeline_id)
        if p is None or p.org_id != org_id or (mode is not None and p.mode != mode):
            return None
        return p

    def by_name(self, org_id: int, name: str, mode: str = "live") -> Pipeline | None:
        return self.session.scalar(select(Pipeline).where(Pipeline.org_id == org_id, Pipeline.mode == mode,
                                                          Pipeline.name == name))

    def for_org(self, org_id: int, mode: str | None = None) -> list[Pipeline]:
        stmt = select(Pipeline).where(Pipeline.org_id == org_id)
        if mode is not None:
            stmt = stmt.where(Pipeline.mode == mode)
        return list(self.session.scalars(stmt.order_by(Pipeline.id)))

    def delete_mode(self, org_id: int, mode: str) -> int:
        """Delete every pipeline of ``org_id`` in ``mode`` (their jobs go with them)."""
        return _rowcount(self.session.execute(delete(Pipeline).where(Pipeline.org_id == org_id, Pipeline.mode == mode)
                                              .execution_options(synchronize_session=False)))

    def by_ids(self, ids: set[int]) -> dict[int, Pipeline]:
        return {p.id: p for p in self.session.scalars(select(Pipeline).where(Pipeline.id.in_(list(ids))))}

    def by_webhook_hash(self, secret_hash: str) -> Pipeline | None:
        return self.session.scalar(select(Pipeline).where(Pipeline.webhook_secret_hash == secret_hash))

    def by_event(self, org_id: int | None, name: str) -> list[Pipeline]:
        stmt = select(Pipeline).where(Pipeline.trigger_event == name)
        if org_id is not None:
            stmt = stmt.where(Pipeline.org_id == org_id)
        return list(self.session.scalars(stmt))

    def due_scheduled(self, now: dt.datetime, limit: int = 100) -> list[Pipeline]:
        stmt = (select(Pipeline).where(Pipeline.next_run_at.is_not(None), Pipeline.next_run_at <= now)
                .order_by(Pipeline.next_run_at).limit(limit))
        if self.session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        return list(self.session.scalars(stmt))

    def delete(self, p: Pipeline) -> None:
        self.session.delete(p)
        self.session.flush()

    def set_paused(self, org_id: int | None, pipeline_id: int, paused: bool, mode: str | None = None) -> int:
        stmt = update(Pipeline).where(Pipeline.id == pipeline_id)
        if org_id is not None:
            stmt = stmt.where(Pipeline.org_id == org_id)
        if mode is not None:
            stmt = stmt.where(Pipeline.mode == mode)
        return _rowcount(self.session.execute(stmt.values(paused=paused, updated_at=utcnow())))


class JobRepository:
    def __init__(self, session: Session):
        self.session = session

    @classmethod
    def from_session(cls, session: Session) -> JobRepository:
        return cls(session)

    @property
    def is_pg(self) -> bool:
        return self.session.get_bind().dialect.name == "postgresql"

    def add(self, job: Job) -> Job:
        self.session.add(job)
        self.session.flush()
        return job

    def get(self, org_id: int | None, job_id: int, mode: str | None = None) -> Job | None:
        job = self.session.get(Job, job_id)
        if job is None or (org_id is not None and job.org_id != org_id) or (mode is not None and job.mode != mode):
            return None
        return job

    def get_for_update(self, org_id: int | None, job_id: int, mode: str | None = None) -> Job | None:
        stmt = select(Job).where(Job.id == job_id).execution_options(populate_existing=True)
        if org_id is not None:
            stmt = stmt.where(Job.org_id == org_id)
        if mode is not None:
            stmt = stmt.where(Job.mode == mode)
        if self.is_pg:
            stmt = stmt.with_for_update()
        return self.session.scalar(stmt)

    def by_idempotency_key(self, org_id: int, key: str, mode: str = "live") -> Job | None:
        return self.session.scalar(select(Job).where(Job.org_id == org_id, Job.mode == mode,
                                                     Job.idempotency_key == key))

    def search(self, org_id: int | None, *, states: Sequence[str] | None = None, pipeline_id: int | None = None,
               before_id: int | None = None, limit: int = 50, mode: str | None = None) -> list[Job]:
        stmt = select(Job)
        if org_id is not None:
            stmt = stmt.where(Job.org_id == org_id)
        if mode is not None:
            stmt = stmt.where(Job.mode == mode)
        if states:
            stmt = stmt.where(Job.state.in_(list(states)))
        if pipeline_id is not None:
            stmt = stmt.where(Job.pipeline_id == pipeline_id)
        if before_id is not None:
            stmt = stmt.where(Job.id < before_id)
        return list(self.session.scalars(stmt.order_by(Job.id.desc()).limit(limit)))

    def ids_of_org(self, org_id: int, ids: set[int]) -> set[int]:
        if not ids:
            return set()
        return set(self.session.scalars(select(Job.id).where(Job.id.in_(list(ids)), Job.org_id == org_id)))

    def orgs_of(self, ids: set[int]) -> set[int]:
        """The organisations owning the jobs ``ids``."""
        if not ids:
            return set()
        return set(self.session.scalars(select(Job.org_id).where(Job.id.in_(list(ids))).distinct()))

    def count(self, org_id: int) -> int:
        return int(self.session.scalar(select(func.count()).select_from(Job).where(Job.org_id == org_id)) or 0)

    # ---- the queue ---------------------------------------------------------------------------

    def _claimable(self, now: dt.datetime, limit: int, *, skip_suspects: bool = False) -> Select[Any]:
        paused_orgs = select(QueueState.org_id).where(QueueState.paused.is_(True))
        paused_pipelines = select(Pipeline.id).where(Pipeline.paused.is_(True))
        stmt = (
            select(Job.id)
            .where(Job.state == "queued", Job.run_at <= now, Job.org_id.not_in(paused_orgs),
                   Job.pipeline_id.not_in(paused_pipelines))
            .order_by(Job.run_at, Job.id)
            .limit(limit)
        )
        if skip_suspects:
            stmt = stmt.where(or_(Job.last_error.is_(None), Job.last_error.not_like(f"{LOST_WORKER_ERROR}%")))
        if self.is_pg:
            stmt = stmt.with_for_update(skip_locked=True)
        return stmt

    def claim(self, worker_id: str, limit: int, lease_s: float, *, skip_suspects: bool = False) -> list[Job]:
        """Move up to ``limit`` due jobs to running under a fresh lease and fence; return them.

        One statement: ``UPDATE jobs ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING``.
        ``skip_suspects``: leave the jobs whose last run lost its worker (they run alone, see workers.py).
        """
        now = utcnow()
        picked: Any = self._claimable(now, limit, skip_suspects=skip_suspects)
        if self.is_pg:
            # A materialized CTE runs the LIMIT ... SKIP LOCKED pick once. As ``IN (subquery)`` PostgreSQL may
            # rescan the subquery for each candidate row, each rescan skipping the rows it just locked and
            # picking others: one claim of 2 took 46 of 50 queued jobs.
            picked = select(picked.cte("picked").prefix_with("MATERIALIZED").c.id)
        t = _JOBS
        stmt = (
            update(t)
            .where(t.c.id.in_(picked), t.c.state == "queued")
            .values(state="running", attempts=t.c.attempts + 1, fence=t.c.fence + 1, lease_owner=worker_id,
                    lease_until=now + dt.timedelta(seconds=lease_s), started_at=now)
            .returning(*t.c)
        )
        # Core, not the ORM: the claimed rows come back as transient Job objects that belong to no session
        # (the worker hands them to threads), without the ORM's identity-map and bulk-update machinery.
        rows = self.session.execute(stmt).all()
        return [Job(**row._mapping) for row in sorted(rows, key=lambda r: (r.run_at, r.id))]

    def unclaim(self, job_id: int, fence: int) -> bool:
        """Give a job just claimed (and not started) back to the queue as it was: its attempt uncounted."""
        t = _JOBS
        res = self.session.execute(
            update(t).where(t.c.id == job_id, t.c.fence == fence, t.c.state == "running")
            .values(state="queued", attempts=t.c.attempts - 1, lease_owner=None, lease_until=None)
        )
        return _rowcount(res) == 1

    # The hot paths below use Core statements on the table: the ORM's bulk-update machinery costs
    # more CPU than the database round trip for these one-row updates.

    def renew(self, job_id: int, fence: int, lease_s: float) -> bool:
        """Extend the lease of a job we still hold; False if it was taken away (expired, cancelled)."""
        t = _JOBS
        res = self.session.execute(
            update(t).where(t.c.id == job_id, t.c.fence == fence, t.c.state == "running")
            .values(lease_until=utcnow() + dt.timedelta(seconds=lease_s))
        )
        return _rowcount(res) == 1

    def finish(self, job_id: int, fence: int, **values: Any) -> bool:
        """Record the outcome of the run holding ``fence``; False (nothing written) for a stale run."""
        t = _JOBS
        res = self.session.execute(
            update(t).where(t.c.id == job_id, t.c.fence == fence, t.c.state == "running")
            .values(lease_owner=None, lease_until=None, **values)
        )
        return _rowcount(res) == 1

    def finish_many(self, rows: Sequence[dict[str, Any]]) -> int:
        """:meth:`finish` for many runs at once: ``rows`` hold ``job_id``, ``fence`` and the same value
        keys each; one executemany. Returns the rows written (fewer than given: some run was stale)."""
        if not rows:
            return 0
        t = _JOBS
        keys = [k for k in rows[0] if k not in ("job_id", "fence")]
        stmt = (update(t).where(t.c.id == bindparam("w_id"), t.c.fence == bindparam("w_fence"),
                                t.c.state == "running")
                .values(lease_owner=None, lease_until=None, **{k: bindparam(f"v_{k}") for k in keys}))
        params = [{"w_id": r["job_id"], "w_fence": r["fence"], **{f"v_{k}": r[k] for k in keys}} for r in rows]
        return _rowcount(self.session.execute(stmt, params))

    def finished_under(self, runs: Sequence[tuple[int, int]], state: str, at: dt.datetime) -> set[tuple[int, int]]:
        """Which ``(job_id, fence)`` runs are now ``state`` under that fence, finished ``at`` (who wrote a
        :meth:`finish_many` that some stale run fell out of)."""
        if not runs:
            return set()
        t = _JOBS
        rows = self.session.execute(select(t.c.id, t.c.fence).where(
            t.c.id.in_([r[0] for r in runs]), t.c.state == state, t.c.finished_at == at)).all()
        return {(int(i), int(f)) for i, f in rows} & set(runs)

    def add_steps(self, steps: Sequence[JobStep]) -> None:
        if not steps:
            return
        cols = [c.name for c in _STEPS.columns if c.name != "id"]
        self.session.execute(insert(_STEPS), [{c: getattr(s, c) for c in cols} for s in steps])

    def expired(self, org_id: int | None, now: dt.datetime, limit: int = 500, *, mode: str | None = None) -> list[Job]:
        stmt = select(Job).where(Job.state == "running", Job.lease_until < now)
        if org_id is not None:
            stmt = stmt.where(Job.org_id == org_id)
        if mode is not None:
            stmt = stmt.where(Job.mode == mode)
        stmt = stmt.order_by(Job.id).limit(limit).execution_options(populate_existing=True)
        if self.is_pg:
            stmt = stmt.with_for_update(skip_locked=True)
        return list(self.session.scalars(stmt))

    def release_expired(self, job: Job, now: dt.datetime, *, dead: bool, error: str) -> bool:
        """Return ``job`` (lease expired) to the queue, or mark it dead; fenced on its current fence."""
        values: dict[str, Any] = {"last_error": error, "retryable": True, "lease_owner": None, "lease_until": None}
        if dead:
            values.update(state="dead", finished_at=now)
        else:
            values.update(state="queued", run_at=now, enqueued_at=now)
        res = self.session.execute(
            update(Job).where(Job.id == job.id, Job.fence == job.fence, Job.state == "running",
                              Job.lease_until < now).values(**values)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(res) == 1

    def counts_by_state(self, org_id: int | None = None, mode: str | None = None) -> dict[str, int]:
        stmt = select(Job.state, func.count())
        if org_id is not None:
            stmt = stmt.where(Job.org_id == org_id)
        if mode is not None:
            stmt = stmt.where(Job.mode == mode)
        rows = self.session.execute(stmt.group_by(Job.state)).all()
        return {str(s): int(n) for s, n in rows}

    def queue_stats(self, now: dt.datetime, org_id: int | None = None,
                    mode: str | None = None) -> tuple[int, dt.datetime | None]:
        """Due queued jobs: how many, and the oldest one's enqueue time."""
        stmt = select(func.count(), func.min(Job.enqueued_at)).where(Job.state == "queued", Job.run_at <= now)
        if org_id is not None:
            stmt = stmt.where(Job.org_id == org_id)
        if mode is not None:
            stmt = stmt.where(Job.mode == mode)
        row = self.session.execute(stmt).one()
        return int(row[0]), row[1]

    def purge(self, org_id: int | None, states: Sequence[str], older_than: dt.datetime | None,
              ids: Sequence[int] | None, mode: str | None = None) -> int:
        stmt = delete(Job).where(Job.state.in_(list(states)))
        if org_id is not None:
            stmt = stmt.where(Job.org_id == org_id)
        if mode is not None:
            stmt = stmt.where(Job.mode == mode)
        if older_than is not None:
            stmt = stmt.where(Job.finished_at < older_than)
        if ids:
            stmt = stmt.where(Job.id.in_(list(ids)))
        return _rowcount(self.session.execute(stmt.execution_options(synchronize_session=False)))

    # ---- steps -------------------------------------------------------------------------------

    def add_step(self, step: JobStep) -> None:
        self.session.add(step)
        self.session.flush()

    def delete_mode(self, org_id: int, mode: str) -> int:
        """Delete every job of ``org_id`` in ``mode`` with its steps (test data reset)."""
        ids = select(Job.id).where(Job.org_id == org_id, Job.mode == mode)
        self.session.execute(delete(JobStep).where(JobStep.job_id.in_(ids)).execution_options(synchronize_session=False))
        return _rowcount(self.session.execute(delete(Job).where(Job.org_id == org_id, Job.mode == mode)
                                              .execution_options(synchronize_session=False)))

    def steps(self, job_id: int) -> list[JobStep]:
        return list(self.session.scalars(
            select(JobStep).where(JobStep.job_id == job_id).order_by(JobStep.run, JobStep.position)))

    # ---- queue switches ----------------------------------------------------------------------

    def queue_state(self, org_id: int) -> QueueState | None:
        return self.session.get(QueueState, org_id)

    def set_queue_paused(self, org_id: int, paused: bool, actor: str) -> QueueState:
        qs = self.session.get(QueueState, org_id)
        if qs is None:
            qs = QueueState(org_id=org_id, paused=paused, updated_by=actor)
            self.session.add(qs)
        else:
            qs.paused, qs.updated_at, qs.updated_by = paused, utcnow(), actor
        self.session.flush()
        return qs


class WorkerRepository:
    def __init__(self, session: Session):
        self.session = session

    def upsert(self, w: Worker) -> None:
        self.session.merge(w)
        self.session.flush()

    def get(self, worker_id: str) -> Worker | None:
        return self.session.get(Worker, worker_id)

    def all(self) -> list[Worker]:
        return list(self.session.scalars(select(Worker).order_by(Worker.started_at)))

    def heartbeat(self, worker_id: str, **values: Any) -> str | None:
        """Refresh the row; return a pending command (drain, restart) for the worker, if any."""
        self.session.execute(update(Worker).where(Worker.id == worker_id)
                             .values(heartbeat_at=utcnow(), **values)
                             .execution_options(synchronize_session=False))
        return self.session.scalar(select(Worker.command).where(Worker.id == worker_id))

    def set_command(self, worker_id: str, command: str) -> int:
        return _rowcount(self.session.execute(
            update(Worker).where(Worker.id == worker_id).values(command=command)
            .execution_options(synchronize_session=False)))

    def remove(self, worker_id: str) -> None:
        self.session.execute(delete(Worker).where(Worker.id == worker_id)
                             .execution_options(synchronize_session=False))

    def prune(self, older_than: dt.datetime) -> int:
        return _rowcount(self.session.execute(delete(Worker).where(Worker.heartbeat_at < older_than)
                                              .execution_options(synchronize_session=False)))


class CreditRepository:
    def __init__(self, session: Session):
        self.session = session

    def account(self, org_id: int) -> CreditAccount:
        acct = self.session.get(CreditAccount, org_id)
        if acct is None:
            from sqlalchemy.exc import IntegrityError

            try:
                with self.session.begin_nested():
                    self.session.add(CreditAccount(org_id=org_id, balance=0))
            except IntegrityError:
                pass
            acct = self.session.get(CreditAccount, org_id)
            assert acct is not None
        return acct

    def balance(self, org_id: int) -> int:
        return int(self.session.scalar(select(CreditAccount.balance).where(CreditAccount.org_id == org_id)) or 0)

    def debit(self, org_id: int, amount: int) -> int | None:
        """Take ``amount`` if the balance covers it (one conditional UPDATE); the new balance or None."""
        res = self.session.execute(
            update(CreditAccount)
            .where(CreditAccount.org_id == org_id, CreditAccount.balance >= amount)
            .values(balance=CreditAccount.balance - amount, updated_at=utcnow())
            .returning(CreditAccount.balance)
            .execution_options(synchronize_session=False)
        )
        row = res.first()
        return None if row is None else int(row[0])

    def credit(self, org_id: int, amount: int) -> int:
        self.account(org_id)
        res = self.session.execute(
            update(CreditAccount).where(CreditAccount.org_id == org_id)
            .values(balance=CreditAccount.balance + amount, updated_at=utcnow())
            .returning(CreditAccount.balance)
            .execution_options(synchronize_session=False)
        )
        return int(res.scalar_one())

    def add_entry(self, entry: CreditLedger) -> None:
        self.session.add(entry)
        self.session.flush()

    def has_entry(self, job_id: int, reason: str) -> bool:
        return self.session.scalar(select(CreditLedger.id).where(CreditLedger.job_id == job_id,
                                                                 CreditLedger.reason == reason)) is not None

    def ledger(self, org_id: int, before_id: int | None, limit: int, mode: str = "live") -> list[CreditLedger]:
        stmt = select(CreditLedger).where(CreditLedger.org_id == org_id, CreditLedger.mode == mode)
        if before_id is not None:
            stmt = stmt.where(CreditLedger.id < before_id)
        return list(self.session.scalars(stmt.order_by(CreditLedger.id.desc()).limit(limit)))

    def spent_total(self) -> int:
        return -int(self.session.scalar(select(func.coalesce(func.sum(CreditLedger.delta), 0))
                                        .where(CreditLedger.reason.in_(("job_run", "refund")),
                                               CreditLedger.mode == "live")) or 0)

    # ---- test-mode credits: their own balance, refilled each month ---------------------------

    def refill_test(self, org_id: int, period: str, amount: int) -> None:
        """Create the test account, or set it to ``amount`` when its last refill was before ``period``."""
        if self.session.get(SandboxCreditAccount, org_id) is None:
            from sqlalchemy.exc import IntegrityError

            try:
                with self.session.begin_nested():
                    self.session.add(SandboxCreditAccount(org_id=org_id, balance=amount, period=period))
                return
            except IntegrityError:
                pass
        self.session.execute(update(SandboxCreditAccount)
                             .where(SandboxCreditAccount.org_id == org_id, SandboxCreditAccount.period < period)
                             .values(balance=amount, period=period, updated_at=utcnow())
                             .execution_options(synchronize_session=False))

    def reset_test(self, org_id: int, period: str, amount: int) -> int:
        self.refill_test(org_id, period, amount)
        self.session.execute(update(SandboxCreditAccount).where(SandboxCreditAccount.org_id == org_id)
                             .values(balance=amount, period=period, updated_at=utcnow())
                             .execution_options(synchronize_session=False))
        return amount

    def test_account(self, org_id: int) -> tuple[int, str] | None:
        """``(balance, period of the last refill)`` of the test account, or None if it has none yet."""
        row = self.session.execute(select(SandboxCreditAccount.balance, SandboxCreditAccount.period)
                                   .where(SandboxCreditAccount.org_id == org_id)).first()
        return None if row is None else (int(row[0]), str(row[1]))

    def test_balance(self, org_id: int) -> int:
        return int(self.session.scalar(select(SandboxCreditAccount.balance)
                                       .where(SandboxCreditAccount.org_id == org_id)) or 0)

    def debit_test(self, org_id: int, amount: int) -> int | None:
        res = self.session.execute(
            update(SandboxCreditAccount)
            .where(SandboxCreditAccount.org_id == org_id, SandboxCreditAccount.balance >= amount)
            .values(balance=SandboxCreditAccount.balance - amount, updated_at=utcnow())
            .returning(SandboxCreditAccount.balance)
            .execution_options(synchronize_session=False)
        )
        row = res.first()
        return None if row is None else int(row[0])

    def credit_test(self, org_id: int, amount: int) -> int:
        res = self.session.execute(
            update(SandboxCreditAccount).where(SandboxCreditAccount.org_id == org_id)
            .values(balance=SandboxCreditAccount.balance + amount, updated_at=utcnow())
            .returning(SandboxCreditAccount.balance)
            .execution_options(synchronize_session=False)
        )
        return int(res.scalar_one())

    def delete_ledger_mode(self, org_id: int, mode: str) -> int:
        return _rowcount(self.session.execute(delete(CreditLedger).where(
            CreditLedger.org_id == org_id, CreditLedger.mode == mode).execution_options(synchronize_session=False)))


class EndpointRepository:
    """Customers' registered webhook endpoints, always read within one organisation and mode."""

    def __init__(self, session: Session):
        self.session = session

    def add(self, e: WebhookEndpoint) -> WebhookEndpoint:
        self.session.add(e)
        self.session.flush()
        return e

    def get(self, org_id: int, mode: str, endpoint_id: int) -> WebhookEndpoint | None:
        e = self.session.get(WebhookEndpoint, endpoint_id)
        return e if e is not None and e.org_id == org_id and e.mode == mode else None

    def for_org(self, org_id: int, mode: str) -> list[WebhookEndpoint]:
        return list(self.session.scalars(select(WebhookEndpoint).where(
            WebhookEndpoint.org_id == org_id, WebhookEndpoint.mode == mode).order_by(WebhookEndpoint.id)))

    def delete(self, e: WebhookEndpoint) -> None:
        self.session.delete(e)
        self.session.flush()


class JobKpiRepository:
    """Daily figures for the Pulse store: finished live jobs by state, live credits granted and spent."""

    def __init__(self, session: Session):
        self.session = session

    def finished_by_state(self, org_id: int, start: dt.datetime, end: dt.datetime) -> dict[str, int]:
        rows = self.session.execute(
            select(Job.state, func.count()).where(
                Job.org_id == org_id, Job.mode == "live", Job.finished_at >= start, Job.finished_at < end,
                Job.state.in_(("succeeded", "failed", "dead")),
            ).group_by(Job.state)
        ).all()
        return {str(state): int(n) for state, n in rows}

    def credit_totals(self, org_id: int, start: dt.datetime, end: dt.datetime) -> dict[str, int]:
        rows = self.session.execute(
            select(CreditLedger.reason, func.coalesce(func.sum(CreditLedger.delta), 0)).where(
                CreditLedger.org_id == org_id, CreditLedger.mode == "live", CreditLedger.created_at >= start,
                CreditLedger.created_at < end,
            ).group_by(CreditLedger.reason)
        ).all()
        return {str(reason): int(total) for reason, total in rows}
