"""Simulator: Monte Carlo what-ifs with intervals and stated assumptions; impossible inputs are 422s."""

from __future__ import annotations

import pytest

from tests.factories.orgs import OrgFixture
from tests.factories.pulse import seeded_org


@pytest.fixture(scope="module")
def sorg() -> OrgFixture:
    return seeded_org()


def _ordered(o: dict[str, float]) -> bool:
    return o["p10"] <= o["p50"] <= o["p90"]


def test_price_change_has_intervals_and_assumptions(client, sorg: OrgFixture) -> None:
    r = client.post("/v1/simulations", json={"kind": "price", "plan": "pro", "current_price_cents": 2900,
                                             "new_price_cents": 3500}, headers=sorg.headers("viewer"))
    assert r.status_code == 200, r.text
    out = r.json()
    for key in ("revenue_cents", "margin_cents", "partner_payouts_cents", "spend_per_day_cents"):
        assert _ordered(out["outcomes"][key]), key
    assert out["outcomes"]["revenue_cents"]["p10"] < out["outcomes"]["revenue_cents"]["p90"]  # uncertainty shown
    a = {x["name"]: x for x in out["assumptions"]}
    assert a["elasticity"]["source"] == "assumption"  # no plan price history: stated as an assumption
    assert a["current_price_cents"]["source"] == "input" and a["revenue_per_day_cents"]["source"] == "history"
    # Inelastic demand (-0.6 +- 0.25): a higher price raises revenue in the median case.
    assert out["outcomes"]["revenue_cents"]["p50"] > out["outcomes"]["revenue_cents"]["baseline"]
    assert {k["kpi"] for k in out["kpi_impact"]} >= {"revenue", "spend", "partner_revenue_share"}
    again = client.post("/v1/simulations", json={"kind": "price", "plan": "pro", "current_price_cents": 2900,
                                                 "new_price_cents": 3500}, headers=sorg.headers("viewer")).json()
    assert again["outcomes"] == out["outcomes"]  # seeded: reproducible


def test_credit_pack_elasticity_is_estimated_from_history(client, sorg: OrgFixture) -> None:
    r = client.post("/v1/simulations", json={"kind": "price", "plan": "credits", "new_price_cents": 7},
                    headers=sorg.headers())
    assert r.status_code == 200, r.text
    a = {x["name"]: x for x in r.json()["assumptions"]}
    assert a["elasticity"]["source"] == "history"
    # The demo history was generated with elasticity -0.8 (weekday effects add noise).
    assert -1.3 < a["elasticity"]["value"] < -0.4
    assert a["current_price_cents"]["source"] == "history" and a["current_price_cents"]["value"] == pytest.approx(6)


@pytest.mark.parametrize(("body", "field"), [
    ({"kind": "price", "plan": "pro", "new_price_cents": -100}, "new_price_cents"),
    ({"kind": "partner_share", "new_share_pct": 120}, "new_share_pct"),
    ({"kind": "partner_share", "new_share_pct": -1}, "new_share_pct"),
    ({"kind": "add_partners", "partners": 0}, "partners"),
    ({"kind": "llm", "new_model": "gpt-9-ultra"}, "new_model"),
    ({"kind": "price", "plan": "starter", "new_price_cents": 100}, "plan"),  # not in the billing catalogue
])
def test_impossible_parameters_are_422_naming_the_field(client, sorg: OrgFixture, body: dict[str, object],
                                                        field: str) -> None:
    r = client.post("/v1/simulations", json=body, headers=sorg.headers())
    assert r.status_code == 422, r.text
    assert field in r.json()["field"], r.json()


def test_partner_share_and_new_partners(client, sorg: OrgFixture) -> None:
    r = client.post("/v1/simulations", json={"kind": "partner_share", "new_share_pct": 80},
                    headers=sorg.headers()).json()
    pay = r["outcomes"]["partner_payouts_cents"]
    assert _ordered(pay) and pay["p50"] > pay["baseline"]  # a larger share pays partners more
    r2 = client.post("/v1/simulations", json={"kind": "partner_share", "new_share_pct": 95},
                     headers=sorg.headers()).json()
    assert any("outside policy" in w for w in r2["warnings"])
    r3 = client.post("/v1/simulations", json={"kind": "add_partners", "partners": 10},
                     headers=sorg.headers()).json()
    share = next(k for k in r3["kpi_impact"] if k["kpi"] == "partner_revenue_share")
    assert share["p50"] > share["baseline"] and share["op"] == ">=" and share["target"] == 20


def test_llm_model_and_schedule_change_move_spend(client, sorg: OrgFixture) -> None:
    r = client.post("/v1/simulations", json={"kind": "llm", "current_model": "gpt-4o-mini", "new_model": "gpt-4o"},
                    headers=sorg.headers()).json()
    llm = r["outcomes"]["llm_spend_per_day_cents"]
    assert llm["p50"] > 10 * llm["baseline"]  # gpt-4o is ~16x the price
    half = client.post("/v1/simulations", json={"kind": "llm", "runs_per_day_factor": 0.5},
                       headers=sorg.headers()).json()
    s = half["outcomes"]["spend_per_day_cents"]
    assert s["p90"] < s["baseline"] and _ordered(s)
    tool_out = client.post("/v1/simulations", json={"kind": "llm"}, headers=sorg.headers())
    assert tool_out.status_code == 422


def test_simulation_without_history_is_a_clear_422(client, org: OrgFixture) -> None:
    r = client.post("/v1/simulations", json={"kind": "add_partners", "partners": 2}, headers=org.headers())
    assert r.status_code == 422 and r.json()["field"] == "revenue" and "history" in r.json()["detail"]


def test_elasticity_estimator() -> None:
    import math
    import random

    from tools.decision_engine.simulator import estimate_elasticity

    rng = random.Random(1)
    prices = [5.0] * 30 + [6.0] * 30
    qty = [1000 * (p / 5) ** -1.2 * math.exp(rng.gauss(0, 0.02)) for p in prices]
    est = estimate_elasticity(prices, qty)
    assert est is not None and abs(est[0] + 1.2) < 0.1
    assert estimate_elasticity([5.0] * 60, qty) is None  # no price variation: no estimate
    assert estimate_elasticity(prices[:10], qty[:10]) is None  # too few points
