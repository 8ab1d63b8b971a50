"""Partner webhook deliveries survive ``kill -9`` of the worker, with real ``levqor worker`` processes.

1. A worker fans events out and sends them to a receiver that holds every request; it is killed
   while some deliveries are in flight, others leased and queued in it, the rest still pending.
   The killed worker's leases are then expired with SQL (``lease_until`` moved into the past, as
   the chaos suite's expired-leases scenario does) rather than by a short
   ``LEVQOR_HOOKS_TIMEOUT_S``: the lease is ``12 x timeout + 30 s``, so even a tiny timeout would
   leave the test waiting over 30 s, and a short timeout would also cut the second worker's held
   requests. A second worker then delivers everything: each event reaches the partner at least
   once, a redelivery carries the same ``webhook-id``, every signature verifies.
2. (PostgreSQL) A worker killed after its outbox dispatcher claimed events (rows locked) and
   before its fan-out insert committed leaves the events undispatched and no delivery rows; the
   next worker creates and sends them. SQLite takes its write lock at ``BEGIN IMMEDIATE``, so the
   claim and the fan-out are one locked transaction that no other process can hold open halfway.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text, update
from standardwebhooks.webhooks import Webhook

from tests.factories.partners import install, make_world, manifest, publish, secrets_for
from tests.fakes.partner_endpoint import Behaviour, Receiver
from tests.support import wait_for
from tests.support.database import IS_PG
from tests.support.processes import Proc, levqor_env

pytestmark = pytest.mark.slow

PER_ENDPOINT = 3  # requests in flight per endpoint
LEASED = 12  # a new endpoint: the first claim (or fan-out hand-off) takes them all, in flight or queued
PENDING = 6  # fanned out once the endpoint holds more than two rounds: left in the table
EVENTS = LEASED + PENDING
START_S = 120  # a loaded 2-core machine may take long to import a worker


def _worker(tmp_path: Path, name: str) -> Proc:
    env = levqor_env(
        tmp_path,
        LEVQOR_ALLOW_LOOPBACK_URLS="true",
        LEVQOR_HOOKS_PER_ENDPOINT=str(PER_ENDPOINT),
        LEVQOR_HOOKS_TIMEOUT_S="120",  # held requests must not time out before the receiver lets them go
        LEVQOR_AGENT_SCHEDULES="{}",
        LEVQOR_LOG_LEVEL="WARNING",
    )
    return Proc.levqor("worker", env=env, logdir=tmp_path / "logs", name=name)


def _alive(p: Proc) -> None:
    if p.popen.poll() is not None:
        raise AssertionError(f"worker exited with {p.popen.returncode}:\n{p.stderr[-3000:]}")


def _kill9(p: Proc) -> None:
    p.popen.send_signal(signal.SIGKILL)
    p.popen.wait(timeout=30)
    assert p.popen.returncode == -signal.SIGKILL


def _statuses(install_id: int) -> dict[str, int]:
    from memory.db import session_scope
    from memory.partner.models import WebhookDelivery

    with session_scope() as s:
        rows = s.execute(select(WebhookDelivery.status, func.count()).where(WebhookDelivery.install_id == install_id)
                         .group_by(WebhookDelivery.status)).all()
    return {str(k): int(n) for k, n in rows}


def _emit(org_id: int, n: int, tag: str) -> list[str]:
    """Commit ``n`` job_complete events in one transaction for the workers to dispatch; their uids."""
    from memory.db import session_scope
    from tools.events.service import emit

    with session_scope() as s:
        evs = [emit(s, "job_complete", {"job_id": i, "pipeline_id": 1, "state": "succeeded", "attempts": 1,
                                        "trigger": tag}, org_id=org_id) for i in range(1, n + 1)]
        return [e.uid for e in evs]


def _setup(client: Any, set_settings: Any, rx: Receiver, path: str) -> tuple[int, int, str]:
    """A listed plugin subscribed to job_complete, installed by a customer; (org id, install id, secret).

    Events other tests left undispatched are dispatched here first, so that the workers' first
    outbox batch is this test's events (the outbox claims the oldest first, 100 at a time).
    """
    from workers.dispatcher import dispatch_pending

    w = make_world(client, set_settings)
    slug = f"{w.partner.slug}.crash"
    publish(client, w, manifest(slug, rx.url(path)))
    inst = install(client, w.customer, slug)
    for _ in range(1000):
        if dispatch_pending() == 0:
            break
    return w.customer.org_id, int(inst["id"]), str(secrets_for(client, w, inst["id"])["secret"])


def test_kill_9_worker_with_deliveries_in_flight_loses_none(client: Any, set_settings: Any, tmp_path: Path) -> None:
    from memory.db import session_scope, utcnow
    from memory.partner.models import WebhookAttempt, WebhookDelivery

    path = "/held"
    first = second = None
    with Receiver() as rx:
        rx.behaviour[path] = Behaviour(delay=600)  # every request waits for rx.release
        org_id, install_id, secret = _setup(client, set_settings, rx, path)
        uids = _emit(org_id, LEASED, "crash")
        try:
            first = _worker(tmp_path, "worker-1")

            def first_holding() -> bool:
                _alive(first)
                return len(rx.at(path)) == PER_ENDPOINT and _statuses(install_id) == {"delivering": LEASED}

            # The first worker's dispatcher fanned the events out and its deliverer leased them all:
            # PER_ENDPOINT requests in flight (held by the receiver), the rest queued in the process.
            wait_for(first_holding, START_S, f"{PER_ENDPOINT} held requests and {LEASED} leased deliveries")
            uids += _emit(org_id, PENDING, "crash")

            def first_full() -> bool:
                _alive(first)
                return _statuses(install_id) == {"delivering": LEASED, "pending": PENDING}

            # Later events are fanned out, but the endpoint already holds what it may: they stay pending.
            wait_for(first_full, START_S, f"{PENDING} more deliveries queued in the table")
            assert len(rx.at(path)) == PER_ENDPOINT
            before_kill = [r.headers["webhook-id"] for r in rx.at(path)]
            _kill9(first)

            with session_scope() as s:
                assert s.scalar(select(func.count()).select_from(WebhookAttempt).join(
                    WebhookDelivery, WebhookDelivery.id == WebhookAttempt.delivery_id).where(
                    WebhookDelivery.install_id == install_id)) == 0  # the killed worker recorded nothing
                # Expire the dead worker's leases now instead of waiting for them.
                res = s.execute(update(WebhookDelivery).where(
                    WebhookDelivery.install_id == install_id, WebhookDelivery.status == "delivering",
                    WebhookDelivery.lease_until > utcnow()).values(lease_until=utcnow() - dt.timedelta(seconds=1)))
                expired = res.rowcount  # type: ignore[attr-defined]
            assert expired == LEASED
            assert _statuses(install_id) == {"delivering": LEASED, "pending": EVENTS - LEASED}

            second = _worker(tmp_path, "worker-2")

            def second_sending() -> bool:
                _alive(second)
                return len(rx.at(path)) >= 2 * PER_ENDPOINT

            # The second worker reclaims the expired leases and sends (also held) before the release.
            wait_for(second_sending, START_S, "the second worker's requests to reach the receiver")
            rx.release.set()

            def all_delivered() -> bool:
                _alive(second)
                return _statuses(install_id) == {"succeeded": EVENTS}

            wait_for(all_delivered, 120, f"all {EVENTS} deliveries to succeed")
        finally:
            for p in (first, second):
                if p is not None:
                    p.stop()

        got = rx.at(path)
        with session_scope() as s:
            rows = list(s.scalars(select(WebhookDelivery).where(WebhookDelivery.install_id == install_id)))
            attempts = list(s.scalars(select(WebhookAttempt).where(
                WebhookAttempt.delivery_id.in_([d.id for d in rows]))))

    # Every event reached the partner at least once, and each redelivery carries the event's webhook-id.
    ids_by_event: dict[str, set[str]] = defaultdict(set)
    count_by_id: dict[str, int] = defaultdict(int)
    for r in got:
        data = Webhook(secret).verify(r.body, r.headers)  # raises unless signed with the install's secret
        assert data["type"] == "job_complete" and data["data"]["trigger"] == "crash"
        ids_by_event[data["data"]["event_id"]].add(r.headers["webhook-id"])
        count_by_id[r.headers["webhook-id"]] += 1
    assert set(ids_by_event) == set(uids)
    assert all(len(ids) == 1 for ids in ids_by_event.values()), "one event, several webhook-ids"
    # The requests in flight at the kill were never answered: each was sent again, same webhook-id.
    assert len(before_kill) == PER_ENDPOINT
    assert all(count_by_id[i] >= 2 for i in before_kill), dict(count_by_id)
    assert len(got) >= EVENTS + PER_ENDPOINT
    # The database agrees: one delivery per event, each webhook-id the one the partner saw, and the
    # log holds only the second worker's attempts (one each).
    assert sorted(d.uid for d in rows) == sorted(count_by_id)
    assert all(d.status == "succeeded" and d.lease_until is None and d.attempts == 1 for d in rows)
    assert sorted(a.delivery_id for a in attempts) == sorted(d.id for d in rows)
    print(f"\n{len(got)} requests for {EVENTS} events; at SIGKILL {len(before_kill)} in flight, "
          f"{LEASED - PER_ENDPOINT} leased and queued, {PENDING} pending")


@pytest.mark.skipif(not IS_PG, reason="SQLite: the outbox claim and the fan-out insert run under one write lock "
                                      "taken at BEGIN IMMEDIATE, so no process can be held between them")
def test_kill_9_worker_between_outbox_claim_and_fanout_insert(client: Any, set_settings: Any,
                                                              tmp_path: Path) -> None:
    from memory.db import get_engine, session_scope
    from memory.events.models import Event, EventDelivery
    from memory.partner.models import WebhookDelivery

    path = "/fanout"
    first = second = None
    engine = get_engine()
    last: dict[str, Any] = {}
    with Receiver() as rx:
        org_id, install_id, secret = _setup(client, set_settings, rx, path)
        uids = _emit(org_id, 4, "fanout")
        with session_scope() as s:
            event_ids = [int(i) for i in s.scalars(select(Event.id).where(Event.uid.in_(uids)))]
        blocker = engine.connect()
        try:
            tx = blocker.begin()
            # Reads go on, writes to the table wait: the worker's fan-out insert blocks mid-transaction.
            blocker.execute(text("LOCK TABLE webhook_deliveries IN SHARE MODE"))
            first = _worker(tmp_path, "worker-1")

            def fanout_blocked() -> bool:
                _alive(first)
                with engine.connect() as c:
                    last["activity"] = [tuple(r) for r in c.execute(text(
                        "SELECT pid, state, wait_event_type, left(query, 60) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"))]
                    # The dispatcher has claimed (row-locked) our events in the same transaction.
                    last["free"] = free = c.execute(text(
                        "SELECT id FROM events WHERE id = ANY(:ids) FOR UPDATE SKIP LOCKED"), {"ids": event_ids}).all()
                    c.rollback()
                waiting = [a for a in last["activity"]
                           if a[2] == "Lock" and str(a[3]).upper().startswith("INSERT INTO WEBHOOK_DELIVERIES")]
                return bool(waiting) and not free

            try:
                wait_for(fanout_blocked, START_S, "the worker to claim the events and block in its fan-out insert")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; last seen: {last}") from None
            _kill9(first)
            tx.rollback()
            blocker.close()

            def orphan_gone() -> bool:
                with engine.connect() as c:
                    return not c.scalar(text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND query ILIKE 'INSERT INTO webhook_deliveries%' AND state <> 'idle'"))

            # The killed worker's backend gets the lock, finds its client gone and rolls back the
            # claim and the insert.
            wait_for(orphan_gone, 60, "the killed worker's transaction to end")
            with session_scope() as s:
                assert s.scalar(select(func.count()).select_from(WebhookDelivery).where(
                    WebhookDelivery.install_id == install_id)) == 0
                assert s.scalar(select(func.count()).select_from(Event).where(
                    Event.id.in_(event_ids), Event.dispatched_at.is_not(None))) == 0

            second = _worker(tmp_path, "worker-2")

            def delivered() -> bool:
                _alive(second)
                return _statuses(install_id) == {"succeeded": len(uids)} and len(rx.at(path)) >= len(uids)

            wait_for(delivered, START_S, "the second worker to fan out and deliver every event")
        finally:
            blocker.close()  # rolls back the lock if still held
            for p in (first, second):
                if p is not None:
                    p.stop()
        got = rx.at(path)
        with session_scope() as s:
            fanouts = s.execute(select(EventDelivery.event_id, EventDelivery.status).where(
                EventDelivery.event_id.in_(event_ids), EventDelivery.handler == "partner_api.hooks.fanout")).all()
            undispatched = s.scalar(select(func.count()).select_from(Event).where(
                Event.id.in_(event_ids), Event.dispatched_at.is_(None)))

    seen = sorted(json.loads(r.body)["data"]["event_id"] for r in got)
    assert seen == sorted(uids)  # each exactly once: nothing was sent before the kill
    for r in got:
        Webhook(secret).verify(r.body, r.headers)
    assert sorted(fanouts) == sorted((i, "done") for i in event_ids) and undispatched == 0
