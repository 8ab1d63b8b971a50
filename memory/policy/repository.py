"""Policy decisions: recorded for agents, counted for rate limits."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from memory.policy.models import PolicyDecision


class PolicyDecisionRepository:
    def __init__(self, session: Session):
        self.session = session

    def record(self, actor: str, tool: str, decision: str, reason: str, args: dict[str, Any]) -> None:
        self.session.add(PolicyDecision(actor=actor, tool=tool, decision=decision, reason=reason[:500], args=args))
        self.session.flush()

    def count_allowed(self, actor: str, tools: list[str] | None, window_s: int) -> int:
        """Allowed decisions for ``actor`` on ``tools`` (None: any tool) in the last ``window_s`` seconds."""
        since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=window_s)
        stmt = select(func.count()).select_from(PolicyDecision).where(
            PolicyDecision.actor == actor, PolicyDecision.decision == "allow", PolicyDecision.ts >= since
        )
        if tools is not None:
            stmt = stmt.where(PolicyDecision.tool.in_(tools))
        return int(self.session.scalar(stmt) or 0)
