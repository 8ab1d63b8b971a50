"""The monitor graph: sample -> heal -> notify, run by the scheduler every ``ops_sample_interval_s``.

Deterministic nodes (no LLM): ``sample`` is one monitor tick (signals, detector scores, rules,
correlation into incidents; a dead database connection is reported, never raised), ``heal`` takes one
healing step on every open incident (the healer graph, so an LLM summary is written when configured),
``notify`` sends queued incident notifications.
"""

from __future__ import annotations

from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph

from agents.healer.graph import run_healer
from levqor.settings import get_settings
from tools.auto_intel.monitor import monitor_tick
from tools.auto_intel.notifications import send_notifications
from tools.auto_intel.self_heal import open_incident_ids
from tools.schedules import Schedule


class MonitorState(TypedDict, total=False):
    api_text: str | None  # Prometheus text of the API's metrics when it runs elsewhere (the chaos suite)
    sampled: int
    opened: list[int]
    resolved: list[int]
    error: str | None
    healed: list[dict[str, Any]]
    notified: int


def sample(state: MonitorState) -> dict[str, Any]:
    res = monitor_tick(api_text=state.get("api_text"))
    return {"sampled": res.sampled, "opened": res.opened, "resolved": res.resolved, "error": res.error}


def heal(state: MonitorState) -> dict[str, Any]:
    if state.get("error"):
        return {"healed": []}
    steps = []
    for iid in open_incident_ids():
        out = run_healer(iid)
        steps.append({"incident_id": iid, **out.get("step", {})})
    return {"healed": steps}


def notify(state: MonitorState) -> dict[str, Any]:
    if state.get("error"):
        return {"notified": 0}
    return {"notified": send_notifications()}


def build() -> Any:
    g: StateGraph[Any] = StateGraph(MonitorState)
    g.add_node("sample", sample)
    g.add_node("heal", heal)
    g.add_node("notify", notify)
    g.add_edge(START, "sample")
    g.add_edge("sample", "heal")
    g.add_edge("heal", "notify")
    g.add_edge("notify", END)
    return g.compile()


_graph: Any = None


def run_monitor(api_text: str | None = None) -> MonitorState:
    """Run the monitor graph once (``api_text``: the API's /metrics when it is not this process's)."""
    global _graph
    if _graph is None:
        _graph = build()
    out: MonitorState = _graph.invoke({"api_text": api_text} if api_text is not None else {})
    return out


def _scheduled() -> None:
    run_monitor()


def schedules() -> list[Schedule]:
    """The monitor runs every ``LEVQOR_OPS_SAMPLE_INTERVAL_S`` on the leading scheduler."""
    return [Schedule("ops.monitor", float(get_settings().ops_sample_interval_s), _scheduled)]
