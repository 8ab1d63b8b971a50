"""The monitor agent: sample -> heal -> notify, a run on the agent runtime every ``ops_sample_interval_s``.

Deterministic nodes (no LLM): ``sample`` is one monitor tick through the run's toolbox
(``ops.monitor_tick``, policy-checked and recorded as ``agent:monitor``: signals, detector scores,
rules, correlation into incidents; a dead database connection is reported, never raised), ``heal``
takes one healing step on every open incident (the healer agent, whose attempts are runs of their own),
``notify`` sends queued incident notifications (``ops.send_notifications``), ``prune`` keeps the monitor's
heartbeats bounded: a tick in which nothing happened is summarised as a heartbeat, and only the newest
``LEVQOR_MONITOR_HEARTBEATS_KEPT`` of those runs stay (``ops.prune_monitor_history``), so a run every few
seconds does not flood the runs table or ``/agents``; every run in which something happened is kept.

The monitor acts on the whole platform: its runs belong to the organisation that owns platform runs
(:func:`tools.auto_intel.healer_runs.platform_owner`). With no such organisation, or when the database
cannot record a run (it is down: the chaos suite's case), the same graph runs outside the runtime, so
the platform is still watched.
"""

from __future__ import annotations

import contextvars
import logging
from typing import Any, TypedDict, cast

from langgraph.graph import END, START, StateGraph

from agents.healer.graph import run_healer
from agents.runtime import AgentDef, RunDeps, register_agent, run_values, start_run
from levqor.settings import get_settings
from tools.auto_intel.healer_runs import platform_owner
from tools.auto_intel.monitor import HEARTBEAT, guard_disk, monitor_tick
from tools.auto_intel.notifications import send_notifications
from tools.auto_intel.self_heal import open_incident_ids
from tools.schedules import Schedule

log = logging.getLogger("levqor.agents.monitor")

# The API's Prometheus text for the tick in progress (the chaos suite's API runs in another process); kept
# out of the run's stored input, which would otherwise hold tens of kilobytes of metrics per tick.
_api_text: contextvars.ContextVar[str | None] = contextvars.ContextVar("monitor_api_text", default=None)


class MonitorState(TypedDict, total=False):
    sampled: int
    opened: list[int]
    resolved: list[int]
    error: str | None
    healed: list[dict[str, Any]]
    notified: int
    pruned: int
    summary: str
    run_id: int


def _heal_open() -> list[dict[str, Any]]:
    steps = []
    for iid in open_incident_ids():
        out = run_healer(iid)
        steps.append({"incident_id": iid, **out.get("step", {})})
    return steps


def _summary(state: MonitorState) -> str:
    if state.get("error"):
        return f"tick failed: {state['error']}"
    acted = [h for h in state.get("healed", []) if h.get("action")]
    if not (state.get("opened") or state.get("resolved") or acted or state.get("notified")):
        return f"{HEARTBEAT} {state.get('sampled', 0)} signals sampled; nothing opened, resolved, healed or notified"
    return (f"{state.get('sampled', 0)} signals sampled; {len(state.get('opened', []))} incidents opened, "
            f"{len(state.get('resolved', []))} resolved; {len(acted)} healing actions; "
            f"{state.get('notified', 0)} notifications sent")


def build(deps: RunDeps) -> StateGraph[Any]:
    """The monitor as a run: every platform action goes through the run's toolbox."""

    def sample(state: MonitorState) -> dict[str, Any]:
        text = _api_text.get()
        res = deps.toolbox.call("ops.monitor_tick", {"api_text": text} if text is not None else {}, call_key="tick")
        if not res.ok or res.data is None:
            return {"sampled": 0, "opened": [], "resolved": [], "error": f"ops.monitor_tick {res.outcome}: "
                                                                         f"{res.message}"}
        d = res.data
        return {"sampled": d["sampled"], "opened": d["opened"], "resolved": d["resolved"], "error": d["error"]}

    def heal(state: MonitorState) -> dict[str, Any]:
        return {"healed": [] if state.get("error") else _heal_open()}

    def notify(state: MonitorState) -> dict[str, Any]:
        if state.get("error"):
            return {"notified": 0, "summary": _summary(state)}
        res = deps.toolbox.call("ops.send_notifications", {}, call_key="notify")
        sent = int((res.data or {}).get("sent", 0)) if res.ok else 0
        return {"notified": sent, "summary": _summary({**state, "notified": sent})}

    def prune(state: MonitorState) -> dict[str, Any]:
        res = deps.toolbox.call("ops.prune_monitor_history", {}, call_key="prune")
        return {"pruned": int((res.data or {}).get("pruned", 0)) if res.ok else 0}

    return _wire(sample, heal, notify, prune)


def _wire(sample: Any, heal: Any, notify: Any, prune: Any = None) -> StateGraph[Any]:
    g: StateGraph[Any] = StateGraph(MonitorState)
    g.add_node("sample", sample)
    g.add_node("heal", heal)
    g.add_node("notify", notify)
    g.add_edge(START, "sample")
    g.add_edge("sample", "heal")
    g.add_edge("heal", "notify")
    if prune is None:  # outside the runtime there are no runs to prune
        g.add_edge("notify", END)
    else:
        g.add_node("prune", prune)
        g.add_edge("notify", "prune")
        g.add_edge("prune", END)
    return g


def initial_state(deps: RunDeps, run_input: dict[str, Any]) -> dict[str, Any]:
    return {"healed": [], "opened": [], "resolved": []}


AGENT = register_agent(AgentDef(name="monitor", build=build, initial_state=initial_state,
                                system_prompt="You are Levqor's platform monitor."))


def _direct(api_text: str | None) -> MonitorState:
    """The same steps outside the runtime (no owner organisation, or the database cannot record a run)."""

    def sample(state: MonitorState) -> dict[str, Any]:
        res = monitor_tick(api_text=api_text)
        return {"sampled": res.sampled, "opened": res.opened, "resolved": res.resolved, "error": res.error}

    def heal(state: MonitorState) -> dict[str, Any]:
        return {"healed": [] if state.get("error") else _heal_open()}

    def notify(state: MonitorState) -> dict[str, Any]:
        sent = 0 if state.get("error") else send_notifications()
        return {"notified": sent, "summary": _summary({**state, "notified": sent})}

    out: MonitorState = cast(MonitorState, _wire(sample, heal, notify).compile().invoke({"healed": []}))
    return out


def run_monitor(api_text: str | None = None, *, trigger: str = "schedule") -> MonitorState:
    """Run the monitor once (``api_text``: the API's /metrics when it is not this process's): a monitor run
    on the runtime when an organisation owns platform runs, else directly. Never raises."""
    guard_disk()  # before the run is recorded: on a full disk the reserve makes room for it
    try:
        owner = platform_owner()
        token = _api_text.set(api_text)
        try:
            run_id = start_run("monitor", owner, trigger) if owner is not None else None
        finally:
            _api_text.reset(token)
    except Exception as exc:  # the database cannot record a run: still watch the platform
        log.warning("monitor run not recorded (%s); sampling directly", type(exc).__name__)
        return _direct(api_text)
    if run_id is None:
        return _direct(api_text)
    try:
        values = run_values(run_id)
    except Exception:
        values = {}
    if not values.get("summary") and not values.get("sampled"):
        # The run failed before its tick (e.g. the database went away mid-run): take the tick directly.
        return _direct(api_text)
    out: MonitorState = {**values, "run_id": run_id}  # type: ignore[typeddict-item]
    return out


def _scheduled() -> None:
    run_monitor()


def schedules() -> list[Schedule]:
    """The monitor runs every ``LEVQOR_OPS_SAMPLE_INTERVAL_S`` on the leading scheduler."""
    return [Schedule("ops.monitor", float(get_settings().ops_sample_interval_s), _scheduled)]
