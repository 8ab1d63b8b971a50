"""The agent runtime: agent definitions, the policy-checked toolbox of a run, runs, triggers and chat.

- :mod:`~agents.runtime.definitions`: ``AgentDef``, ``register_agent``, lookup, and ``RunDeps`` (what a
  run hands its graph);
- :mod:`~agents.runtime.toolbox`: the tools of one run, every call policy-checked and recorded; an
  approval becomes a LangGraph interrupt;
- :mod:`~agents.runtime.runs`: create, execute, resume after an approval, sweep; and what an edge calls
  to start the work a tool only recorded (``execute_after_commit``, ``resume_after_commit``);
- :mod:`~agents.runtime.triggers`: configured schedules and event reactions;
- :mod:`~agents.runtime.chat`: ``chat_stream``.

The runtime reaches the stores through ``tools.agents.runs`` and the checkpointer
(``memory.agents.checkpointer``) only. LangGraph and LangChain are imported when a run needs them, so
the API, which imports this package, starts without them.
"""

from agents.runtime.chat import MAX_CHAT_TURNS, chat_stream
from agents.runtime.definitions import (
    AGENT_MODULES,
    AgentDef,
    ChatEvent,
    RunDeps,
    agents,
    get_agent,
    record_llm_usage,
    register_agent,
)
from agents.runtime.runs import (
    ABANDONED_AFTER_S,
    create_run,
    execute_after_commit,
    execute_run,
    expire_approvals,
    resume_after_commit,
    resume_approval,
    run_values,
    start_run,
    sweep,
)
from agents.runtime.toolbox import FINAL_OUTCOMES, Toolbox, ToolResult, approval_ttl_s, llm_name
from agents.runtime.triggers import event_reactions, parse_schedule, run_for_all_orgs, scheduled_jobs, schedules
from memory.agents.checkpointer import checkpointer, reset_checkpointers
from tools.agents.catalog import offered_tools
from tools.agents.runs import TRIGGERS

__all__ = [
    "ABANDONED_AFTER_S", "AGENT_MODULES", "FINAL_OUTCOMES", "MAX_CHAT_TURNS", "TRIGGERS", "AgentDef", "ChatEvent",
    "RunDeps", "ToolResult", "Toolbox", "agents", "approval_ttl_s", "chat_stream", "checkpointer", "create_run",
    "event_reactions", "execute_after_commit", "execute_run", "expire_approvals", "get_agent", "llm_name",
    "offered_tools", "parse_schedule", "record_llm_usage", "register_agent", "reset_checkpointers",
    "resume_after_commit", "resume_approval", "run_for_all_orgs", "run_values", "schedules", "scheduled_jobs",
    "start_run", "sweep",
]
