"""Which agents exist, what each is for, and the tools policy offers each.

The agents' graphs live above the tools (``agents/``), but what describes an agent is data the tools
need: ``agents.list`` shows it, ``agents.run`` and ``agents.chat`` refuse an unknown agent (and a chat
with an agent that acts on the whole platform). So the description is declared here, once, and an
agent's definition (``agents.runtime.AgentDef``) names its entry; registering a definition without one
fails. The tools stay complete operations with no edge logic in front of them, and no tool imports an
agent.
"""

from __future__ import annotations

from dataclasses import dataclass

from policies.engine import get_engine
from tools.errors import NotFound
from tools.registry import ToolRegistry, ToolSpec, registry


@dataclass(frozen=True)
class AgentInfo:
    """What describes one agent: its name, its description, whether its tools act on the whole platform."""

    name: str
    description: str
    # Its tools act on the whole platform (a principal with no organisation, like the ops healer); the
    # run's organisation owns the run record, its approvals and its costs.
    platform: bool = False


AGENTS: dict[str, AgentInfo] = {a.name: a for a in (
    AgentInfo("janitor", "Every few minutes, retries failed jobs whose error is retryable, within policy limits; "
                         "more than a threshold needs one approval for the batch."),
    AgentInfo("advisor", "Answers questions about KPIs, targets, costs, incidents and what-ifs with numbers from "
                         "tools."),
    AgentInfo("planner", "Weekly and on demand: finds KPIs missed or at risk and proposes suggestions with "
                         "evidence."),
    AgentInfo("monitor", "Every few seconds, samples the platform's signals, opens, updates and resolves incidents, "
                         "hands each open incident to the healer and sends incident notifications.", platform=True),
    AgentInfo("healer", "On each incident the monitor opens: diagnoses it, writes the summary, runs one playbook "
                        "action through policy and verifies it; an action that needs approval waits for a "
                        "person, and what fails or is rejected goes to a person.", platform=True),
    AgentInfo("examiner", "Daily and on demand, reviews certification exams: proposes marks for free-text "
                          "answers the matcher could not settle (LLM when configured) for a person to approve, "
                          "and reports flagged attempts (too fast, identical free text across candidates); "
                          "in the organisation that owns the question bank, drafts new questions from changed "
                          "docs pages for a person to approve into the bank."),
    AgentInfo("auditor", "The auditor agent (agent:auditor, not the human auditor role): runs partner audits "
                         "(quarterly, on new versions, on partner incidents), explains findings to partners, "
                         "past a deadline suspends the listing and holds payouts, and prepares the quarterly "
                         "governance report.", platform=True),
)}


def agent_info(name: str) -> AgentInfo:
    """The agent called ``name``; NotFound (field ``agent``) when there is none."""
    try:
        return AGENTS[name]
    except KeyError:
        raise NotFound(f"no agent called {name!r}", field="agent") from None


def offered_tools(agent: str, reg: ToolRegistry | None = None) -> dict[str, tuple[ToolSpec, str]]:
    """Tools policy.json allows ``agent`` (allow or needs_approval), with that outcome."""
    reg = reg or registry
    engine = get_engine()
    out: dict[str, tuple[ToolSpec, str]] = {}
    for spec in reg.all():
        decision = engine.evaluate(f"agent:{agent}", "agent", spec, {})
        if decision.outcome in ("allow", "needs_approval"):
            out[spec.name] = (spec, decision.outcome)
    return out
