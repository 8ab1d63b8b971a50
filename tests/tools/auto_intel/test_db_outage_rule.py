"""The monitor's db_outage rule: the outage spans the processes noted in VAR_DIR/db-outages while the
database was down become one incident that starts at the first failure and resolves at the end (once, not
reopened by the next tick); an outage still going on keeps it open; expired leases wait while it settles.
The outage counts as downtime. The tracker writes those files once per outage (start, then end)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from levqor.db_outage import SPAN_DIR, Tracker, read_spans, span_path
from tests.factories.ops import clean_ops


@pytest.fixture()
def spans(tmp_var: Path) -> Iterator[Path]:
    """The span directory, empty at the start and removed at the end."""
    d = tmp_var / SPAN_DIR
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    clean_ops()
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _base() -> dt.datetime:
    """A time after every database outage recorded by earlier tests (they share the database), past the
    flap window (an outage soon after another reopens its incident)."""
    from levqor.settings import get_settings
    from memory.db import aware, session_scope, utcnow
    from memory.ops.models import Incident

    with session_scope() as s:
        last = s.scalar(select(func.max(Incident.resolved_at)).where(Incident.cause == "database"))
    now = utcnow()
    return max(now, aware(last) + dt.timedelta(seconds=get_settings().ops_flap_window_s + 1)) if last else now


def _write(d: Path, name: str, start: dt.datetime, end: dt.datetime | None, pid: int = 1) -> None:
    (d / f"{name}.json").write_text(json.dumps({"start": start.isoformat(), "end": end.isoformat() if end else None,
                                                "pid": pid, "host": "elsewhere", "error": "database is locked"}))


def _incidents() -> list[Any]:
    from memory.db import session_scope
    from memory.ops.models import Incident

    with session_scope() as s:
        rows = list(s.scalars(select(Incident).where(Incident.cause == "database").order_by(Incident.id)))
        for r in rows:
            s.expunge(r)
        return rows


def _tick(now: dt.datetime) -> Any:
    from tools.auto_intel.monitor import monitor_tick

    res = monitor_tick(now)
    assert res.error is None, res.error
    return res


def test_an_ended_outage_opens_an_incident_at_its_start_and_resolves_it_at_its_end(spans: Path) -> None:
    from memory.db import aware

    t = _base()
    start, end = t + dt.timedelta(seconds=1), t + dt.timedelta(seconds=31)
    _write(spans, "api", start, end + dt.timedelta(seconds=2))
    _write(spans, "worker", start + dt.timedelta(seconds=0.5), end, pid=2)
    before = len(_incidents())
    res = _tick(t + dt.timedelta(seconds=40))
    incs = _incidents()
    assert len(incs) == before + 1
    inc = incs[-1]
    assert inc.diagnosis == "db_outage" and inc.state == "resolved" and inc.resolved_by == "agent:monitor"
    assert aware(inc.detected_at) == start and aware(inc.resolved_at) == end  # the first commit after it
    assert inc.id in res.opened and inc.id in res.resolved
    # the next ticks neither reopen it nor open another
    _tick(t + dt.timedelta(seconds=45))
    _tick(t + dt.timedelta(seconds=50))
    assert [(i.id, i.state, i.reopens) for i in _incidents()][-1] == (inc.id, "resolved", 0)
    assert len(_incidents()) == before + 1

    # its span is downtime in the uptime KPI (and the SLA), which no probe could record meanwhile
    from memory.db import session_scope
    from memory.pulse.repository import PulseRepository
    from tools.pulse.kpis import OUTAGE_DIAGNOSES, uptime_percent

    window = (start - dt.timedelta(seconds=30), end + dt.timedelta(seconds=30))
    with session_scope() as s:
        outages = [o for o in PulseRepository(s).outages(*window, OUTAGE_DIAGNOSES) if aware(o[0]) == start]
    measured = uptime_percent([], outages, *window, 60.0)
    assert measured is not None and measured[1] == pytest.approx(30.0)


def test_an_outage_still_going_on_keeps_its_incident_open_until_a_process_sees_the_database_back(
        spans: Path) -> None:
    from memory.db import aware

    t = _base()
    start = t + dt.timedelta(seconds=1)
    _write(spans, "api", start, None)
    _write(spans, "worker", start, None, pid=2)
    _tick(t + dt.timedelta(seconds=10))
    inc = _incidents()[-1]
    assert inc.state == "open" and aware(inc.detected_at) == start
    end = t + dt.timedelta(seconds=20)
    _write(spans, "worker", start, end, pid=2)
    _tick(t + dt.timedelta(seconds=25))
    inc = _incidents()[-1]
    assert inc.state == "resolved" and aware(inc.resolved_at) == end


def test_a_connection_dropped_and_replaced_at_once_is_no_outage(spans: Path) -> None:
    t = _base()
    before = len(_incidents())
    _write(spans, "api", t + dt.timedelta(seconds=1), t + dt.timedelta(seconds=1.2))  # under 5 s
    _tick(t + dt.timedelta(seconds=10))
    assert len(_incidents()) == before


def test_expired_leases_wait_while_an_outage_settles(spans: Path, set_settings: Any) -> None:
    from memory.db import utcnow
    from tools.auto_intel.rules import _outage_settling

    set_settings(job_lease_s=3)
    now = utcnow()
    assert not _outage_settling(now, 6.0)
    _write(spans, "worker", now - dt.timedelta(seconds=30), now - dt.timedelta(seconds=2))
    assert _outage_settling(now, 6.0)
    assert not _outage_settling(now + dt.timedelta(seconds=5), 6.0)


def test_the_tracker_notes_one_span_per_outage(tmp_path: Path) -> None:
    t = Tracker()
    locked = OperationalError("BEGIN", {}, sqlite3.OperationalError("database is locked"))
    t.failed(ValueError("not the database"), tmp_path)
    assert not t.active() and not (tmp_path / SPAN_DIR).exists()
    t.failed(locked, tmp_path)
    first = span_path(tmp_path).read_text()
    t.failed(locked, tmp_path)  # a retry: nothing new written
    assert span_path(tmp_path).read_text() == first
    [span] = read_spans(tmp_path)
    assert span.end is None and span.error.endswith("database is locked")
    t.worked()
    [span] = read_spans(tmp_path)
    assert span.end is not None and span.end >= span.start and not t.active()
    assert t.settling(60.0) and not t.settling(0.0)
