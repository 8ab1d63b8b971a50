"""The healer agent: one healing attempt on one incident, as a run on the agent runtime.

diagnose -> summarize -> act -> (approve) -> verify -> report. Offline, the summary is the incident's
template and the playbook the diagnosis' own; with an LLM configured the model writes the summary and may
propose a known playbook, which passes the same precondition, limits, policy engine and verification.
An action the policy wants approved pauses the run (checkpointed) until a person decides.

:func:`run_healer` is what the monitor (trigger ``schedule``) and the ``incident_opened`` handler
(``event``) call for an incident: steps that choose no action (verifying a pending one, backing off,
watching an anomaly) are taken directly; an attempt that chooses a playbook is an agent run, owned by the
organisation :func:`tools.auto_intel.healer_runs.run_owner` names (none: the step is taken directly too).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, cast

from langgraph.graph import END, START, StateGraph
from sqlalchemy.orm import Session

from agents.healer import nodes, prompts
from agents.healer.state import HealerState
from agents.runtime import AgentDef, RunDeps, register_agent, run_values, start_run
from tools.auto_intel.healer_runs import active_run, next_due, run_owner
from tools.auto_intel.self_heal import heal
from tools.events.service import EventRecord, Reaction, after_commit

log = logging.getLogger("levqor.ops.heal")
owner_log = logging.getLogger("levqor.agents.healer")
_warned: list[bool] = []


def build(deps: RunDeps) -> StateGraph[Any]:
    g: StateGraph[Any] = StateGraph(HealerState)
    for name, fn in nodes.nodes(deps).items():
        g.add_node(name, fn)
    g.add_edge(START, "diagnose")
    g.add_edge("summarize", "act")
    g.add_edge("verify", "report")
    g.add_edge("report", END)
    return g


def initial_state(deps: RunDeps, run_input: dict[str, Any]) -> dict[str, Any]:
    """The run's incident: given (its own or an event's), else the organisation's oldest due one."""
    iid = run_input.get("incident_id") or (run_input.get("payload") or {}).get("incident_id")
    if iid is not None and run_owner(int(iid)) != deps.org_id:
        iid = None  # another organisation's incident: never healed from this organisation's run
    if iid is None and "incident_id" not in run_input:
        iid = next_due(deps.org_id)
    return {"incident_id": int(iid) if iid is not None else None,
            "trigger": str(run_input.get("event") or run_input.get("trigger") or "run")}


def run_healer(incident_id: int, *, trigger: str = "schedule", now: dt.datetime | None = None) -> HealerState:
    """Take the next healing step on an incident: directly, or as a healer run when it chooses an action.

    Returns the run's final state (``run_id``, ``step``, ``proposal`` ...) or, for a direct step, ``step``."""
    gate = heal(incident_id, now, act=False)
    if gate.outcome != "due":
        return {"incident_id": incident_id, "step": nodes.step_dict(gate)}
    owner = run_owner(incident_id)
    if owner is None:
        _warn_unowned()
        return {"incident_id": incident_id, "step": nodes.step_dict(heal(incident_id, now))}
    if active_run(incident_id) is not None:
        return {"incident_id": incident_id, "step": {"outcome": "waiting", "detail": "a healer run is at work"}}
    run_id = start_run("healer", owner, trigger, input={"incident_id": incident_id})
    # run_values is the graph's final state, which is a HealerState (untyped by the runtime)
    return cast(HealerState, {"incident_id": incident_id, **run_values(run_id), "run_id": run_id})


def _warn_unowned() -> None:
    """Say once per process that platform incidents are healed outside agent runs (no owner)."""
    if not _warned:
        _warned.append(True)
        owner_log.warning("platform incidents are healed outside agent runs (no run history, approvals "
                          "escalate): several organisations and none in LEVQOR_STAFF_ORGS")


# Described (and marked as acting on the whole platform) in tools/agents/catalog.py.
AGENT = register_agent(AgentDef(name="healer", build=build, initial_state=initial_state, system_prompt=prompts.SYSTEM))


def _on_incident_opened(session: Session, event: EventRecord) -> None:
    """A new incident: take the first healing step once the event's transaction has committed."""
    iid = int(event.payload["incident_id"])
    after_commit(session, lambda: _safe_heal(iid))


def _safe_heal(incident_id: int) -> None:
    try:
        run_healer(incident_id, trigger="event")
    except Exception:
        log.exception("healer failed", extra={"fields": {"incident": incident_id}})


REACTIONS = (Reaction("incident_opened", "ops.healer", handle=_on_incident_opened),)
