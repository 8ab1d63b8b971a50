"""Agent runs, tool calls, approvals, LLM costs and chat threads: all their SQL."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import Update, delete, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql import func

from memory.agents.models import AgentApproval, AgentMessage, AgentRun, AgentThread, AgentToolCall, LlmBreaker, LlmCost
from memory.db import utcnow
from memory.identity.models import Organization
from memory.policy.models import PolicyDecision

ACTIVE = ("queued", "running", "waiting_approval")


def _updated(session: Session, stmt: Update) -> int:
    """Run an UPDATE; how many rows it changed (a claim is won when it changed one)."""
    return cast(CursorResult[Any], session.execute(stmt)).rowcount


class AgentRepository:
    def __init__(self, session: Session):
        self.session = session

    @classmethod
    def from_session(cls, session: Session) -> AgentRepository:
        return cls(session)

    # ---- runs ----------------------------------------------------------------------------------

    def add_run(self, run: AgentRun) -> AgentRun:
        self.session.add(run)
        self.session.flush()
        return run

    def run(self, run_id: int, org_id: int | None = None) -> AgentRun | None:
        run = self.session.get(AgentRun, run_id)
        if run is None or (org_id is not None and run.org_id != org_id):
            return None
        return run

    def runs(self, org_id: int, *, agent: str | None = None, status: str | None = None,
             before_id: int | None = None, limit: int = 50) -> list[AgentRun]:
        stmt = select(AgentRun).where(AgentRun.org_id == org_id)
        if agent:
            stmt = stmt.where(AgentRun.agent == agent)
        if status:
            stmt = stmt.where(AgentRun.status == status)
        if before_id:
            stmt = stmt.where(AgentRun.id < before_id)
        return list(self.session.scalars(stmt.order_by(AgentRun.id.desc()).limit(limit)))

    def prune_runs(self, org_id: int, agent: str, *, summary_prefix: str, keep: int,
                   limit: int = 500) -> list[str]:
        """Delete the ended runs of ``agent`` whose summary starts with ``summary_prefix`` past the newest
        ``keep`` of them (at most ``limit`` at a time) with their tool calls; return their thread ids."""
        old = self.session.execute(select(AgentRun.id, AgentRun.thread_id).where(
            AgentRun.org_id == org_id, AgentRun.agent == agent, AgentRun.status == "succeeded",
            AgentRun.summary.startswith(summary_prefix, autoescape=True))
            .order_by(AgentRun.id.desc()).offset(keep).limit(limit)).all()
        ids = [r.id for r in old]
        if ids:
            self.session.execute(delete(AgentToolCall).where(AgentToolCall.run_id.in_(ids)))
            self.session.execute(delete(AgentRun).where(AgentRun.id.in_(ids)))
        return [r.thread_id for r in old]

    def active_run(self, org_id: int, agent: str) -> AgentRun | None:
        return self.session.scalar(select(AgentRun).where(
            AgentRun.org_id == org_id, AgentRun.agent == agent, AgentRun.status.in_(ACTIVE)).limit(1))

    def active_runs(self, agent: str, limit: int = 200) -> list[AgentRun]:
        """Runs of ``agent`` in any organisation that have not ended (queued, running, waiting)."""
        return list(self.session.scalars(select(AgentRun).where(
            AgentRun.agent == agent, AgentRun.status.in_(ACTIVE)).order_by(AgentRun.id.desc()).limit(limit)))

    def runs_of_tick(self, agent: str, tick: str) -> list[AgentRun]:
        """Runs of ``agent`` started for scheduler tick ``tick`` (``input.tick``), in any organisation."""
        since = utcnow() - dt.timedelta(days=2)  # a tick is re-run within a day (tools.schedules)
        return list(self.session.scalars(select(AgentRun).where(
            AgentRun.agent == agent, AgentRun.created_at >= since,
            AgentRun.input["tick"].as_string() == tick).order_by(AgentRun.id)))

    def claim_run(self, run_id: int, from_status: str = "queued") -> bool:
        """Move a run from ``from_status`` to running; only one caller wins."""
        if not _updated(self.session, update(AgentRun).where(
                AgentRun.id == run_id, AgentRun.status == from_status).values(status="running")):
            return False
        self.session.execute(update(AgentRun).where(AgentRun.id == run_id, AgentRun.started_at.is_(None))
                             .values(started_at=utcnow()))
        return True

    def queued_run_ids(self, older_than: dt.datetime, limit: int = 20) -> list[int]:
        return list(self.session.scalars(select(AgentRun.id).where(
            AgentRun.status == "queued", AgentRun.created_at < older_than)
            .order_by(AgentRun.id).limit(limit)))

    def stale_running_ids(self, started_before: dt.datetime, limit: int = 100) -> list[int]:
        return list(self.session.scalars(select(AgentRun.id).where(
            AgentRun.status == "running", AgentRun.started_at < started_before).order_by(AgentRun.id).limit(limit)))

    def bump_run(self, run_id: int, *, steps: int = 0, tools_called: int = 0, tokens_in: int = 0,
                 tokens_out: int = 0, cost_micro_usd: int = 0) -> None:
        self.session.execute(update(AgentRun).where(AgentRun.id == run_id).values(
            steps=AgentRun.steps + steps, tools_called=AgentRun.tools_called + tools_called,
            tokens_in=AgentRun.tokens_in + tokens_in, tokens_out=AgentRun.tokens_out + tokens_out,
            cost_micro_usd=AgentRun.cost_micro_usd + cost_micro_usd))

    def set_mode(self, run_id: int, mode: str) -> None:
        """Set the run's mode (``offline``: no model, as when its LLM was unavailable)."""
        self.session.execute(update(AgentRun).where(AgentRun.id == run_id).values(
            mode=mode, model=None if mode == "offline" else AgentRun.model))

    def set_status(self, run_id: int, status: str, *, summary: str | None = None, error: str | None = None,
                   finished: bool = False) -> None:
        values: dict[str, Any] = {"status": status}
        if summary is not None:
            values["summary"] = summary
        if error is not None:
            values["error"] = error[-4000:]
        if finished:
            values["finished_at"] = utcnow()
        self.session.execute(update(AgentRun).where(AgentRun.id == run_id).values(**values))

    def org_ids(self) -> list[int]:
        return list(self.session.scalars(select(Organization.id).order_by(Organization.id)))

    # ---- tool calls ----------------------------------------------------------------------------

    def tool_call(self, run_id: int, call_key: str) -> AgentToolCall | None:
        return self.session.scalar(select(AgentToolCall).where(AgentToolCall.run_id == run_id,
                                                               AgentToolCall.call_key == call_key))

    def add_tool_call(self, call: AgentToolCall) -> AgentToolCall:
        self.session.add(call)
        self.session.flush()
        return call

    def tool_calls(self, run_id: int) -> list[AgentToolCall]:
        return list(self.session.scalars(select(AgentToolCall).where(AgentToolCall.run_id == run_id)
                                         .order_by(AgentToolCall.id)))

    def last_policy_reason(self, actor: str, tool: str) -> str | None:
        return self.session.scalar(select(PolicyDecision.reason).where(
            PolicyDecision.actor == actor, PolicyDecision.tool == tool, PolicyDecision.decision == "needs_approval")
            .order_by(PolicyDecision.id.desc()).limit(1))

    def recent_calls(self, org_id: int, agent: str, tools: list[str], since: dt.datetime,
                     limit: int) -> list[AgentToolCall]:
        """Successful calls (ok or approved) of ``tools`` by ``agent`` in ``org_id`` since ``since``."""
        return list(self.session.scalars(
            select(AgentToolCall).join(AgentRun, AgentRun.id == AgentToolCall.run_id).where(
                AgentRun.org_id == org_id, AgentToolCall.agent == agent, AgentToolCall.tool.in_(tools),
                AgentToolCall.outcome.in_(("ok", "approved")), AgentToolCall.created_at >= since)
            .order_by(AgentToolCall.id.desc()).limit(limit)))

    # ---- approvals -----------------------------------------------------------------------------

    def approval(self, approval_id: int, org_id: int | None = None) -> AgentApproval | None:
        ap = self.session.get(AgentApproval, approval_id)
        if ap is None or (org_id is not None and ap.org_id != org_id):
            return None
        return ap

    def approval_for(self, run_id: int, call_key: str) -> AgentApproval | None:
        return self.session.scalar(select(AgentApproval).where(AgentApproval.run_id == run_id,
                                                               AgentApproval.call_key == call_key))

    def add_approval(self, ap: AgentApproval) -> AgentApproval | None:
        """Insert ``ap``; None when that (run, call) already has one (another process was first)."""
        try:
            with self.session.begin_nested():
                self.session.add(ap)
            return ap
        except IntegrityError:
            return None

    def approvals(self, org_id: int, *, status: str | None = None, before_id: int | None = None,
                  limit: int = 50) -> list[AgentApproval]:
        stmt = select(AgentApproval).where(AgentApproval.org_id == org_id)
        if status:
            stmt = stmt.where(AgentApproval.status == status)
        if before_id:
            stmt = stmt.where(AgentApproval.id < before_id)
        return list(self.session.scalars(stmt.order_by(AgentApproval.id.desc()).limit(limit)))

    def decide(self, approval_id: int, status: str, by: str, note: str | None,
               edited_args: dict[str, Any] | None) -> bool:
        """Set a pending approval's decision; False when it was no longer pending."""
        return bool(_updated(self.session, update(AgentApproval).where(
            AgentApproval.id == approval_id, AgentApproval.status == "pending").values(
            status=status, decided_by=by, decided_at=utcnow(), note=note, edited_args=edited_args)))

    def expired_pending_ids(self, now: dt.datetime, limit: int = 100) -> list[int]:
        return list(self.session.scalars(select(AgentApproval.id).where(
            AgentApproval.status == "pending", AgentApproval.expires_at <= now).order_by(AgentApproval.id)
            .limit(limit)))

    def decided_unresumed_ids(self, older_than: dt.datetime, limit: int = 100) -> list[int]:
        return list(self.session.scalars(select(AgentApproval.id).where(
            AgentApproval.status != "pending", AgentApproval.resumed_at.is_(None),
            AgentApproval.decided_at < older_than).order_by(AgentApproval.id).limit(limit)))

    def claim_resume(self, approval_id: int) -> bool:
        """Mark a decided approval as being resumed; only one process wins."""
        return bool(_updated(self.session, update(AgentApproval).where(
            AgentApproval.id == approval_id, AgentApproval.status != "pending",
            AgentApproval.resumed_at.is_(None)).values(resumed_at=utcnow())))

    # ---- LLM costs -----------------------------------------------------------------------------

    def add_usage(self, *, day: dt.date, org_id: int, agent: str, model: str, tokens_in: int, tokens_out: int,
                  cost_micro_usd: int) -> None:
        """Add one LLM call's tokens and cost to the day's row (created on first use)."""
        values = {"calls": LlmCost.calls + 1, "tokens_in": LlmCost.tokens_in + tokens_in,
                  "tokens_out": LlmCost.tokens_out + tokens_out,
                  "cost_micro_usd": LlmCost.cost_micro_usd + cost_micro_usd}
        where = (LlmCost.day == day, LlmCost.org_id == org_id, LlmCost.agent == agent, LlmCost.model == model)
        for _ in range(3):
            if _updated(self.session, update(LlmCost).where(*where).values(**values)):
                return
            try:
                with self.session.begin_nested():
                    self.session.add(LlmCost(day=day, org_id=org_id, agent=agent, model=model, calls=1,
                                             tokens_in=tokens_in, tokens_out=tokens_out,
                                             cost_micro_usd=cost_micro_usd))
                return
            except IntegrityError:
                continue
        raise RuntimeError("could not record LLM usage")

    def costs(self, org_id: int, since: dt.date | None = None) -> list[LlmCost]:
        stmt = select(LlmCost).where(LlmCost.org_id == org_id)
        if since:
            stmt = stmt.where(LlmCost.day >= since)
        return list(self.session.scalars(stmt.order_by(LlmCost.day, LlmCost.agent, LlmCost.model)))

    # ---- chat ----------------------------------------------------------------------------------

    def add_thread(self, thread: AgentThread) -> AgentThread:
        self.session.add(thread)
        self.session.flush()
        return thread

    def thread(self, thread_id: int, org_id: int, owner: str) -> AgentThread | None:
        return self.session.scalar(select(AgentThread).where(
            AgentThread.id == thread_id, AgentThread.org_id == org_id, AgentThread.owner == owner))

    def add_message(self, msg: AgentMessage) -> AgentMessage:
        self.session.add(msg)
        self.session.execute(update(AgentThread).where(AgentThread.id == msg.thread_id)
                             .values(updated_at=utcnow()))
        self.session.flush()
        return msg

    def messages(self, thread_id: int, limit: int = 200) -> list[AgentMessage]:
        rows = self.session.scalars(select(AgentMessage).where(AgentMessage.thread_id == thread_id)
                                    .order_by(AgentMessage.id.desc()).limit(limit))
        return list(reversed(list(rows)))


class LlmBreakerRepository:
    """The LLM endpoints' circuit breakers: each change is one conditional write, so processes agree."""

    def __init__(self, session: Session):
        self.session = session

    def get(self, endpoint: str) -> LlmBreaker | None:
        return self.session.get(LlmBreaker, endpoint)

    def all(self) -> list[LlmBreaker]:
        return list(self.session.scalars(select(LlmBreaker).order_by(LlmBreaker.endpoint)))

    def _row(self, endpoint: str) -> LlmBreaker:
        row = self.session.get(LlmBreaker, endpoint)
        if row is None:
            try:
                with self.session.begin_nested():
                    self.session.add(LlmBreaker(endpoint=endpoint, state="closed", failures=0, changed_at=utcnow()))
            except IntegrityError:
                pass
            row = self.session.get(LlmBreaker, endpoint)
            assert row is not None
        return row

    def take_probe(self, endpoint: str, now: dt.datetime, probe_s: float) -> bool:
        """Move an open breaker whose wait is over (or a half-open one whose probe was lost) to half-open
        with this caller's probe out; only one caller wins."""
        return bool(_updated(self.session, update(LlmBreaker).where(
            LlmBreaker.endpoint == endpoint,
            ((LlmBreaker.state == "open") & (LlmBreaker.retry_at <= now))
            | ((LlmBreaker.state == "half_open") & (LlmBreaker.probe_until <= now)))
            .values(state="half_open", probe_until=now + dt.timedelta(seconds=probe_s), changed_at=now)))

    def succeeded(self, endpoint: str, now: dt.datetime) -> str | None:
        """A call answered: close the breaker; the state it left (None if it was closed with no failures)."""
        row = self.session.get(LlmBreaker, endpoint)
        if row is None or (row.state == "closed" and not row.failures):
            return None
        before = row.state
        self.session.execute(update(LlmBreaker).where(LlmBreaker.endpoint == endpoint).values(
            state="closed", failures=0, opened_at=None, retry_at=None, probe_until=None, changed_at=now))
        return before

    def failed(self, endpoint: str, now: dt.datetime, error: str, *, threshold: int, open_s: float) -> str:
        """A call timed out or got a server error: count it, and open the breaker at ``threshold`` failures
        in a row (or at once when it was half-open: the probe failed); its state now."""
        row = self._row(endpoint)
        self.session.execute(update(LlmBreaker).where(LlmBreaker.endpoint == endpoint).values(
            failures=LlmBreaker.failures + 1, last_error=error[:500], changed_at=now))
        self.session.refresh(row)
        if row.state == "half_open" or row.failures >= threshold:
            self.session.execute(update(LlmBreaker).where(LlmBreaker.endpoint == endpoint).values(
                state="open", opened_at=row.opened_at or now, retry_at=now + dt.timedelta(seconds=open_s),
                probe_until=None))
            self.session.refresh(row)
        return row.state

    def spent_today(self, org_id: int, agent: str, day: dt.date) -> int:
        """Micro-USD ``agent`` spent on LLM calls in ``org_id`` on ``day``."""
        return int(self.session.scalar(select(func.coalesce(func.sum(LlmCost.cost_micro_usd), 0)).where(
            LlmCost.org_id == org_id, LlmCost.agent == agent, LlmCost.day == day)) or 0)

    def spend_by_agent(self, day: dt.date) -> list[tuple[int, str, int]]:
        """``(org_id, agent, micro-USD)`` of every agent's LLM spend on ``day``."""
        rows = self.session.execute(select(LlmCost.org_id, LlmCost.agent, func.sum(LlmCost.cost_micro_usd))
                                    .where(LlmCost.day == day).group_by(LlmCost.org_id, LlmCost.agent))
        return [(int(o), str(a), int(c or 0)) for o, a, c in rows]
