"""The webhook delivery loop: one :class:`Deliverer` per worker process, and the one-shot :func:`deliver_due`.

The loop thread owns the database side, through :mod:`tools.partner_api.delivery`: it leases due
rows in batches and records finished attempts in batches every ``RECORD_TICK_S``, each in one
transaction of its own. Claimed jobs wait in a queue per endpoint (install); sender threads take
them, endpoints taking turns, while the endpoint has fewer than ``per_endpoint`` requests in flight
and the process fewer than ``concurrency``. A sender that finishes takes the next job itself (no
hand-off to another thread per request). A hanging endpoint therefore holds at most
``per_endpoint`` senders, each bounded by the request timeout, and as its pace slows it may hold
only two rounds of queued jobs, so claims skip it and leave its rows in the table. Likewise one
organisation may hold at most ``ORG_SHARE`` of the jobs a process holds (claimed or handed over):
under a flood from one organisation, another's rows are still handed over at once. Senders share
keep-alive connections (:class:`tools.shared.ssrf.GuardedPool`): the SSRF guard checks the address
of every new connection, and connections are reused only for their own scheme/host/port. A job
whose lease could run out before it is sent is dropped, not sent: its row comes back when the
lease expires. The fan-out hands freshly leased rows straight to this process's deliverer
(:func:`tools.partner_api.fanout.attach`).

Threads rather than asyncio: the work per request is small and httpcore's synchronous connection
is the cheapest HTTP client here; a few dozen threads saturate two cores.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from levqor.db_outage import backoff_s, is_unavailable
from levqor.settings import get_settings
from memory.db import session_scope, utcnow
from tools.partner_api import delivery, emails, fanout
from tools.partner_api.delivery import HandoffRoom, Job, Outcome
from tools.shared.ssrf import GuardedPool
from workers.dispatcher import listen

log = logging.getLogger(__name__)

RECORD_BATCH = 64  # finished attempts that wake the loop to record them at once
RECORD_TICK_S = 0.02  # how long finished attempts may wait to be recorded in one transaction
BACKLOG_S = 2.0  # claimed work an endpoint may hold, in seconds of its recent pace
MAX_ROUNDS = 64  # ... at most this many rounds of ``per_endpoint`` requests
ORG_SHARE = 0.75  # of the jobs a process holds, the most one organisation may hold: room stays for others

wakeup = threading.Event()  # the delivery loop has something to do (new rows, finished sends)
new_work = threading.Event()  # deliveries were queued or requeued (fan-out, replay, NOTIFY)


class Deliverer:
    """Claims due deliveries in batches and sends them from a thread pool; one per worker process."""

    def __init__(self, concurrency: int | None = None, per_endpoint: int | None = None,
                 timeout_s: float | None = None):
        s = get_settings()
        self.concurrency = concurrency or s.hooks_concurrency
        self.per_endpoint = per_endpoint or s.hooks_per_endpoint
        self.timeout_s = timeout_s or s.hooks_timeout_s
        # Claimed jobs held in all, and per endpoint beyond those in flight: as many as it answers
        # in about BACKLOG_S at its recent pace (a fast endpoint keeps its senders busy between
        # claims), but only two rounds for a slow or new one.
        self.max_held = max(16 * self.concurrency, 64)
        self.org_cap = max(1, int(self.max_held * ORG_SHARE))
        self.held_org: dict[int, int] = {}  # organisation -> jobs held (queued or in flight)
        self.pace: dict[int, float] = {}  # install -> moving average of send seconds
        # The lease outlasts two rounds of waiting plus the send (each redirect hop has its own
        # timeout); after it another worker may take the row. Jobs held longer are not sent.
        self.send_s = self.timeout_s * (delivery.MAX_REDIRECTS + 1)
        self.lease_s = self.send_s * 4 + 30
        self.client = GuardedPool()
        self.pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="hooks")
        self.results: queue.Queue[Outcome] = queue.Queue()
        self.queues: dict[int, collections.deque[Job]] = {}
        self.inflight: dict[int, int] = {}
        self.running = 0
        self.queued = 0
        self.lock = threading.Lock()

    def busy(self) -> int:
        """Jobs claimed by this process and not yet finished (in flight or queued)."""
        with self.lock:
            return self.running + self.queued

    def handoff_room(self) -> HandoffRoom:
        """What a fan-out may hand over now, as a claim would take: the room left in all and per
        organisation, and the endpoints already holding their share (:meth:`_cap`), whose rows stay pending."""
        with self.lock:
            room = self.max_held - self.running - self.queued
            full = {i for i in set(self.inflight) | set(self.queues)
                    if self.inflight.get(i, 0) + len(self.queues.get(i, ())) >= self._cap(i)}
            org_left = {o: self.org_cap - n for o, n in self.held_org.items()}
        return HandoffRoom(room, org_left, self.org_cap, full)

    def accept(self, jobs: list[Job]) -> None:
        """Queue jobs whose rows a committed fan-out leased to this process, and start sending."""
        with self.lock:
            self._hold(jobs)
            self._pump()

    def rows_queued(self) -> None:
        """Pending deliveries were committed in this process (fan-out, replay): claim soon."""
        new_work.set()
        wakeup.set()

    def claim_and_send(self) -> int:
        """Lease what fits in the local queues (skipping full endpoints, and organisations holding their
        share) and start sending; return how many."""
        with self.lock:
            room = self.max_held - self.running - self.queued
            full = [i for i in set(self.inflight) | set(self.queues)
                    if self.inflight.get(i, 0) + len(self.queues.get(i, ())) >= self._cap(i)]
            full_orgs = [o for o, n in self.held_org.items() if n >= self.org_cap]
            # However the claim falls, no organisation ends up over its share.
            most = max((n for n in self.held_org.values() if n < self.org_cap), default=0)
            room = min(room, self.org_cap - most)
        if room <= 0:
            return 0
        now = utcnow()
        send_by = time.monotonic() + self.lease_s - self.send_s - 5
        with session_scope() as s:
            jobs = delivery.claim(s, now, room, full, now + dt.timedelta(seconds=self.lease_s), send_by, full_orgs)
        with self.lock:
            self._hold(jobs)
            self._pump()
        return len(jobs)

    def _hold(self, jobs: list[Job]) -> None:
        """Queue claimed or handed-over jobs per endpoint, counted per organisation (lock held)."""
        for j in jobs:
            self.queues.setdefault(j.install_id, collections.deque()).append(j)
            self.held_org[j.org_id] = self.held_org.get(j.org_id, 0) + 1
        self.queued += len(jobs)

    def _release(self, job: Job) -> None:
        """A held job is finished or dropped (lock held)."""
        n = self.held_org.get(job.org_id, 1) - 1
        if n <= 0:
            self.held_org.pop(job.org_id, None)
        else:
            self.held_org[job.org_id] = n

    def _cap(self, install_id: int) -> int:
        """Jobs an endpoint may hold (in flight and queued), from its recent pace."""
        pace = self.pace.get(install_id)
        rounds = 2 if pace is None else max(2, min(MAX_ROUNDS, int(BACKLOG_S / max(pace, 1e-4))))
        return self.per_endpoint * (1 + rounds)

    def _take(self) -> Job | None:
        """The next job to start, endpoints taking turns, with its slot counted (lock held)."""
        while self.running < self.concurrency and self.queued:
            now = time.monotonic()
            for install_id in list(self.queues):
                if self.inflight.get(install_id, 0) >= self.per_endpoint:
                    continue
                q = self.queues.pop(install_id)  # put back at the end: endpoints take turns
                job = q.popleft()
                self.queued -= 1
                if q:
                    self.queues[install_id] = q
                if now > job.send_by:
                    self._release(job)
                    log.warning("webhook lease too short to send; left for a later claim",
                                extra={"fields": {"delivery": job.id}})
                    break  # look again from the start
                self.inflight[install_id] = self.inflight.get(install_id, 0) + 1
                self.running += 1
                return job
            else:
                return None  # every endpoint with queued jobs is at its cap
        return None

    def _pump(self) -> None:
        """Start queued jobs on idle senders while there is room (lock held)."""
        while (job := self._take()) is not None:
            self.pool.submit(self._run, job)

    def _run(self, job: Job) -> None:
        """Send ``job``, then keep this sender busy with the next queued job (no hand-off per request)."""
        current: Job | None = job
        while current is not None:
            try:
                out = delivery.send(current, self.timeout_s, self.client)
            except Exception as exc:  # never lose a result
                out = Outcome(current, utcnow(), {}, None, 0.0, f"{type(exc).__name__}: {exc}", "", None,
                              utcnow())
            self.results.put(out)
            took = out.latency_ms / 1000 if out.status_code is not None else self.timeout_s
            i = current.install_id
            with self.lock:
                prev = self.pace.get(i)
                self.pace[i] = took if prev is None else 0.8 * prev + 0.2 * took
                n = self.inflight.get(i, 1) - 1
                if n <= 0:
                    self.inflight.pop(i, None)
                else:
                    self.inflight[i] = n
                self.running -= 1
                self._release(current)
                current = self._take()
                self._pump()
                idle = self.running == 0 and self.queued == 0
            if idle or self.results.qsize() >= RECORD_BATCH:
                wakeup.set()  # otherwise the loop records on its next tick, many results per transaction

    def record_results(self) -> int:
        """Write every finished attempt in one transaction; return how many."""
        outs: list[Outcome] = []
        while True:
            try:
                outs.append(self.results.get_nowait())
            except queue.Empty:
                break
        if outs:
            with session_scope() as s:
                delivery.record_batch(s, outs)
        return len(outs)

    def drain(self, timeout_s: float = 30.0) -> int:
        """Send everything due now and wait for the results (tests, CLI); return attempts made."""
        done = 0
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            started = self.claim_and_send()
            done += self.record_results()
            if started == 0 and self.busy() == 0 and self.results.empty():
                break
            if started == 0:
                wakeup.wait(0.05)
                wakeup.clear()
        send_pending_emails()
        return done

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=False)
        self.record_results()
        self.client.close()


def send_pending_emails() -> int:
    """Send queued partner emails in one transaction; return how many were sent."""
    with session_scope() as s:
        return emails.send_pending(s)


def deliver_due(timeout_s: float = 30.0) -> int:
    """Send every due delivery once and record the results (a one-shot Deliverer)."""
    d = Deliverer()
    try:
        return d.drain(timeout_s)
    finally:
        d.close()


def notified() -> None:
    """New deliveries were committed somewhere (NOTIFY on PostgreSQL): wake this process's loop."""
    new_work.set()
    wakeup.set()


def run_hooks(stop: threading.Event, concurrency: int | None = None, poll_s: float = 0.5) -> None:
    """Worker loop: record finished attempts, claim and send; wake on new deliveries or finished sends.

    It claims when told of new rows (a local commit, or NOTIFY on PostgreSQL), when its last claim
    filled the room it had (more may be due), and otherwise every ``poll_s`` (retries falling due,
    rows from workers that died).
    """
    d = Deliverer(concurrency=concurrency)
    fanout.attach(d)
    listen(stop, {fanout.NOTIFY_CHANNEL: notified})
    last_mail = last_claim = last_record = 0.0
    more = True
    failures = 0  # consecutive failed passes: the wait doubles (to 5 s)
    try:
        while not stop.is_set():
            try:
                with d.lock:
                    room = d.max_held - d.running - d.queued
                    held = d.running + d.queued
                now = time.monotonic()
                # Claims come first (they are on the latency path), in chunks worth a transaction
                # unless the poll is due anyway; results are recorded in batches.
                if room > 0 and (now - last_claim >= poll_s
                                 or ((new_work.is_set() or more) and room >= d.max_held // 8)):
                    new_work.clear()
                    last_claim = now
                    started = d.claim_and_send()
                    more = started > 0  # keep claiming each tick while claims find work
                pending = d.results.qsize()
                if pending and (pending >= RECORD_BATCH or held == 0 or now - last_record >= RECORD_TICK_S):
                    last_record = now
                    d.record_results()
                if now - last_mail > 5:
                    last_mail = now
                    send_pending_emails()
                failures = 0
            except Exception as exc:
                failures += 1
                if not is_unavailable(exc):  # an outage is logged once, by levqor.db_outage
                    log.exception("webhook delivery loop failed")
                stop.wait(backoff_s(failures, base=1.0))
            busy = d.busy() > 0 or not d.results.empty()
            wakeup.wait(RECORD_TICK_S if busy else poll_s)
            wakeup.clear()
    finally:
        fanout.detach(d)
        d.close()
