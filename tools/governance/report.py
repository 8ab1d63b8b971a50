"""The quarterly governance report for Levqor staff (PDF, reportlab): audits and their results, the
findings that recur, failed partners and what was enforced, and the policy versions in force."""

from __future__ import annotations

import datetime as dt
import io
import re
from collections import Counter
from typing import Any

from pydantic import BaseModel, Field

from memory.governance.repository import GovernanceRepository
from memory.partner.repository import PartnerRepository
from policies.engine import get_engine
from tools.context import ToolContext
from tools.enterprise import audit_log
from tools.enterprise.rbac import require_staff
from tools.errors import Unprocessable
from tools.registry import tool

INK, ACCENT, MUTED = "#1f2937", "#3b4cca", "#6b7280"
RESULT_LABEL = {"pass": "Pass", "pass_with_warnings": "Pass with warnings", "fail": "Fail", None: "Error"}


def quarter_bounds(quarter: str) -> tuple[dt.datetime, dt.datetime]:
    """``2026-Q4`` -> [2026-10-01, 2027-01-01) in UTC; 422 naming ``quarter`` when malformed."""
    m = re.fullmatch(r"(\d{4})-Q([1-4])", quarter)
    if not m:
        raise Unprocessable(f"quarter {quarter!r} must look like 2026-Q4", field="quarter")
    year, q = int(m.group(1)), int(m.group(2))
    start = dt.datetime(year, 3 * (q - 1) + 1, 1, tzinfo=dt.UTC)
    end = dt.datetime(year + (q == 4), 1 if q == 4 else 3 * q + 1, 1, tzinfo=dt.UTC)
    return start, end


class QuarterRef(BaseModel):
    quarter: str = Field(min_length=7, max_length=7, description="e.g. 2026-Q4")


class GovernanceSummary(BaseModel):
    quarter: str
    audits: int
    plugins: int
    results: dict[str, int]
    by_trigger: dict[str, int]
    top_findings: list[tuple[str, str, int]] = Field(description="(code, title, count)")
    failed: list[dict[str, Any]]
    policy_version: int
    policy_changes: list[dict[str, Any]]


def summary(ctx: ToolContext, quarter: str) -> GovernanceSummary:
    start, end = quarter_bounds(quarter)
    repo, prepo = GovernanceRepository(ctx.session), PartnerRepository(ctx.session)
    audits = [a for a in repo.audits_between(start, end) if a.status in ("done", "error")]
    titles: dict[str, str] = {}
    counts: Counter[str] = Counter()
    for a in audits:
        for f in a.findings or []:
            if f["severity"] != "info":
                counts[f["code"]] += 1
                titles[f["code"]] = f["title"]
    failed = []
    for a in audits:
        if a.result == "fail":
            plugin, partner = prepo.plugin(a.plugin_id), prepo.partner(a.partner_id)
            state = "enforced" if a.enforced_at else "fixed" if a.resolved_by_audit_id else \
                "demo" if partner is not None and partner.demo else "notified" if a.notified_at else "open"
            failed.append({"audit": a.id, "plugin": plugin.name if plugin else "?", "version": a.version,
                           "partner": partner.display_name if partner else "?",
                           "findings": sum(1 for f in a.findings or [] if f["severity"] in ("critical", "high")),
                           "deadline": f"{a.deadline_at:%Y-%m-%d}" if a.deadline_at else "-", "state": state})
    changes = [c for v in repo.policy_versions() if start <= v.recorded_at < end
               for c in [{"version": v.version, "at": f"{v.recorded_at:%Y-%m-%d}", "changes": len(v.diff or [])}]]
    return GovernanceSummary(
        quarter=quarter, audits=len(audits), plugins=len({a.plugin_id for a in audits}),
        results=dict(Counter(RESULT_LABEL.get(a.result, "Error") for a in audits)),
        by_trigger=dict(Counter(a.trigger for a in audits)),
        top_findings=[(c, titles[c], n) for c, n in counts.most_common(10)], failed=failed,
        policy_version=get_engine().doc.version, policy_changes=changes)


@tool("governance.report", risk="read")
def report(ctx: ToolContext, params: QuarterRef) -> GovernanceSummary:
    """Prepare the quarterly governance report's figures for Levqor staff (the PDF is rendered from them)."""
    require_staff(ctx, "read the governance report", read=True)
    out = summary(ctx, params.quarter)
    audit_log.record(ctx, "governance.report_prepared", f"governance:{params.quarter}",
                     after={"audits": out.audits, "results": out.results})
    return out


def build_pdf(s: GovernanceSummary) -> bytes:
    """The report as a PDF: cover figures, results, recurring findings, failed audits, policy."""
    # kept lazy: start-up time (reportlab costs the API ~0.4 s and only the PDF needs it)
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=styles["BodyText"], fontSize=9.5, leading=13, textColor=colors.HexColor(INK))
    small = ParagraphStyle("small", parent=body, fontSize=8.5, leading=11)
    h1 = ParagraphStyle("h1", parent=styles["Heading1"], fontSize=18, textColor=colors.HexColor(INK), spaceAfter=4)
    h2 = ParagraphStyle("h2", parent=styles["Heading2"], fontSize=12, textColor=colors.HexColor(ACCENT),
                        spaceBefore=10, spaceAfter=4)
    grid = TableStyle([("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 9), ("FONT", (0, 1), (-1, -1), "Helvetica", 9),
                       ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eef0fb")),
                       ("LINEBELOW", (0, 0), (-1, -1), 0.3, colors.HexColor("#d1d5db")),
                       ("VALIGN", (0, 0), (-1, -1), "TOP"), ("TOPPADDING", (0, 0), (-1, -1), 3)])

    def footer(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 8)
        canvas.setFillColor(colors.HexColor(MUTED))
        canvas.drawString(18 * mm, 10 * mm, f"Levqor governance report {s.quarter} - staff only - prepared by the "
                                            "auditor agent")
        canvas.drawRightString(192 * mm, 10 * mm, f"page {doc.page}")
        canvas.restoreState()

    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm, topMargin=18 * mm,
                            bottomMargin=18 * mm, title=f"Levqor governance report {s.quarter}", author="Levqor")
    story: list[Any] = [Paragraph(f"Governance report {s.quarter}", h1),
                        Paragraph(f"Partner audits against the code of conduct (policy version {s.policy_version} "
                                  "in force). Prepared for Levqor staff by the auditor agent.", body), Spacer(1, 6)]
    tiles = [("Audits", str(s.audits)), ("Plugins audited", str(s.plugins)),
             ("Failed", str(s.results.get("Fail", 0))),
             ("Enforced", str(sum(1 for f in s.failed if f["state"] == "enforced")))]
    t = Table([[Paragraph(f"<font size=8 color='{MUTED}'>{k}</font><br/><font size=16><b>{v}</b></font>", body)
                for k, v in tiles]], colWidths=[43 * mm] * 4)
    t.setStyle(TableStyle([("BOX", (0, 0), (-1, -1), 0.5, colors.HexColor("#d1d5db")),
                           ("INNERGRID", (0, 0), (-1, -1), 0.5, colors.HexColor("#d1d5db")),
                           ("TOPPADDING", (0, 0), (-1, -1), 6), ("BOTTOMPADDING", (0, 0), (-1, -1), 6)]))
    story += [t, Paragraph("Results", h2)]
    rows = [["Result", "Audits"]] + [[k, str(v)] for k, v in sorted(s.results.items())]
    rows += [["Trigger", "Audits"]] + [[k.replace("_", " "), str(v)] for k, v in sorted(s.by_trigger.items())]
    rt = Table(rows, colWidths=[80 * mm, 30 * mm], hAlign="LEFT")
    rt.setStyle(grid)
    trigger_row = len(s.results) + 1
    rt.setStyle(TableStyle([("FONT", (0, trigger_row), (-1, trigger_row), "Helvetica-Bold", 9),
                            ("BACKGROUND", (0, trigger_row), (-1, trigger_row), colors.HexColor("#eef0fb"))]))
    story.append(rt if s.audits else Paragraph("No audits ran in this quarter.", body))
    story.append(Paragraph("Findings that recur", h2))
    if s.top_findings:
        ft = Table([["Finding", "Code", "Audits"]] + [[Paragraph(title, small), code, str(n)]
                                                       for code, title, n in s.top_findings],
                   colWidths=[90 * mm, 55 * mm, 20 * mm], repeatRows=1)
        ft.setStyle(grid)
        story.append(ft)
    else:
        story.append(Paragraph("No findings: every audit met the code of conduct.", body))
    story.append(Paragraph("Failed audits", h2))
    if s.failed:
        at = Table([["Plugin", "Partner", "Critical/high", "Deadline", "Now"]] +
                   [[Paragraph(f"{f['plugin']} {f['version']}", small), Paragraph(f["partner"], small),
                     str(f["findings"]), f["deadline"], f["state"]] for f in s.failed],
                   colWidths=[50 * mm, 50 * mm, 25 * mm, 25 * mm, 20 * mm], repeatRows=1)
        at.setStyle(grid)
        story.append(at)
    else:
        story.append(Paragraph("No audit failed.", body))
    story.append(Paragraph("Policy", h2))
    if s.policy_changes:
        story.append(Paragraph("; ".join(f"version {c['version']} in force from {c['at']} ({c['changes']} settings "
                                         "changed)" for c in s.policy_changes), body))
    else:
        story.append(Paragraph(f"Version {s.policy_version}; no change recorded in this quarter.", body))
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buf.getvalue()
