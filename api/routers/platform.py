"""Tools catalogue, policy, and platform events."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel

from api.deps import require
from tools.context import ToolContext
from tools.events.service import DeliveryList, DeliveryRead, EventPage, EventQuery, FailureQuery
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
    """Show the active policy document."""
    from policies.engine import get_engine

    return get_engine().doc.model_dump(mode="json")


@router.get("/events", response_model=EventPage)
def list_events(q: Annotated[EventQuery, Depends()], ctx: Annotated[ToolContext, require("events:read")]) -> EventPage:
    """List platform events, newest first."""
    return registry.invoke("events.list", ctx, q)  # type: ignore[return-value]


@router.get("/events/failures", response_model=DeliveryList)
def failures(
    q: Annotated[FailureQuery, Depends()], ctx: Annotated[ToolContext, require("events:read")]
) -> DeliveryList:
    """List event handler deliveries that are failing or dead."""
    return registry.invoke("events.failures", ctx, q)  # type: ignore[return-value]


@router.post("/events/deliveries/{delivery_id}/retry", response_model=DeliveryRead)
def retry(delivery_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
          ctx: Annotated[ToolContext, require("events:write")]) -> DeliveryRead:
    """Retry a failing or dead event handler delivery now."""
    return registry.invoke("events.retry", ctx, {"delivery_id": delivery_id})  # type: ignore[return-value]
