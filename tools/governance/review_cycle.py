"""The review cycle: when partner audits run, and what follows a failed one.

* every quarter (cron on the scheduler leader) every listed plugin is queued for an audit and the
  auditor agent is asked to run the cycle and prepare the quarterly governance report;
* a new version sent to review (event ``plugin_version_submitted``) and a partner-endpoint incident
  pattern from the monitor (event ``incident_opened`` with cause ``partner:<install>``) queue
  an audit of that plugin;
* every ``LEVQOR_GOVERNANCE_TICK_S`` the leader records the policy version in force (a change is audited
  with its diff) and, when audits wait, partners need telling or deadlines have passed, asks the auditor
  agent to run the cycle: run queued audits, explain and notify failed ones (deadline from policy), and
  past the deadline suspend the listing (``plugins.set_state``) and hold payouts (``partners.set_status``).

The agent runs for the first Levqor staff organisation (it owns the run, its costs and approvals).
Without one, :func:`run_cycle` takes the same steps as ``agent:auditor`` with the offline templates,
through the same policy-checked tools.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from levqor.settings import get_settings
from memory.db import session_scope, utcnow
from memory.governance.repository import GovernanceRepository
from memory.partner.repository import PartnerRepository
from tools.context import Principal, ToolContext
from tools.enterprise.rbac import first_staff_org_id
from tools.events.service import EventRecord, Reaction
from tools.governance import partner_audit, policy_versions, service
from tools.registry import registry
from tools.schedules import RunRequest, Schedule

log = logging.getLogger("levqor.governance")
AUDITOR = Principal(kind="agent", id="auditor", org_id=None, role="agent", name="auditor agent")
QUARTERLY_CRON = "cron:0 4 1 1,4,7,10 *"


def quarter_of(day: dt.date) -> str:
    """``2026-Q4`` for any day of that quarter."""
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


def previous_quarter(day: dt.date) -> str:
    first = day.replace(day=1, month=((day.month - 1) // 3) * 3 + 1)
    return quarter_of(first - dt.timedelta(days=1))


def owner_org(session: Session) -> int | None:
    """The organisation that owns auditor runs: the first Levqor staff organisation, if any."""
    return first_staff_org_id(session)


def queue_listed(session: Session, trigger: str = "quarterly") -> list[int]:
    """Queue an audit of the listed version of every listed plugin; their audit ids."""
    repo = PartnerRepository(session)
    out = []
    for plugin in repo.plugins(states=["listed"]):
        v = repo.version(plugin.listed_version_id) if plugin.listed_version_id else None
        if v is not None:
            out.append(partner_audit.queue(session, plugin, v.version, trigger, "scheduler").id)
    return out


def work_waiting(session: Session, now: dt.datetime | None = None) -> bool:
    """Whether the cycle has anything to do: audits queued (or stuck), partners to tell, deadlines passed."""
    now = now or utcnow()
    repo = GovernanceRepository(session)
    if repo.has_claimable(now):
        return True
    return any(a.notified_at is None or (a.deadline_at is not None and a.deadline_at <= now)
               for a in repo.failed_open(enforceable=True))


def _request(session: Session, input: dict[str, Any]) -> list[RunRequest]:
    org = owner_org(session)
    if org is None:
        return []
    return [RunRequest("auditor", org, "schedule", input=input, requested_by="scheduler")]


def quarterly(now: dt.datetime | None = None) -> list[RunRequest]:
    """Scheduler job (quarterly): queue every listed plugin's audit; ask the auditor agent for the cycle
    and the report of the quarter that just ended (or take the steps directly without a staff org)."""
    now = now or utcnow()
    quarter = previous_quarter(now.date())
    with session_scope() as s:
        queued = queue_listed(s)
        runs = _request(s, {"quarter": quarter, "report": True, "queued": len(queued)})
    if not runs:
        run_cycle(quarter=quarter)
    return runs


def tick(now: dt.datetime | None = None) -> list[RunRequest]:
    """Scheduler job: record the policy in force; when there is work, ask the auditor agent for a cycle."""
    with session_scope() as s:
        policy_versions.record_in_force(ToolContext(session=s, principal=AUDITOR))
    with session_scope() as s:
        if not work_waiting(s, now):
            return []
        runs = _request(s, {"cycle": "tick"})
    if not runs:
        run_cycle()
    return runs


def schedules() -> list[Schedule]:
    """The quarterly audit of every listed plugin, and the cycle's tick (at its setting)."""
    return [Schedule("governance.quarterly", QUARTERLY_CRON, quarterly),
            Schedule("governance.cycle", float(get_settings().governance_tick_s), tick)]


# ---- the cycle's steps without the agent (no staff organisation), as agent:auditor -----------------

def _call(name: str, args: dict[str, Any]) -> Any:
    with session_scope() as s:
        return registry.invoke(name, ToolContext(session=s, principal=AUDITOR), args).model_dump(mode="json")


def run_cycle(*, quarter: str | None = None,
              call: Callable[[str, dict[str, Any]], Any] | None = None) -> dict[str, Any]:
    """Run queued audits, notify failed ones, enforce past deadlines: the auditor agent's steps, offline."""
    call = call or _call
    claims = service.Claims.model_validate(call("governance.claim", {"limit": 50}))
    done = service.run_claimed(claims, AUDITOR)
    notified = []
    for audit_id in call("governance.pending", {})["pending"]:
        call("governance.notify", {"audit_id": audit_id})
        notified.append(audit_id)
    enforced = []
    for item in call("governance.due", {})["items"]:
        enforced.append(enforce_one(service.Due.Item.model_validate(item), call))
    out: dict[str, Any] = {"audited": done, "notified": notified, "enforced": enforced}
    if quarter:
        out["report"] = call("governance.report", {"quarter": quarter})
    return out


def enforce_one(item: service.Due.Item, call: Callable[[str, dict[str, Any]], Any]) -> dict[str, Any]:
    """Suspend the listing and hold payouts for one audit past its deadline; then mark it enforced."""
    results = []
    for tool_name, args in service.plan_enforcement(item):
        try:
            call(tool_name, args)
            results.append(f"{tool_name}: done")
        except Exception as exc:  # e.g. the plugin was retired meanwhile: record, go on
            results.append(f"{tool_name}: {getattr(exc, 'detail', exc)}")
    call("governance.mark_enforced", {"audit_id": item.audit_id, "note": "; ".join(results)})
    return {"audit_id": item.audit_id, "steps": results}


# ---- triggers ------------------------------------------------------------------------------------

def _on_version_submitted(session: Session, event: EventRecord) -> None:
    repo = PartnerRepository(session)
    plugin = repo.plugin_by_slug(str(event.payload.get("plugin", "")))
    if plugin is not None:
        partner_audit.queue(session, plugin, str(event.payload["version"]), "version_submitted",
                            str(event.payload.get("by") or "partner"))


def _on_incident(session: Session, event: EventRecord) -> None:
    """A partner endpoint failing its deliveries (an incident whose cause is ``partner:<install>``: the
    monitor's partner_errors rule or an anomaly of its error rate): audit its plugin, at most once a day
    per plugin."""
    kind, _, install = str(event.payload.get("cause") or "").partition(":")
    if kind != "partner" or not install.isdigit():
        return
    repo = PartnerRepository(session)
    inst = repo.install(int(install))
    plugin = repo.plugin(inst.plugin_id) if inst else None
    if plugin is None or plugin.listed_version_id is None:
        return
    recent = GovernanceRepository(session).audits(plugin_id=plugin.id, limit=1)
    if recent and recent[0].trigger == "incident" and recent[0].created_at > utcnow() - dt.timedelta(days=1):
        return
    v = repo.version(plugin.listed_version_id)
    if v is not None:
        partner_audit.queue(session, plugin, v.version, "incident", f"incident:{event.payload.get('incident_id')}")


REACTIONS = (Reaction("plugin_version_submitted", "governance.audit_submitted", handle=_on_version_submitted),
             Reaction("incident_opened", "governance.audit_incident", handle=_on_incident))

__all__ = ["REACTIONS", "quarterly", "run_cycle", "schedules", "tick"]
