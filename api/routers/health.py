"""Liveness, readiness and Prometheus metrics (public)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel

from api.deps import public
from levqor import __version__
from levqor.metrics import render, scrape_allowed
from tools.errors import Unauthorized
from tools.platform.database import Ready, readiness

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    version: str


@router.get("/healthz", response_model=Health, dependencies=[public()])
def healthz() -> Health:
    """Report that the process is alive."""
    return Health(status="ok", version=__version__)


@router.get("/readyz", response_model=Ready, dependencies=[public()],
            responses={503: {"model": Ready, "description": "Not ready"}})
def readyz() -> Response:
    """Report ready when the database answers and its migrations are at head."""
    body, status = readiness()
    return JSONResponse(body.model_dump(), status_code=status)


@router.get("/metrics", dependencies=[public()], response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
def metrics(authorization: Annotated[str | None, Header()] = None) -> Response:
    """Expose metrics in the Prometheus text format (with ``LEVQOR_METRICS_TOKEN`` set, only to a scrape
    sending it as a bearer token)."""
    if not scrape_allowed(authorization):
        raise Unauthorized("a bearer token is required to scrape /metrics (LEVQOR_METRICS_TOKEN)")
    readiness()  # every scrape carries a fresh levqor_ready
    return Response(render(), media_type=CONTENT_TYPE_LATEST)
