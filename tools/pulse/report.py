"""The monthly Ecosystem Pulse PDF (reportlab): cover, KPIs against targets, trends, incidents,
partner and certification highlights, planner suggestions and their outcomes. Archived in the database."""

from __future__ import annotations

import calendar
import datetime as dt
import io
import re
from typing import Any

from pydantic import BaseModel, Field

from memory.db import utcnow
from memory.identity.models import Organization
from memory.pulse.models import PulseReport
from memory.pulse.repository import PulseRepository
from tools.context import ToolContext
from tools.enterprise import audit_log
from tools.errors import NotFound, Unprocessable
from tools.pulse.kpis import KPIS
from tools.pulse.measure import DEMO_SOURCE, measure_series
from tools.pulse.measure import fmt as fmt
from tools.pulse.targets import evaluate
from tools.registry import tool

MONTH_RE = re.compile(r"^(19|20)\d{2}-(0[1-9]|1[0-2])$")
INK = "#1d2430"
ACCENT = "#3b5bdb"
STATUS_COLOURS = {"met": "#2b8a3e", "at_risk": "#e67700", "missed": "#c92a2a", "not_available": "#868e96"}
STATUS_LABELS = {"met": "Met", "at_risk": "At risk", "missed": "Missed", "not_available": "No data"}


def month_bounds(month: str) -> tuple[dt.date, dt.date]:
    if not MONTH_RE.match(month):
        raise Unprocessable(f"month: {month!r} is not YYYY-MM", field="month")
    y, m = int(month[:4]), int(month[5:])
    return dt.date(y, m, 1), dt.date(y, m, calendar.monthrange(y, m)[1])


def month_summary(ctx: ToolContext, month: str) -> dict[str, Any]:
    """Everything the report shows, as plain data (also used by the API and tests)."""
    start, end = month_bounds(month)
    prev_end = start - dt.timedelta(days=1)
    prev_start = prev_end.replace(day=1)
    repo = PulseRepository(ctx.session)
    rows = repo.history(ctx.org_id, since=prev_start, until=end)
    series: dict[str, list[tuple[dt.date, float | None]]] = {k: [] for k in KPIS}
    reasons: dict[str, str] = {}
    demo_days: dict[str, set[dt.date]] = {}
    for r in rows:
        if r.source == DEMO_SOURCE:
            demo_days.setdefault(r.kpi, set()).add(r.day)
        if r.kpi in series:
            series[r.kpi].append((r.day, r.value))
            if r.value is None and r.reason and start <= r.day <= end:
                reasons[r.kpi] = r.reason
    kpis = []
    latest_day = repo.latest_day(ctx.org_id)
    for name, d in KPIS.items():
        cur = [v for day, v in series[name] if start <= day <= end and v is not None]
        prev = [v for day, v in series[name] if prev_start <= day <= prev_end and v is not None]
        m = measure_series(name, series[name], start, end, latest_day, demo_days=demo_days.get(name),
                           parts=series)
        kpis.append({"kpi": name, "label": d.label, "unit": d.unit, "value": m.value,
                     "previous": measure_series(name, series[name], prev_start, prev_end, latest_day,
                                                parts=series).value,
                     "reason": reasons.get(name), "partial": m.partial, "days_with_data": m.days_with_data,
                     "demo": m.demo,
                     "per_day": sum(cur) / len(cur) if cur else None,
                     "previous_per_day": sum(prev) / len(prev) if prev else None})
    ledger_revenue = _ledger_revenue(ctx, start, end)
    if ledger_revenue is not None:
        kpis_by = {k["kpi"]: k for k in kpis}
        kpis_by["revenue"]["value"] = float(ledger_revenue)
    last_day = min(end, repo.latest_day(ctx.org_id) or end)
    targets = evaluate(ctx.session, ctx.org_id, last_day)
    sugg = [s for s in repo.suggestions(ctx.org_id, limit=500)
            if start <= s.created_at.date() <= end or (s.decided_at and start <= s.decided_at.date() <= end)]
    in_progress = latest_day is None or latest_day < end
    covered_to = min(end, latest_day) if latest_day is not None else None
    return {"month": month, "start": start, "end": end, "kpis": {k["kpi"]: k for k in kpis}, "targets": targets,
            "in_progress": in_progress, "covered_to": covered_to,
            "days_covered": (covered_to - start).days + 1 if covered_to and covered_to >= start else 0,
            "days_in_month": (end - start).days + 1,
            "series": {k: [(d, v) for d, v in s if start <= d <= end] for k, s in series.items()},
            "suggestions": sugg}


def _ledger_revenue(ctx: ToolContext, start: dt.date, end: dt.date) -> int | None:
    """The month's revenue (money in less refunds) read now from the revenue ledger through
    ``billing.kpis``, so a refund recorded after a day's Pulse snapshot still counts; None when the
    ledger has no money in or out for the month (then the snapshots' figure stands)."""
    from tools.registry import registry

    total, seen, day = 0, False, start
    last = min(end, utcnow().date())
    while day <= last:
        k = registry.invoke("billing.kpis", ctx, {"day": day.isoformat()}).model_dump()
        total += int(k["revenue_cents"])
        seen = seen or bool(k["gross_cents"] or k["refunds_cents"])
        day += dt.timedelta(days=1)
    return total if seen else None


def _chart(title: str, points: list[tuple[dt.date, float | None]], unit: str, target: float | None,
           width: float, height: float) -> Any:
    # kept lazy: start-up time (reportlab costs the API ~0.4 s and only the PDF needs it)
    from reportlab.graphics.charts.lineplots import LinePlot
    from reportlab.graphics.shapes import Drawing, Line, String
    from reportlab.lib import colors

    d = Drawing(width, height)
    d.add(String(4, height - 14, title, fontName="Helvetica-Bold", fontSize=10, fillColor=colors.HexColor(INK)))
    pts = [(float(day.day), (v / 100 if unit == "cents" else v)) for day, v in points if v is not None]
    if len(pts) < 2:
        d.add(String(width / 2, height / 2, "not available", textAnchor="middle", fontSize=9,
                     fillColor=colors.HexColor("#868e96")))
        return d
    lp = LinePlot()
    lp.x, lp.y, lp.width, lp.height = 40, 22, width - 54, height - 48
    data = [pts]
    ys = [p[1] for p in pts]
    tgt = None if target is None else (target / 100 if unit == "cents" else target)
    lo, hi = min(ys + ([tgt] if tgt is not None else [])), max(ys + ([tgt] if tgt is not None else []))
    pad = (hi - lo) * 0.1 or max(abs(hi) * 0.01, 0.01)
    lp.data = data
    lp.lines[0].strokeColor = colors.HexColor(ACCENT)
    lp.lines[0].strokeWidth = 1.6
    lp.xValueAxis.valueMin, lp.xValueAxis.valueMax = 1, max(p[0] for p in pts)
    lp.xValueAxis.labels.fontSize = 7
    lp.xValueAxis.valueSteps = [x for x in (1, 5, 10, 15, 20, 25, 30) if x <= max(p[0] for p in pts)]
    lp.yValueAxis.valueMin, lp.yValueAxis.valueMax = lo - pad, hi + pad
    lp.yValueAxis.labels.fontSize = 7
    span = lp.yValueAxis.valueMax - lp.yValueAxis.valueMin
    lp.yValueAxis.labelTextFormat = "%.3f" if span < 0.2 else "%.2f" if span < 5 else "%.0f"
    lp.yValueAxis.visibleGrid = True
    lp.yValueAxis.gridStrokeColor = colors.HexColor("#e9ecef")
    d.add(lp)
    if tgt is not None:
        yv = lp.y + (tgt - lp.yValueAxis.valueMin) / (lp.yValueAxis.valueMax - lp.yValueAxis.valueMin) * lp.height
        d.add(Line(lp.x, yv, lp.x + lp.width, yv, strokeColor=colors.HexColor("#c92a2a"), strokeDashArray=[3, 2],
                   strokeWidth=0.8))
        d.add(String(lp.x + lp.width, yv + 2, f"target {tgt:g}", textAnchor="end", fontSize=7,
                     fillColor=colors.HexColor("#c92a2a")))
    return d


def build_pdf(ctx: ToolContext, month: str, org_name: str) -> tuple[bytes, int]:
    """Render the report; return (PDF bytes, page count)."""
    # kept lazy: start-up time (as in _chart)
    from reportlab.lib import colors
    from reportlab.lib.enums import TA_LEFT
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import KeepTogether, PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    data = month_summary(ctx, month)
    k = data["kpis"]
    targets = data["targets"]
    title_month = data["start"].strftime("%B %Y")
    # The column of this month's figures says "month to date" while the month is in progress.
    period = f"{title_month} (month to date)" if data["in_progress"] else title_month
    styles = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=styles["BodyText"], fontSize=9.5, leading=13, textColor=colors.HexColor(INK))
    h1 = ParagraphStyle("h1", parent=styles["Heading1"], fontSize=16, textColor=colors.HexColor(INK), spaceAfter=6)
    h2 = ParagraphStyle("h2", parent=styles["Heading2"], fontSize=12, textColor=colors.HexColor(ACCENT),
                        spaceBefore=8, spaceAfter=4)
    small = ParagraphStyle("small", parent=body, fontSize=8, leading=10, textColor=colors.HexColor("#5b6473"))
    cell = ParagraphStyle("cell", parent=body, fontSize=8.5, leading=10.5, alignment=TA_LEFT)
    buf = io.BytesIO()
    W, H = A4
    generated = utcnow().strftime("%d %B %Y %H:%M UTC")

    def cover(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFillColor(colors.HexColor("#111827"))
        canvas.rect(0, H - 95 * mm, W, 95 * mm, stroke=0, fill=1)
        canvas.setFillColor(colors.HexColor(ACCENT))
        canvas.rect(0, H - 97 * mm, W, 2 * mm, stroke=0, fill=1)
        canvas.setFillColor(colors.white)
        canvas.setFont("Helvetica", 11)
        canvas.drawString(20 * mm, H - 25 * mm, "LEVQOR")
        canvas.setFont("Helvetica-Bold", 30)
        canvas.drawString(20 * mm, H - 50 * mm, "Ecosystem Pulse")
        canvas.setFont("Helvetica", 16)
        canvas.drawString(20 * mm, H - 62 * mm, title_month)
        canvas.setFont("Helvetica", 10)
        canvas.setFillColor(colors.HexColor("#d1d5db"))
        canvas.drawString(20 * mm, H - 80 * mm, f"{org_name} · board report · generated {generated}")
        if data["in_progress"]:
            canvas.setFillColor(colors.HexColor("#fbbf24"))
            canvas.setFont("Helvetica-Bold", 10)
            canvas.drawString(20 * mm, H - 70 * mm, _progress_text(data))
        canvas.restoreState()
        footer(canvas, doc)

    def footer(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7.5)
        canvas.setFillColor(colors.HexColor("#868e96"))
        canvas.drawString(20 * mm, 10 * mm, f"Levqor Ecosystem Pulse · {title_month} · confidential")
        canvas.drawRightString(W - 20 * mm, 10 * mm, f"page {doc.page}")
        canvas.restoreState()

    story: list[Any] = [Spacer(1, 92 * mm)]
    # Headline tiles.
    tiles = [("Revenue", fmt(k["revenue"]["value"], "cents"), k["revenue"]["previous_per_day"],
              k["revenue"]["per_day"], "cents"),
             ("Uptime", fmt(k["uptime"]["value"], "percent"), None, None, "percent"),
             ("Spend / day", fmt(_per_day(data, "spend"), "cents"), None, None, "cents"),
             ("Partner share", fmt(k["partner_revenue_share"]["value"], "percent"), None, None, "percent")]
    tile_cells = []
    for label, value, prev, cur, _unit in tiles:
        delta = ""
        if prev and cur is not None:
            delta = f"{100 * (cur - prev) / prev:+.1f} % per day vs last month"
        tile_cells.append([Paragraph(f"<font size=8 color='#5b6473'>{label.upper()}</font>", body),
                           Paragraph(f"<font size=17><b>{value}</b></font>", body),
                           Paragraph(f"<font size=7.5 color='#5b6473'>{delta}</font>", body)])
    t = Table([[c for c in tile_cells]], colWidths=[42 * mm] * 4)
    t.setStyle(TableStyle([("BOX", (0, 0), (-1, -1), 0.5, colors.HexColor("#dee2e6")),
                           ("INNERGRID", (0, 0), (-1, -1), 0.5, colors.HexColor("#dee2e6")),
                           ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#f8f9fa")),
                           ("VALIGN", (0, 0), (-1, -1), "TOP"), ("TOPPADDING", (0, 0), (-1, -1), 8),
                           ("BOTTOMPADDING", (0, 0), (-1, -1), 8)]))
    story += [t, Spacer(1, 8 * mm)]
    if data["in_progress"]:
        story.append(Paragraph(f"<b>{_progress_text(data)}.</b> Every figure is month to date: totals, per-day "
                               "figures, shares and targets are over the days covered so far.", body))
    if any(kv.get("demo") for kv in k.values()):
        story.append(Paragraph("<b>Demo data.</b> Figures marked * (and the charts of those KPIs) are the demo "
                               "seed's invented figures, not real records.", body))
    story.append(Paragraph("Summary", h2))
    story.append(Paragraph(_summary_text(data), body))
    story.append(Spacer(1, 4 * mm))
    counts = f"Targets: <b>{targets.met}</b> met, <b>{targets.at_risk}</b> at risk, <b>{targets.missed}</b> missed " \
             f"(as of {targets.day.isoformat()})."
    story.append(Paragraph(counts, body))
    glance: list[list[Any]] = [["Target", "Actual", "Goal", "Status"]]
    gcmds: list[Any] = []
    for i, te in enumerate(targets.items, start=1):
        glance.append([te.label + (" *" if te.demo else ""), f"{fmt(te.actual, te.unit)} ({period_label(te)})",
                       f"{te.op} {fmt(te.target, te.unit)}", STATUS_LABELS[te.status]])
        gcmds += [("TEXTCOLOR", (3, i), (3, i), colors.HexColor(STATUS_COLOURS[te.status])),
                  ("FONTNAME", (3, i), (3, i), "Helvetica-Bold")]
    gt = Table(glance, colWidths=[50 * mm, 58 * mm, 34 * mm, 28 * mm])
    gt.setStyle(TableStyle(_table_style() + gcmds))
    story += [Spacer(1, 4 * mm), Paragraph("Targets at a glance", h2), gt, PageBreak()]

    # KPIs against targets.
    story.append(Paragraph("KPIs against targets", h1))
    rows: list[list[Any]] = [["KPI", "Actual", "Target", "Window", "Trend", "Status"]]
    style_cmds: list[Any] = []
    for i, te in enumerate(targets.items, start=1):
        rows.append([te.label + (" *" if te.demo else ""), fmt(te.actual, te.unit),
                     f"{te.op} {fmt(te.target, te.unit)}", te.window, te.trend.direction, STATUS_LABELS[te.status]])
        style_cmds += [("BACKGROUND", (5, i), (5, i), colors.HexColor(STATUS_COLOURS[te.status])),
                       ("TEXTCOLOR", (5, i), (5, i), colors.white), ("FONTNAME", (5, i), (5, i), "Helvetica-Bold")]
    tt = Table(rows, colWidths=[48 * mm, 28 * mm, 30 * mm, 20 * mm, 22 * mm, 22 * mm], repeatRows=1)
    tt.setStyle(TableStyle(_table_style() + style_cmds))
    story += [tt, Spacer(1, 2 * mm)]
    eb = next((te.error_budget for te in targets.items if te.error_budget), None)
    if eb:
        story.append(Paragraph(f"Uptime error budget: {eb.used_minutes:g} of {eb.allowed_minutes:g} minutes used "
                               f"({eb.used_pct:g} %); 99.98 % of a 30-day month allows 8.64 minutes.", small))
    story.append(Paragraph("All KPIs this month" + (" (month to date)" if data["in_progress"] else ""), h2))
    # A month to date is compared per day for totals: its few days' sum against a whole month's is no change.
    rows = [["KPI", period, "Previous month", "Change per day" if data["in_progress"] else "Change"]]
    for name, d in KPIS.items():
        v = k[name]
        change = ""
        cur, prev = v["value"], v["previous"]
        if data["in_progress"] and d.aggregate == "sum":
            cur, prev = v["per_day"], v["previous_per_day"]
        if cur is not None and prev:
            change = f"{100 * (cur - prev) / abs(prev):+.1f} %"
        shown = fmt(v["value"], d.unit) if v["value"] is not None else Paragraph(
            f"<font color='#868e96'>not available{': ' + _short(v['reason']) if v['reason'] else ''}</font>", cell)
        rows.append([d.label, shown, fmt(v["previous"], d.unit), change])
    at = Table(rows, colWidths=[50 * mm, 60 * mm, 35 * mm, 25 * mm], repeatRows=1)
    at.setStyle(TableStyle(_table_style()))
    story += [at, PageBreak()]

    # Trends.
    story.append(Paragraph("Trends", h1))
    tmap = {te.kpi: te.target for te in targets.items}
    cw, ch = 83 * mm, 62 * mm
    charts = [_chart(f"{KPIS[n].label} ({'USD' if KPIS[n].unit == 'cents' else KPIS[n].unit})",
                     data["series"][n], KPIS[n].unit, tmap.get(n), cw, ch)
              for n in ("revenue", "spend", "uptime", "partner_revenue_share", "certified_users", "jobs_run")]
    grid = Table([[charts[0], charts[1]], [charts[2], charts[3]], [charts[4], charts[5]]],
                 colWidths=[cw + 4 * mm] * 2)
    grid.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]))
    story += [grid, Paragraph("Daily values; dashed red lines are targets (spend target per day).", small),
              PageBreak()]

    # Operations, ecosystem, planner.
    story.append(Paragraph("Incidents and self-heals", h1))
    ops = [["Measure", period, "Previous month"]]
    for n in ("anomalies_detected", "self_heals", "manual_incidents", "uptime"):
        ops.append([KPIS[n].label, fmt(k[n]["value"], KPIS[n].unit), fmt(k[n]["previous"], KPIS[n].unit)])
    ot = Table(ops, colWidths=[60 * mm, 50 * mm, 50 * mm])
    ot.setStyle(TableStyle(_table_style()))
    heal = k["self_heals"]["value"]
    manual = k["manual_incidents"]["value"]
    note = ""
    if heal is not None and manual is not None and heal + manual:
        note = (f"{heal:,.0f} of {heal + manual:,.0f} incidents ({100 * heal / (heal + manual):.0f} %) were "
                "healed automatically.")
    story += [ot, Paragraph(note, small)]
    story.append(Paragraph("Partner and certification highlights", h2))
    eco = [["Measure", period, "Previous month"]]
    for n in ("partner_revenue", "partner_revenue_share", "plugin_installs", "certified_users", "active_orgs"):
        eco.append([KPIS[n].label, fmt(k[n]["value"], KPIS[n].unit), fmt(k[n]["previous"], KPIS[n].unit)])
    et = Table(eco, colWidths=[60 * mm, 50 * mm, 50 * mm])
    et.setStyle(TableStyle(_table_style()))
    story.append(et)
    story.append(Paragraph("Planner suggestions and outcomes", h2))
    srows: list[list[Any]] = [["Suggestion", "KPI", "Confidence", "Expected effect (p50)", "Outcome"]]
    scmds: list[Any] = []
    for i, s in enumerate(data["suggestions"][:12], start=1):
        srows.append([Paragraph(s.title, cell), Paragraph(KPIS[s.kpi].label if s.kpi in KPIS else s.kpi, cell),
                      f"{s.confidence * 100:.0f} %", Paragraph(_effect_text(s.expected_effect), cell),
                      s.status.capitalize()])
        colour = {"accepted": "#2b8a3e", "rejected": "#868e96"}.get(s.status, "#e67700")
        scmds.append(("TEXTCOLOR", (4, i), (4, i), colors.HexColor(colour)))
    if len(srows) == 1:
        srows.append(["No suggestions this month", "", "", "", ""])
    st = Table(srows, colWidths=[56 * mm, 30 * mm, 20 * mm, 46 * mm, 18 * mm], repeatRows=1)
    st.setStyle(TableStyle(_table_style() + scmds))
    story.append(KeepTogether([st]))
    story.append(Spacer(1, 6 * mm))
    story.append(Paragraph("Figures come from the Levqor Pulse store (daily snapshots), the Cost DB and "
                           "the planner. Money in US dollars. KPIs marked not available had no data source.", small))
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=20 * mm, rightMargin=20 * mm, topMargin=18 * mm,
                            bottomMargin=18 * mm, title=f"Ecosystem Pulse {title_month}", author="Levqor")
    doc.build(story, onFirstPage=cover, onLaterPages=footer)
    pdf = buf.getvalue()
    return pdf, doc.page


def period_label(te: Any) -> str:
    """The period a target's actual covers: "5 Dec", "Dec to date", "Q4 to date", "Nov"."""
    end = te.period_end
    if end is None:
        return te.window
    if te.window in ("day", "latest"):
        return f"latest day, {end.day} {end.strftime('%b')}"
    name = end.strftime("%b") if te.window == "month" else f"Q{(end.month - 1) // 3 + 1}"
    return f"{name} to date" if te.partial else name


def _progress_text(data: dict[str, Any]) -> str:
    """"Month in progress: 1-5 December 2026 (5 of 31 days)"."""
    if not data["covered_to"] or data["days_covered"] <= 0:
        return f"Month in progress: no data yet ({data['days_in_month']} days in the month)"
    start, to = data["start"], data["covered_to"]
    return (f"Month in progress: {start.day}-{to.day} {start.strftime('%B %Y')} "
            f"({data['days_covered']} of {data['days_in_month']} days, month to date)")


def _short(text: str | None) -> str:
    return (text or "")[:70]


def _per_day(data: dict[str, Any], kpi: str) -> float | None:
    vals = [v for _, v in data["series"][kpi] if v is not None]
    return sum(vals) / len(vals) if vals else None


def _effect_text(effect: dict[str, Any]) -> str:
    """The outcomes a suggestion moves by at least 1 % (median vs baseline)."""
    outs = effect.get("outcomes") or {}
    parts = []
    for key, label in (("llm_spend_per_day_cents", "LLM spend/day"), ("spend_per_day_cents", "spend/day"),
                       ("revenue_cents", "revenue"), ("partner_payouts_cents", "payouts")):
        o = outs.get(key)
        if not o or not o.get("baseline"):
            continue
        if abs(o["p50"] - o["baseline"]) / abs(o["baseline"]) >= 0.01:
            digits = 2 if key.endswith("per_day_cents") else 0
            parts.append(f"{label} ${o['baseline'] / 100:,.{digits}f} → ${o['p50'] / 100:,.{digits}f}")
    if effect.get("projection_days_at_current_pace"):
        parts.append(f"target in ~{effect['projection_days_at_current_pace']} days at current pace")
    return "; ".join(parts[:2]) or "qualitative"


def _summary_text(data: dict[str, Any]) -> str:
    k = data["kpis"]
    t = data["targets"]
    parts = []
    rev = k["revenue"]["value"]
    if rev is not None:
        s = f"Revenue was <b>{fmt(rev, 'cents')}</b>"
        cur_d, prev_d = k["revenue"]["per_day"], k["revenue"]["previous_per_day"]
        if prev_d and cur_d is not None:
            s += f" ({fmt(cur_d, 'cents')} per day, {100 * (cur_d - prev_d) / prev_d:+.1f} % on the previous month)"
        parts.append(s + ".")
    up = k["uptime"]["value"]
    if up is not None:
        parts.append(f"Uptime averaged <b>{up:.3f} %</b> against a 99.98 % target.")
    share = k["partner_revenue_share"]["value"]
    if share is not None:
        parts.append(f"Partners earned <b>{share:.1f} %</b> of revenue (target 20 %).")
    off = [i.label for i in t.items if i.status in ("missed", "at_risk")]
    if off:
        parts.append("Needs attention: " + ", ".join(off) + ".")
    n = len(data["suggestions"])
    if n:
        acc = sum(s.status == "accepted" for s in data["suggestions"])
        parts.append(f"The planner made {n} suggestions; {acc} were accepted.")
    return " ".join(parts) or "No data was recorded this month."


def _table_style() -> list[Any]:
    from reportlab.lib import colors  # kept lazy: start-up time (as in _chart)

    return [("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"), ("FONTSIZE", (0, 0), (-1, -1), 8.5),
            ("TEXTCOLOR", (0, 0), (-1, 0), colors.HexColor("#5b6473")),
            ("LINEBELOW", (0, 0), (-1, 0), 0.8, colors.HexColor(INK)),
            ("LINEBELOW", (0, 1), (-1, -1), 0.25, colors.HexColor("#dee2e6")),
            ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f8f9fa")]),
            ("VALIGN", (0, 0), (-1, -1), "MIDDLE"), ("TOPPADDING", (0, 0), (-1, -1), 4),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 4)]


# ---- archive and tools ---------------------------------------------------------------------------

class ReportRead(BaseModel):
    id: int
    month: str
    created_at: dt.datetime
    created_by: str
    size_bytes: int
    pages: int
    download_url: str


def _read(r: PulseReport) -> ReportRead:
    return ReportRead(id=r.id, month=r.month, created_at=r.created_at, created_by=r.created_by,
                      size_bytes=r.size_bytes, pages=r.pages, download_url=f"/v1/pulse/reports/{r.month}.pdf")


def generate(ctx: ToolContext, month: str) -> ReportRead:
    """Build and archive the report for ``month`` (replacing an earlier version)."""
    month_bounds(month)
    org = ctx.session.get(Organization, ctx.org_id)
    pdf, pages = build_pdf(ctx, month, org.name if org else f"org {ctx.org_id}")
    row = PulseRepository(ctx.session).save_report(PulseReport(
        org_id=ctx.org_id, month=month, created_at=utcnow(), created_by=ctx.principal.actor[:200],
        size_bytes=len(pdf), pages=pages, pdf=pdf))
    return _read(row)


class ReportIn(BaseModel):
    month: str = Field(pattern=r"^(19|20)\d{2}-(0[1-9]|1[0-2])$", description="YYYY-MM")


@tool("pulse.report_generate", risk="write")
def report_generate(ctx: ToolContext, params: ReportIn) -> ReportRead:
    """Generate (or regenerate) the monthly Ecosystem Pulse PDF and archive it."""
    out = generate(ctx, params.month)
    audit_log.record(ctx, "pulse.report_generated", f"report:{params.month}", detail={"pages": out.pages})
    return out


class NoInput(BaseModel):
    pass


class ReportList(BaseModel):
    items: list[ReportRead]


@tool("pulse.reports", risk="read")
def reports(ctx: ToolContext, params: NoInput) -> ReportList:
    """List archived monthly Ecosystem Pulse PDFs."""
    return ReportList(items=[_read(r) for r in PulseRepository(ctx.session).reports(ctx.org_id)])


def pdf_bytes(ctx: ToolContext, month: str) -> bytes:
    month_bounds(month)
    r = PulseRepository(ctx.session).report(ctx.org_id, month)
    if r is None:
        raise NotFound(f"no Pulse report for {month}", field="month")
    return bytes(r.pdf)
