"""The job loop of a worker process: claim, run each job in a thread, record outcomes together,
heartbeat, stop gracefully.

A :class:`JobWorker` claims jobs under a lease and runs each in a thread
(:func:`tools.jobs.runner.run_steps`); a recorder thread writes the finished runs' outcomes in one
transaction per batch (:func:`tools.jobs.runner.record_runs`): whatever finished while the previous
commit was in flight goes into the next one, so a busy worker commits many completions at once and an
idle one records each at once. While runs are short (under ``SHORT_JOB_S`` on average) the worker holds
up to ``LEVQOR_WORKER_PREFETCH`` claimed jobs beyond those running, so a claim round trip serves many
jobs. Heartbeats renew the leases of every job held (running or waiting to be recorded) every third of
the lease, sweep expired leases back into the queue, and obey ``drain`` / ``restart`` commands left on
the worker's row. On SIGTERM it stops claiming, lets running jobs finish for a grace period, then gives
the rest back to the queue. A run whose outcome could not be recorded keeps its lease until it expires
and the sweep returns the job to the queue (the attempt counts); while the database is unavailable the
outcomes are kept and retried with backoff instead, and the sweep waits until the leases' holders have
renewed them after the outage (:mod:`levqor.db_outage`). Every database step is a function of
:mod:`tools.jobs.leases` or the runner run in a session opened (and committed) here; a commit elsewhere
wakes the idle loop (PostgreSQL ``NOTIFY``, SQLite ``PRAGMA data_version``).
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import socket
import sqlite3
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import psutil

from levqor.db_outage import backoff_s, is_unavailable
from levqor.db_outage import tracker as outage
from levqor.settings import get_settings
from memory.db import session_scope
from tools.events.service import Reactions
from tools.jobs import leases, metrics
from tools.jobs.leases import Claimed
from tools.jobs.runner import Finished, RunControl, record_runs, run_steps
from workers.dispatcher import listen

log = logging.getLogger(__name__)
JOBS_CHANNEL = "levqor_jobs"  # notified by every submission's commit (tools.jobs.queue.submit_job)
# Idle claim polls; between them a commit elsewhere wakes the loop (PostgreSQL NOTIFY, SQLite data_version).
IDLE_POLL_S = {"sqlite": 0.5, "postgresql": 1.0}
SQLITE_WATCH_S = 0.005
SHUTDOWN_GRACE_S = 10.0
GAUGES_EVERY_S = 5.0  # how often a heartbeat also refreshes the queue gauges
RECORD_BATCH = 500  # most finished runs recorded in one transaction
RECORD_TRIES = 3  # a batch (then each run alone) is tried this often before its lease is left to expire
SHORT_JOB_S = 0.05  # runs shorter than this on average are worth prefetching
OUTAGE_HOLD_S = 600.0  # finished runs' outcomes are kept this long while the database is unavailable
_chaos_leak: list[bytearray] = []  # LEVQOR_CHAOS_LEAK_BYTES_PER_JOB (chaos suite only)


def run_jobs(stop: threading.Event, concurrency: int | None, reactions: Reactions | None = None) -> None:
    """Claim and run jobs until ``stop`` is set (one :class:`JobWorker` per process)."""
    JobWorker(concurrency, reactions=reactions).run(stop)


class JobWorker:
    """One worker process's job loop."""

    def __init__(self, concurrency: int | None = None, *, lease_s: float | None = None,
                 grace_s: float = SHUTDOWN_GRACE_S, reactions: Reactions | None = None):
        s = get_settings()
        self.concurrency = max(1, concurrency or s.worker_concurrency)
        self.prefetch = max(0, s.worker_prefetch)
        self.reactions = reactions  # which completion events are outbox work (None: all of them)
        self.assigned = 0  # jobs handed to the pool whose steps are not over
        self.avg_run_s = 1.0  # moving average of a run's duration (starts long: no prefetch)
        self.finished: queue.SimpleQueue[Finished | None] = queue.SimpleQueue()
        self.lease_s = float(lease_s or s.job_lease_s)
        self.grace_s = grace_s
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.running: dict[int, tuple[Claimed, RunControl]] = {}
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.draining = False
        self.restart = False
        self.solo: int | None = None  # a suspect job running alone (see tools.jobs.leases.claim_batch)
        self.jobs_done = 0
        self.dialect = "postgresql" if not s.is_sqlite else "sqlite"

    # ---- main loop -----------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        if not self._register(stop):
            return
        hb_stop = threading.Event()
        hb = threading.Thread(target=self._heartbeat_loop, args=(hb_stop,), name="jobs-heartbeat", daemon=True)
        hb.start()
        if self.dialect == "postgresql":
            listen(stop, {JOBS_CHANNEL: self.wake.set})
        else:
            threading.Thread(target=self._watch_sqlite, args=(stop,), name="jobs-wake", daemon=True).start()
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="job")
        recorder = threading.Thread(target=self._record_loop, name="jobs-recorder", daemon=True)
        recorder.start()
        log.info("job worker started", extra={"fields": {"worker": self.id, "concurrency": self.concurrency}})
        failures = 0  # consecutive claims that failed: the wait before the next one doubles (to 5 s)
        try:
            while not stop.is_set() and not self.restart:
                with self.lock:
                    capacity = self.concurrency + (self.prefetch if self.avg_run_s < SHORT_JOB_S else 0)
                    free = capacity - self.assigned
                    busy = bool(self.running)
                    alone = self.solo is not None
                # With jobs in hand, claim again once half the room is free: one round trip, many jobs.
                if self.draining or alone or free <= 0 or (self.assigned and free < max(1, capacity // 2)):
                    self._idle(0.5)
                    continue
                try:
                    with session_scope() as s:
                        batch = leases.claim_batch(s, self.id, free, self.lease_s, busy=busy)
                except Exception as exc:
                    failures += 1
                    if not is_unavailable(exc):  # an outage is logged once, by levqor.db_outage
                        log.exception("claim failed")
                    stop.wait(backoff_s(failures))
                    continue
                failures = 0
                if batch.suspect is not None:
                    with self.lock:
                        self.solo = batch.suspect
                for claimed in batch.jobs:
                    ctrl = RunControl()
                    with self.lock:
                        self.running[claimed.job.id] = (claimed, ctrl)
                        self.assigned += 1
                    pool.submit(self._run_one, claimed, ctrl)
                if not batch.jobs:
                    self._idle(IDLE_POLL_S[self.dialect])
        finally:
            self._shutdown(pool)
            self.finished.put(None)  # every run has finished: the recorder stops after recording them
            recorder.join()
            hb_stop.set()
            hb.join(timeout=5)
            try:
                with session_scope() as s:
                    leases.deregister_worker(s, self.id)
            except Exception:
                log.exception("could not deregister worker")
            log.info("job worker stopped", extra={"fields": {"worker": self.id, "jobs_done": self.jobs_done}})
        if self.restart and not stop.is_set():
            # Exit the process; the supervisor (or the service manager) starts a fresh one.
            os.kill(os.getpid(), signal.SIGTERM)

    def _idle(self, seconds: float) -> None:
        self.wake.wait(seconds)
        self.wake.clear()

    def _run_one(self, claimed: Claimed, ctrl: RunControl) -> None:
        job = claimed.job
        started = time.monotonic()
        finished: Finished | None = None
        try:
            leak = get_settings().chaos_leak_bytes_per_job
            if leak > 0:  # the chaos suite's memory leak: touched pages, kept for the process's life
                _chaos_leak.append(bytearray(b"\x01") * leak)
            finished = run_steps(job, ctrl, claimed.pipeline)
        except Exception:
            log.exception("job run crashed", extra={"fields": {"job_id": job.id}})
        with self.lock:
            self.assigned -= 1
            self.avg_run_s += 0.1 * (time.monotonic() - started - self.avg_run_s)
        if finished is not None:
            self.finished.put(finished)
        else:  # nothing to record: its lease expires and the sweep returns it to the queue
            self._settled([job.id])
        self.wake.set()

    def _settled(self, job_ids: list[int]) -> None:
        with self.lock:
            for job_id in job_ids:
                self.running.pop(job_id, None)
                if self.solo == job_id:
                    self.solo = None
            self.jobs_done += len(job_ids)

    # ---- recording -----------------------------------------------------------------------

    def _record_loop(self) -> None:
        """Record finished runs, as many per transaction as finished meanwhile, until the sentinel."""
        last = False
        while not last:
            item = self.finished.get()
            batch = [] if item is None else [item]
            last = item is None
            while not last and len(batch) < RECORD_BATCH:
                try:
                    item = self.finished.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    last = True
                else:
                    batch.append(item)
            if batch:
                self._record(batch)

    def _record(self, batch: list[Finished]) -> None:
        outcomes = self._try_record(batch)
        if outcomes is None:  # one bad run must not cost the others their outcome: each alone
            outcomes = []
            for run in batch:
                one = self._try_record([run])
                outcomes.append(one[0] if one else "unrecorded")
                if one is None:
                    log.error("job outcome not recorded; its lease will expire",
                              extra={"fields": {"job_id": run.job.id}})
        for run, outcome in zip(batch, outcomes, strict=True):
            log.info("job run finished", extra={"fields": {"job_id": run.job.id, "outcome": outcome,
                                                           "attempt": run.job.attempts}})
        self._settled([run.job.id for run in batch])
        self.wake.set()

    def _try_record(self, runs: list[Finished]) -> list[str] | None:
        """Record ``runs`` in one transaction; None after ``RECORD_TRIES`` failures. Failures because the
        database is unavailable are not counted: the outcomes are kept and retried with backoff until it
        answers (up to ``OUTAGE_HOLD_S``), so a run that finished during an outage is recorded, not run again."""
        attempt = waited = 0
        held_since = time.monotonic()
        while True:
            try:
                with session_scope() as s:
                    return record_runs(s, runs, self.reactions)
            except Exception as exc:
                if is_unavailable(exc) and time.monotonic() - held_since < OUTAGE_HOLD_S:
                    waited += 1
                    time.sleep(backoff_s(waited))
                    continue
                attempt += 1
                log.warning("recording job outcomes failed", exc_info=True,
                            extra={"fields": {"jobs": len(runs), "attempt": attempt}})
                if attempt >= RECORD_TRIES:
                    return None

    def _shutdown(self, pool: ThreadPoolExecutor) -> None:
        deadline = time.monotonic() + self.grace_s
        while time.monotonic() < deadline:
            with self.lock:
                if not self.running:
                    break
            time.sleep(0.05)
        with self.lock:
            for _claimed, ctrl in self.running.values():
                ctrl.shutdown.set()
        pool.shutdown(wait=True, cancel_futures=False)

    def _watch_sqlite(self, stop: threading.Event) -> None:
        """SQLite: wake the claim loop when another connection commits (``PRAGMA data_version``)."""
        path = get_settings().resolved_database_url.removeprefix("sqlite:///")
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        except sqlite3.Error:
            log.warning("cannot watch the SQLite file; polling only", exc_info=True)
            return
        last = None
        try:
            while not stop.is_set():
                try:
                    version = conn.execute("PRAGMA data_version").fetchall()[0][0]
                except sqlite3.Error:
                    version = None
                if version != last:
                    last = version
                    self.wake.set()
                stop.wait(SQLITE_WATCH_S)
        finally:
            conn.close()

    # ---- heartbeat -----------------------------------------------------------------------

    def _register(self, stop: threading.Event) -> bool:
        """Register the worker's row, waiting (with backoff) while the database is unavailable; False if
        ``stop`` was set first."""
        psutil.Process().cpu_percent(None)  # the first reading starts the CPU measurement
        failures = 0
        while not stop.is_set():
            try:
                with session_scope() as s:
                    leases.register_worker(s, self.id, host=socket.gethostname(), pid=os.getpid(),
                                           concurrency=self.concurrency)
                return True
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                failures += 1
                stop.wait(backoff_s(failures))
        return False

    def _heartbeat_loop(self, stop: threading.Event) -> None:
        interval = max(0.2, self.lease_s / 3)
        last_refresh = 0.0
        failures = 0
        while not stop.wait(interval if not failures else backoff_s(failures, cap=interval)):
            try:
                self.beat()
                if time.monotonic() - last_refresh > GAUGES_EVERY_S:
                    last_refresh = time.monotonic()
                    with session_scope() as s:
                        metrics.refresh(s)
                failures = 0
            except Exception as exc:
                failures += 1
                if not is_unavailable(exc):
                    log.exception("heartbeat failed")

    def beat(self) -> None:
        """Renew our leases, report our health, obey commands, sweep expired leases."""
        with self.lock:
            held = list(self.running.values())
        with session_scope() as s:
            lost = leases.renew_leases(s, [claimed.job for claimed, _ in held], self.lease_s)
        for claimed, ctrl in held:
            if claimed.job.id in lost:
                ctrl.lost.set()
        proc = psutil.Process()
        state = "draining" if self.draining else ("stopping" if self.restart else "running")
        with session_scope() as s:
            command = leases.heartbeat(
                s, self.id, current_jobs=[claimed.job.id for claimed, _ in held], jobs_done=self.jobs_done,
                state=state, cpu_percent=proc.cpu_percent(None), rss_bytes=proc.memory_info().rss)
        if command == "drain" and not self.draining:
            log.info("draining on request", extra={"fields": {"worker": self.id}})
            self.draining = True
        elif command == "restart" and not self.restart:
            log.info("restarting on request", extra={"fields": {"worker": self.id}})
            self.restart = True
            self.wake.set()
        if outage.settling(2 * self.lease_s):
            return  # leases that expired in an outage: their holders renew them and record their runs first
        with session_scope() as s:
            requeued, _dead = leases.sweep_expired(s)
        if requeued:
            self.wake.set()
