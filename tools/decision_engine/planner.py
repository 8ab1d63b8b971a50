"""The planner: read the feed, find KPIs missed or at risk and their drivers, propose suggestions.

Deterministic: the same data gives the same suggestions. Each suggestion carries its evidence
(numbers and a 30-day series for a chart), the expected effect (a simulator run) and a confidence.
A proposal already made for the same KPI (proposed, accepted or rejected) is not made again, and the
run says which ones it skipped and why; nor is a second one of the same kind while one is open.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, computed_field

from levqor.llm import model_name
from levqor.settings import get_settings
from memory.agents.repository import AgentRepository
from memory.db import utcnow
from memory.pulse.models import PlannerRun, Suggestion
from memory.pulse.repository import PulseRepository
from tools.context import ToolContext
from tools.decision_engine.metrics_feed import MetricsFeed
from tools.decision_engine.simulator import (
    AddPartnersIn,
    LlmIn,
    PartnerShareIn,
    SimulationResult,
    blended_price,
    simulate_add_partners,
    simulate_llm,
    simulate_partner_share,
)
from tools.enterprise import audit_log
from tools.errors import Conflict, NotFound
from tools.pulse.targets import TargetEval, evaluate
from tools.registry import Tool, tool

SimIn = TypeVar("SimIn", bound=BaseModel)


class SuggestionRead(BaseModel):
    id: int
    run_id: int | None
    kpi: str
    kind: str
    title: str
    rationale: str
    evidence: dict[str, Any]
    expected_effect: dict[str, Any]
    confidence: float
    status: str
    created_at: dt.datetime
    decided_at: dt.datetime | None
    decided_by: str | None
    note: str | None

    @classmethod
    def of(cls, s: Suggestion) -> SuggestionRead:
        return cls(id=s.id, run_id=s.run_id, kpi=s.kpi, kind=s.kind, title=s.title, rationale=s.rationale,
                   evidence=s.evidence, expected_effect=s.expected_effect, confidence=s.confidence, status=s.status,
                   created_at=s.created_at, decided_at=s.decided_at, decided_by=s.decided_by, note=s.note)


class Finding(BaseModel):
    kpi: str
    status: str
    actual: float | None
    target: float
    drivers: list[str]


class AlreadyMade(BaseModel):
    """A proposal the run did not make again: the suggestion that already made it, and its status."""

    suggestion_id: int
    kpi: str
    title: str
    status: str


class PlannerRunRead(BaseModel):
    id: int
    trigger: str
    created_at: dt.datetime
    findings: list[Finding]
    suggestions: list[SuggestionRead]
    already: list[AlreadyMade] = []

    @computed_field  # type: ignore[prop-decorator]
    @property
    def summary(self) -> str:
        """One line for people: what was proposed, and what was not proposed again."""
        parts = [f"{len(self.suggestions)} new suggestion{'s' if len(self.suggestions) != 1 else ''}"
                 + (" for " + ", ".join(sorted({s.kpi for s in self.suggestions})) if self.suggestions else "")]
        if self.already:
            by = {st: sum(1 for a in self.already if a.status == st) for st in ("proposed", "accepted", "rejected")}
            said = ", ".join(f"{n} {st}" for st, n in by.items() if n)
            parts.append(f"{len(self.already)} not proposed again (already {said}: "
                         + "; ".join(f"#{a.suggestion_id} {a.title}" for a in self.already) + ")")
        if not self.findings:
            parts = ["every KPI target is met; nothing to propose"]
        return "; ".join(parts)


def _series(feed: MetricsFeed, kpi: str, days: int = 30) -> list[list[Any]]:
    until = feed.latest_day()
    return [[d.isoformat(), v] for d, v in feed.series(kpi, until - dt.timedelta(days=days - 1), until)]


def _sim(ctx: ToolContext, simulate: Tool[SimIn, SimulationResult], model: type[SimIn],
         **params: Any) -> dict[str, Any]:
    """Run a simulation as the caller (policy-checked) and keep what a suggestion shows of it."""
    out = simulate(ctx, model(**params)).model_dump(mode="json")
    return {"tool": simulate.name, "params": params, "description": out["description"],
            "outcomes": {k: {kk: v[kk] for kk in ("baseline", "p10", "p50", "p90", "unit")}
                         for k, v in out["outcomes"].items()},
            "kpi_impact": out["kpi_impact"]}


def _proposals(ctx: ToolContext, feed: MetricsFeed, t: TargetEval) -> tuple[list[str], list[dict[str, Any]]]:
    """Drivers of one off-target KPI and the suggestions that address it."""
    drivers: list[str] = []
    out: list[dict[str, Any]] = []
    evidence: dict[str, Any] = {"actual": t.actual, "target": t.target, "op": t.op, "window": t.window,
                                "status": t.status, "trend": t.trend.model_dump(), "series": _series(feed, t.kpi)}
    if t.kpi == "spend":
        by_source = feed.costs_by_source(30)
        total = sum(by_source.values()) or 1
        top = sorted(by_source.items(), key=lambda kv: -kv[1])
        drivers = [f"{s}: {c / 100:.2f} USD over 30 days ({100 * c / total:.0f} %)" for s, c in top[:3]]
        evidence["costs_by_source_cents"] = dict(top)
        if by_source.get("llm", 0) > 0:
            current = model_name()
            priced = get_settings().llm_prices
            if current in priced:
                cheapest = min(priced, key=blended_price)
                if blended_price(cheapest) < blended_price(current):
                    eff = _sim(ctx, simulate_llm, LlmIn, current_model=current, new_model=cheapest)
                    ratio = blended_price(current) / blended_price(cheapest)
                    out.append({"kind": "llm_model", "title": f"Move agent LLM calls from {current} to {cheapest}",
                                "rationale": f"LLM tokens drive daily spend; {cheapest} is priced about "
                                             f"{ratio:.0f}x lower per token.", "effect": eff, "confidence": 0.7})
            eff2 = _sim(ctx, simulate_llm, LlmIn, runs_per_day_factor=0.5)
            out.append({"kind": "schedule", "title": "Run scheduled agents half as often",
                        "rationale": "Scheduled agent runs make up most LLM use; halving their frequency cuts "
                                     "that part of the spend.", "effect": eff2, "confidence": 0.55})
    elif t.kpi == "partner_revenue_share":
        pr = feed.mean("partner_revenue") or 0
        rev = feed.mean("revenue") or 0
        drivers = [f"partner revenue {pr / 100:.2f} USD/day vs total {rev / 100:.2f} USD/day"]
        evidence["partner_revenue_per_day_cents"] = round(pr)
        evidence["revenue_per_day_cents"] = round(rev)
        eff = _sim(ctx, simulate_add_partners, AddPartnersIn, partners=5)
        out.append({"kind": "add_partners", "title": "Recruit 5 more plugin partners this quarter",
                    "rationale": "Partner revenue is below its share target; each active partner adds revenue.",
                    "effect": eff, "confidence": 0.5})
        eff2 = _sim(ctx, simulate_partner_share, PartnerShareIn, new_share_pct=80)
        out.append({"kind": "partner_share", "title": "Raise the partner revenue share from 70 % to 80 %",
                    "rationale": "A higher share attracts partner supply; payouts rise with it.",
                    "effect": eff2, "confidence": 0.4})
    elif t.kpi == "uptime":
        eb = t.error_budget
        drivers = [f"{eb.used_minutes:g} of {eb.allowed_minutes:g} min error budget used"] if eb else []
        evidence["error_budget"] = eb.model_dump() if eb else None
        out.append({"kind": "reliability", "title": "Freeze risky deploys until the error budget recovers",
                    "rationale": "Downtime this month is eating the 99.98 % budget; add a second API replica "
                                 "and review the failing /readyz probes.", "effect": {}, "confidence": 0.6})
    elif t.kpi == "certified_users":
        vals = feed.values("certified_users", 30)
        growth = (vals[-1] - vals[0]) / max(len(vals) - 1, 1) if len(vals) > 1 else 0.0
        need = t.target - (t.actual or 0)
        days = round(need / growth) if growth > 0 else None
        drivers = [f"{growth:.2f} new certified users per day; {need:g} more needed"
                   + (f" (about {days} days at this pace)" if days else "")]
        evidence["growth_per_day"] = round(growth, 3)
        out.append({"kind": "certification_campaign", "title": "Run a certification sprint with partner agencies",
                    "rationale": "At the current pace the 100-expert goal is far off; a sprint with vouchers "
                                 "for partner staff raises the rate.",
                    "effect": {"projection_days_at_current_pace": days}, "confidence": 0.45})
    elif t.kpi == "manual_incidents":
        drivers = [f"{t.actual:g} manual incidents this quarter"]
        out.append({"kind": "self_heal", "title": "Turn the most frequent manual fix into a self-heal rule",
                    "rationale": "Each repeated manual incident is a candidate for the healer agent.",
                    "effect": {}, "confidence": 0.5})
    for o in out:
        o["evidence"] = {**evidence, "drivers": drivers}
    return drivers, out


def run_planner(ctx: ToolContext, *, trigger: str = "manual") -> PlannerRunRead:
    """Evaluate targets and propose suggestions for every KPI missed or at risk."""
    repo = PulseRepository(ctx.session)
    report = evaluate(ctx.session, ctx.org_id)
    feed = MetricsFeed(ctx)
    run = repo.add_run(PlannerRun(org_id=ctx.org_id, trigger=trigger, requested_by=ctx.principal.actor[:200],
                                  created_at=utcnow(), findings=[]))
    findings: list[Finding] = []
    made: list[Suggestion] = []
    already: list[AlreadyMade] = []
    for t in report.items:
        if t.status not in ("missed", "at_risk"):
            continue
        drivers, props = _proposals(ctx, feed, t)
        findings.append(Finding(kpi=t.kpi, status=t.status, actual=t.actual, target=t.target, drivers=drivers))
        for p in props:
            same = repo.same_suggestion(ctx.org_id, t.kpi, p["kind"], p["title"])
            if same is not None:
                already.append(AlreadyMade(suggestion_id=same.id, kpi=t.kpi, title=same.title, status=same.status))
                continue
            if repo.open_suggestion(ctx.org_id, t.kpi, p["kind"]) is not None:
                continue
            conf = p["confidence"] * (1.0 if t.status == "missed" else 0.85)
            made.append(repo.add_suggestion(Suggestion(
                org_id=ctx.org_id, run_id=run.id, kpi=t.kpi, kind=p["kind"], title=p["title"],
                rationale=p["rationale"], evidence=p["evidence"], expected_effect=p["effect"],
                confidence=round(conf, 2), status="proposed", created_at=utcnow())))
    run.findings = [f.model_dump() for f in findings]
    run.suggestions = len(made)
    return PlannerRunRead(id=run.id, trigger=trigger, created_at=run.created_at, findings=findings,
                          suggestions=[SuggestionRead.of(s) for s in made], already=already)


class PlannerIn(BaseModel):
    pass


def _trigger(ctx: ToolContext) -> str:
    """``manual`` for a person; for the planner agent, its run's trigger (``schedule`` for the weekly run)."""
    if ctx.agent_run_id is None:
        return "manual"
    run = AgentRepository(ctx.session).run(ctx.agent_run_id)
    return run.trigger if run is not None else "manual"


@tool("planner.run", risk="write")
def planner_run(ctx: ToolContext, params: PlannerIn) -> PlannerRunRead:
    """Run the planner now: find KPIs missed or at risk and propose suggestions with expected effects."""
    out = run_planner(ctx, trigger=_trigger(ctx))
    audit_log.record(ctx, "planner.ran", f"planner_run:{out.id}",
                     detail={"suggestions": len(out.suggestions), "not_again": [a.suggestion_id for a in out.already]})
    return out


class SuggestionsIn(BaseModel):
    status: Literal["proposed", "accepted", "rejected"] | None = None
    limit: int = Field(100, ge=1, le=500)


class SuggestionList(BaseModel):
    items: list[SuggestionRead]
    acceptance_rate_pct: float | None


@tool("suggestions.list", risk="read")
def list_suggestions(ctx: ToolContext, params: SuggestionsIn) -> SuggestionList:
    """List planner suggestions, newest first, with the acceptance rate so far."""
    repo = PulseRepository(ctx.session)
    accepted, decided = repo.decided_totals(ctx.org_id, utcnow() + dt.timedelta(seconds=1))
    return SuggestionList(items=[SuggestionRead.of(s) for s in repo.suggestions(ctx.org_id, status=params.status,
                                                                                 limit=params.limit)],
                          acceptance_rate_pct=round(100.0 * accepted / decided, 1) if decided else None)


class DecideIn(BaseModel):
    suggestion_id: int = Field(ge=1, le=2**31 - 1)
    decision: Literal["accepted", "rejected"]
    note: str | None = Field(None, max_length=1000)


@tool("suggestions.decide", risk="write")
def decide(ctx: ToolContext, params: DecideIn) -> SuggestionRead:
    """Accept or reject a planner suggestion (once)."""
    s = PulseRepository(ctx.session).suggestion(ctx.org_id, params.suggestion_id)
    if s is None:
        raise NotFound(f"suggestion {params.suggestion_id} not found", field="suggestion_id")
    if s.status != "proposed":
        raise Conflict(f"suggestion {s.id} was already {s.status}", field="decision")
    before = {"status": s.status}
    s.status, s.decided_at, s.decided_by, s.note = params.decision, utcnow(), ctx.principal.actor[:200], params.note
    audit_log.record(ctx, f"suggestions.{params.decision}", f"suggestion:{s.id}", before=before,
                     after={"status": s.status}, detail={"title": s.title, "note": params.note})
    return SuggestionRead.of(s)


class RunsIn(BaseModel):
    limit: int = Field(20, ge=1, le=100)


class RunList(BaseModel):
    items: list[PlannerRunRead]


@tool("planner.runs", risk="read")
def planner_runs(ctx: ToolContext, params: RunsIn) -> RunList:
    """List recent planner runs with their findings and suggestions."""
    repo = PulseRepository(ctx.session)
    sugg = repo.suggestions(ctx.org_id, limit=1000)
    items = []
    for r in repo.runs(ctx.org_id, params.limit):
        items.append(PlannerRunRead(id=r.id, trigger=r.trigger, created_at=r.created_at,
                                    findings=[Finding.model_validate(f) for f in r.findings],
                                    suggestions=[SuggestionRead.of(s) for s in sugg if s.run_id == r.id]))
    return RunList(items=items)


