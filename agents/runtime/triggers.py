"""When agents run on their own: the configured schedules, the sweep, and reactions to platform events.

The scheduler edge collects :func:`schedules` and the dispatcher :func:`event_reactions`
(``workers.wiring``); both read the settings when called (``LEVQOR_AGENT_SCHEDULES``,
``LEVQOR_AGENT_EVENT_TRIGGERS``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from agents.runtime.definitions import get_agent
from agents.runtime.runs import execute_after_commit, execute_run, sweep
from levqor.settings import get_settings
from tools.agents import runs as store
from tools.events.service import EventRecord, Reaction
from tools.registry import ToolRegistry
from tools.schedules import Schedule, current_tick


def run_for_all_orgs(agent: str, trigger: str = "schedule", reg: ToolRegistry | None = None) -> list[int]:
    """Run ``agent`` once per organisation (skipping orgs where it is still active); on the scheduler,
    once per tick (a tick re-run by the next leader starts no run twice)."""
    get_agent(agent)
    ids = store.queue_for_all_orgs(agent, trigger, tick=current_tick())
    for run_id in ids:
        execute_run(run_id, reg=reg)
    return ids


def parse_schedule(spec: str) -> tuple[str, Any]:
    """``interval:300`` -> ("interval", 300.0); ``cron:*/5 * * * *`` -> ("cron", CronTrigger)."""
    kind, _, value = spec.partition(":")
    if kind == "interval":
        seconds = float(value)
        if seconds <= 0:
            raise ValueError(f"schedule {spec!r}: interval must be positive")
        return "interval", seconds
    if kind == "cron":
        from apscheduler.triggers.cron import CronTrigger  # kept lazy: only the scheduler needs APScheduler

        return "cron", CronTrigger.from_crontab(value.strip(), timezone="UTC")
    raise ValueError(f"schedule {spec!r}: use interval:SECONDS or cron:MIN HOUR DOM MON DOW")


def scheduled_jobs() -> list[tuple[str, str, Any, Callable[[], None]]]:
    """(job name, kind, interval seconds or cron trigger, function) for each configured agent schedule."""
    out: list[tuple[str, str, Any, Callable[[], None]]] = []
    for agent, spec in get_settings().agent_schedules.items():
        get_agent(agent)
        kind, value = parse_schedule(spec)

        def job(_agent: str = agent) -> None:
            run_for_all_orgs(_agent, "schedule")

        out.append((f"agent.{agent}", kind, value, job))
    out.append(("agents.sweep", "interval", 30.0, sweep))
    return out


def schedules() -> list[Schedule]:
    """The configured agent schedules and the agents' sweep, for the scheduler edge to run."""
    out: list[Schedule] = []
    for name, kind, value, fn in scheduled_jobs():
        every: float | str = value if kind == "interval" else "cron:" + get_settings().agent_schedules[
            name.removeprefix("agent.")].partition(":")[2]
        out.append(Schedule(name, every, fn))
    return out


def event_reactions() -> list[Reaction]:
    """Agents started by platform events, as configured (``LEVQOR_AGENT_EVENT_TRIGGERS``)."""
    out: list[Reaction] = []
    for event, names in get_settings().agent_event_triggers.items():
        for agent in names:
            get_agent(agent)
            out.append(Reaction(event, f"agents.trigger.{agent}", handle=_event_handler(agent)))
    return out


def _event_handler(agent: str) -> Callable[[Session, EventRecord], None]:
    def handle(session: Session, event: EventRecord) -> None:
        if event.org_id is None:
            return
        # One run at a time per organisation: a burst of events coalesces into the active run.
        run_id = store.queue_unless_active(session, agent, event.org_id, "event",
                                           input={"event": event.name, "event_id": event.uid,
                                                  "payload": event.payload})
        if run_id is not None:
            # Queued in the handler's transaction; executed once it commits (the sweep catches a crash).
            execute_after_commit(session, run_id)

    return handle
