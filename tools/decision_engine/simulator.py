"""What-if simulator: Monte Carlo over stated assumptions, with intervals (p10/p50/p90).

Every simulation starts from baselines read from the metrics feed (30-day means of revenue,
partner revenue, spend by source) and states every assumption it used and where it came from:
``history`` (estimated from the Pulse store), ``input`` (given by the caller) or ``assumption``
(a documented default, used when history is too thin). Impossible inputs are 422s naming the field.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from levqor.settings import get_settings
from policies.engine import get_engine
from tools.billing import catalogue
from tools.context import ToolContext
from tools.decision_engine.metrics_feed import MetricsFeed
from tools.errors import Unprocessable
from tools.pulse.targets import satisfies, targets_from_settings
from tools.registry import tool

# List prices come from the billing catalogue (monthly, per seat for enterprise); the revenue split
# between plans is a documented assumption until enough ledger history exists to estimate it.
PLAN_PRICES_CENTS: dict[str, int] = catalogue.list_prices_minor()
PLAN_REVENUE_FRACTION: dict[str, float] = {"pro": 0.45, "business": 0.35, "enterprise": 0.20, "credits": 1.0}
DEFAULT_ELASTICITY = (-0.6, 0.25)  # mean, sd: SaaS plan demand is inelastic but not flat
PARTNER_SUPPLY_ELASTICITY = (0.5, 0.3)  # partner revenue response to their share
DEFAULT_PARTNER_SHARE = 0.70
NEW_PARTNER_RAMP = (0.5, 0.2)  # a new partner earns this fraction of an average one in the first months
MIN_ELASTICITY_POINTS = 28


class Interval(BaseModel):
    baseline: float
    p10: float
    p50: float
    p90: float
    unit: str


class KpiImpact(BaseModel):
    kpi: str
    baseline: float | None
    p10: float | None
    p50: float | None
    p90: float | None
    target: float | None = None
    op: str | None = None
    meets_target_p50: bool | None = None


class Assumption(BaseModel):
    name: str
    value: float | str
    source: Literal["history", "input", "assumption"]
    note: str = ""


class SimulationResult(BaseModel):
    kind: str
    description: str
    horizon_days: int
    runs: int
    seed: int
    outcomes: dict[str, Interval]
    kpi_impact: list[KpiImpact]
    assumptions: list[Assumption]
    warnings: list[str] = []


class _SimBase(BaseModel):
    horizon_days: int = Field(30, ge=1, le=365)
    runs: int = Field(2000, ge=100, le=20000)
    seed: int = Field(7, ge=0, le=2**31 - 1)


class PriceIn(_SimBase):
    kind: Literal["price"] = "price"
    plan: str = Field("pro", pattern=f"^({'|'.join(catalogue.PAID_PLANS)}|credits)$",
                      description="Plan whose price changes, or 'credits' for the credit pack")
    current_price_cents: int | None = Field(None, gt=0, le=10**8)
    new_price_cents: int = Field(ge=0, le=10**8, description="New price in cents (0 or more)")
    elasticity: float | None = Field(None, ge=-5, le=0, description="Price elasticity of demand; default: "
                                                                    "estimated from history or assumed")
    plan_revenue_fraction: float | None = Field(None, gt=0, le=1)


class PartnerShareIn(_SimBase):
    kind: Literal["partner_share"] = "partner_share"
    current_share_pct: float | None = Field(None, ge=0, le=100)
    new_share_pct: float = Field(ge=0, le=100, description="Partners' share of plugin revenue, percent")


class AddPartnersIn(_SimBase):
    kind: Literal["add_partners"] = "add_partners"
    partners: int = Field(ge=1, le=10000, description="Partners added")
    current_partners: int | None = Field(None, ge=1, le=100000)


class LlmIn(_SimBase):
    kind: Literal["llm"] = "llm"
    current_model: str = Field("gpt-4o-mini", max_length=100)
    new_model: str | None = Field(None, max_length=100)
    runs_per_day_factor: float | None = Field(None, gt=0, le=100,
                                              description="Schedule frequency change, e.g. 0.5 = half as often")

    @model_validator(mode="after")
    def _something(self) -> LlmIn:
        if self.new_model is None and self.runs_per_day_factor is None:
            raise ValueError("give new_model or runs_per_day_factor")
        return self


class _Baseline:
    """30-day baselines read from the feed (per day; money in cents)."""

    def __init__(self, ctx: ToolContext):
        self.feed = MetricsFeed(ctx)
        self.assumptions: list[Assumption] = []
        self.revenue = self._need("revenue")
        self.revenue_sd = self._sd("revenue")
        pr = self.feed.values("partner_revenue", 30)
        self.partner_revenue = sum(pr) / len(pr) if pr else 0.0
        if pr:
            self.assumptions.append(Assumption(name="partner_revenue_per_day_cents",
                                               value=round(self.partner_revenue), source="history",
                                               note=f"mean of {len(pr)} days"))
        else:
            self.assumptions.append(Assumption(name="partner_revenue_per_day_cents", value=0, source="assumption",
                                               note="no partner revenue history"))
        costs = self.feed.costs_by_source(30)
        days = 30
        self.spend = sum(costs.values()) / days
        self.llm = costs.get("llm", 0) / days
        self.fees = costs.get("payment_fees", 0) / days
        self.assumptions.append(Assumption(name="spend_per_day_cents", value=round(self.spend), source="history",
                                           note="Cost DB, last 30 days"))
        self.fee_rate = self.fees / self.revenue if self.revenue else 0.0

    def _need(self, kpi: str) -> float:
        vals = self.feed.values(kpi, 30)
        if not vals:
            raise Unprocessable(f"{kpi}: no history in the Pulse store to simulate from (take snapshots first)",
                                field=kpi)
        mean = sum(vals) / len(vals)
        self.assumptions.append(Assumption(name=f"{kpi}_per_day_cents", value=round(mean), source="history",
                                           note=f"mean of {len(vals)} days"))
        return mean

    def _sd(self, kpi: str) -> float:
        vals = self.feed.values(kpi, 30)
        if len(vals) < 2:
            return 0.0
        m = sum(vals) / len(vals)
        return math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1))


def estimate_elasticity(prices: list[float], quantities: list[float],
                        days: list[dt.date] | None = None) -> tuple[float, float] | None:
    """Elasticity from history: least squares of log quantity on log price, controlling for a linear
    trend and weekends when ``days`` are given. (elasticity, standard error), or None if too thin."""
    import numpy as np  # kept lazy: start-up time (numpy costs the API ~0.3 s; only simulations need it)

    rows = [(math.log(p), math.log(q), i) for i, (p, q) in enumerate(zip(prices, quantities, strict=True))
            if p > 0 and q > 0]
    if len(rows) < MIN_ELASTICITY_POINTS:
        return None
    x = np.array([r[0] for r in rows])
    y = np.array([r[1] for r in rows])
    if float(np.var(x)) < 1e-4:  # price barely moved: history says nothing about elasticity
        return None
    cols = [np.ones(len(rows)), x]
    if days is not None:
        idx = [r[2] for r in rows]
        cols.append(np.array([(days[i] - days[0]).days for i in idx], dtype=float))
        weekend = np.array([1.0 if days[i].weekday() >= 5 else 0.0 for i in idx])
        if weekend.any() and not weekend.all():
            cols.append(weekend)
    design = np.column_stack(cols)
    coef, _res, rank, _sv = np.linalg.lstsq(design, y, rcond=None)
    if rank < design.shape[1]:
        return None  # price moves with the trend only: not identifiable
    resid = y - design @ coef
    dof = max(len(rows) - design.shape[1], 1)
    cov = float(resid @ resid) / dof * np.linalg.inv(design.T @ design)
    return float(coef[1]), float(math.sqrt(max(cov[1, 1], 0.0)))


def _pct(values: Any, base: float, unit: str, digits: int = 0) -> Interval:
    import numpy as np  # kept lazy: start-up time

    p10, p50, p90 = (float(np.percentile(values, q)) for q in (10, 50, 90))
    return Interval(baseline=round(base, digits), p10=round(p10, digits), p50=round(p50, digits),
                    p90=round(p90, digits), unit=unit)


def _impacts(ctx: ToolContext, impacts: dict[str, tuple[float | None, Any]]) -> list[KpiImpact]:
    import numpy as np  # kept lazy: start-up time

    specs = targets_from_settings()
    out = []
    for kpi, (base, arr) in impacts.items():
        spec = specs.get(kpi)
        if arr is None:
            out.append(KpiImpact(kpi=kpi, baseline=base, p10=None, p50=None, p90=None))
            continue
        p10, p50, p90 = (round(float(np.percentile(arr, q)), 2) for q in (10, 50, 90))
        out.append(KpiImpact(kpi=kpi, baseline=None if base is None else round(base, 2), p10=p10, p50=p50, p90=p90,
                             target=spec.value if spec else None, op=spec.op if spec else None,
                             meets_target_p50=satisfies(p50, spec.op, spec.value) if spec else None))
    return out


def _finish(ctx: ToolContext, kind: str, desc: str, p: _SimBase, b: _Baseline, revenue: Any, spend: Any,
            partner_rev: Any, share: Any, extra: list[Assumption], warnings: list[str] | None = None,
            ) -> SimulationResult:
    h = p.horizon_days
    payouts = partner_rev * share
    margin = revenue - spend - payouts
    base_share = b.partner_revenue * DEFAULT_PARTNER_SHARE
    base_margin = b.revenue - b.spend - base_share
    outcomes = {
        "revenue_cents": _pct(revenue * h, b.revenue * h, "cents"),
        "margin_cents": _pct(margin * h, base_margin * h, "cents"),
        "partner_payouts_cents": _pct(payouts * h, base_share * h, "cents"),
        "spend_per_day_cents": _pct(spend, b.spend, "cents/day"),
    }
    import numpy as np  # kept lazy: start-up time

    with np.errstate(divide="ignore", invalid="ignore"):
        share_pct = np.where(revenue > 0, 100.0 * partner_rev / revenue, 0.0)
    base_share_pct = 100.0 * b.partner_revenue / b.revenue if b.revenue else None
    impact = _impacts(ctx, {"revenue": (b.revenue, revenue), "spend": (b.spend, spend),
                            "partner_revenue_share": (base_share_pct, share_pct)})
    return SimulationResult(kind=kind, description=desc, horizon_days=h, runs=p.runs, seed=p.seed, outcomes=outcomes,
                            kpi_impact=impact, assumptions=b.assumptions + extra, warnings=warnings or [])


def simulate_price_change(ctx: ToolContext, p: PriceIn) -> SimulationResult:
    import numpy as np  # kept lazy: start-up time

    rng = np.random.default_rng(p.seed)
    b = _Baseline(ctx)
    extra: list[Assumption] = []
    if p.current_price_cents is not None:
        p0 = float(p.current_price_cents)
        extra.append(Assumption(name="current_price_cents", value=p0, source="input"))
    elif p.plan == "credits":
        implied = _credit_price_history(b.feed)
        if not implied:
            raise Unprocessable("current_price_cents: no credit sales history; give the current price",
                                field="current_price_cents")
        p0 = implied[-1][0]
        extra.append(Assumption(name="current_price_cents", value=round(p0, 4), source="history",
                                note="revenue / credits sold, latest day"))
    else:
        p0 = float(PLAN_PRICES_CENTS[p.plan])
        extra.append(Assumption(name="current_price_cents", value=p0, source="assumption",
                                note=f"list price of {p.plan}"))
    # Elasticity: input, else history (credits: implied price vs credits sold), else an assumption.
    if p.elasticity is not None:
        e_mean, e_sd = p.elasticity, 0.0
        extra.append(Assumption(name="elasticity", value=p.elasticity, source="input"))
    else:
        est = None
        if p.plan == "credits":
            hist = _credit_price_history(b.feed)
            est = estimate_elasticity([h[0] for h in hist], [h[1] for h in hist],
                                      [h[2] for h in hist]) if hist else None
        if est is not None:
            e_mean, e_sd = est
            extra.append(Assumption(name="elasticity", value=round(e_mean, 3), source="history",
                                    note=f"log-log fit of credits sold on price (trend and weekends "
                                         f"controlled), se {e_sd:.3f}"))
        else:
            e_mean, e_sd = DEFAULT_ELASTICITY
            extra.append(Assumption(name="elasticity", value=e_mean, source="assumption",
                                    note=f"not enough price variation in history; sd {e_sd}"))
    frac = p.plan_revenue_fraction if p.plan_revenue_fraction is not None else PLAN_REVENUE_FRACTION[p.plan]
    extra.append(Assumption(name="plan_revenue_fraction", value=frac,
                            source="input" if p.plan_revenue_fraction is not None else "assumption",
                            note="share of revenue from this plan; varied +-15 %"))
    extra.append(Assumption(name="new_price_cents", value=p.new_price_cents, source="input"))
    n = p.runs
    e = np.minimum(rng.normal(e_mean, e_sd, n), 0.0)
    f = np.clip(frac * rng.uniform(0.85, 1.15, n), 0, 1)
    r0 = np.maximum(rng.normal(b.revenue, b.revenue_sd / math.sqrt(30), n), 0)
    ratio = p.new_price_cents / p0 if p0 else 1.0
    revenue = r0 * (1 - f) + r0 * f * (ratio ** (1 + e) if ratio > 0 else 0.0)
    spend = b.spend + b.fee_rate * (revenue - b.revenue)
    partner_rev = np.full(n, b.partner_revenue)
    share = np.full(n, DEFAULT_PARTNER_SHARE)
    desc = f"{p.plan} price {p0 / 100:.2f} -> {p.new_price_cents / 100:.2f} USD"
    return _finish(ctx, "price", desc, p, b, revenue, spend, partner_rev, share, extra)


def _credit_price_history(feed: MetricsFeed) -> list[tuple[float, float, dt.date]]:
    until = feed.latest_day()
    since = until - dt.timedelta(days=179)
    rev = dict(feed.series("revenue", since, until))
    sold = dict(feed.series("credits_sold", since, until))
    out = []
    for day in sorted(set(rev) & set(sold)):
        r, q = rev[day], sold[day]
        if r and q:
            out.append((r / q, q, day))
    return out


def simulate_partner_share_change(ctx: ToolContext, p: PartnerShareIn) -> SimulationResult:
    import numpy as np  # kept lazy: start-up time

    rng = np.random.default_rng(p.seed)
    b = _Baseline(ctx)
    cur = (p.current_share_pct / 100) if p.current_share_pct is not None else DEFAULT_PARTNER_SHARE
    new = p.new_share_pct / 100
    extra = [Assumption(name="current_share", value=cur, source="input" if p.current_share_pct is not None
                        else "assumption", note="partners' share of plugin revenue"),
             Assumption(name="new_share", value=new, source="input"),
             Assumption(name="partner_supply_elasticity", value=PARTNER_SUPPLY_ELASTICITY[0], source="assumption",
                        note=f"partner revenue ~ share^eta, sd {PARTNER_SUPPLY_ELASTICITY[1]}")]
    rs = get_engine().doc.revenue_share
    warnings = []
    if not rs.min_partner_share <= new <= rs.max_partner_share:
        warnings.append(f"a {p.new_share_pct:g} % share is outside policy.json's allowed range "
                        f"{rs.min_partner_share * 100:g}-{rs.max_partner_share * 100:g} %")
    n = p.runs
    eta = rng.normal(*PARTNER_SUPPLY_ELASTICITY, n)
    ratio = new / cur if cur else 1.0
    pr = b.partner_revenue * (ratio ** eta if ratio > 0 else np.zeros(n))
    revenue = np.maximum(rng.normal(b.revenue, b.revenue_sd / math.sqrt(30), n), 0) - b.partner_revenue + pr
    spend = b.spend + b.fee_rate * (revenue - b.revenue)
    desc = f"partner share {cur * 100:g} % -> {new * 100:g} %"
    res = _finish(ctx, "partner_share", desc, p, b, revenue, spend, pr, np.full(n, new), extra, warnings)
    # Baseline payouts use the current share, not the default.
    res.outcomes["partner_payouts_cents"].baseline = round(b.partner_revenue * cur * p.horizon_days)
    return res


def simulate_new_partners(ctx: ToolContext, p: AddPartnersIn) -> SimulationResult:
    import numpy as np  # kept lazy: start-up time

    rng = np.random.default_rng(p.seed)
    b = _Baseline(ctx)
    current = p.current_partners or 10
    per = b.partner_revenue / current if current else 0.0
    extra = [Assumption(name="current_partners", value=current,
                        source="input" if p.current_partners else "assumption",
                        note="active partners (the partner area does not report it yet)"),
             Assumption(name="revenue_per_partner_per_day_cents", value=round(per), source="history",
                        note="partner revenue / current partners"),
             Assumption(name="new_partner_ramp", value=NEW_PARTNER_RAMP[0], source="assumption",
                        note=f"a new partner earns this fraction of an average one, sd {NEW_PARTNER_RAMP[1]}"),
             Assumption(name="partners_added", value=p.partners, source="input")]
    n = p.runs
    ramp = np.clip(rng.normal(*NEW_PARTNER_RAMP, n), 0, 2)
    spread = rng.lognormal(0, 0.35, n)
    added = p.partners * per * ramp * spread
    pr = b.partner_revenue + added
    revenue = np.maximum(rng.normal(b.revenue, b.revenue_sd / math.sqrt(30), n), 0) + added
    spend = b.spend + b.fee_rate * (revenue - b.revenue)
    desc = f"add {p.partners} partners to {current}"
    return _finish(ctx, "add_partners", desc, p, b, revenue, spend, pr, np.full(n, DEFAULT_PARTNER_SHARE), extra)


def blended_price(model: str) -> float:
    """Cents per token of ``model`` for agent calls' mix of input and output tokens."""
    prices = get_settings().llm_prices
    if model not in prices:
        raise Unprocessable(f"new_model: unknown model {model!r}; priced models: {', '.join(sorted(prices))}",
                            field="new_model")
    # Agent calls read far more than they write: 3 input tokens per output token.
    return 0.75 * prices[model]["in"] + 0.25 * prices[model]["out"]


def simulate_llm_change(ctx: ToolContext, p: LlmIn) -> SimulationResult:
    import numpy as np  # kept lazy: start-up time

    rng = np.random.default_rng(p.seed)
    b = _Baseline(ctx)
    if p.current_model not in get_settings().llm_prices:
        raise Unprocessable(f"current_model: unknown model {p.current_model!r}", field="current_model")
    factor = 1.0
    extra = [Assumption(name="llm_spend_per_day_cents", value=round(b.llm), source="history",
                        note="Cost DB source llm, last 30 days"),
             Assumption(name="current_model", value=p.current_model, source="input")]
    parts = []
    if p.new_model:
        factor *= blended_price(p.new_model) / blended_price(p.current_model)
        extra.append(Assumption(name="new_model", value=p.new_model, source="input"))
        extra.append(Assumption(name="token_mix_in_per_out", value=3, source="assumption"))
        parts.append(f"model {p.current_model} -> {p.new_model}")
    n = p.runs
    sched = np.ones(n)
    if p.runs_per_day_factor is not None:
        scheduled_share = np.clip(rng.normal(0.6, 0.15, n), 0, 1)
        sched = (1 - scheduled_share) + scheduled_share * p.runs_per_day_factor
        extra.append(Assumption(name="runs_per_day_factor", value=p.runs_per_day_factor, source="input"))
        extra.append(Assumption(name="scheduled_share_of_llm_spend", value=0.6, source="assumption", note="sd 0.15"))
        parts.append(f"schedule x{p.runs_per_day_factor:g}")
    drift = rng.normal(1.0, 0.1, n)
    llm_new = b.llm * factor * sched * drift
    spend = b.spend - b.llm + llm_new
    revenue = np.maximum(rng.normal(b.revenue, b.revenue_sd / math.sqrt(30), n), 0)
    res = _finish(ctx, "llm", ", ".join(parts), p, b, revenue, spend, np.full(n, b.partner_revenue),
                  np.full(n, DEFAULT_PARTNER_SHARE), extra)
    res.outcomes["llm_spend_per_day_cents"] = _pct(llm_new, b.llm, "cents/day")
    return res


@tool("decision.simulate_price", risk="read")
def simulate_price(ctx: ToolContext, params: PriceIn) -> SimulationResult:
    """Simulate a plan or credit pack price change: revenue, margin, spend and KPI impact with intervals."""
    return simulate_price_change(ctx, params)


@tool("decision.simulate_partner_share", risk="read")
def simulate_partner_share(ctx: ToolContext, params: PartnerShareIn) -> SimulationResult:
    """Simulate changing the partners' revenue share: payouts, revenue, margin and partner share KPI."""
    return simulate_partner_share_change(ctx, params)


@tool("decision.simulate_add_partners", risk="read")
def simulate_add_partners(ctx: ToolContext, params: AddPartnersIn) -> SimulationResult:
    """Simulate adding N partners: partner revenue, payouts, revenue and the partner share KPI."""
    return simulate_new_partners(ctx, params)


@tool("decision.simulate_llm", risk="read")
def simulate_llm(ctx: ToolContext, params: LlmIn) -> SimulationResult:
    """Simulate an LLM model or agent schedule frequency change: LLM spend, spend per day and margin."""
    return simulate_llm_change(ctx, params)


SIMULATION_TOOLS: dict[str, str] = {"price": "decision.simulate_price",
                                    "partner_share": "decision.simulate_partner_share",
                                    "add_partners": "decision.simulate_add_partners",
                                    "llm": "decision.simulate_llm"}
