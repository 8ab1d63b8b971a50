"""What the loops run, collected from the features that declare it in their own modules.

Nothing below this package appends to a global list: each feature declares its schedules (``SCHEDULES``
or ``schedules()`` when an interval is a setting) and its reactions to events (``REACTIONS``, or
``event_reactions()`` for agents configured by settings), and this module is the one place that
gathers them.
"""

from __future__ import annotations

from agents.healer import graph as healer
from agents.monitor import graph as monitor
from agents.runtime import triggers as agent_triggers
from tools.billing import dunning
from tools.certification import schedule as examiner_daily
from tools.community import announcements
from tools.data_insights import report_builder as insights
from tools.enterprise import audit_log, sla
from tools.events.service import Reaction, Reactions
from tools.governance import review_cycle
from tools.jobs import demo as jobs_demo
from tools.jobs import email_notifications, triggers
from tools.partner_api import fanout, payouts
from tools.pulse import checks as pulse
from tools.schedules import Schedule
from tools.shared import ratelimit


def schedules() -> list[Schedule]:
    """Every scheduled job, in the order the scheduler adds them (settings are read now)."""
    return [*audit_log.schedules(), *triggers.SCHEDULES, *jobs_demo.SCHEDULES, *payouts.SCHEDULES,
            *pulse.schedules(), *monitor.schedules(), *agent_triggers.schedules(),
            *ratelimit.SCHEDULES, *dunning.schedules(), *sla.SCHEDULES,
            *review_cycle.schedules(), *insights.schedules(),
            *announcements.schedules(), *examiner_daily.SCHEDULES]


def reaction_list() -> list[Reaction]:
    """Every reaction to platform events (settings are read now)."""
    return [*triggers.REACTIONS, *email_notifications.REACTIONS, *fanout.REACTIONS, *healer.REACTIONS,
            *review_cycle.REACTIONS, *agent_triggers.event_reactions()]


def reactions() -> Reactions:
    """The dispatcher's table of every reaction."""
    return Reactions(reaction_list())
