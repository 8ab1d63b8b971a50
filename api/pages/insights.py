"""The public /insights page (latest anonymised figures with charts, the report archive), its Notion
embed, the reports' stable URLs, and /settings/organisation (industry, size band, insights opt-out)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.deps import SessionDep, public, require
from api.pages.router import form_csrf, render
from api.security_headers import EMBED_CSP
from levqor.settings import get_settings
from tools.context import SYSTEM, ToolContext
from tools.data_insights import aggregator, report_builder
from tools.data_insights.aggregator import INDUSTRIES, SIZE_BANDS, TIME_SAVED_S, NoInput, ProfileIn
from tools.data_insights.report_builder import coverage_note, summary_lines
from tools.enterprise.rbac import allowed
from tools.errors import AppError, NotFound

router = APIRouter(tags=["pages"], include_in_schema=False)


def bars(cells: list[dict[str, Any]], key: str = "value", width: int = 150) -> list[dict[str, Any]]:
    """Rows for an SVG bar chart: label, value and the bar's width in pixels."""
    top = max((float(c.get(key) or 0) for c in cells), default=0.0) or 1.0
    return [{"label": c["label"], "value": c.get(key), "w": max(2, round(width * float(c.get(key) or 0) / top))}
            for c in cells]


def _context(session: SessionDep) -> dict[str, Any]:
    ctx = ToolContext(session, SYSTEM)
    try:
        snap = aggregator.latest(ctx, NoInput()).model_dump(mode="json")
    except NotFound:
        snap = None
    data = snap["data"] if snap else None
    weekly = (data or {}).get("weekly") or []
    top = max((w["jobs"] for w in weekly), default=0) or 1
    trend = [{"week": w["week"], "jobs": w["jobs"], "rate": w["success_rate"],
              "h": max(2, round(120 * w["jobs"] / top))} for w in weekly]
    return {"snap": snap, "data": data, "summary": summary_lines(data) if data else [], "trend": trend,
            "coverage": coverage_note(data) if data else "", "trend_top": top if weekly else 0,
            "bars": bars, "reports": report_builder.reports(ctx, report_builder.NoInput()).items,
            "time_saved": TIME_SAVED_S}


@router.get("/insights", dependencies=[public()])
def insights_page(request: Request, session: SessionDep) -> HTMLResponse:
    """Show the latest anonymised platform figures with charts, and the Insights Report archive."""
    return render(request, "insights.html", **_context(session))


@router.get("/insights/embed", dependencies=[public()])
def insights_embed(request: Request, session: SessionDep) -> HTMLResponse:
    """The compact figures for a Notion embed block (the one page that may be framed, by Notion only)."""
    resp = render(request, "insights_embed.html", **_context(session))
    resp.headers["Content-Security-Policy"] = EMBED_CSP
    return resp


@router.get("/insights/reports/latest", dependencies=[public()])
def latest_report(session: SessionDep) -> Response:
    """Redirect to the newest Insights Report's stable URL."""
    r, _ = report_builder.pdf_of(ToolContext(session, SYSTEM), None)
    return RedirectResponse(f"/insights/reports/{r.id}.pdf", status_code=307)


@router.get("/insights/reports/{report_id}.pdf", dependencies=[public()])
def report_pdf(session: SessionDep, report_id: int = Path(ge=1, le=2**31 - 1)) -> Response:
    """Download one archived Insights Report."""
    r, pdf = report_builder.pdf_of(ToolContext(session, SYSTEM), report_id)
    return Response(pdf, media_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="levqor-insights-{r.period}.pdf"',
        "Cache-Control": "public, max-age=300"})


def _org_page(request: Request, ctx: ToolContext, *, values: dict[str, Any] | None = None, error: str | None = None,
              error_field: str | None = None, saved: bool = False, status_code: int = 200) -> HTMLResponse:
    current = aggregator.profile(ctx, NoInput()).model_dump()
    resp = render(request, "org_settings.html", ctx, profile={**current, **(values or {})}, industries=INDUSTRIES,
                  size_bands=SIZE_BANDS, k=get_settings().insights_k, error=error, error_field=error_field, saved=saved,
                  can_edit=allowed(ctx.principal.role, "org:write"))
    resp.status_code = status_code
    return resp


@router.get("/settings/organisation")
def organisation_settings(request: Request, ctx: Annotated[ToolContext, require("org:read")]) -> HTMLResponse:
    """Show the organisation's industry, size band and insights opt-out."""
    return _org_page(request, ctx)


@router.post("/settings/organisation", dependencies=[Depends(form_csrf)])
def organisation_settings_save(
    request: Request, ctx: Annotated[ToolContext, require("org:write")],
    industry: Annotated[str, Form(max_length=64)] = "", size_band: Annotated[str, Form(max_length=64)] = "",
    opt_out: Annotated[bool, Form()] = False,
) -> HTMLResponse:
    """Save the industry, size band and opt-out (the insights.set_profile tool: validated and audited)."""
    values = {"industry": industry or None, "size_band": size_band or None, "opt_out": opt_out}
    try:
        aggregator.set_profile(ctx, ProfileIn(industry=industry, size_band=size_band, opt_out=opt_out))
    except AppError as exc:
        ctx.session.rollback()
        return _org_page(request, ctx, values=values, error=exc.detail, error_field=exc.field,
                         status_code=exc.status_code)
    return _org_page(request, ctx, saved=True)
