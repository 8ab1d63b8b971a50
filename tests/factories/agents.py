"""Agent runs as the runtime recorded them."""

from __future__ import annotations

from memory.agents.models import AgentRun
from tests.factories.rows import detached


def agent_run(run_id: int) -> AgentRun:
    """Agent run ``run_id`` as a detached row."""
    return detached(AgentRun, run_id)
