"""The /ops page: incidents, workers, key series with anomalies marked, a load forecast with its interval."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from api.deps import require
from api.pages.router import render
from levqor.settings import get_settings
from tools.auto_intel import incidents, signals
from tools.auto_intel.incidents import IncidentQuery
from tools.auto_intel.predictor import Forecast, ForecastError, forecast
from tools.auto_intel.signals import Point, PointsQuery, SeriesQuery
from tools.context import ToolContext
from tools.enterprise.rbac import allowed, is_staff
from tools.jobs import workers as job_workers
from tools.jobs.workers import NoInput

router = APIRouter(tags=["pages"], include_in_schema=False)
KEY_SERIES = ("jobs.queue.depth", "jobs.failure_rate", "jobs.start_latency_s.p95", "workers.stale", "jobs.finished")
W, H = 360, 70


def chart(points: list[Point], threshold: float, fc: Forecast | None = None) -> dict[str, Any]:
    """SVG coordinates: the line, anomaly markers, and (optionally) a forecast line with its band."""
    xs = [p.ts.timestamp() for p in points]
    ys = [p.value for p in points]
    fx: list[float] = list(fc.timestamps) if fc is not None else []
    all_x = xs + fx
    all_y = ys + (list(fc.lower) + list(fc.upper) if fc is not None else [])
    if len(all_x) < 2:
        return {"line": "", "marks": [], "band": "", "fline": ""}
    x0, x1 = min(all_x), max(all_x)
    y0, y1 = min(all_y), max(all_y)
    sx = (x1 - x0) or 1.0
    sy = (y1 - y0) or 1.0

    def pt(x: float, y: float) -> tuple[float, float]:
        return round((x - x0) / sx * W, 1), round(H - 2 - (y - y0) / sy * (H - 4), 1)

    line = " ".join("{},{}".format(*pt(x, y)) for x, y in zip(xs, ys, strict=True))
    marks = [pt(p.ts.timestamp(), p.value) for p in points if p.score is not None and p.score >= threshold]
    band = fline = ""
    if fc is not None:
        upper = [pt(x, y) for x, y in zip(fx, fc.upper, strict=True)]
        lower = [pt(x, y) for x, y in zip(fx, fc.lower, strict=True)]
        band = " ".join(f"{a},{b}" for a, b in upper + lower[::-1])
        fline = " ".join("{},{}".format(*pt(x, y)) for x, y in zip(fx, fc.yhat, strict=True))
    return {"line": line, "marks": marks, "band": band, "fline": fline, "y_min": y0, "y_max": y1,
            "t_from": dt.datetime.fromtimestamp(x0, dt.UTC), "t_to": dt.datetime.fromtimestamp(x1, dt.UTC)}


def series_value(name: str, value: float | None) -> str:
    """A series value for people, with its unit: "20.8 %", "1.25 s", "3 jobs"."""
    if value is None:
        return "no data"
    base = name.split("{")[0]
    if base.endswith("failure_rate"):
        return f"{value * 100:.1f} %"
    if base.endswith("_s.p95") or base.endswith("_s"):
        return f"{value:,.2f} s"
    if base.endswith("depth") or base.endswith("finished"):
        return f"{value:,.0f} jobs"
    if base.startswith("workers."):
        return f"{value:,.0f} workers"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


@router.get("/ops")
def ops_page(request: Request, ctx: Annotated[ToolContext, require("incidents:read")]) -> HTMLResponse:
    """Show incidents, workers, key series with anomalies marked and the load forecast."""
    page = incidents.list_incidents(ctx, IncidentQuery(limit=50))
    workers = job_workers.list_workers(ctx, NoInput()) if allowed(ctx.principal.role, "workers:read") else None
    threshold = get_settings().ops_anomaly_threshold
    charts = {}
    platform = is_staff(ctx, read=True)
    if platform:
        names: list[str] = list(KEY_SERIES)
    else:  # an organisation sees its own pipelines' series; the platform's are Levqor staff's
        own = signals.list_series(ctx, SeriesQuery(prefix="jobs.", since_s=6 * 3600)).series
        names = [n for n in own if n.startswith(("jobs.finished{", "jobs.failure_rate{"))][:6]
    for name in names:
        pts = signals.get_points(ctx, PointsQuery(series=name, since_s=6 * 3600)).points
        fc = None
        if name.split("{")[0] == "jobs.finished" and len(pts) >= 24:
            try:
                fc = forecast([p.value for p in pts], horizon=12, timestamps=[p.ts.timestamp() for p in pts])
            except ForecastError:
                fc = None
        charts[name] = {**chart(pts, threshold, fc), "last": series_value(name, pts[-1].value) if pts else None,
                        "anomalies": sum(1 for p in pts if p.score is not None and p.score >= threshold)}
    return render(request, "ops.html", ctx, incidents=page, workers=workers, charts=charts, W=W, H=H,
                  platform=platform, series_value=series_value)
