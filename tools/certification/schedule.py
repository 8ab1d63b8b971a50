"""The examiner's daily run, on the scheduler leader like the other scheduled agents: a :class:`RunRequest`
(the edge starts it) for every organisation with an attempt waiting for a review or flagged since the last
day, and for the organisation that owns the question bank (the docs watch); never where an examiner run is
still active (e.g. waiting for a person)."""

from __future__ import annotations

import datetime as dt

from memory.agents.repository import AgentRepository
from memory.certification.repository import CertificationRepository
from memory.db import session_scope, utcnow
from tools.certification.docs_watch import owner_org_id
from tools.schedules import RunRequest, Schedule

DAILY_CRON = "cron:30 3 * * *"  # 03:30 UTC


def daily(now: dt.datetime | None = None) -> list[RunRequest]:
    """Scheduler job (daily): ask for an examiner run where there is work, once per organisation."""
    now = now or utcnow()
    with session_scope() as s:
        orgs = CertificationRepository(s).org_ids_to_review(now - dt.timedelta(days=1))
        owner = owner_org_id(s)
        if owner is not None:
            orgs.add(owner)
        agents = AgentRepository(s)
        return [RunRequest("examiner", org, "schedule", input={"day": now.date().isoformat()},
                           requested_by="scheduler")
                for org in sorted(orgs) if agents.active_run(org, "examiner") is None]


SCHEDULES = (Schedule("certification.examiner", DAILY_CRON, daily),)
