"""The auditor agent (principal ``agent:auditor``; the "auditor agent", not the human auditor role): one
review cycle as a run on the agent runtime.

audit -> explain -> notify -> enforce -> report. Every step is a policy-checked tool call through the
run's toolbox. Offline, failed audits keep the template explanation the audit wrote; with an LLM
configured the model rewrites it in plain language for the partner (``governance.explain``), falling
back to the template on any error. Past a deadline the listing is suspended (``plugins.set_state``) and
payouts held (``partners.set_status``), pre-approved for this agent by name within rate limits in
``policy.json``. The quarterly run also prepares the quarter's governance report for staff.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from langgraph.graph import END, START, StateGraph

from agents.auditor import prompts
from agents.auditor.state import AuditorState
from agents.runtime import AgentDef, RunDeps, register_agent
from tools.errors import AppError
from tools.governance import explain
from tools.governance.review_cycle import enforce_one
from tools.governance.service import Claims, Due, run_claimed

log = logging.getLogger("levqor.agents.auditor")


class StepFailed(AppError):
    status_code = 409
    title = "Auditor step failed"
    type_slug = "auditor-step-failed"


def build(deps: RunDeps) -> StateGraph[Any]:
    def call(name: str, args: dict[str, Any], key: str | None = None) -> dict[str, Any]:
        res = deps.toolbox.call(name, args, call_key=key)
        if not res.ok or res.data is None:
            raise StepFailed(f"{name}: {res.outcome}: {res.message}")
        return res.data

    def audit(state: AuditorState) -> dict[str, Any]:
        # The claim commits with its tool call; each audit is then probed with no transaction open and
        # recorded under its lease (a replayed node finds them recorded and probes nothing).
        claims = Claims.model_validate(call("governance.claim", {"limit": 50}, "claim"))
        return {"audited": run_claimed(claims, deps.toolbox.principal)}

    def explain_node(state: AuditorState) -> dict[str, Any]:
        out = []
        for audit_id in call("governance.pending", {}, "pending")["pending"]:
            by = "template"
            if deps.mode == "llm" and deps.model is not None:
                a = call("governance.get", {"audit_id": audit_id}, f"get:{audit_id}")
                by = _llm_explain(deps, a, call) or "template"
            out.append({"audit_id": audit_id, "by": by})
        return {"explained": out}

    def notify(state: AuditorState) -> dict[str, Any]:
        done = []
        for e in state.get("explained") or []:
            call("governance.notify", {"audit_id": e["audit_id"]}, f"notify:{e['audit_id']}")
            done.append(e["audit_id"])
        return {"notified": done}

    def enforce(state: AuditorState) -> dict[str, Any]:
        done = []
        for item in call("governance.due", {}, "due")["items"]:
            d = Due.Item.model_validate(item)
            done.append(enforce_one(d, _keyed(call, d.audit_id)))
        return {"enforced": done}

    def report(state: AuditorState) -> dict[str, Any]:
        rep = None
        if state.get("quarter"):
            rep = call("governance.report", {"quarter": state["quarter"]}, "report")
        return {"report": rep, "summary": prompts.summary({**state, "report": rep})}

    g: StateGraph[Any] = StateGraph(AuditorState)
    for name, fn in (("audit", audit), ("explain", explain_node), ("notify", notify), ("enforce", enforce),
                     ("report", report)):
        g.add_node(name, fn)
    g.add_edge(START, "audit")
    g.add_edge("audit", "explain")
    g.add_edge("explain", "notify")
    g.add_edge("notify", "enforce")
    g.add_edge("enforce", "report")
    g.add_edge("report", END)
    return g


def _keyed(call: Callable[..., dict[str, Any]], audit_id: int) -> Callable[[str, dict[str, Any]], Any]:
    """``call`` with a replay key per tool and audit (a resumed run gets the recorded answers)."""
    def keyed(name: str, args: dict[str, Any]) -> Any:
        return call(name, args, f"{name}:{audit_id}")

    return keyed


def _llm_explain(deps: RunDeps, a: dict[str, Any], call: Any) -> str | None:
    """Ask the model for the partner's explanation and store it; None (template kept) on any failure."""
    from langchain_core.messages import HumanMessage, SystemMessage  # kept lazy: start-up time

    try:
        answer = deps.model.invoke([SystemMessage(prompts.SYSTEM), HumanMessage(explain.ask(a))])
        deps.record_llm(answer)
        deadline = dt.datetime.fromisoformat(a["deadline_at"]) if a.get("deadline_at") else None
        text = explain.accept(str(answer.content), deadline)
        if text is None:
            return None
        call("governance.explain", {"audit_id": a["id"], "text": text}, f"explain:{a['id']}")
        return "llm"
    except Exception:
        log.warning("LLM explanation failed; keeping the template", exc_info=True,
                    extra={"fields": {"run": deps.run_id, "audit": a["id"]}})
        return None


def initial_state(deps: RunDeps, run_input: dict[str, Any]) -> dict[str, Any]:
    """The cycle's input: ``quarter`` (with ``report``) for the quarterly run; nothing for a tick."""
    return {"quarter": run_input.get("quarter") if run_input.get("report") else None}


# Described (and marked as acting on the whole platform) in tools/agents/catalog.py.
AGENT = register_agent(AgentDef(name="auditor", build=build, initial_state=initial_state,
                                system_prompt=prompts.SYSTEM))
