"""Test mode and customer webhooks: registered webhook endpoints (signed notify steps) and the test data reset."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from api.deps import require, writes
from tools.context import ToolContext
from tools.dev_portal import sandbox
from tools.dev_portal.sandbox import ResetResult
from tools.jobs import endpoints
from tools.jobs.endpoints import EndpointCreate, EndpointList, EndpointRead, EndpointRef, EndpointSecret

router = APIRouter(prefix="/v1", tags=["webhooks"])
EndpointId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.post("/webhook-endpoints", response_model=EndpointSecret, status_code=status.HTTP_201_CREATED)
def create_endpoint(body: EndpointCreate, ctx: Annotated[ToolContext, require("pipelines:write")]) -> EndpointSecret:
    """Register a webhook endpoint in the key's mode (live or test); the response shows its signing secret."""
    return endpoints.create_endpoint(ctx, body)


@router.get("/webhook-endpoints", response_model=EndpointList)
def list_endpoints(ctx: Annotated[ToolContext, require("pipelines:read")]) -> EndpointList:
    """List the webhook endpoints of the key's mode."""
    return endpoints.list_endpoints(ctx, endpoints.NoInput())


@router.get("/webhook-endpoints/{endpoint_id}", response_model=EndpointRead)
def get_endpoint(endpoint_id: EndpointId, ctx: Annotated[ToolContext, require("pipelines:read")]) -> EndpointRead:
    """Show a webhook endpoint."""
    return endpoints.read_endpoint(ctx, EndpointRef(endpoint_id=endpoint_id))


@router.get("/webhook-endpoints/{endpoint_id}/secret", response_model=EndpointSecret,
            dependencies=[writes()])  # the reveal is audited
def reveal_secret(endpoint_id: EndpointId, ctx: Annotated[ToolContext, require("pipelines:write")]) -> EndpointSecret:
    """Reveal a webhook endpoint's signing secret (audited)."""
    return endpoints.reveal_secret(ctx, EndpointRef(endpoint_id=endpoint_id))


@router.post("/webhook-endpoints/{endpoint_id}/rotate", response_model=EndpointSecret)
def rotate_secret(endpoint_id: EndpointId, ctx: Annotated[ToolContext, require("pipelines:write")]) -> EndpointSecret:
    """Replace a webhook endpoint's signing secret; the old one stops signing at once."""
    return endpoints.rotate_endpoint_secret(ctx, EndpointRef(endpoint_id=endpoint_id))


@router.delete("/webhook-endpoints/{endpoint_id}", response_model=EndpointRead)
def delete_endpoint(endpoint_id: EndpointId, ctx: Annotated[ToolContext, require("pipelines:write")]) -> EndpointRead:
    """Delete a webhook endpoint."""
    return endpoints.delete_endpoint(ctx, EndpointRef(endpoint_id=endpoint_id))


@router.post("/test-data/reset", response_model=ResetResult)
def reset_test_data(ctx: Annotated[ToolContext, require("org:write")]) -> ResetResult:
    """Delete the organisation's test-mode data and restore its test credits (owner or admin; audited)."""
    return sandbox.reset_test_data(ctx, sandbox.NoInput())
