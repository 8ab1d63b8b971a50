"""Helpers for the operations tests: settings overrides, pipelines and jobs in given states, clean slate."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def ops_settings(**values: Any) -> Iterator[None]:
    """Override ``LEVQOR_*`` settings for the block."""
    import json

    from levqor.settings import get_settings

    old = {k: os.environ.get(f"LEVQOR_{k.upper()}") for k in values}
    for k, v in values.items():
        os.environ[f"LEVQOR_{k.upper()}"] = json.dumps(v) if isinstance(v, list | dict) else str(v)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(f"LEVQOR_{k.upper()}", None)
            else:
                os.environ[f"LEVQOR_{k.upper()}"] = v
        get_settings.cache_clear()


def clean_ops() -> None:
    """Resolve every incident and drop samples so a test sees only its own findings."""
    from sqlalchemy import delete, update

    from memory.db import session_scope
    from memory.ops.models import Incident, OpsDetectorState, OpsSample
    from tools.auto_intel.anomalies import detectors

    with session_scope() as s:
        s.execute(update(Incident).where(Incident.state != "resolved").values(state="resolved"))
        s.execute(delete(OpsSample))
        s.execute(delete(OpsDetectorState))
    detectors.forget()


def make_pipeline(org_id: int, name: str | None = None) -> int:
    import uuid

    from memory.db import session_scope
    from memory.jobs.models import Pipeline

    with session_scope() as s:
        p = Pipeline(org_id=org_id, name=name or f"p-{uuid.uuid4().hex[:8]}", trigger={"type": "manual"},
                     steps=[{"type": "transform", "name": "t", "expression": "@"}])
        s.add(p)
        s.flush()
        return p.id


def make_job(org_id: int, pipeline_id: int, state: str, **values: Any) -> int:
    from memory.db import session_scope, utcnow
    from memory.jobs.models import Job

    now = utcnow()
    with session_scope() as s:
        j = Job(org_id=org_id, pipeline_id=pipeline_id, state=state, enqueued_at=values.pop("enqueued_at", now),
                run_at=values.pop("run_at", now), **values)
        if state in ("succeeded", "failed", "dead") and j.finished_at is None:
            j.finished_at = now
        s.add(j)
        s.flush()
        return j.id


def ago(seconds: float) -> dt.datetime:
    from memory.db import utcnow

    return utcnow() - dt.timedelta(seconds=seconds)


def incident(iid: int) -> Any:
    """Incident ``iid`` as a detached row (read in its own session)."""
    from memory.db import session_scope
    from memory.ops.models import Incident

    with session_scope() as s:
        inc = s.get(Incident, iid)
        assert inc is not None, f"incident {iid} not found"
        s.expunge(inc)
        return inc
