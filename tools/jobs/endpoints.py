"""Customer webhook endpoints: registered URLs (live or test) with a Standard Webhooks signing secret.

A ``notify`` step whose webhook URL is a registered endpoint of the job's organisation and mode is
signed with that endpoint's secret (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``; see
:mod:`tools.shared.signing`). A live notify URL that is not registered still works, unsigned, as before
(compatibility). Test jobs are stricter: every outbound call (``http`` and ``notify`` steps) must go to a
registered TEST endpoint, anything else fails the step (not retried).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pydantic import BaseModel, Field, field_validator

from memory.db import session_scope, utcnow
from memory.jobs.models import WebhookEndpoint
from memory.jobs.repository import EndpointRepository
from tools.context import ToolContext
from tools.enterprise import audit_log
from tools.errors import NotFound
from tools.jobs.pipelines import NoInput
from tools.registry import tool
from tools.shared.signing import new_secret
from tools.shared.ssrf import SSRFBlocked, check_url
from tools.shared.urls import same_endpoint

MAX_ENDPOINTS = 50


@dataclass(frozen=True)
class Endpoint:
    id: int
    url: str
    secret: str


class EndpointDirectory:
    """The registered endpoints of one organisation and mode, read on first use in a short transaction
    of its own (one per job run)."""

    def __init__(self, org_id: int | None, mode: str):
        self.org_id = org_id
        self.mode = mode
        self._rows: list[Endpoint] | None = None

    def match(self, url: str) -> Endpoint | None:
        """The registered endpoint ``url`` addresses, or None."""
        if self.org_id is None:
            return None
        if self._rows is None:
            with session_scope() as s:
                self._rows = [Endpoint(e.id, e.url, e.secret)
                              for e in EndpointRepository(s).for_org(self.org_id, self.mode)]
        return next((e for e in self._rows if same_endpoint(url, e.url)), None)


# ---- tools ---------------------------------------------------------------------------------

class EndpointCreate(BaseModel):
    url: str = Field(min_length=1, max_length=2000, description="https URL that receives signed notify webhooks")
    description: str = Field("", max_length=500)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        try:
            check_url(v, resolve=False)
        except SSRFBlocked as exc:
            raise ValueError(exc.detail) from None
        return v


class EndpointRead(BaseModel):
    id: int
    url: str
    mode: str = Field(description="live or test: the key mode it was created with")
    description: str
    created_at: dt.datetime
    rotated_at: dt.datetime | None

    @classmethod
    def of(cls, e: WebhookEndpoint) -> EndpointRead:
        return cls(id=e.id, url=e.url, mode=e.mode, description=e.description, created_at=e.created_at,
                   rotated_at=e.rotated_at)


class EndpointSecret(EndpointRead):
    secret: str = Field(description="Signing secret (whsec_...): verify webhook-signature with it")

    @classmethod
    def of(cls, e: WebhookEndpoint) -> EndpointSecret:
        return cls(**EndpointRead.of(e).model_dump(), secret=e.secret)


class EndpointList(BaseModel):
    items: list[EndpointRead]


class EndpointRef(BaseModel):
    endpoint_id: int = Field(ge=1, le=2**31 - 1)


def get_endpoint(ctx: ToolContext, endpoint_id: int) -> WebhookEndpoint:
    e = EndpointRepository(ctx.session).get(ctx.org_id, ctx.mode, endpoint_id)
    if e is None:
        raise NotFound(f"webhook endpoint {endpoint_id} not found", field="endpoint_id")
    return e


@tool("webhook_endpoints.create", risk="write")
def create_endpoint(ctx: ToolContext, params: EndpointCreate) -> EndpointSecret:
    """Register a webhook endpoint (of the key's mode) and return it with its signing secret."""
    repo = EndpointRepository(ctx.session)
    if len(repo.for_org(ctx.org_id, ctx.mode)) >= MAX_ENDPOINTS:
        from tools.errors import Conflict

        raise Conflict(f"at most {MAX_ENDPOINTS} webhook endpoints per mode; delete one first", field="url")
    e = repo.add(WebhookEndpoint(org_id=ctx.org_id, mode=ctx.mode, url=params.url, description=params.description,
                                 secret=new_secret(), created_by=ctx.principal.actor, created_at=utcnow()))
    audit_log.record(ctx, "webhook_endpoints.created", f"webhook_endpoint:{e.id}",
                     after={"url": e.url, "mode": e.mode})
    return EndpointSecret.of(e)


@tool("webhook_endpoints.list", risk="read")
def list_endpoints(ctx: ToolContext, params: NoInput) -> EndpointList:
    """List the organisation's webhook endpoints of the caller's mode (secrets are not shown)."""
    return EndpointList(items=[EndpointRead.of(e) for e in EndpointRepository(ctx.session).for_org(ctx.org_id,
                                                                                                    ctx.mode)])


@tool("webhook_endpoints.get", risk="read")
def read_endpoint(ctx: ToolContext, params: EndpointRef) -> EndpointRead:
    """Show one webhook endpoint."""
    return EndpointRead.of(get_endpoint(ctx, params.endpoint_id))


@tool("webhook_endpoints.secret", risk="write")
def reveal_secret(ctx: ToolContext, params: EndpointRef) -> EndpointSecret:
    """Reveal a webhook endpoint's signing secret (audited)."""
    e = get_endpoint(ctx, params.endpoint_id)
    audit_log.record(ctx, "webhook_endpoints.secret_revealed", f"webhook_endpoint:{e.id}")
    return EndpointSecret.of(e)


@tool("webhook_endpoints.rotate", risk="write")
def rotate_endpoint_secret(ctx: ToolContext, params: EndpointRef) -> EndpointSecret:
    """Replace a webhook endpoint's signing secret; the old one stops signing at once."""
    e = get_endpoint(ctx, params.endpoint_id)
    e.secret, e.rotated_at = new_secret(), utcnow()
    ctx.session.flush()
    audit_log.record(ctx, "webhook_endpoints.rotated", f"webhook_endpoint:{e.id}")
    return EndpointSecret.of(e)


@tool("webhook_endpoints.delete", risk="destructive")
def delete_endpoint(ctx: ToolContext, params: EndpointRef) -> EndpointRead:
    """Delete a webhook endpoint: its notify calls are no longer signed (test jobs can no longer call it)."""
    e = get_endpoint(ctx, params.endpoint_id)
    out = EndpointRead.of(e)
    EndpointRepository(ctx.session).delete(e)
    audit_log.record(ctx, "webhook_endpoints.deleted", f"webhook_endpoint:{out.id}", before={"url": out.url})
    return out
