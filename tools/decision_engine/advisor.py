"""The advisor's offline mode: understands a documented set of question types and answers with
numbers taken only from the tool results of that turn.

Question types:

``kpi_status``        "Are we meeting our targets?", "What is our uptime?"    -> pulse.targets, pulse.kpis
``trend``             "How has revenue changed over the last 30 days?"          -> pulse.history
``cost_breakdown``    "What are we spending money on?", "Cost breakdown"        -> costs.summary
``price_whatif``      "What if Pro goes from $29 to $35?"                       -> decision.simulate_price
``partner_share_whatif`` "What if the partner share goes to 80%?"               -> decision.simulate_partner_share
``add_partners_whatif``  "What if we add 5 partners?"                           -> decision.simulate_add_partners
``llm_whatif``        "What if we switch agents to gpt-4o?", "run agents half as often" -> decision.simulate_llm
``incident_summary``  "Summarise incidents this month"                          -> pulse.history, pulse.targets
``ranking``           "Which partner plugin has the most installs?"             -> plugins.marketplace
``kpi_month``         "What was our uptime last month?" (a KPI over a calendar month) -> pulse.kpis, pulse.history

The type is read by an intent model trained on a paraphrase bank (:mod:`tools.decision_engine.intents`);
below its confidence threshold, or for a question outside these types, the advisor asks back or declines.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from tools.billing import catalogue
from tools.context import ToolContext
from tools.decision_engine import intents
from tools.decision_engine.simulator import PLAN_PRICES_CENTS, SIMULATION_TOOLS
from tools.errors import AppError
from tools.pulse.report import fmt
from tools.registry import registry, tool

QUESTION_TYPES: dict[str, str] = {
    "kpi_status": "KPI status against targets, or one KPI's latest value",
    "kpi_month": "one KPI over a calendar month (last month, this month, November)",
    "trend": "how a KPI changed over a period",
    "cost_breakdown": "spend by source and per day",
    "price_whatif": "what if a plan or the credit pack changes price",
    "partner_share_whatif": "what if the partners' revenue share changes",
    "add_partners_whatif": "what if we add N partners",
    "llm_whatif": "what if the LLM model or agent schedule frequency changes",
    "incident_summary": "incidents, self-heals, anomalies and uptime over a period",
    "ranking": "which listed plugins have the most (or fewest) installs or the best ratings",
}

SYNONYMS: list[tuple[str, str]] = [
    (r"partner (revenue )?share|share of (total )?revenue", "partner_revenue_share"),
    (r"partner revenue|partner earnings", "partner_revenue"),
    (r"acceptance rate|accepted suggestions", "suggestion_acceptance_rate"),
    (r"success rate|job success|failure rate", "job_success_rate"),
    (r"jobs?( run)?\b", "jobs_run"),
    (r"credits? sold", "credits_sold"),
    (r"credits? (spent|used|consumed)", "credits_spent"),
    (r"certifi", "certified_users"),
    (r"install", "plugin_installs"),
    (r"active (orgs?|organi[sz]ations|customers)", "active_orgs"),
    (r"anomal", "anomalies_detected"),
    (r"self[- ]?heal", "self_heals"),
    (r"manual incidents?", "manual_incidents"),
    (r"uptime|availability", "uptime"),
    (r"spend|spending|costs?\b", "spend"),
    (r"revenue|sales|income", "revenue"),
    (r"suggestions? made", "ai_suggestions_made"),
]


class ToolCallRecord(BaseModel):
    tool: str
    args: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None = None


class AdvisorAnswer(BaseModel):
    question: str
    question_type: str | None
    in_scope: bool
    answer: str
    tool_calls: list[ToolCallRecord]
    mode: str = "offline"
    # Why it was not answered: out_of_scope | unsure (asked back) | missing (a detail asked for); None: answered.
    declined: str | None = None


@dataclass
class Intent:
    type: str | None
    params: dict[str, Any] = field(default_factory=dict)


def _kpi_in(q: str) -> str | None:
    for pattern, kpi in SYNONYMS:
        if re.search(pattern, q):
            return kpi
    return None


def understand(question: str) -> Intent:
    """Map a question to one documented type and its parameters: the intent model reads the type (with its
    confidence), rules extract the slots. Out of scope, or too unsure: ``type`` None and ``params`` say
    why (``declined``: "out_of_scope" | "unsure" | "missing", with ``options`` or ``missing``)."""
    reading = intents.classify(question)
    if reading.intent == intents.OUT_OF_SCOPE and reading.confident:
        return Intent(None, {"declined": "out_of_scope", "confidence": round(reading.confidence, 2)})
    if not reading.confident:
        options = [i for i in (reading.intent, reading.runner_up) if i != intents.OUT_OF_SCOPE]
        return Intent(None, {"declined": "unsure", "options": options, "confidence": round(reading.confidence, 2),
                             "raw_options": [reading.intent, reading.runner_up]})
    return _slots(reading.intent, question)


def _days(q: str) -> int:
    p = intents.period(q)
    return int(p.get("days", 30))


def _slots(kind: str, question: str) -> Intent:
    """The slots of a question of type ``kind``; a missing required slot makes it a question back."""
    q = question.lower().strip()
    kpi = _kpi_in(q)
    when = intents.period(q)
    if kind == "kpi_status":
        if "month" in when and kpi is not None:
            return Intent("kpi_month", {"kpi": kpi, "month": when["month"]})
        return Intent("kpi_status", {"kpi": kpi})
    if kind == "trend":
        if kpi is None:
            return Intent(None, {"declined": "missing", "missing": "kpi", "intent": "trend"})
        return Intent("trend", {"kpi": kpi, "days": _days(q)})
    if kind == "cost_breakdown":
        return Intent("cost_breakdown", {"days": _days(q)})
    if kind == "incident_summary":
        return Intent("incident_summary", {"days": _days(q)})
    if kind == "ranking":
        by = "rating" if re.search(r"rat(ed|ing)|like|best|stars?", q) else "installs"
        least = bool(re.search(r"least|fewest|lowest|worst|bottom", q))
        top = re.search(r"top\s+(\d{1,2})|(\d{1,2})\s+(?:most|top|best)", q)
        words = {"three": 3, "five": 5, "ten": 10, "two": 2}
        n = int(top.group(1) or top.group(2)) if top else next((v for w, v in words.items() if f"top {w}" in q), 5)
        return Intent("ranking", {"by": by, "least": least, "limit": max(1, min(20, n))})
    if kind == "add_partners_whatif":
        m = re.search(r"(\d+)\s+(?:more |new |additional |extra )?partners", q) or re.search(r"\b(\d+)\b", q)
        if m is None:
            return Intent(None, {"declined": "missing", "missing": "partners", "intent": kind})
        return Intent("add_partners_whatif", {"partners": int(m.group(1))})
    if kind == "partner_share_whatif":
        pct = intents.percents(q)
        if not pct:
            return Intent(None, {"declined": "missing", "missing": "share", "intent": kind})
        params: dict[str, Any] = {"new_share_pct": pct[-1]}
        if len(pct) >= 2:
            params["current_share_pct"] = pct[0]
        return Intent("partner_share_whatif", params)
    if kind == "llm_whatif":
        params = {}
        model = re.search(r"\b(gpt-[\w.-]+?)(?=[\s?,.!]|$)", q)
        if model:
            params["new_model"] = model.group(1)
        if "half as often" in q or "halved" in q or "less often" in q:
            params["runs_per_day_factor"] = 0.5
        elif "twice as often" in q or "more often" in q:
            params["runs_per_day_factor"] = 2.0
        else:
            m2 = re.search(r"every (\d+) ?min\w* instead of every (\d+) ?min", q)
            if m2:
                params["runs_per_day_factor"] = int(m2.group(2)) / int(m2.group(1))
        if not params:
            return Intent(None, {"declined": "missing", "missing": "model_or_schedule", "intent": kind})
        return Intent("llm_whatif", params)
    if kind == "price_whatif":
        plan = next((p for p in catalogue.PAID_PLANS if re.search(rf"\b{p}\b", q)), None)
        if plan is None and re.search(r"credit", q):
            plan = "credits"
        amounts = intents.money(question)
        if plan and amounts:
            params = {"plan": plan, "new_price_cents": amounts[-1]}
            if len(amounts) >= 2:
                params["current_price_cents"] = amounts[0]
            return Intent("price_whatif", params)
        change = re.search(r"(raise|increase|more expensive|up|cut|lower|reduce|drop|cheaper)\w*.*?"
                           r"(\d+(?:\.\d+)?)\s*%|(\d+(?:\.\d+)?)\s*%\s*(price )?(cut|increase|rise|more|less)", q)
        if plan and plan != "credits" and change:
            word = change.group(1) or change.group(5) or ""
            step = float(change.group(2) or change.group(3))
            sign = -1 if re.search(r"cut|lower|reduce|drop|cheaper|less", word) else 1
            new_cents = round(PLAN_PRICES_CENTS[plan] * (1 + sign * step / 100))
            return Intent("price_whatif", {"plan": plan, "new_price_cents": new_cents})
        return Intent(None, {"declined": "missing", "missing": "plan and new price" if not plan else "new price",
                             "intent": kind})
    return Intent(None, {"declined": "out_of_scope"})


_FOLLOW_UP = re.compile(r"^\s*(and|what about|how about|same (for|but)|now|also|ok(ay)?,?|then|instead)\b|"
                        r"^\s*(for|over) (the )?(last|past)\b|\b(instead|that|it)\?*\s*$")


def understand_in_thread(question: str, earlier: list[str]) -> Intent:
    """Like :func:`understand`, but a follow-up ("and spend?", "what about the last 7 days?", "and at $39?")
    takes what it leaves out from the thread's last in-scope question (``earlier``: oldest first), itself
    read the same way."""
    prev: Intent | None = None
    for e in earlier:
        read = _read_follow_up(e, prev)
        prev = read if read.type is not None else prev
    return _read_follow_up(question, prev)


def _read_follow_up(question: str, prev: Intent | None) -> Intent:
    q = question.lower().strip()
    if prev is not None and _FOLLOW_UP.search(q) and len(q.split()) <= 8:
        # "and spend?": read with the thread first (alone, the model would guess a type for two words)
        filled = _fill(question, prev)
        if filled is not None:
            return filled
    if prev is None and _FOLLOW_UP.search(q) and len(q.split()) <= 4:
        # "and spend?" with nothing before it: ask what it follows up on rather than guess
        return Intent(None, {"declined": "unsure", "options": [], "raw_options": []})
    intent = understand(question)
    if intent.type is not None or prev is None:
        return intent
    if not _FOLLOW_UP.search(q) and len(q.split()) > 6:
        return intent
    return _fill(question, prev) or intent


def _fill(question: str, prev: Intent) -> Intent | None:
    """``prev`` with what the follow-up ``question`` changes; None when it changes nothing."""
    q = question.lower().strip()
    params = dict(prev.params)
    kpi = _kpi_in(q)
    days = re.search(r"\d+\s+days?|week|quarter|fortnight", q)
    amounts = intents.money(question)
    plan = next((p for p in catalogue.PAID_PLANS if re.search(rf"\b{p}\b", q)), None)
    pct = re.findall(r"(-?\d+(?:\.\d+)?)\s*(?:%|percent)", q)
    partners = re.search(r"(\d+)\s+(?:more |new )?partners?|\b(\d+)\b", q)
    changed = False
    if prev.type in ("kpi_status", "trend", "kpi_month") and kpi:
        params["kpi"] = kpi
        changed = True
    if prev.type in ("trend", "cost_breakdown", "incident_summary") and days:
        params["days"] = _days(q)
        changed = True
    if prev.type == "price_whatif":
        if plan and plan != params.get("plan"):
            # "and business?": the same relative change on the other plan.
            before = params.pop("current_price_cents", None) or PLAN_PRICES_CENTS.get(params.get("plan", ""))
            if before and not amounts:
                params["new_price_cents"] = round(PLAN_PRICES_CENTS[plan] * params["new_price_cents"] / before)
            params["plan"], changed = plan, True
        if amounts:
            params["new_price_cents"], changed = amounts[-1], True
    if prev.type == "partner_share_whatif" and pct:
        params["new_share_pct"], changed = float(pct[-1]), True
    if prev.type == "add_partners_whatif" and partners:
        params["partners"], changed = int(partners.group(1) or partners.group(2)), True
    return Intent(prev.type, params) if changed else None


ToolCaller = Callable[[str, dict[str, Any]], dict[str, Any]]


def registry_caller(ctx: ToolContext) -> ToolCaller:
    """Call tools as the person asking (policy-checked by ``registry.invoke``)."""
    def call(name: str, args: dict[str, Any]) -> dict[str, Any]:
        return registry.invoke(name, ctx, args).model_dump(mode="json")

    return call


class _Turn:
    """The tool calls of one turn; numbers in the answer come from these results only."""

    def __init__(self, caller: ToolCaller):
        self.caller = caller
        self.calls: list[ToolCallRecord] = []

    def call(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        try:
            out = self.caller(name, args)
        except AppError as exc:
            self.calls.append(ToolCallRecord(tool=name, args=args, result=None, error=exc.detail))
            raise
        self.calls.append(ToolCallRecord(tool=name, args=args, result=out))
        return out


def _v(value: Any, unit: str) -> str:
    return fmt(None if value is None else float(value), unit)


def _kpi_status(turn: _Turn, kpi: str | None) -> str:
    targets = turn.call("pulse.targets", {})
    if kpi is None:
        lines = [f"Targets as of {targets['day']}: {targets['met']} met, {targets['at_risk']} at risk, "
                 f"{targets['missed']} missed."]
        for t in targets["items"]:
            state = t["status"].replace("_", " ")
            lines.append(f"- {t['label']}: {_v(t['actual'], t['unit'])} vs target {t['op']} "
                         f"{_v(t['target'], t['unit'])} ({t['window']}): {state}, trend {t['trend']['direction']}.")
        if any(t.get("demo") for t in targets["items"]):
            lines.append(DEMO_NOTE)
        return "\n".join(lines)
    latest = turn.call("pulse.kpis", {})
    item = next(i for i in latest["items"] if i["kpi"] == kpi)
    if item["value"] is None:
        text = f"{item['label']} is not available: {item['reason']}."
    else:
        text = f"{item['label']} was {_v(item['value'], item['unit'])} on {item['day']}."
    t = next((t for t in targets["items"] if t["kpi"] == kpi), None)
    if t is not None:
        text += (f" Target {t['op']} {_v(t['target'], t['unit'])} ({t['window']}): "
                 f"{t['status'].replace('_', ' ')} at {_v(t['actual'], t['unit'])}; {t['reason']}.")
        if t.get("error_budget"):
            eb = t["error_budget"]
            text += (f" Error budget: {eb['used_minutes']} of {eb['allowed_minutes']} minutes used "
                     f"({eb['used_pct']} %).")
    if item.get("source") == "demo seed" or (t is not None and t.get("demo")):
        text += " " + DEMO_NOTE
    return text


def _trend(turn: _Turn, kpi: str, days: int) -> str:
    h = turn.call("pulse.history", {"kpi": kpi, "days": days})
    if h["first"] is None:
        return f"There is no {h['label']} history for the last {h['days']} days."
    text = (f"{h['label']} over the last {h['days']} days: from {_v(h['first'], h['unit'])} to "
            f"{_v(h['last'], h['unit'])}")
    if h["change_pct"] is not None:
        text += f" ({h['change_pct']:+} %)"
    text += f", averaging {_v(h['mean'], h['unit'])} per day."
    return text + (" " + DEMO_NOTE if h.get("demo") else "")


def _costs(turn: _Turn, days: int) -> str:
    c = turn.call("costs.summary", {"days": days})
    if not c["by_source"]:
        return f"The Cost DB has no spend entries for the last {c['days']} days."
    parts = [f"{s['source']} {_v(s['total_cents'], 'cents')} ({s['share_pct']} %)" for s in c["by_source"]]
    return (f"Spend over the last {c['days']} days ({c['since']} to {c['until']}): "
            f"{_v(c['total_cents'], 'cents')}, {_v(c['per_day_cents'], 'cents')} per day. By source: "
            + ", ".join(parts) + ".")


def _sim_text(out: dict[str, Any]) -> str:
    o = out["outcomes"]
    h = out["horizon_days"]

    def band(key: str) -> str:
        x = o[key]
        return (f"{_v(x['p50'], 'cents')} (p10 {_v(x['p10'], 'cents')}, p90 {_v(x['p90'], 'cents')}; "
                f"baseline {_v(x['baseline'], 'cents')})")

    lines = [f"Simulation: {out['description']} ({out['runs']} Monte Carlo runs over {h} days).",
             f"- Revenue: {band('revenue_cents')}.", f"- Margin: {band('margin_cents')}.",
             f"- Partner payouts: {band('partner_payouts_cents')}.",
             f"- Spend per day: {band('spend_per_day_cents')}."]
    if "llm_spend_per_day_cents" in o:
        lines.append(f"- LLM spend per day: {band('llm_spend_per_day_cents')}.")
    for k in out["kpi_impact"]:
        if k["kpi"] == "partner_revenue_share" and k["p50"] is not None and k["baseline"] is not None:
            # The baseline is the last 30 days' ratio of partner revenue to revenue (the simulator's window),
            # named so it is not taken for the month's figure on /pulse.
            lines.append(f"- Partner revenue share: {k['p50']} % (baseline {k['baseline']} % over the last 30 "
                         f"days, target "
                         f"{k['op']} {k['target']} %).")
    used = [f"{a['name']} = {a['value']} ({a['source']})" for a in out["assumptions"]
            if a["source"] != "history" or a["name"] == "elasticity"]
    if used:
        lines.append("Assumptions: " + "; ".join(used) + ".")
    for w in out.get("warnings", []):
        lines.append(f"Warning: {w}.")
    return "\n".join(lines)


def _incidents(turn: _Turn, days: int) -> str:
    lines = [f"Incidents over the last {days} days:"]
    for kpi in ("manual_incidents", "self_heals", "anomalies_detected"):
        h = turn.call("pulse.history", {"kpi": kpi, "days": days})
        vals = [p["value"] for p in h["points"] if p["value"] is not None]
        if not vals:
            lines.append(f"- {h['label']}: not available.")
            continue
        days_with = [p for p in h["points"] if p["value"]]
        lines.append(f"- {h['label']}: mean {_v(h['mean'], 'count') if h['mean'] is not None else 'n/a'} per day"
                     + (f", last on {days_with[-1]['day']}" if days_with else ", none") + ".")
    targets = turn.call("pulse.targets", {})
    up = next((t for t in targets["items"] if t["kpi"] == "uptime"), None)
    if up is not None and up.get("error_budget"):
        eb = up["error_budget"]
        lines.append(f"Uptime this month {_v(up['actual'], 'percent')}: {eb['used_minutes']} of "
                     f"{eb['allowed_minutes']} minutes of downtime budget used ({up['status'].replace('_', ' ')}).")
    return "\n".join(lines)


def _kpi_month(turn: _Turn, kpi: str, month: str | int) -> str:
    """One KPI over a calendar month: its daily mean, first and last day (a month in progress says so)."""
    latest = turn.call("pulse.kpis", {})
    today = dt.date.fromisoformat(str(latest["as_of"])) if latest.get("as_of") else dt.date.today()
    if month == "this":
        start, in_progress = today.replace(day=1), True
    else:
        if month == "last":
            start = (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
        else:
            year = today.year if int(month) <= today.month else today.year - 1
            start = dt.date(year, int(month), 1)
        in_progress = start.year == today.year and start.month == today.month
    nxt = (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    until = min(nxt - dt.timedelta(days=1), today)
    days = (until - start).days + 1
    h = turn.call("pulse.history", {"kpi": kpi, "days": days, "until": until.isoformat()})
    name = start.strftime("%B %Y")
    if h["value"] is None:
        return f"There is no {h['label']} data for {name}."
    how = {"sum": "total", "mean": "averaged", "last": "at the end", "ratio": "over the month"}[h["aggregate"]]
    text = (f"{h['label']} in {name} ({start.isoformat()} to {until.isoformat()}"
            + (f", month in progress: {h['days_with_data']} days so far" if in_progress else "")
            + f"): {how} {_v(h['value'], h['unit'])}")
    if h["aggregate"] == "sum":
        text += f", averaging {_v(h['mean'], h['unit'])} per day."
    else:
        text += f", from {_v(h['first'], h['unit'])} on the first day to {_v(h['last'], h['unit'])} on the last."
    return text + (" " + DEMO_NOTE if h.get("demo") else "")


def _ranking(turn: _Turn, by: str, least: bool, limit: int) -> str:
    """Listed plugins ranked by installs or rating (the marketplace catalogue, from the partner tools)."""
    doc = turn.call("plugins.marketplace", {})
    plugins = [p for p in doc["plugins"] if by == "installs" or p["rating"] is not None]
    if not plugins:
        return "No listed plugin has " + ("installs yet." if by == "installs" else "a rating yet.")
    key = (lambda p: (p["installs"], p["name"])) if by == "installs" else (lambda p: (p["rating"], p["rating_count"]))
    ranked = sorted(plugins, key=key, reverse=not least)[:limit]

    def show(p: dict[str, Any]) -> str:
        what = (f"{_v(p['installs'], 'count')} installs" if by == "installs"
                else f"rated {p['rating']} from {p['rating_count']} ratings")
        return f"{p['name']} by {p['partner']} ({what})"

    head = ("least" if least else "most") + (" installed" if by == "installs" else " highly rated")
    lines = [f"The {head} listed plugin is {show(ranked[0])}."]
    if len(ranked) > 1:
        lines.append(f"Ranking of {len(plugins)} listed plugins" + (" (fewest first)" if least else "") + ":")
        lines += [f"{i}. {show(p)}" for i, p in enumerate(ranked, start=1)]
    return "\n".join(lines)


_LABELS = {"kpi_status": "a KPI's status against its target", "trend": "how a KPI changed over a period",
           "cost_breakdown": "where the money goes", "price_whatif": "a price change",
           "partner_share_whatif": "a partner share change", "add_partners_whatif": "adding partners",
           "llm_whatif": "an LLM model or schedule change", "incident_summary": "incidents and uptime",
           "ranking": "which plugins rank highest"}
_MISSING = {"kpi": "Which KPI do you mean (revenue, uptime, spend, installs, partner share ...)?",
            "partners": "How many partners should I simulate adding?",
            "share": "What partner share should I simulate (e.g. 70 %)?",
            "model_or_schedule": "Which model (e.g. gpt-4o-mini) or schedule change (e.g. half as often)?",
            "plan and new price": "Which plan (pro, business, or the credit pack) and what new price?",
            "new price": "What new price (e.g. $35) or change (e.g. up 10 %)?"}


def _declined(params: dict[str, Any]) -> str:
    why = params.get("declined")
    if why == "unsure":
        opts = [_LABELS[o] for o in params.get("options", []) if o in _LABELS]
        if intents.OUT_OF_SCOPE in params.get("raw_options", []) and not opts:
            return OUT_OF_SCOPE
        return ("I am not sure what you are asking" + (": is it about " + " or ".join(opts) + "?" if opts else ".")
                + " Could you rephrase? I can answer: " + "; ".join(QUESTION_TYPES.values()) + ".")
    if why == "missing":
        return (f"To answer about {_LABELS.get(params.get('intent', ''), 'that')} I need one more detail. "
                + _MISSING.get(params.get("missing", ""), "Could you say more?"))
    return OUT_OF_SCOPE


DEMO_NOTE = "(Demo data: these are the demo seed's invented figures, not real records.)"

OUT_OF_SCOPE = ("That question is outside what I can answer in offline mode. I can answer: "
                + "; ".join(QUESTION_TYPES.values()) + ".")


def answer(ctx: ToolContext | None, question: str, caller: ToolCaller | None = None,
           earlier: list[str] | None = None) -> AdvisorAnswer:
    """Answer one question offline with tool calls; every figure comes from this turn's results.

    Tools are called as the person in ``ctx``, or through ``caller`` (the agent runtime's toolbox).
    ``earlier`` are the thread's previous questions: a follow-up takes what it leaves out from them."""
    intent = understand_in_thread(question, earlier or [])
    if caller is None:
        assert ctx is not None
        caller = registry_caller(ctx)
    turn = _Turn(caller)
    if intent.type is None:
        return AdvisorAnswer(question=question, question_type=None, in_scope=False, answer=_declined(intent.params),
                             tool_calls=[], declined=str(intent.params.get("declined") or "out_of_scope"))
    try:
        p = intent.params
        if intent.type == "kpi_status":
            text = _kpi_status(turn, p.get("kpi"))
        elif intent.type == "kpi_month":
            text = _kpi_month(turn, p["kpi"], p["month"])
        elif intent.type == "ranking":
            text = _ranking(turn, p["by"], p["least"], p["limit"])
        elif intent.type == "trend":
            text = _trend(turn, p["kpi"], p["days"])
        elif intent.type == "cost_breakdown":
            text = _costs(turn, p["days"])
        elif intent.type == "incident_summary":
            text = _incidents(turn, p["days"])
        else:
            kind = {"price_whatif": "price", "partner_share_whatif": "partner_share",
                    "add_partners_whatif": "add_partners", "llm_whatif": "llm"}[intent.type]
            text = _sim_text(turn.call(SIMULATION_TOOLS[kind], dict(p)))
    except AppError as exc:
        text = f"I could not answer that: {exc.detail}"
    return AdvisorAnswer(question=question, question_type=intent.type, in_scope=True, answer=text,
                         tool_calls=turn.calls)


def stream(ctx: ToolContext, question: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Server-sent events for one answer: tool calls, their results, answer tokens, then done."""
    out = answer(ctx, question)
    yield "mode", {"mode": "offline", "notice": "Offline mode: deterministic question types, no language model."}
    for c in out.tool_calls:
        yield "tool_call", {"tool": c.tool, "args": c.args}
        yield "tool_result", {"tool": c.tool, "error": c.error,
                              "data": json.loads(json.dumps(c.result, default=str)) if c.result else None}
    for tok in re.split(r"(\s+)", out.answer):
        if tok:
            yield "token", {"text": tok}
    yield "done", {"answer": out.answer, "in_scope": out.in_scope, "question_type": out.question_type}


class AskIn(BaseModel):
    question: str = Field(min_length=1, max_length=2000)


@tool("advisor.ask", risk="read")
def ask(ctx: ToolContext, params: AskIn) -> AdvisorAnswer:
    """Answer a business question offline from Pulse, cost and simulator tools (documented types only)."""
    return answer(ctx, params.question)
