"""The outbox dispatcher loop: deliver committed events to every reaction, waking on commits."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable

from sqlalchemy.engine import make_url

from levqor.db_outage import backoff_s, is_unavailable
from levqor.settings import get_settings
from tools.events import service as events
from tools.events.service import Reactions
from workers import wiring

log = logging.getLogger("levqor.events")


def dispatch_pending(limit: int = 100, *, now: dt.datetime | None = None, reactions: Reactions | None = None) -> int:
    """One dispatch step with every declared reaction (or ``reactions``); the work done, 0 if none was due."""
    return events.dispatch_pending(reactions if reactions is not None else wiring.reactions(), limit, now=now)


def listen(stop: threading.Event, channels: dict[str, Callable[[], None]]) -> threading.Thread | None:
    """On PostgreSQL, call ``channels[name]()`` whenever ``NOTIFY name`` arrives (from a daemon thread)."""
    url = get_settings().resolved_database_url
    if not url.startswith("postgresql"):
        return None

    def run() -> None:
        import psycopg  # the driver, only on PostgreSQL

        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        failures = 0
        while not stop.is_set():
            try:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    for name in channels:
                        conn.execute(f'LISTEN "{name}"')
                    failures = 0
                    for wake in channels.values():
                        wake()  # anything sent while we were not listening
                    while not stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            callback = channels.get(note.channel)
                            if callback is not None:
                                callback()
            except Exception as exc:
                failures += 1
                if failures == 1 or not is_unavailable(exc):  # once per outage, not per attempt
                    log.warning("event listener lost its connection; reconnecting", exc_info=True)
                stop.wait(backoff_s(failures, base=1.0))

    t = threading.Thread(target=run, name="pg-listen", daemon=True)
    t.start()
    return t


def run_dispatcher(stop: threading.Event, poll_s: float, reactions: Reactions | None = None) -> None:
    """Loop until ``stop`` is set, waking on commits (local, or NOTIFY on PostgreSQL) or every ``poll_s``."""
    table = reactions if reactions is not None else wiring.reactions()
    listen(stop, {events.NOTIFY_CHANNEL: events.wakeup.set})
    failures = 0  # consecutive failed passes: the wait doubles (to 5 s); the outbox keeps every event
    while not stop.is_set():
        try:
            ran = events.dispatch_pending(table)
            failures = 0
        except Exception as exc:
            failures += 1
            if not is_unavailable(exc):  # an outage is logged once, by levqor.db_outage
                log.exception("outbox dispatch failed")
            stop.wait(backoff_s(failures))
            continue
        if ran == 0:
            events.wakeup.wait(poll_s)
            events.wakeup.clear()
