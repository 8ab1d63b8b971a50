"""Database outages: tell an unavailable database from other errors, back off, and note each outage's span
outside the database.

While the database cannot be reached (PostgreSQL down or refusing connections, SQLite's file locked past
the busy timeout or not writable) nothing can be written to it, so each process notes the span of the
outage it saw in a small JSON file of its own under ``VAR_DIR/db-outages/`` (:class:`Tracker`): the start
when a database call first fails as *unavailable*, the end when a writing transaction next commits. The
engine's events feed the tracker (``memory.db``), so every process (API, workers, scheduler, monitor)
records alike, and logs once per outage, not per attempt. The monitor reads the files once the database
is back (:func:`read_spans`) and records the outage as an incident with its start and end.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import random
import socket
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import DBAPIError, DisconnectionError

log = logging.getLogger("levqor.db")

SPAN_DIR = "db-outages"
# PostgreSQL SQLSTATEs that mean the server cannot serve us now (class 08: connection exceptions; the server
# shutting down, crashed, starting up; too many connections).
_PG_UNAVAILABLE = ("08", "57P01", "57P02", "57P03", "53300")
_SQLITE_UNAVAILABLE = ("database is locked", "unable to open database", "readonly database", "disk i/o error",
                       "database table is locked")


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) means the database is unavailable, not that the request is wrong."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, DisconnectionError):
            return True
        if isinstance(cur, DBAPIError):
            if cur.connection_invalidated:
                return True
            cur = cur.orig
            continue
        if isinstance(cur, sqlite3.OperationalError):
            return any(m in str(cur).lower() for m in _SQLITE_UNAVAILABLE)
        if _is_psycopg_error(cur):
            state = getattr(cur, "sqlstate", None)
            return state is None or str(state).startswith(_PG_UNAVAILABLE)
        cur = cur.__cause__ or cur.__context__
    return False


def _is_psycopg_error(exc: BaseException) -> bool:
    """A psycopg OperationalError or InterfaceError (its subclasses included), without importing psycopg."""
    return any(c.__module__.startswith("psycopg") and c.__name__ in ("OperationalError", "InterfaceError")
               for c in type(exc).__mro__)


def backoff_s(attempt: int, *, base: float = 0.25, cap: float = 5.0) -> float:
    """How long to wait before retry ``attempt`` (1, 2, ...): doubling from ``base`` up to ``cap``, jittered."""
    return min(cap, base * 2 ** max(0, attempt - 1)) * random.uniform(0.5, 1.0)


@dataclass(frozen=True)
class Span:
    """One process's view of an outage: when its database calls started failing, and when one worked again."""

    start: dt.datetime
    end: dt.datetime | None
    pid: int
    host: str
    error: str = ""


# Set by the ``levqor`` command for every command and cleared by the long-running ones (API, worker,
# scheduler, ``up``) before they start anything, so their children (uvicorn's API processes) note outages.
ONE_SHOT_ENV = "LEVQOR_ONE_SHOT"


class Tracker:
    """This process's outage state, written to its span file when it changes (never per attempt)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.since: dt.datetime | None = None
        self.ended: dt.datetime | None = None
        self.var_dir: Path | None = None
        self.error = ""

    def active(self) -> bool:
        return self.since is not None

    def failed(self, exc: BaseException, var_dir: Path) -> None:
        """A database call failed: the start of an outage if it means unavailable and none is noted yet.
        A one-shot ``levqor`` command (``ONE_SHOT_ENV`` set) notes nothing: it does not retry, and its
        failure (a wrong URL, say) is no outage of the platform; it says so on one line and exits."""
        if self.since is not None or os.environ.get(ONE_SHOT_ENV) == "1" or not is_unavailable(exc):
            return
        with self.lock:
            if self.since is not None:
                return
            cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
            self.since, self.var_dir, self.error = dt.datetime.now(dt.UTC), var_dir, str(cause).strip()[:300]
            log.warning("database unavailable; retrying with backoff until it answers",
                        extra={"fields": {"error": self.error}})
            self._write(Span(self.since, None, os.getpid(), socket.gethostname(), self.error))

    def worked(self) -> None:
        """A writing transaction committed: the end of the outage, if one is noted."""
        if self.since is None:
            return
        with self.lock:
            since, self.since = self.since, None
            if since is None:
                return
            self.ended = dt.datetime.now(dt.UTC)
            log.info("database available again", extra={"fields": {"outage_s": round(
                (self.ended - since).total_seconds(), 1)}})
            self._write(Span(since, self.ended, os.getpid(), socket.gethostname(), self.error))

    def settling(self, grace_s: float) -> bool:
        """In an outage, or out of one for less than ``grace_s``: leases that expired meanwhile are not yet
        anybody's fault (their holders renew them and record their runs first)."""
        if self.since is not None:
            return True
        ended = self.ended
        return ended is not None and (dt.datetime.now(dt.UTC) - ended).total_seconds() < grace_s

    def _write(self, span: Span) -> None:
        if self.var_dir is None:
            return
        path = span_path(self.var_dir)
        try:  # the file is small and replaced whole; a full disk only loses the note, never the process
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"start": span.start.isoformat(),
                                       "end": span.end.isoformat() if span.end else None,
                                       "pid": span.pid, "host": span.host, "error": span.error}))
            os.replace(tmp, path)
        except OSError:
            log.warning("could not note the database outage", exc_info=True)


tracker = Tracker()


def span_path(var_dir: Path) -> Path:
    return var_dir / SPAN_DIR / f"{socket.gethostname()}-{os.getpid()}.json"


def read_spans(var_dir: Path) -> list[Span]:
    """Every process's last noted outage span (files that cannot be read are skipped)."""
    out = []
    for path in sorted((var_dir / SPAN_DIR).glob("*.json")):
        try:
            raw = json.loads(path.read_text())
            out.append(Span(dt.datetime.fromisoformat(raw["start"]),
                            dt.datetime.fromisoformat(raw["end"]) if raw.get("end") else None,
                            int(raw["pid"]), str(raw["host"]), str(raw.get("error") or "")))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


def prune_spans(var_dir: Path, before: dt.datetime) -> None:
    """Forget spans that ended before ``before`` (their processes are usually long gone)."""
    for path in (var_dir / SPAN_DIR).glob("*.json"):
        try:
            raw = json.loads(path.read_text())
            if raw.get("end") and dt.datetime.fromisoformat(raw["end"]) < before:
                path.unlink()
        except (OSError, ValueError, TypeError):
            continue
