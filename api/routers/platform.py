"""Tools catalogue, policy, and platform events."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel

from api.deps import require
from policies.engine import get_engine, policy_digest
from tools.context import ToolContext
from tools.events import service as events
from tools.events.service import DeliveryList, DeliveryRead, DeliveryRetry, EventPage, EventQuery, FailureQuery
from tools.registry import registry

router = APIRouter(prefix="/v1", tags=["platform"])


class ToolRead(BaseModel):
    name: str
    risk: str
    description: str
    input_schema: dict[str, Any]


class ToolList(BaseModel):
    items: list[ToolRead]


@router.get("/tools", response_model=ToolList)
def list_tools(ctx: Annotated[ToolContext, require("tools:read")]) -> ToolList:
    """List every registered tool with its risk and input schema."""
    return ToolList(items=[ToolRead(name=t.name, risk=t.risk, description=t.description,
                                    input_schema=t.input_model.model_json_schema()) for t in registry.all()])


@router.get("/policy", response_model=dict[str, Any])
def get_policy(ctx: Annotated[ToolContext, require("policy:read")]) -> dict[str, Any]:
    """Show the active policy document: its version in force, digest, code of conduct and rules."""
    doc = get_engine().doc
    return {**doc.model_dump(mode="json"), "digest": policy_digest(doc)}


@router.get("/events", response_model=EventPage)
def list_events(q: Annotated[EventQuery, Depends()], ctx: Annotated[ToolContext, require("events:read")]) -> EventPage:
    """List platform events, newest first."""
    return events.list_events(ctx, q)


@router.get("/events/failures", response_model=DeliveryList)
def failures(
    q: Annotated[FailureQuery, Depends()], ctx: Annotated[ToolContext, require("events:read")]
) -> DeliveryList:
    """List event handler deliveries that are failing or dead."""
    return events.list_failures(ctx, q)


@router.post("/events/deliveries/{delivery_id}/retry", response_model=DeliveryRead)
def retry(delivery_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
          ctx: Annotated[ToolContext, require("events:write")]) -> DeliveryRead:
    """Retry a failing or dead event handler delivery now."""
    return events.retry_delivery(ctx, DeliveryRetry(delivery_id=delivery_id))
