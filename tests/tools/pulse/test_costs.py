"""Cost DB: CSV import with validation (row and column named), idempotent re-import, summary, CLI."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.factories.orgs import OrgFixture, org_ctx
from tests.support.processes import levqor_env

GOOD = """day,source,amount_cents,description,ref
2026-10-01,infrastructure,12345,Hetzner invoice,hz-2026-10
2026-10-01,payment_fees,420,Stripe fees,
2026-10-02,llm,99,,
"""


def test_import_summary_and_reimport_is_idempotent(client, org: OrgFixture) -> None:
    h = {**org.headers(), "content-type": "text/csv"}
    r = client.post("/v1/costs/import", content=GOOD, headers=h)
    assert r.status_code == 200, r.text
    assert r.json() == {"rows": 3, "created": 3, "updated": 0, "total_cents": 12864}
    again = client.post("/v1/costs/import", content=GOOD.replace("12345", "12000"), headers=h)
    assert again.json()["created"] == 0 and again.json()["updated"] == 3
    s = client.get("/v1/costs", params={"days": 2}, headers=org.headers("viewer")).json()
    assert s["until"] == "2026-10-02" and s["total_cents"] == 12000 + 420 + 99
    by = {x["source"]: x for x in s["by_source"]}
    assert by["infrastructure"]["total_cents"] == 12000 and by["llm"]["total_cents"] == 99
    assert [d["day"] for d in s["by_day"]] == ["2026-10-01", "2026-10-02"]


@pytest.mark.parametrize(("text", "field", "words"), [
    ("day,source,amount_cents\n2026-13-01,llm,5\n", "day", ["row 2", "column day"]),
    ("day,source,amount_cents\n2026-10-01,llm,5\n2026-10-01,rent,5\n", "source", ["row 3", "column source"]),
    ("day,source,amount_cents\n2026-10-01,llm,12.50\n", "amount_cents", ["row 2", "column amount_cents",
                                                                       "whole number of cents"]),
    ("day,source,amount_cents\n2026-10-01,llm,-5\n", "amount_cents", ["row 2", "out of range"]),
    ("day,source,amount_cents,vat\n2026-10-01,llm,5,1\n", "vat", ["unknown column 'vat'"]),
    ("day,amount_cents\n2026-10-01,5\n", "source", ["missing required column 'source'"]),
    ("", "header", ["empty"]),
])
def test_bad_csv_is_422_naming_row_and_column(client, org: OrgFixture, text: str, field: str,
                                              words: list[str]) -> None:
    r = client.post("/v1/costs/import", content=text, headers={**org.headers(), "content-type": "text/csv"})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["field"] == field
    for w in words:
        assert w in body["detail"]
    s = client.get("/v1/costs", headers=org.headers()).json()
    assert s["total_cents"] == 0  # all rows or none


def test_add_cost_validates_amount(client, org: OrgFixture) -> None:
    r = client.post("/v1/costs", json={"day": "2026-10-03", "source": "infrastructure", "amount_cents": -1},
                    headers=org.headers())
    assert r.status_code == 422 and r.json()["field"] == "amount_cents"
    r = client.post("/v1/costs", json={"day": "2026-10-03", "source": "infrastructure", "amount_cents": 1500,
                                       "description": "backup box"}, headers=org.headers())
    assert r.status_code == 201 and r.json()["amount_cents"] == 1500
    assert client.post("/v1/costs", json={"day": "2026-10-03", "source": "infrastructure", "amount_cents": 1},
                       headers=org.headers("viewer")).status_code == 403


def test_llm_costs_from_agent_runs_are_synced(org: OrgFixture) -> None:
    import datetime as dt

    from memory.db import session_scope
    from tools.pulse.costs import summarize, sync_llm_costs

    day = dt.date.today() - dt.timedelta(days=1)
    from memory.agents.repository import AgentRepository

    with session_scope() as s:
        repo = AgentRepository(s)
        repo.add_usage(day=day, org_id=org.org_id, agent="janitor", model="gpt-4o-mini", tokens_in=10,
                       tokens_out=5, cost_micro_usd=1_234_567)
    with session_scope() as s:
        out = sync_llm_costs(org_ctx(s, org.org_id), day - dt.timedelta(days=2))
        assert out.days == 1 and out.total_cents == 123
        again = sync_llm_costs(org_ctx(s, org.org_id), day - dt.timedelta(days=2))
        assert again.total_cents == 123
        summary = summarize(org_ctx(s, org.org_id), 3, day)
        assert summary.total_cents == 123 and summary.by_source[0].source == "llm"


def test_cli_costs_import_reports_errors_and_imports(tmp_path, org: OrgFixture) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("day,source,amount_cents\n2026-10-01,llm,1.5\n")
    env = levqor_env()
    r = subprocess.run([sys.executable, "-m", "api.cli", "costs", "import", str(bad), "--org", org.slug],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "row 2, column amount_cents" in r.stderr
    good = tmp_path / "good.csv"
    good.write_text(GOOD)
    r = subprocess.run([sys.executable, "-m", "api.cli", "costs", "import", str(good), "--org", org.slug],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "imported 3 rows" in r.stdout and "128.64 USD" in r.stdout
