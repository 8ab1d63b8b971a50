"""The agents' definitions: how to build each graph and its first state, and what a run hands them.

Each agent module (``AGENT_MODULES``) registers its :class:`AgentDef` on import; the definitions are
loaded on the first lookup so ``levqor`` starts without LangGraph. What describes an agent (its
description, whether it acts on the whole platform) is in ``tools.agents.catalog``, where the tools
that list agents and queue their runs read it; a definition must name an entry there.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from agents import llm as llm_client
from agents.runtime.toolbox import Toolbox
from levqor import llm as llm_backend
from levqor.metrics import LLM_TOKENS
from tools.agents import llm_guard
from tools.agents import runs as store
from tools.agents.catalog import AGENTS, AgentInfo
from tools.agents.runs import RunInfo
from tools.errors import NotFound
from tools.registry import ToolRegistry

log = logging.getLogger("levqor.agents")

# Modules that define agents (each calls :func:`register_agent` on import).
AGENT_MODULES: tuple[str, ...] = ("agents.janitor.graph", "agents.advisor.graph", "agents.planner.graph",
                                  "agents.healer.graph", "agents.examiner.graph",
                                  "agents.auditor.graph", "agents.monitor.graph")


@dataclass
class RunDeps:
    """What a graph's nodes use: the toolbox, the model (None offline), and the run's ids."""

    agent: str
    org_id: int
    run_id: int
    toolbox: Toolbox
    mode: str
    model: Any = None  # a ChatOpenAI in LLM mode
    model_name: str | None = None
    history: list[tuple[str, str]] = field(default_factory=list)  # a chat's earlier (role, content), oldest first

    def record_llm(self, message: Any) -> None:
        """Count one model response's tokens and cost on the run and in the cost store."""
        usage = getattr(message, "usage_metadata", None) or {}
        record_llm_usage(self.run_id, self.org_id, self.agent, self.model_name or llm_backend.model_name(),
                         int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0)))


@dataclass
class ChatEvent:
    """One server-sent event of a chat answer: token | tool_call | tool_result | done | error."""

    event: str
    data: dict[str, Any]


@dataclass(frozen=True)
class AgentDef:
    """One agent: how to build its graph and its first state, and its offline chat handler."""

    name: str
    build: Callable[[RunDeps], Any]  # returns an uncompiled StateGraph
    initial_state: Callable[[RunDeps, dict[str, Any]], dict[str, Any]]
    offline_chat: Callable[[RunDeps, str], Iterator[ChatEvent]] | None = None
    system_prompt: str = ""

    @property
    def info(self) -> AgentInfo:
        return AGENTS[self.name]

    @property
    def description(self) -> str:
        return self.info.description

    @property
    def platform(self) -> bool:
        """Its tools act on the whole platform; the run's organisation owns the run, approvals and costs."""
        return self.info.platform


_agents: dict[str, AgentDef] = {}
_loaded = False
_load_lock = threading.Lock()


def register_agent(agent: AgentDef) -> AgentDef:
    if agent.name not in AGENTS:
        raise ValueError(f"agent {agent.name}: describe it in tools/agents/catalog.py")
    _agents[agent.name] = agent
    return agent


def agents() -> dict[str, AgentDef]:
    global _loaded
    with _load_lock:
        if not _loaded:
            for mod in AGENT_MODULES:
                importlib.import_module(mod)
            _loaded = True
    return dict(_agents)


def get_agent(name: str) -> AgentDef:
    try:
        return agents()[name]
    except KeyError:
        raise NotFound(f"no agent called {name!r}", field="agent") from None


def record_llm_usage(run_id: int, org_id: int, agent: str, model: str, tokens_in: int, tokens_out: int) -> None:
    """Count one LLM call's tokens and cost on the run, in the cost store and in the metrics."""
    cost = llm_backend.cost_micro_usd(model, tokens_in, tokens_out)
    store.record_usage(run_id, org_id, agent, model, tokens_in, tokens_out, cost)
    LLM_TOKENS.labels(agent=agent, model=model, direction="in").inc(tokens_in)
    LLM_TOKENS.labels(agent=agent, model=model, direction="out").inc(tokens_out)


def run_deps(run: RunInfo, reg: ToolRegistry | None, *, interruptible: bool = True) -> RunDeps:
    """What the run's graph (or chat) gets: its toolbox and, in LLM mode, the model."""
    toolbox = Toolbox(run.agent, run.org_id, run.id, reg, interruptible=interruptible,
                      platform=get_agent(run.agent).platform)
    if run.mode == "llm":
        why = llm_guard.offline_now(run.org_id, run.agent)
        if not why:
            return RunDeps(run.agent, run.org_id, run.id, toolbox, "llm",
                           llm_client.chat_model(agent=run.agent, org_id=run.org_id),
                           run.model or llm_backend.model_name())
        log.warning("LLM unavailable; the run goes offline", extra={"fields": {"run": run.id, "why": why}})
        store.go_offline(run.id)
    return RunDeps(run.agent, run.org_id, run.id, toolbox, "offline")
