"""The event outbox: written with the change, dispatched after commit, retried, visible, never starved."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from memory.audit.models import AuditEntry
from memory.db import session_scope
from memory.events.models import Event, EventDelivery
from tests.factories.orgs import OrgFixture, make_org
from tests.support.database import IS_PG
from tools.enterprise.audit_log import append
from tools.events import service as events
from tools.events.service import EventRecord, Reaction, Reactions, emit, wakeup
from workers import wiring
from workers.dispatcher import run_dispatcher

Handler = Callable[[Session, EventRecord], None]
# The tests' own reactions, beside every reaction the features declare.
_extra: list[Reaction] = []


def table() -> Reactions:
    return Reactions([*wiring.reaction_list(), *_extra])


def dispatch_pending(limit: int = 100, *, now: dt.datetime | None = None) -> int:
    return events.dispatch_pending(table(), limit, now=now)


@pytest.fixture()
def handlers() -> Iterator[Callable[[str, Handler], str]]:
    """Add reactions for the test; remove them afterwards."""
    added: list[Reaction] = []

    def add(event: str, fn: Handler) -> str:
        hname = f"test.{fn.__name__}.{uuid.uuid4().hex[:8]}"
        added.append(Reaction(event, hname, handle=fn))
        _extra.append(added[-1])
        return hname

    yield add
    for r in added:
        _extra.remove(r)


@pytest.fixture()
def max_attempts(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    from levqor.settings import get_settings

    monkeypatch.setenv("LEVQOR_EVENTS_MAX_ATTEMPTS", "3")
    get_settings.cache_clear()
    yield 3
    monkeypatch.delenv("LEVQOR_EVENTS_MAX_ATTEMPTS")
    get_settings.cache_clear()


def name() -> str:
    return f"test_{uuid.uuid4().hex[:10]}"


def drain(now: dt.datetime | None = None) -> None:
    """Dispatch until nothing is due."""
    for _ in range(200):
        if dispatch_pending(now=now) == 0:
            return
    raise AssertionError("the outbox never drained")


def emit_committed(event: str, org_id: int | None = None, **payload: Any) -> str:
    with session_scope() as s:
        return emit(s, event, payload, org_id=org_id).uid


def deliveries(uid: str, *handler_names: str) -> list[EventDelivery]:
    """The event's deliveries to ``handler_names`` (other areas register handlers too, e.g. for "*")."""
    with session_scope() as s:
        return list(s.scalars(select(EventDelivery).join(Event, Event.id == EventDelivery.event_id)
                              .where(Event.uid == uid, EventDelivery.handler.in_(handler_names))
                              .order_by(EventDelivery.id)))


def event_row(uid: str) -> Event:
    with session_scope() as s:
        ev = s.scalar(select(Event).where(Event.uid == uid))
        assert ev is not None
        return ev


def test_emit_in_a_rolled_back_transaction_leaves_no_event(handlers: Any) -> None:
    ev = name()
    seen: list[str] = []
    handlers(ev, lambda s, e: seen.append(e.uid))
    wakeup.clear()
    with pytest.raises(RuntimeError), session_scope() as s:
        emit(s, ev, {"x": 1})
        raise RuntimeError("the change failed")
    assert not wakeup.is_set()
    drain()
    with session_scope() as s:
        assert s.scalar(select(Event).where(Event.name == ev)) is None
    assert seen == []


def test_after_commit_every_handler_and_star_handler_gets_the_event(handlers: Any) -> None:
    ev = name()
    got: dict[str, list[dict[str, Any]]] = {"a": [], "b": [], "star": []}

    def a(s: Session, e: EventRecord) -> None:
        got["a"].append(e.payload)

    def b(s: Session, e: EventRecord) -> None:
        got["b"].append(e.payload)

    def star(s: Session, e: EventRecord) -> None:
        if e.name == ev:
            got["star"].append(e.payload)

    mine = [handlers(ev, a), handlers(ev, b), handlers("*", star)]
    wakeup.clear()
    uid = emit_committed(ev, n=7)
    assert wakeup.is_set()  # a local dispatcher is woken by the commit
    drain()
    assert got == {"a": [{"n": 7}], "b": [{"n": 7}], "star": [{"n": 7}]}
    assert [d.status for d in deliveries(uid, *mine)] == ["done"] * 3
    assert event_row(uid).dispatched_at is not None
    drain()  # nothing runs twice once done
    assert got == {"a": [{"n": 7}], "b": [{"n": 7}], "star": [{"n": 7}]}


def test_failing_handler_backs_off_is_visible_dies_and_can_be_retried(
    client: Any, org: OrgFixture, handlers: Any, max_attempts: int,
) -> None:
    ev = name()
    calls: list[int] = []
    broken = [True]

    def flaky(s: Session, e: EventRecord) -> None:
        calls.append(e.id)
        if broken[0]:
            raise ValueError("partner system said no")

    hname = handlers(ev, flaky)
    uid = emit_committed(ev, org.org_id)
    drain()
    (d,) = deliveries(uid, hname)
    assert (d.status, d.attempts, len(calls)) == ("failing", 1, 1)
    assert "partner system said no" in (d.last_error or "")
    now = dt.datetime.now(dt.UTC)
    assert d.next_attempt_at > now
    drain()  # backed off: not run again yet
    assert len(calls) == 1
    fails = client.get("/v1/events/failures", headers=org.headers("viewer")).json()["items"]
    mine = [f for f in fails if f["id"] == d.id]
    assert mine and mine[0]["status"] == "failing" and mine[0]["handler"] == hname
    assert "ValueError: partner system said no" in mine[0]["last_error"] and mine[0]["event_name"] == ev

    later = d.next_attempt_at
    for attempt in (2, 3):
        later = later + dt.timedelta(seconds=1)
        drain(now=later)
        (d,) = deliveries(uid, hname)
        assert d.attempts == attempt and len(calls) == attempt
        later = max(later, d.next_attempt_at)
    assert d.status == "dead" and d.attempts == max_attempts
    drain(now=later + dt.timedelta(days=1))
    assert len(calls) == max_attempts
    assert event_row(uid).dispatched_at is not None
    fails = client.get("/v1/events/failures", headers=org.headers("auditor")).json()["items"]
    assert [f["status"] for f in fails if f["id"] == d.id] == ["dead"]

    assert client.post(f"/v1/events/deliveries/{d.id}/retry", headers=org.headers("viewer")).status_code == 403

    other = make_org()
    assert client.post(f"/v1/events/deliveries/{d.id}/retry", headers=other.headers()).status_code == 404
    broken[0] = False
    r = client.post(f"/v1/events/deliveries/{d.id}/retry", headers=org.headers())
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "pending"
    assert event_row(uid).dispatched_at is None
    drain()
    (d,) = deliveries(uid, hname)
    assert (d.status, d.last_error, len(calls)) == ("done", None, max_attempts + 1)
    assert event_row(uid).dispatched_at is not None
    again = client.post(f"/v1/events/deliveries/{d.id}/retry", headers=org.headers())
    assert again.status_code == 409
    audit = client.get("/v1/audit", params={"action": "events.retried"}, headers=org.headers("auditor"))
    assert [e["target"] for e in audit.json()["items"]] == [f"delivery:{d.id}"]


def test_a_handlers_writes_commit_with_its_delivery_only(handlers: Any) -> None:
    ev = name()
    fail_first = [True]

    def writer(s: Session, e: EventRecord) -> None:
        append(s, actor="system:test", action="test.handler_wrote", target=e.uid)
        if fail_first[0]:
            fail_first[0] = False
            raise RuntimeError("after writing")

    hname = handlers(ev, writer)
    uid = emit_committed(ev)

    def written() -> int:
        with session_scope() as s:
            return len(list(s.scalars(select(AuditEntry.seq).where(AuditEntry.target == uid))))

    drain()
    (d,) = deliveries(uid, hname)
    assert d.status == "failing" and written() == 0  # the failed attempt's write was undone
    drain(now=d.next_attempt_at + dt.timedelta(seconds=1))
    (d,) = deliveries(uid, hname)
    assert d.status == "done" and written() == 1
    from tools.enterprise.audit_log import verify_chain

    with session_scope() as s:
        assert verify_chain(s).ok


def test_user_signup_is_emitted_when_a_user_is_created(client: Any, org: OrgFixture, handlers: Any) -> None:
    got: list[dict[str, Any]] = []
    handlers("user_signup", lambda s, e: got.append({**e.payload, "org": e.org_id}))
    email = f"new-{uuid.uuid4().hex[:6]}@acme-test.io"
    r = client.post("/v1/users", json={"email": email, "role": "viewer"}, headers=org.headers())
    assert r.status_code == 201, r.text
    drain()
    assert {"user_id": r.json()["id"], "org_id": org.org_id, "role": "viewer", "org": org.org_id} in got
    listed = client.get("/v1/events", params={"name": "user_signup"}, headers=org.headers("viewer")).json()
    assert listed["items"][0]["payload"]["user_id"] == r.json()["id"]
    assert listed["items"][0]["dispatched_at"] is not None


def test_backed_off_events_do_not_starve_newer_ones(handlers: Any) -> None:
    failing, fresh = name(), name()
    fail_calls: list[int] = []
    ok: list[str] = []

    def always_fails(s: Session, e: EventRecord) -> None:
        fail_calls.append(e.id)
        raise RuntimeError("down")

    hname = handlers(failing, always_fails)
    handlers(fresh, lambda s, e: ok.append(e.uid))
    drain()  # whatever other tests left due
    old = [emit_committed(failing) for _ in range(6)]
    drain()
    assert len(fail_calls) == 6
    uid = emit_committed(fresh)
    # One poll with a small limit: the six backed-off events are not claimed ahead of the new one.
    dispatch_pending(limit=3)
    assert ok == [uid]
    assert len(fail_calls) == 6 and all(d.attempts == 1 for u in old for d in deliveries(u, hname))


def test_concurrent_dispatchers_run_each_delivery_once(handlers: Any) -> None:
    ev = name()
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def count(s: Session, e: EventRecord) -> None:
        with lock:
            counts[e.uid] += 1

    handlers(ev, count)
    uids = [emit_committed(ev, i=i) for i in range(30)]
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def dispatcher() -> None:
        try:
            start.wait(timeout=30)
            for _ in range(100):
                if dispatch_pending(limit=5) == 0:
                    return
        except BaseException as exc:  # reported below
            errors.append(exc)

    pool = [threading.Thread(target=dispatcher) for _ in range(4)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=120)
    assert not errors, errors
    assert {u: counts[u] for u in uids} == {u: 1 for u in uids}
    assert all(event_row(u).dispatched_at is not None for u in uids)


@pytest.mark.skipif(not IS_PG, reason="row locks between dispatchers: on SQLite one writer at a time already")
def test_a_delivery_being_run_is_skipped_by_another_dispatcher(handlers: Any) -> None:
    ev = name()
    started, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def slow(s: Session, e: EventRecord) -> None:
        calls.append(e.uid)
        started.set()
        assert release.wait(timeout=60)

    hname = handlers(ev, slow)
    uid = emit_committed(ev)
    first = threading.Thread(target=drain)
    first.start()
    try:
        assert started.wait(timeout=30), "the first dispatcher never started the handler"
        dispatch_pending()  # the delivery row is locked: SKIP LOCKED passes over it
        assert calls == [uid]
    finally:
        release.set()
        first.join(timeout=60)
    assert calls == [uid] and [d.status for d in deliveries(uid, hname)] == ["done"]


def test_run_dispatcher_wakes_on_commit(handlers: Any) -> None:
    ev = name()
    got = threading.Event()
    handlers(ev, lambda s, e: got.set())
    stop = threading.Event()
    loop = threading.Thread(target=run_dispatcher, args=(stop, 60.0, table()))
    loop.start()
    try:
        emit_committed(ev)
        # The poll interval is a minute: only the commit's wake-up can deliver it this fast.
        assert got.wait(timeout=20), "the dispatcher was not woken by the commit"
    finally:
        stop.set()
        wakeup.set()
        loop.join(timeout=30)
    assert not loop.is_alive()


def test_batch_handler_runs_once_per_claimed_batch_and_a_bad_event_fails_alone() -> None:
    evname, hname = name(), f"test.batch.{uuid.uuid4().hex[:8]}"
    calls: list[list[str]] = []
    poison: set[str] = set()

    def batch(s: Session, evs: list[EventRecord]) -> None:
        calls.append([e.uid for e in evs])
        if poison & {e.uid for e in evs}:
            raise RuntimeError("poisoned event")

    _extra.append(reaction := Reaction(evname, hname, batch=batch))
    try:
        drain()  # events other tests left due first: one claim (100 events) must hold all three of these
        uids = [emit_committed(evname) for _ in range(3)]
        drain()
        assert calls == [uids]
        assert [(d.status, d.attempts) for u in uids for d in deliveries(u, hname)] == [("done", 1)] * 3
        assert all(event_row(u).dispatched_at is not None for u in uids)
        calls.clear()
        bad, good = emit_committed(evname), emit_committed(evname)
        poison.add(bad)
        drain()
        assert calls[0] == [bad, good] and sorted(calls[1:]) == sorted([[bad], [good]])
        (d_bad,) = deliveries(bad, hname)
        (d_good,) = deliveries(good, hname)
        assert d_bad.status == "failing" and "poisoned event" in (d_bad.last_error or "")
        assert d_good.status == "done" and event_row(good).dispatched_at is not None
    finally:
        _extra.remove(reaction)
