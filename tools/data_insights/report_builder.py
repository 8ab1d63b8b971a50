"""The quarterly Insights Report (reportlab): cover, executive summary, trends, distributions, benchmarks
by industry and size band, methodology and privacy notes. Built from a published snapshot only, so the
PDF can contain nothing the snapshot does not. Archived in the database; uploaded to Google Drive when a
service account is configured, and its summary pushed to Notion when a data source is configured."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

from pydantic import BaseModel, Field

from levqor.settings import get_settings
from memory.db import session_scope, utcnow
from memory.insights.models import InsightsReport, InsightsSnapshot
from memory.insights.repository import InsightsRepository
from tools.context import SYSTEM, ToolContext
from tools.data_insights import publish
from tools.data_insights.aggregator import (
    POOLED,
    STEP_LABELS,
    TIME_SAVED_S,
    previous_quarter,
    quarter_bounds,
    quarter_of,
    scheduled_rollup,
    take_snapshot,
)
from tools.enterprise import audit_log
from tools.enterprise.rbac import require_staff
from tools.errors import NotFound
from tools.registry import tool
from tools.schedules import Schedule

INK = "#1b2330"
ACCENT = "#0b7285"
ACCENT2 = "#e8590c"
MUTED = "#5b6473"
PALETTE = ["#0b7285", "#1c7ed6", "#5f3dc4", "#e8590c", "#2b8a3e", "#c2255c", "#868e96"]


def _n(v: Any, unit: str = "") -> str:
    if v is None:
        return "—"
    if unit == "%":
        return f"{v:.1f} %"
    if unit == "ms":
        return f"{v / 1000:.1f} s" if v >= 1000 else f"{v:.0f} ms"
    return f"{v:,.0f}" if isinstance(v, (int, float)) else str(v)


def days_covered(data: dict[str, Any]) -> int:
    """Calendar days of the quarter the figures reach (today counts while the quarter runs)."""
    start = dt.date.fromisoformat(data["start"])
    through = dt.date.fromisoformat(data.get("through") or data["end"])
    return (through - start).days + 1


def coverage_note(data: dict[str, Any]) -> str:
    """"" for a finished quarter; else how much of it the figures cover (a partial quarter)."""
    if not data.get("partial"):
        return ""
    start, through = dt.date.fromisoformat(data["start"]), dt.date.fromisoformat(data["through"])
    return (f"Partial quarter: {data['period']} so far, {start.day} {start:%B} to {through.day} {through:%B %Y} "
            f"({days_covered(data)} of {data['quarter_days']} days). Its totals cover fewer days than a full "
            "quarter's, so it is compared with other quarters per day.")


def per_day(group: dict[str, Any], key: str, days: float | None) -> float | None:
    """``key`` per day of ``group`` (stored since per-day comparison; derived for older snapshots)."""
    if group.get(f"{key}_per_day") is not None:
        return float(group[f"{key}_per_day"])
    d = group.get("days") or days
    return round(group[key] / d, 1) if d and group.get(key) is not None else None


def _days(p: dict[str, Any] | None) -> float | None:
    """Days of a previous quarter's figures (a finished quarter: all of them)."""
    if not p:
        return None
    start, end = quarter_bounds(p["period"])
    return float(p.get("days") or (end - start).days + 1)


def _cell(v: float | None, unit: str) -> str:
    """A comparison table cell: ``d`` is a per-day rate (one decimal), else as :func:`_n`."""
    if unit == "d":
        return "—" if v is None else f"{v:,.1f}"
    return _n(v, unit)


def summary_lines(data: dict[str, Any]) -> list[str]:
    """The executive summary as plain sentences (PDF, page, Notion)."""
    o = data.get("overall")
    if not o:
        return [f"Fewer than {data['k']} organisations were active in {data['period']}: nothing is published "
                "for this quarter (k-anonymity)."]
    so_far = f" so far ({days_covered(data)} of {data['quarter_days']} days)" if data.get("partial") else ""
    out = [f"{o['orgs']:,} organisations ran {o['jobs']:,} automation jobs in {data['period']}{so_far}, "
           f"{_n(o['success_rate'], '%')} of them successfully."]
    p = data.get("previous")
    cur_d = per_day(o, "jobs", data.get("days") or days_covered(data))
    prev_d = per_day(p, "jobs", _days(p)) if p else None
    if p and cur_d is not None and prev_d:
        out.append(f"Jobs per day changed {100 * (cur_d - prev_d) / prev_d:+.0f} % on {p['period']} "
                   f"({cur_d:,.1f} a day against {prev_d:,.1f}; quarters of different length are compared "
                   "per day, not by their totals).")
    out.append(f"Automation saved an estimated {o['time_saved_hours']:,} hours of manual work, "
               f"{o['time_saved_hours_per_org']:,} hours per organisation.")
    out.append(f"{_n(o['plugin_adoption_pct'], '%')} of organisations use at least one marketplace plugin.")
    inds = [g for g in data["by_industry"]["groups"] if g["label"] != POOLED and g.get("success_rate") is not None]
    if inds:
        best = max(inds, key=lambda g: g["success_rate"])
        busiest = max(inds, key=lambda g: g["jobs_per_org"])
        out.append(f"{best['label']} had the highest success rate ({_n(best['success_rate'], '%')}); "
                   f"{busiest['label']} ran the most jobs per organisation ({busiest['jobs_per_org']:,}).")
    return out


# ---- charts -----------------------------------------------------------------------------------------

def _axis_title(d: Any, text: str, x: float, y: float, *, vertical: bool = False, anchor: str = "middle") -> None:
    """An axis title (rotated a quarter turn for a vertical axis)."""
    from reportlab.graphics.shapes import Group, String
    from reportlab.lib import colors

    label = String(0, 0, text, textAnchor=anchor, fontName="Helvetica-Oblique", fontSize=7,
                   fillColor=colors.HexColor(MUTED))
    d.add(Group(label, transform=(0, 1, -1, 0, x, y) if vertical else (1, 0, 0, 1, x, y)))


def _bar_chart(title: str, labels: list[str], values: list[float], width: float, height: float,
               fmt: str = "%.0f", colour: str = ACCENT, horizontal: bool = True, *,
               value_axis: str, category_axis: str) -> Any:
    """A bar chart with a title and both axes labelled (``value_axis`` names the unit)."""
    from reportlab.graphics.charts.barcharts import HorizontalBarChart, VerticalBarChart
    from reportlab.graphics.shapes import Drawing, String
    from reportlab.lib import colors

    d = Drawing(width, height)
    d.add(String(0, height - 12, title, fontName="Helvetica-Bold", fontSize=9.5, fillColor=colors.HexColor(INK)))
    if not values:
        d.add(String(width / 2, height / 2, "suppressed (fewer than k organisations)", textAnchor="middle",
                     fontSize=8, fillColor=colors.HexColor(MUTED)))
        return d
    bc = HorizontalBarChart() if horizontal else VerticalBarChart()
    if horizontal:
        bc.x, bc.y, bc.width, bc.height = 118, 26, width - 150, height - 50
        _axis_title(d, value_axis, bc.x + bc.width / 2, 2)
        _axis_title(d, category_axis, bc.x - 4, bc.y + bc.height + 4, anchor="end")
    else:
        bc.x, bc.y, bc.width, bc.height = 46, 40, width - 56, height - 60
        _axis_title(d, category_axis, bc.x + bc.width / 2, 2)
        _axis_title(d, value_axis, 8, bc.y + bc.height / 2, vertical=True)
    bc.data = [values]
    bc.categoryAxis.categoryNames = [lab[:26] for lab in labels]
    bc.categoryAxis.labels.fontSize = 7.5
    bc.categoryAxis.labels.fillColor = colors.HexColor(INK)
    bc.categoryAxis.strokeColor = colors.HexColor("#adb5bd")
    if horizontal:
        bc.categoryAxis.reverseDirection = 1
        bc.categoryAxis.labels.boxAnchor = "e"
        bc.categoryAxis.labels.dx = -4
    else:
        bc.categoryAxis.labels.angle = 0
    bc.valueAxis.valueMin = 0
    bc.valueAxis.labels.fontSize = 7
    bc.valueAxis.visibleGrid = True
    bc.valueAxis.gridStrokeColor = colors.HexColor("#e9ecef")
    bc.valueAxis.strokeColor = colors.HexColor("#adb5bd")
    bc.bars[0].fillColor = colors.HexColor(colour)
    bc.bars[0].strokeColor = None
    bc.barLabelFormat = fmt
    bc.barLabels.fontSize = 7
    bc.barLabels.fillColor = colors.HexColor(INK)
    if horizontal:
        bc.barLabels.boxAnchor = "w"
        bc.barLabels.dx = 3
    else:
        bc.barLabels.dy = 6
    d.add(bc)
    return d


def _nice_top(top: float) -> tuple[float, float]:
    """(axis maximum, step): the step is 1, 2 or 5 times a power of ten giving at most six steps below
    ``top``, and the maximum the next step above it, so the top of the axis is labelled."""
    top = max(float(top), 1.0)
    step = next(m * 10.0 ** e for e in range(0, 12) for m in (1, 2, 5) if top / (m * 10.0 ** e) <= 6)
    return step * (int(top // step) + 1), step


def _trend_chart(weekly: list[dict[str, Any]], width: float, height: float) -> Any:
    from reportlab.graphics.charts.barcharts import VerticalBarChart
    from reportlab.graphics.charts.lineplots import LinePlot
    from reportlab.graphics.shapes import Drawing, String
    from reportlab.lib import colors

    d = Drawing(width, height)
    d.add(String(0, height - 12, "Weekly job volume (bars) and success rate (line, right axis)",
                 fontName="Helvetica-Bold", fontSize=9.5, fillColor=colors.HexColor(INK)))
    if len(weekly) < 2:
        d.add(String(width / 2, height / 2, "not enough weeks with k or more active organisations",
                     textAnchor="middle", fontSize=8, fillColor=colors.HexColor(MUTED)))
        return d
    bc = VerticalBarChart()
    bc.x, bc.y, bc.width, bc.height = 52, 44, width - 104, height - 70
    _axis_title(d, "Week starting (Monday; the first and last weeks of a quarter may be partial)",
                bc.x + bc.width / 2, 2)
    _axis_title(d, "Jobs run per week", 8, bc.y + bc.height / 2, vertical=True)
    bc.data = [[w["jobs"] for w in weekly]]
    bc.categoryAxis.categoryNames = [dt.date.fromisoformat(w["week"]).strftime("%d %b") for w in weekly]
    bc.categoryAxis.labels.fontSize = 6.5
    bc.categoryAxis.labels.angle = 35
    bc.categoryAxis.labels.boxAnchor = "ne"
    bc.valueAxis.valueMin = 0
    bc.valueAxis.valueMax, bc.valueAxis.valueStep = _nice_top(max(w["jobs"] for w in weekly))
    bc.valueAxis.labels.fontSize = 7
    bc.valueAxis.visibleGrid = True
    bc.valueAxis.gridStrokeColor = colors.HexColor("#e9ecef")
    bc.bars[0].fillColor = colors.HexColor("#99e9f2")
    bc.bars[0].strokeColor = colors.HexColor(ACCENT)
    d.add(bc)
    rates = [(i + 0.5, w["success_rate"]) for i, w in enumerate(weekly) if w["success_rate"] is not None]
    if len(rates) >= 2:
        lp = LinePlot()
        lp.x, lp.y, lp.width, lp.height = bc.x, bc.y, bc.width, bc.height
        lp.data = [rates]
        lp.xValueAxis.valueMin, lp.xValueAxis.valueMax = 0, len(weekly)
        lp.xValueAxis.visible = False
        lo = min(r for _, r in rates)
        lp.yValueAxis.valueMin, lp.yValueAxis.valueMax = max(0.0, lo - 5), 100
        lp.yValueAxis.joinAxisMode = "right"
        lp.yValueAxis.labels.fontSize = 7
        lp.yValueAxis.labelTextFormat = "%.0f %%"
        lp.yValueAxis.labels.boxAnchor = "w"
        lp.yValueAxis.labels.dx = 4
        _axis_title(d, "Success rate (% of finished jobs)", width - 4, bc.y + bc.height / 2, vertical=True)
        lp.lines[0].strokeColor = colors.HexColor(ACCENT2)
        lp.lines[0].strokeWidth = 1.8
        d.add(lp)
    return d


def build_pdf(data: dict[str, Any], *, generated: dt.datetime) -> tuple[bytes, int]:
    """Render the report from a snapshot's data; return (PDF bytes, page count)."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import KeepTogether, PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=styles["BodyText"], fontSize=9.5, leading=13.5,
                          textColor=colors.HexColor(INK))
    h1 = ParagraphStyle("h1", parent=styles["Heading1"], fontSize=17, leading=21, textColor=colors.HexColor(INK),
                        spaceAfter=4)
    h2 = ParagraphStyle("h2", parent=styles["Heading2"], fontSize=11.5, textColor=colors.HexColor(ACCENT),
                        spaceBefore=8, spaceAfter=4)
    small = ParagraphStyle("small", parent=body, fontSize=7.8, leading=10, textColor=colors.HexColor(MUTED))
    bullet = ParagraphStyle("bullet", parent=body, leftIndent=10, bulletIndent=0, spaceAfter=3)
    W, H = A4
    period = data["period"]
    start, end = quarter_bounds(period)
    title_period = f"Q{period[-1]} {period[:4]}"
    o = data.get("overall") or {}
    partial = bool(data.get("partial"))
    through = dt.date.fromisoformat(data["through"]) if partial else end
    buf = io.BytesIO()

    def cover(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFillColor(colors.HexColor("#0b1f2a"))
        canvas.rect(0, 0, W, H, stroke=0, fill=1)
        canvas.setFillColor(colors.HexColor(ACCENT))
        canvas.rect(0, H * 0.42, W, 3 * mm, stroke=0, fill=1)
        for i, c in enumerate(PALETTE[:5]):
            canvas.setFillColor(colors.HexColor(c))
            canvas.rect(20 * mm + i * 9 * mm, H - 40 * mm, 7 * mm, (12 + 6 * i) * mm, stroke=0, fill=1)
        canvas.setFillColor(colors.white)
        canvas.setFont("Helvetica-Bold", 12)
        canvas.drawString(20 * mm, H - 52 * mm, "LEVQOR")
        canvas.setFont("Helvetica-Bold", 34)
        canvas.drawString(20 * mm, H - 95 * mm, "Automation Insights")
        canvas.drawString(20 * mm, H - 110 * mm, "Report")
        canvas.setFont("Helvetica", 18)
        canvas.setFillColor(colors.HexColor("#99e9f2"))
        canvas.drawString(20 * mm, H - 125 * mm, f"{title_period}{' so far' if partial else ''} · "
                                                 f"{start.strftime('%d %b')} – {through.strftime('%d %b %Y')}")
        if partial:
            canvas.setFont("Helvetica-Bold", 10.5)
            canvas.setFillColor(colors.HexColor("#ffc078"))
            canvas.drawString(20 * mm, H - 134 * mm, f"PARTIAL QUARTER · {days_covered(data)} of "
                                                     f"{data['quarter_days']} days · compared per day")
        canvas.setFont("Helvetica", 10.5)
        canvas.setFillColor(colors.HexColor("#ced4da"))
        lines = ["Anonymised benchmarks of how organisations automate on the Levqor platform:",
                 "job volumes, reliability, latency, plugin adoption and time saved, by industry and size."]
        for i, line in enumerate(lines):
            canvas.drawString(20 * mm, H * 0.42 - (12 + 6 * i) * mm, line)
        if o:
            stats = [(f"{o['orgs']:,}", "organisations"), (f"{o['jobs']:,}", "jobs run"),
                     (_n(o["success_rate"], "%"), "success rate"), (f"{o['time_saved_hours']:,} h", "time saved")]
            for i, (v, lab) in enumerate(stats):
                x = 20 * mm + i * 43 * mm
                canvas.setFillColor(colors.white)
                canvas.setFont("Helvetica-Bold", 20)
                canvas.drawString(x, 60 * mm, v)
                canvas.setFont("Helvetica", 9)
                canvas.setFillColor(colors.HexColor("#adb5bd"))
                canvas.drawString(x, 54 * mm, lab.upper())
        canvas.setFont("Helvetica", 8)
        canvas.setFillColor(colors.HexColor("#868e96"))
        note = f"Published {generated.strftime('%d %B %Y')} · groups of fewer than {data['k']} organisations suppressed"
        if data.get("includes_demo_data"):
            note += " · CONTAINS DEMO DATA"
        canvas.drawString(20 * mm, 20 * mm, note)
        canvas.restoreState()

    def later(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFillColor(colors.HexColor(ACCENT))
        canvas.rect(20 * mm, H - 12 * mm, W - 40 * mm, 0.8 * mm, stroke=0, fill=1)
        canvas.setFont("Helvetica", 7.5)
        canvas.setFillColor(colors.HexColor(MUTED))
        canvas.drawString(20 * mm, H - 10 * mm, f"Levqor Automation Insights Report · {title_period}")
        canvas.drawString(20 * mm, 10 * mm, "Anonymised aggregates · k-anonymity k = "
                          f"{data['k']}{' · demo data' if data.get('includes_demo_data') else ''}")
        canvas.drawRightString(W - 20 * mm, 10 * mm, f"{doc.page}")
        canvas.restoreState()

    def table(rows: list[list[Any]], widths: list[float]) -> Table:
        t = Table(rows, colWidths=widths, repeatRows=1)
        t.setStyle(TableStyle([
            ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"), ("FONTSIZE", (0, 0), (-1, -1), 8.3),
            ("TEXTCOLOR", (0, 0), (-1, 0), colors.white), ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor(INK)),
            ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f1f3f5")]),
            ("ALIGN", (1, 0), (-1, -1), "RIGHT"), ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
            ("TOPPADDING", (0, 0), (-1, -1), 4), ("BOTTOMPADDING", (0, 0), (-1, -1), 4),
            ("LINEBELOW", (0, -1), (-1, -1), 0.6, colors.HexColor(INK))]))
        return t

    story: list[Any] = [PageBreak()]
    story.append(Paragraph("Executive summary", h1))
    story.append(Paragraph(f"{start.strftime('%d %B')} – {through.strftime('%d %B %Y')}", small))
    if partial:
        story.append(Paragraph(f"<b>{coverage_note(data)}</b>", small))
    story.append(Spacer(1, 4 * mm))
    for line in summary_lines(data):
        story.append(Paragraph(line, bullet, bulletText="■"))
    if o:
        tiles = [("JOBS RUN", f"{o['jobs']:,}"), ("SUCCESS RATE", _n(o["success_rate"], "%")),
                 ("MEDIAN JOB LATENCY", _n(o["latency_ms_median_org"], "ms")),
                 ("PLUGIN ADOPTION", _n(o["plugin_adoption_pct"], "%"))]
        cells = [[Paragraph(f"<font size=7.5 color='{MUTED}'>{lab}</font><br/><font size=16><b>{v}</b></font>",
                            body) for lab, v in tiles]]
        t = Table(cells, colWidths=[42.5 * mm] * 4, rowHeights=[20 * mm])
        t.setStyle(TableStyle([("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#e3fafc")),
                               ("LINEBEFORE", (1, 0), (-1, -1), 2, colors.white),
                               ("LINEABOVE", (0, 0), (-1, 0), 2, colors.HexColor(ACCENT)),
                               ("VALIGN", (0, 0), (-1, -1), "MIDDLE"), ("LEFTPADDING", (0, 0), (-1, -1), 8)]))
        story += [Spacer(1, 6 * mm), t, Spacer(1, 6 * mm)]
        story.append(_trend_chart(data.get("weekly") or [], 170 * mm, 75 * mm))
        p = data.get("previous")
        if p:
            cur_days, prev_days = days_covered(data), round(_days(p) or 0)
            rows = [["Measure", title_period + (" so far" if partial else ""), p["period"].replace("-", " "),
                     "Change"],
                    ["Days covered", f"{cur_days} of {(end - start).days + 1}", f"{prev_days}", "—"]]
            # Totals are shown as they are; their change is only meaningful per day when the quarters differ in
            # length, so volumes are compared per day and rates (already per job or per organisation) directly.
            for key, lab, unit, daily in (("jobs", "Jobs run (total)", "", False),
                                          ("jobs", "Jobs per day", "d", True),
                                          ("success_rate", "Success rate", "%", False),
                                          ("time_saved_hours", "Hours saved per day (est.)", "d", True),
                                          ("plugin_adoption_pct", "Plugin adoption", "%", False)):
                if daily:
                    cur, prv = per_day(o, key, data.get("days") or cur_days), per_day(p, key, _days(p))
                else:
                    cur, prv = o.get(key), p.get(key)
                if unit == "%":
                    ch = f"{cur - prv:+.1f} pts" if cur is not None and prv is not None else "—"
                elif key == "jobs" and not daily and partial:
                    ch = "see per day"
                else:
                    ch = f"{100 * (cur - prv) / prv:+.1f} %" if cur is not None and prv else "—"
                rows.append([lab, _cell(cur, unit), _cell(prv, unit), ch])
            story += [Paragraph("Quarter on quarter", h2), table(rows, [60 * mm, 36 * mm, 36 * mm, 38 * mm])]
            if partial:
                story.append(Paragraph(f"{title_period} is still running: its totals cover {cur_days} days against "
                                       f"{prev_days}, so volumes are compared per day.", small))
    story.append(PageBreak())

    story.append(Paragraph("How organisations automate", h1))
    story.append(Paragraph("Distributions across every organisation active this quarter: which kinds of step "
                           "their live pipelines use, which connectors those steps reach, and which plugin "
                           "categories they install. Each bar counts organisations (or their pipelines) and is "
                           f"shown only when at least {data['k']} organisations stand behind it.", body))
    if o:
        sk = o["pipelines_by_step_kind"]
        story.append(_bar_chart("Pipelines using each step kind", [c["label"] for c in sk], [c["value"] for c in sk],
                                170 * mm, 62 * mm, value_axis="Live pipelines (count)", category_axis="Step kind"))
        cn = o["connectors"][:8]
        story.append(_bar_chart("Connector steps by target", [c["label"] for c in cn], [c["value"] for c in cn],
                                170 * mm, 62 * mm, colour="#1c7ed6", value_axis="Connector steps in live pipelines "
                                "(count)", category_axis="Target"))
        pc = o["plugin_categories"][:8]
        story.append(_bar_chart("Organisations installing each plugin category", [c["label"] for c in pc],
                                [c["value"] for c in pc], 170 * mm, 62 * mm, colour="#5f3dc4",
                                value_axis="Organisations (count)", category_axis="Plugin category"))
    story.append(PageBreak())

    for title, key, colour in (("Benchmarks by industry", "by_industry", ACCENT),
                               ("Benchmarks by organisation size", "by_size_band", "#1c7ed6")):
        dim = data[key]
        groups = dim["groups"]
        story.append(Paragraph(title, h1))
        rows = [["Group", "Orgs", "Jobs / org", "Success", "Median latency", "Hours saved / org", "Plugins"]]
        for g in groups:
            rows.append([g["label"], f"{g['orgs']:,}", f"{g['jobs_per_org']:,}", _n(g["success_rate"], "%"),
                         _n(g["latency_ms_median_org"], "ms"), f"{g['time_saved_hours_per_org']:,}",
                         _n(g["plugin_adoption_pct"], "%")])
        if len(rows) == 1:
            rows.append(["No group reached k organisations", "", "", "", "", "", ""])
        story.append(table(rows, [48 * mm, 14 * mm, 20 * mm, 18 * mm, 26 * mm, 26 * mm, 18 * mm]))
        story.append(Paragraph(
            f"{dim['suppressed_groups']} group(s) with fewer than {data['k']} organisations were pooled into "
            f"“{POOLED}” or withheld; the smallest published groups join the pool when needed so that no "
            "withheld group can be recovered by subtraction.", small))
        story.append(Spacer(1, 3 * mm))
        group_axis = "Industry" if key == "by_industry" else "Size band"
        in_q = "so far this quarter" if partial else "in the quarter"
        row = [_bar_chart("Jobs per organisation", [g["label"] for g in groups], [g["jobs_per_org"] for g in groups],
                          84 * mm, 62 * mm, colour=colour, value_axis=f"Jobs per organisation {in_q}",
                          category_axis=group_axis),
               _bar_chart("Success rate (%)", [g["label"] for g in groups],
                          [g["success_rate"] or 0 for g in groups], 84 * mm, 62 * mm, fmt="%.1f", colour=ACCENT2,
                          value_axis="Succeeded, % of finished jobs", category_axis=group_axis)]
        grid = Table([row], colWidths=[86 * mm, 86 * mm])
        story += [grid, Spacer(1, 2 * mm),
                  _bar_chart("Estimated hours saved per organisation", [g["label"] for g in groups],
                             [g["time_saved_hours_per_org"] for g in groups], 170 * mm, 55 * mm, fmt="%.1f",
                             colour="#2b8a3e", value_axis=f"Hours per organisation {in_q} (estimate)",
                             category_axis=group_axis),
                  PageBreak()]

    story.append(Paragraph("Methodology and privacy", h1))
    meth = [
        ("Population", "Every organisation on the Levqor platform with a live pipeline or a finished live job in "
                       "the quarter, except those that opted out (organisation setting "
                       "<font face='Courier'>insights_opt_out</font>). Test-mode jobs are never counted."),
        ("Data collection", "Finished jobs are folded incrementally, once each, into one row per organisation "
                            "and day (a watermark over the jobs table), so the figures never rescan history. "
                            "Those rows stay inside the aggregator; only group figures leave it."),
        ("Measures", "Jobs run and success rate (succeeded / finished, failed and dead-lettered jobs count as "
                     "failures); latency is the median (and 90th percentile) across organisations of each "
                     "organisation's mean start-to-finish time; plugin adoption is the share of organisations "
                     "with at least one active marketplace plugin."),
        ("Time saved", "An estimate: each successful step is credited with the time a person would take to do "
                       "it by hand — " + ", ".join(f"{STEP_LABELS[kd].lower()} {s // 60 if s >= 60 else s}"
                                                   f"{' min' if s >= 60 else ' s'}"
                                                   for kd, s in TIME_SAVED_S.items()) + "."),
        ("k-anonymity", f"No figure is published about fewer than k = {data['k']} organisations: groups (industry, "
                        "size band, week) and cells (step kinds, connectors, plugin categories) below k are "
                        "suppressed, and small groups are pooled with complementary suppression. Group labels "
                        "come from fixed lists; no organisation name, id, slug or email appears."),
        ("Differential privacy", data["privacy"]),
        ("Industry and size", "Organisations state their industry and size band at sign-up or in their "
                              "settings; those that did not are grouped as “Not stated”."),
        ("Comparing quarters", "Quarters differ in length, and a quarter still running covers only the days so far "
                               "(the report says so on its cover). Volumes — jobs and hours saved — are therefore "
                               "compared per day of the period covered, never as raw totals; rates (success, "
                               "adoption) are compared directly, in percentage points."),
    ]
    if data.get("includes_demo_data"):
        meth.append(("Demo data", "This report was produced on a demonstration installation: its organisations "
                                  "are seeded demo data, not customers, and their jobs were run by the platform's "
                                  "queue when the demo was installed, each dated to the past day it stands for."))
    for head, text in meth:
        story.append(KeepTogether([Paragraph(head, h2), Paragraph(text, body)]))
    story.append(Spacer(1, 6 * mm))
    stamp = generated.strftime("%d %B %Y %H:%M UTC")
    story.append(Paragraph(f"Snapshot computed for {period}; report generated {stamp}.", small))
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=20 * mm, rightMargin=20 * mm, topMargin=18 * mm,
                            bottomMargin=18 * mm, title=f"Levqor Automation Insights Report {title_period}",
                            author="Levqor")
    doc.build(story, onFirstPage=cover, onLaterPages=later)
    return buf.getvalue(), doc.page


# ---- archive and tools --------------------------------------------------------------------------------

class InsightsReportRead(BaseModel):
    id: int
    period: str
    created_at: dt.datetime
    size_bytes: int
    pages: int
    url: str = Field(description="Stable download URL")
    drive_link: str | None
    notion_page_id: str | None
    publish_note: str


def read(r: InsightsReport) -> InsightsReportRead:
    return InsightsReportRead(id=r.id, period=r.period, created_at=r.created_at, size_bytes=r.size_bytes, pages=r.pages,
                      url=f"/insights/reports/{r.id}.pdf", drive_link=r.drive_link,
                      notion_page_id=r.notion_page_id, publish_note=r.publish_note)


def generate(ctx: ToolContext, period: str) -> InsightsReportRead:
    """Snapshot ``period``, render, archive and publish (Drive, Notion) the report."""
    quarter_bounds(period)
    snap: InsightsSnapshot = take_snapshot(ctx.session, period)
    now = utcnow()
    pdf, pages = build_pdf(dict(snap.data), generated=now)
    row = InsightsRepository(ctx.session).add_report(InsightsReport(
        period=period, snapshot_id=snap.id, created_at=now, created_by=ctx.principal.actor[:200],
        size_bytes=len(pdf), pages=pages, pdf=pdf, demo=bool(snap.data.get("includes_demo_data"))))
    notes = []
    drive = publish.upload_to_drive(pdf, f"Levqor Insights Report {period}.pdf")
    if drive is not None:
        row.drive_file_id, row.drive_link = drive.file_id, drive.link
        notes.append(drive.note)
    else:
        notes.append("archived locally (Google Drive not configured)")
    notion = publish.push_to_notion(period, summary_lines(dict(snap.data)), f"/insights/reports/{row.id}.pdf")
    if notion is not None:
        row.notion_page_id = notion.page_id
        notes.append(notion.note)
    row.publish_note = "; ".join(notes)[:1000]
    ctx.session.flush()
    return read(row)


class InsightsReportIn(BaseModel):
    period: str | None = Field(None, pattern=r"^20\d{2}-Q[1-4]$",
                               description="YYYY-Qn; default: the quarter so far")


@tool("insights.report_generate", risk="write")
def report_generate(ctx: ToolContext, params: InsightsReportIn) -> InsightsReportRead:
    """Generate the quarterly Insights Report PDF now, archive and publish it (Levqor staff)."""
    require_staff(ctx, "publish the Insights Report: it covers every organisation")
    out = generate(ctx, params.period or quarter_of(utcnow().date()))
    audit_log.record(ctx, "insights.report_generated", f"insights_report:{out.id}",
                     detail={"period": out.period, "pages": out.pages, "published": out.publish_note})
    return out


class NoInput(BaseModel):
    pass


class InsightsReportList(BaseModel):
    items: list[InsightsReportRead]


@tool("insights.reports", risk="read")
def reports(ctx: ToolContext, params: NoInput) -> InsightsReportList:
    """List the archived quarterly Insights Reports (public: they hold only anonymised aggregates)."""
    return InsightsReportList(items=[read(r) for r in InsightsRepository(ctx.session).reports()])


def pdf_of(ctx: ToolContext, report_id: int | None) -> tuple[InsightsReport, bytes]:
    """The archived PDF ``report_id``, or the latest one with None."""
    repo = InsightsRepository(ctx.session)
    r = repo.report(report_id) if report_id is not None else next(iter(repo.reports(1)), None)
    if r is None:
        raise NotFound("no such Insights Report", field="report_id")
    return r, bytes(r.pdf)


def quarterly() -> None:
    """Scheduled on the first day of each quarter: the report of the quarter that just ended."""
    with session_scope() as s:
        period = previous_quarter(quarter_of(utcnow().date()))
        if InsightsRepository(s).report_for(period) is None:
            ctx = ToolContext(s, SYSTEM)
            out = generate(ctx, period)
            audit_log.record(ctx, "insights.report_generated", f"insights_report:{out.id}",
                             detail={"period": period, "pages": out.pages, "trigger": "schedule"})


def hourly_snapshot() -> None:
    """Refresh the published figures of the current quarter (what /insights shows)."""
    with session_scope() as s:
        take_snapshot(s, quarter_of(utcnow().date()))


def schedules() -> list[Schedule]:
    """The rollup (interval from settings), the hourly snapshot and the quarterly report."""
    return [Schedule("insights.rollup", float(get_settings().insights_rollup_interval_s), scheduled_rollup),
            Schedule("insights.snapshot", 3600.0, hourly_snapshot),
            Schedule("insights.quarterly_report", "cron:0 3 1 1,4,7,10 *", quarterly)]
