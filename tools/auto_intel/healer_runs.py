"""Which organisation owns a healer run, whether one is already at work on an incident, which incident is due.

Incidents of an organisation (a poison job, a failing pipeline) are healed in runs of that organisation.
Platform incidents (workers, the queue, the API) have no organisation: their runs, approvals and costs
belong to the first organisation in ``LEVQOR_STAFF_ORGS`` (whose admins see platform incidents), or to
the only organisation when there is just one. With neither, nobody could see or approve such a run, so
the healer takes the step outside the runtime (an approval then escalates to a person).

The healer agent (``agents/healer``) asks these before it starts a run; each reads in a session of its
own and changes nothing.
"""

from __future__ import annotations

import datetime as dt

from levqor.settings import get_settings
from memory.agents.repository import AgentRepository
from memory.db import session_scope
from memory.identity.repository import IdentityRepository
from memory.ops.repository import IncidentRepository
from tools.auto_intel.self_heal import heal


def run_owner(incident_id: int) -> int | None:
    """The organisation whose healer run heals ``incident_id``; None when none can own it."""
    with session_scope() as s:
        inc = IncidentRepository(s).get(incident_id)
        if inc is None:
            return None
        if inc.org_id is not None:
            return inc.org_id
    return platform_owner()


def platform_owner() -> int | None:
    """The organisation that owns platform agents' runs (the monitor's, platform incidents' healer runs):
    the first in ``LEVQOR_STAFF_ORGS``, else the only one; None when neither exists."""
    with session_scope() as s:
        ident = IdentityRepository(s)
        for slug in get_settings().staff_orgs:
            org = ident.org_by_slug(slug)
            if org is not None:
                return org.id
        ids = AgentRepository(s).org_ids()
        return ids[0] if len(ids) == 1 else None


def active_run(incident_id: int) -> int | None:
    """A healer run on ``incident_id`` that has not ended (queued, running, waiting for approval)."""
    with session_scope() as s:
        for run in AgentRepository(s).active_runs("healer"):
            if (run.input or {}).get("incident_id") == incident_id:
                return run.id
    return None


def next_due(org_id: int, now: dt.datetime | None = None) -> int | None:
    """The oldest incident this organisation's healer run may act on now (manual and scheduled runs)."""
    with session_scope() as s:
        ids = sorted(i.id for i in IncidentRepository(s).unresolved() if not i.manual)
    for iid in ids:
        if run_owner(iid) == org_id and active_run(iid) is None and heal(iid, now, act=False).outcome == "due":
            return iid
    return None
