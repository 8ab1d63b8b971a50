"""The examiner's daily schedule: declared for the scheduler leader (03:30 UTC), it asks for a run in each
organisation with attempts to review or flagged, and in the bank's owner (the docs watch), never where an
examiner run is still active; the scheduler edge starts the runs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy import delete

from memory.agents.models import AgentRun
from memory.certification.models import BankQuestion, DocPage, QuestionProposal
from memory.db import session_scope
from tests.api.test_certification import right_answers, start
from tests.factories.orgs import make_org
from tools.agents.runs import open_run
from tools.certification.schedule import daily


def _wipe_docs_watch() -> None:
    with session_scope() as s:
        for model in (BankQuestion, QuestionProposal, DocPage):
            s.execute(delete(model))


def test_daily_examiner_runs_where_there_is_work(client, set_settings: Any, tmp_path: Path) -> None:
    from workers import wiring
    from workers.scheduler import _trigger, start_requested

    sched = {s.name: s for s in wiring.schedules()}["certification.examiner"]
    fire = _trigger(sched.every).get_next_fire_time(None, dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC))
    assert sched.every == "cron:30 3 * * *" and fire == dt.datetime(2026, 12, 7, 3, 30, tzinfo=dt.UTC)

    owner, flagged, idle, busy = make_org(), make_org(), make_org(), make_org()
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# Page\n\n## One\n\nSome text.\n", encoding="utf-8")
    set_settings(staff_orgs=[owner.slug], cert_docs_root=str(tmp_path))
    for org in (flagged, busy):
        a = start(client, org)
        r = client.post(f"/v1/certification/exams/{a['id']}/submit", headers=org.headers(),
                        json={"answers": right_answers(a)})
        assert r.json()["flags"], r.text  # answered far too fast: flagged for the examiner
    open_run("examiner", busy.org_id, "manual")  # still active: no second run

    _wipe_docs_watch()  # the owner's first scan is a baseline
    requests = daily()
    asked = {r.org_id for r in requests}
    assert {owner.org_id, flagged.org_id} <= asked and not {idle.org_id, busy.org_id} & asked
    assert all(r.agent == "examiner" and r.trigger == "schedule" for r in requests)
    try:
        run_ids = start_requested([r for r in requests if r.org_id in (owner.org_id, flagged.org_id)])
        with session_scope() as s:
            runs = [s.get(AgentRun, i) for i in run_ids]
            assert [(r.status, r.trigger) for r in runs if r] == [("succeeded", "schedule")] * 2
            summaries = {r.org_id: r.summary or "" for r in runs if r}
        assert "baseline" in summaries[owner.org_id] and "flagged" in summaries[flagged.org_id]
        assert {r.org_id for r in daily()} >= {owner.org_id, flagged.org_id}  # ended runs do not block tomorrow
    finally:
        _wipe_docs_watch()
