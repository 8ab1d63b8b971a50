"""The monthly SLA report as a PDF (reportlab): summary, credit, events counted and excluded,
maintenance, the credit table and how uptime is measured."""

from __future__ import annotations

import io

from tools.enterprise.sla import SlaReport, commitments


def money(minor: int, currency: str = "usd") -> str:
    sign = "-" if minor < 0 else ""
    sym = "$" if currency.lower() == "usd" else currency.upper() + " "
    return f"{sign}{sym}{abs(minor) // 100:,}.{abs(minor) % 100:02d}"


def duration(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{h} h {m:02d} min"
    return f"{m} min {sec:02d} s"


def render_pdf(r: SlaReport) -> bytes:
    """The report as PDF bytes (A4, one or two pages)."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    buf = io.BytesIO()
    ink, muted, accent = colors.HexColor("#1f2937"), colors.HexColor("#6b7280"), colors.HexColor("#1d4ed8")
    ok, bad = colors.HexColor("#047857"), colors.HexColor("#b91c1c")
    base = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=base["BodyText"], fontSize=9.5, leading=13, textColor=ink)
    small = ParagraphStyle("small", parent=body, fontSize=8, leading=10.5, textColor=muted)
    h1 = ParagraphStyle("h1", parent=base["Title"], fontSize=18, leading=22, alignment=0, textColor=ink,
                        spaceAfter=2)
    h2 = ParagraphStyle("h2", parent=base["Heading2"], fontSize=12, leading=15, textColor=accent, spaceBefore=10,
                        spaceAfter=4)
    grid = TableStyle([("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 8.5),
                       ("FONT", (0, 1), (-1, -1), "Helvetica", 8.5), ("TEXTCOLOR", (0, 0), (-1, -1), ink),
                       ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eef2ff")),
                       ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#d1d5db")),
                       ("VALIGN", (0, 0), (-1, -1), "TOP"), ("TOPPADDING", (0, 0), (-1, -1), 3),
                       ("BOTTOMPADDING", (0, 0), (-1, -1), 3)])
    story: list[object] = []
    story.append(Paragraph(f"Service Level Report &middot; {r.month}", h1))
    story.append(Paragraph(f"{r.org_name} ({r.org_slug}) &middot; {r.plan.capitalize()} plan &middot; generated "
                           f"{r.generated_at:%Y-%m-%d %H:%M} UTC", small))
    if r.in_progress:
        story.append(Paragraph(f"<b>Month in progress:</b> measured from {r.period_start:%Y-%m-%d} to "
                               f"{r.period_end:%Y-%m-%d %H:%M} UTC. Figures will change; credits are determined "
                               "after the month ends.", ParagraphStyle("warn", parent=body, textColor=bad)))
    if r.demo:
        story.append(Paragraph("Demo data: the probe history, incidents and payments behind this report were "
                               "seeded and labelled as demo.", small))
    story.append(Spacer(1, 4 * mm))

    uptime = "not measured" if r.uptime_pct is None else f"{r.uptime_pct:.3f} %"
    verdict = {True: "Met", False: "Missed", None: "-"}[r.met] + (" so far" if r.in_progress and r.met is not None
                                                                   else "")
    colour = {True: ok, False: bad, None: muted}[r.met]
    kpi = Table([["Measured uptime", "Commitment", "Result", "Credit"],
                 [uptime, "none" if r.commitment_pct is None else f"{r.commitment_pct:g} %", verdict,
                  money(r.credit_minor, r.currency) if r.credit_minor else ("pending" if r.in_progress else "-")]],
                colWidths=[44 * mm] * 4)
    kpi.setStyle(TableStyle([("FONT", (0, 0), (-1, 0), "Helvetica", 8), ("TEXTCOLOR", (0, 0), (-1, 0), muted),
                             ("FONT", (0, 1), (-1, 1), "Helvetica-Bold", 15), ("TEXTCOLOR", (0, 1), (-1, 1), ink),
                             ("TEXTCOLOR", (2, 1), (2, 1), colour),
                             ("BOX", (0, 0), (-1, -1), 0.5, colors.HexColor("#c7d2fe")),
                             ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#f8fafc")),
                             ("TOPPADDING", (0, 0), (-1, -1), 5), ("BOTTOMPADDING", (0, 0), (-1, -1), 6)]))
    story.append(kpi)
    story.append(Spacer(1, 3 * mm))
    facts = [["Eligible time (period less maintenance)", duration(r.eligible_s)],
             ["Downtime counted", duration(r.downtime_s)],
             ["Downtime the commitment allows", duration(r.allowed_downtime_s) if r.commitment_pct else "-"],
             ["Announced maintenance", duration(r.maintenance_s)],
             ["Downtime inside maintenance (excluded)", duration(r.excluded_downtime_s)],
             ["/readyz probes (failed)", f"{r.probes:,} ({r.failed_probes:,})"],
             ["Observed coverage", f"{r.coverage_pct:g} %"],
             ["Month's fee (revenue ledger)", money(r.fee_minor, r.currency)]]
    t = Table(facts, colWidths=[95 * mm, 60 * mm])
    t.hAlign = "LEFT"
    t.setStyle(TableStyle([("FONT", (0, 0), (-1, -1), "Helvetica", 9), ("TEXTCOLOR", (0, 0), (0, -1), muted),
                           ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#e5e7eb"))]))
    story.append(t)

    story.append(Paragraph("Service credit", h2))
    if r.credit_note is not None:
        story.append(Paragraph(f"Credit note #{r.credit_note.id} issued {r.credit_note.created_at:%Y-%m-%d}: "
                               f"<b>{money(r.credit_note.amount_minor, r.credit_note.currency)}</b> "
                               f"({r.credit_note.percent} % of {money(r.credit_note.fee_minor, r.currency)}), "
                               "applied to the next invoice.", body))
    elif r.credit_status == "owed":
        story.append(Paragraph(f"<b>{money(r.credit_minor, r.currency)}</b> owed ({r.credit_percent} % of the "
                               "month's fee); the credit note is issued by the monthly run.", body))
    elif r.credit_status == "pending":
        story.append(Paragraph(f"So far the month is at {r.credit_percent} % credit; determined when it ends.", body))
    else:
        story.append(Paragraph("No credit is owed for this month.", body))

    story.append(Paragraph("Downtime events", h2))
    if r.events:
        rows = [["Event", "From (UTC)", "To (UTC)", "Counted", "Excluded", "Status"]]
        for e in r.events:
            rows.append([Paragraph(f"{e.title}<br/><font color='#6b7280'>{e.ref}</font>", small),
                         f"{e.start:%m-%d %H:%M:%S}", f"{e.end:%m-%d %H:%M:%S}", duration(e.counted_s),
                         duration(e.excluded_s), e.status])
        et = Table(rows, colWidths=[58 * mm, 25 * mm, 25 * mm, 22 * mm, 22 * mm, 23 * mm], repeatRows=1)
        et.hAlign = "LEFT"
        et.setStyle(grid)
        story.append(et)
    else:
        story.append(Paragraph("No failed probe and no outage incident in this period.", body))

    story.append(Paragraph("Announced maintenance", h2))
    if r.maintenance:
        rows = [["Window", "From (UTC)", "To (UTC)", "Announced"]]
        for w in r.maintenance:
            rows.append([Paragraph(w.title, small), f"{w.starts_at:%m-%d %H:%M}", f"{w.ends_at:%m-%d %H:%M}",
                         f"{w.announced_at:%Y-%m-%d}"])
        mt = Table(rows, colWidths=[75 * mm, 30 * mm, 30 * mm, 30 * mm], repeatRows=1)
        mt.hAlign = "LEFT"
        mt.setStyle(grid)
        story.append(mt)
    else:
        story.append(Paragraph("None in this period.", body))

    story.append(Paragraph("Credit table", h2))
    table = r.credit_table
    if table:
        rows = [["Monthly uptime", "Credit (% of the month's fee)"]]
        bounds = [x.below_pct for x in table] + [0.0]
        for i, tier in enumerate(table):
            low = bounds[i + 1]
            rows.append([f"below {tier.below_pct:g} %" + (f", at least {low:g} %" if low else ""),
                         f"{tier.percent} %"])
        ct = Table(rows, colWidths=[80 * mm, 60 * mm])
        ct.hAlign = "LEFT"
        ct.setStyle(grid)
        story.append(ct)
    else:
        story.append(Paragraph(f"The {r.plan} plan has no uptime commitment. Plans with one: "
                               + ", ".join(f"{c.plan} {c.uptime_pct:g} %" for c in commitments().values()), body))
    for n in r.notes:
        story.append(Paragraph(n, small))
    story.append(Spacer(1, 3 * mm))
    story.append(Paragraph(
        "How uptime is measured: the scheduler probes <font face='Courier'>/readyz</font> every probe interval; "
        "each probe stands for the time until the next (at most two intervals). Downtime is the union of failed "
        "probes and <font face='Courier'>api_down</font> outage incidents, less maintenance announced at least "
        "72 hours ahead. Uptime = 1 - downtime / (month - maintenance). Terms: tools/enterprise/sla.md.", small))

    def footer(canvas: object, doc: object) -> None:
        canvas.saveState()  # type: ignore[attr-defined]
        canvas.setFont("Helvetica", 7.5)  # type: ignore[attr-defined]
        canvas.setFillColor(muted)  # type: ignore[attr-defined]
        canvas.drawString(18 * mm, 10 * mm, f"Levqor · SLA report {r.month} · {r.org_slug}")  # type: ignore[attr-defined]
        canvas.drawRightString(A4[0] - 18 * mm, 10 * mm, f"page {doc.page}")  # type: ignore[attr-defined]
        canvas.restoreState()  # type: ignore[attr-defined]

    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm, topMargin=16 * mm,
                            bottomMargin=18 * mm, title=f"Levqor SLA report {r.month} {r.org_slug}",
                            author="Levqor", creator="Levqor", subject="Service level report")
    doc.build(story, onFirstPage=footer, onLaterPages=footer)  # type: ignore[arg-type]
    return buf.getvalue()


def filename(r: SlaReport) -> str:
    return f"levqor-sla-{r.org_slug}-{r.month}.pdf"



