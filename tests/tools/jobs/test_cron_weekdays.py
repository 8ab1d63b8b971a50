"""Weekdays in five-field crontabs (pipeline schedules, agent schedules, feature schedules all parse them
with APScheduler's ``CronTrigger.from_crontab``): names mean what they say; numbers count from 0 = Monday,
as docs/dev_portal/pipelines.md states, not from Sunday as in classic cron (and 7 is refused)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tools.jobs.pipelines import next_fire

SUNDAY = dt.datetime(2026, 12, 6, 8, 0, tzinfo=dt.UTC)


def test_weekday_names_and_numbers_fire_as_the_docs_say() -> None:
    assert next_fire("0 7 * * mon-fri", SUNDAY).strftime("%a %H:%M") == "Mon 07:00"
    assert next_fire("0 7 * * sun", SUNDAY).date() == dt.date(2026, 12, 13)
    assert next_fire("0 7 * * sat,sun", SUNDAY).strftime("%a") == "Sat"
    assert next_fire("0 7 * * 0", SUNDAY).strftime("%a") == "Mon"  # APScheduler's numbering
    assert next_fire("0 7 * * 6", SUNDAY).strftime("%a") == "Sun"
    with pytest.raises(ValueError):
        next_fire("0 7 * * 7", SUNDAY)
    doc = (Path(__file__).resolve().parents[3] / "docs/dev_portal/pipelines.md").read_text(encoding="utf-8")
    assert "Write weekdays as names (`mon-fri`): numbers in the weekday field count from 0 = Monday" in doc
