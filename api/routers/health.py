"""Liveness, readiness and Prometheus metrics (public)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from api.deps import public
from levqor import __version__
from memory.db import get_engine
from memory.migrate import current, heads

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    version: str


class Ready(BaseModel):
    status: str
    database: str
    migrations: str
    detail: str | None = None


@router.get("/healthz", response_model=Health, dependencies=[public()])
def healthz() -> Health:
    """Report that the process is alive."""
    return Health(status="ok", version=__version__)


def _readiness() -> tuple[Ready, int]:
    """Check the database and its migrations; record the answer in the ``levqor_ready`` gauge."""
    from levqor.metrics import ready_gauge

    ready = ready_gauge()
    engine = get_engine()
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        have = current(engine)
    except Exception as exc:  # any database failure means "not ready", never a 500
        body = Ready(status="unavailable", database="unreachable", migrations="unknown", detail=str(exc)[:200])
        ready.set(0)
        return body, 503
    want = heads()
    if have != want:
        body = Ready(status="unavailable", database="ok", migrations="behind",
                     detail=f"database at {sorted(have)}, code at {sorted(want)}: run `levqor migrate`")
        ready.set(0)
        return body, 503
    ready.set(1)
    return Ready(status="ok", database="ok", migrations="head"), 200


@router.get("/readyz", response_model=Ready, dependencies=[public()],
            responses={503: {"model": Ready, "description": "Not ready"}})
def readyz() -> Response:
    """Report ready when the database answers and its migrations are at head."""
    body, status = _readiness()
    return JSONResponse(body.model_dump(), status_code=status)


@router.get("/metrics", dependencies=[public()], response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
def metrics() -> Response:
    """Expose metrics in the Prometheus text format."""
    from prometheus_client import CONTENT_TYPE_LATEST

    from levqor.metrics import render

    _readiness()  # every scrape carries a fresh levqor_ready
    return Response(render(), media_type=CONTENT_TYPE_LATEST)
