"""Operations API: incidents (list, get, acknowledge, resolve) and the sampled series."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from api.deps import require
from tools.auto_intel import incidents, signals
from tools.auto_intel.incidents import (
    IncidentDetail,
    IncidentPage,
    IncidentQuery,
    IncidentRead,
    IncidentRef,
    IncidentResolve,
)
from tools.auto_intel.signals import PointsOut, PointsQuery, SeriesNames, SeriesQuery
from tools.context import ToolContext

router = APIRouter(prefix="/v1", tags=["ops"])
IncidentId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class ResolveBody(BaseModel):
    note: str = Field("", max_length=1000)


@router.get("/incidents", response_model=IncidentPage)
def list_incidents(ctx: Annotated[ToolContext, require("incidents:read")],
                   state: Annotated[list[str] | None, Query(max_length=4)] = None,
                   cursor: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
                   limit: Annotated[int, Query(ge=1, le=500)] = 50) -> IncidentPage:
    """List incidents, newest first, optionally by state."""
    return incidents.list_incidents(ctx, IncidentQuery(state=state, cursor=cursor, limit=limit))


@router.get("/incidents/{incident_id}", response_model=IncidentDetail)
def get_incident(incident_id: IncidentId, ctx: Annotated[ToolContext, require("incidents:read")]) -> IncidentDetail:
    """Show one incident with its timeline and notifications."""
    return incidents.get_incident(ctx, IncidentRef(incident_id=incident_id))


@router.post("/incidents/{incident_id}/ack", response_model=IncidentRead)
def ack_incident(incident_id: IncidentId, ctx: Annotated[ToolContext, require("incidents:write")]) -> IncidentRead:
    """Acknowledge an incident."""
    return incidents.ack_incident(ctx, IncidentRef(incident_id=incident_id))


@router.post("/incidents/{incident_id}/resolve", response_model=IncidentRead)
def resolve_incident(incident_id: IncidentId, body: ResolveBody,
                     ctx: Annotated[ToolContext, require("incidents:write")]) -> IncidentRead:
    """Resolve an incident with a note."""
    return incidents.resolve_incident(ctx, IncidentResolve(incident_id=incident_id, note=body.note))


@router.get("/signals", response_model=SeriesNames)
def list_signals(ctx: Annotated[ToolContext, require("incidents:read")],
                 prefix: Annotated[str, Query(max_length=200)] = "",
                 since_s: Annotated[int, Query(ge=1, le=40 * 86400)] = 3600) -> SeriesNames:
    """List the sampled operations series."""
    return signals.list_series(ctx, SeriesQuery(prefix=prefix, since_s=since_s))


@router.get("/signals/points", response_model=PointsOut)
def signal_points(ctx: Annotated[ToolContext, require("incidents:read")],
                  series: Annotated[str, Query(min_length=1, max_length=200)],
                  since_s: Annotated[int, Query(ge=1, le=40 * 86400)] = 3600,
                  source: Annotated[str, Query(pattern="^(local|prometheus)$")] = "local",
                  step_s: Annotated[float, Query(gt=0, le=86400)] = 15) -> PointsOut:
    """Show one series' points with anomaly scores (local store or the external Prometheus)."""
    return signals.get_points(ctx, PointsQuery(series=series, since_s=since_s, source=source, step_s=step_s))
