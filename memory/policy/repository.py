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

    def count_allowed(self, actor: str, tool: str | None, window_s: int) -> int:
        since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=window_s)
        stmt = select(func.count()).select_from(PolicyDecision).where(
            PolicyDecision.actor == actor, PolicyDecision.decision == "allow", PolicyDecision.ts >= since
        )
        if tool is not None:
            stmt = stmt.where(PolicyDecision.tool == tool)
        return int(self.session.scalar(stmt) or 0)
