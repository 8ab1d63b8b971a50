"""Partner API: partners, plugins and review, installs, webhook deliveries, payouts, Stripe webhooks."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Query, Request, status
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from api.deps import SessionDep, public, require
from tools.context import ToolContext
from tools.partner_api.hooks import DeliveryPage, DeliveryQuery, DeliveryRead, ReplayResult
from tools.partner_api.payouts import (
    AccrueResult,
    OnboardingLink,
    PayoutList,
    PeriodIn,
    PrepareResult,
    Statement,
    StripeWebhookResult,
)
from tools.partner_api.registry import (
    InstallCreate,
    InstallList,
    InstallRead,
    InstallSecrets,
    KpiRead,
    MarketplaceDocument,
    PartnerRead,
    PartnerRegister,
    PluginList,
    PluginQuery,
    PluginRead,
    PluginSubmit,
    SecretList,
)
from tools.registry import registry

v1 = APIRouter(prefix="/v1", tags=["partners"])
market = APIRouter(tags=["partners"])
router = APIRouter()

Slug = Annotated[str, Path(min_length=3, max_length=64, pattern=r"^[a-z0-9][a-z0-9.-]*$")]
Version = Annotated[str, Path(min_length=5, max_length=64)]
IntId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _run(name: str, ctx: ToolContext, params: Any) -> Any:
    return registry.invoke(name, ctx, params)


# ---- partners ----------------------------------------------------------------------------------

@v1.post("/partners", response_model=PartnerRead, status_code=status.HTTP_201_CREATED)
def register_partner(body: PartnerRegister, ctx: Annotated[ToolContext, require("plugins:write")]) -> Any:
    """Register the caller's organisation as a partner."""
    return _run("partners.register", ctx, body)


@v1.get("/partners/me", response_model=PartnerRead)
def my_partner(ctx: Annotated[ToolContext, require("plugins:read")]) -> Any:
    """Show the caller's partner profile."""
    return _run("partners.get", ctx, {})


class StatusIn(BaseModel):
    status: str = Field(pattern="^(active|suspended)$")
    reason: str = Field("", max_length=500)


@v1.post("/partners/{partner_id}/status", response_model=PartnerRead)
def partner_status(partner_id: IntId, body: StatusIn, ctx: Annotated[ToolContext, require("plugins:write")]) -> Any:
    """Suspend or reinstate a partner (Levqor staff)."""
    return _run("partners.set_status", ctx, {"partner_id": partner_id, **body.model_dump()})


@v1.post("/partners/me/stripe-onboarding", response_model=OnboardingLink)
def stripe_onboarding(ctx: Annotated[ToolContext, require("payouts:write")]) -> Any:
    """Create the partner's Stripe Express account if needed; return an onboarding link."""
    return _run("partners.stripe_onboard", ctx, {})


@v1.get("/partners/kpis", response_model=KpiRead)
def partner_kpis(ctx: Annotated[ToolContext, require("plugins:read")]) -> Any:
    """Plugin installs and partner revenue with its share of plugin revenue."""
    return _run("partners.kpis", ctx, {})


# ---- plugins -----------------------------------------------------------------------------------

@v1.get("/plugins", response_model=PluginList)
def list_plugins(q: Annotated[PluginQuery, Depends()], ctx: Annotated[ToolContext, require("plugins:read")]) -> Any:
    """List plugins (listed ones; the caller's own too for partners; all for staff)."""
    return _run("plugins.list", ctx, q)


@v1.post("/plugins", response_model=PluginRead, status_code=status.HTTP_201_CREATED)
def create_plugin(body: PluginSubmit, ctx: Annotated[ToolContext, require("plugins:write")]) -> Any:
    """Register a plugin from its manifest (as a draft)."""
    return _run("plugins.create", ctx, body)


@v1.get("/plugins/{plugin}", response_model=PluginRead)
def get_plugin(plugin: Slug, ctx: Annotated[ToolContext, require("plugins:read")]) -> Any:
    """Show a plugin."""
    return _run("plugins.get", ctx, {"plugin": plugin})


@v1.put("/plugins/{plugin}/versions", response_model=PluginRead)
def put_version(plugin: Slug, body: PluginSubmit, ctx: Annotated[ToolContext, require("plugins:write")]) -> Any:
    """Edit a draft version or start a new higher version."""
    return _run("plugins.put_version", ctx, {"plugin": plugin, "manifest": body.manifest})


@v1.post("/plugins/{plugin}/versions/{version}/submit", response_model=PluginRead)
def submit(plugin: Slug, version: Version, ctx: Annotated[ToolContext, require("plugins:write")]) -> Any:
    """Send a draft version to review."""
    return _run("plugins.submit", ctx, {"plugin": plugin, "version": version})


class ReviewIn(BaseModel):
    decision: str = Field(pattern="^(approve|reject)$")
    note: str = Field("", max_length=2000)


@v1.post("/plugins/{plugin}/versions/{version}/review", response_model=PluginRead)
def review(plugin: Slug, version: Version, body: ReviewIn,
           ctx: Annotated[ToolContext, require("plugins:write")]) -> Any:
    """Approve or reject a version in review (Levqor staff)."""
    return _run("plugins.review", ctx, {"plugin": plugin, "version": version, **body.model_dump()})


class StateIn(BaseModel):
    state: str = Field(pattern="^(listed|suspended|retired)$")
    reason: str = Field("", max_length=500)


@v1.post("/plugins/{plugin}/state", response_model=PluginRead)
def plugin_state(plugin: Slug, body: StateIn, ctx: Annotated[ToolContext, require("plugins:write")]) -> Any:
    """Retire a plugin (partner) or suspend / reinstate it (Levqor staff)."""
    return _run("plugins.set_state", ctx, {"plugin": plugin, **body.model_dump()})


class RatingIn(BaseModel):
    stars: int = Field(ge=1, le=5)


@v1.post("/plugins/{plugin}/rating", response_model=PluginRead)
def rate(plugin: Slug, body: RatingIn, ctx: Annotated[ToolContext, require("plugins:install")]) -> Any:
    """Rate an installed plugin (1-5 stars)."""
    return _run("plugins.rate", ctx, {"plugin": plugin, "stars": body.stars})


# ---- installs ----------------------------------------------------------------------------------

@v1.get("/installs", response_model=InstallList)
def installs(ctx: Annotated[ToolContext, require("plugins:read")]) -> Any:
    """List plugins installed in the organisation."""
    return _run("plugins.installs", ctx, {})


@v1.post("/installs", response_model=InstallRead, status_code=status.HTTP_201_CREATED)
def install(body: InstallCreate, ctx: Annotated[ToolContext, require("plugins:install")]) -> Any:
    """Install a listed plugin, granting its requested scopes."""
    return _run("plugins.install", ctx, body)


@v1.delete("/installs/{install_id}", response_model=InstallRead)
def uninstall(install_id: IntId, ctx: Annotated[ToolContext, require("plugins:install")]) -> Any:
    """Uninstall a plugin."""
    return _run("plugins.uninstall", ctx, {"install_id": install_id})


@v1.post("/installs/{install_id}/rotate-secret", response_model=InstallSecrets)
def rotate(install_id: IntId, ctx: Annotated[ToolContext, require("hooks:write")]) -> Any:
    """Rotate an install's signing secret (the old one stays valid 24 h)."""
    return _run("plugins.rotate_secret", ctx, {"install_id": install_id})


@v1.post("/installs/{install_id}/enable", response_model=InstallRead)
def enable(install_id: IntId, ctx: Annotated[ToolContext, require("hooks:write")]) -> Any:
    """Re-enable a disabled webhook endpoint."""
    return _run("plugins.enable_endpoint", ctx, {"install_id": install_id})


class DisableIn(BaseModel):
    reason: str = Field(min_length=1, max_length=400)


@v1.post("/installs/{install_id}/disable", response_model=InstallRead)
def disable(install_id: IntId, body: DisableIn, ctx: Annotated[ToolContext, require("hooks:write")]) -> Any:
    """Disable a failing webhook endpoint (deliveries are held) and email the partner."""
    return _run("plugins.disable_endpoint", ctx, {"install_id": install_id, "reason": body.reason})


class SinceIn(BaseModel):
    since: dt.datetime


@v1.post("/installs/{install_id}/replay", response_model=ReplayResult)
def replay_failures(install_id: IntId, body: SinceIn, ctx: Annotated[ToolContext, require("hooks:write")]) -> Any:
    """Send again every failed delivery of an install since a time."""
    return _run("webhooks.replay_failures", ctx, {"install_id": install_id, "since": body.since})


@v1.get("/partner/installs", response_model=SecretList)
def partner_installs(ctx: Annotated[ToolContext, require("plugins:write")],
                     plugin: Annotated[str | None, Query(max_length=64)] = None) -> Any:
    """Installs of the partner's plugins with their signing secrets."""
    return _run("plugins.partner_installs", ctx, {"plugin": plugin})


# ---- webhook deliveries ------------------------------------------------------------------------

@v1.get("/webhook-deliveries", response_model=DeliveryPage)
def deliveries(q: Annotated[DeliveryQuery, Depends()], ctx: Annotated[ToolContext, require("hooks:read")]) -> Any:
    """The partner webhook delivery log."""
    return _run("webhooks.deliveries", ctx, q)


@v1.get("/webhook-deliveries/{delivery_id}", response_model=DeliveryRead)
def delivery(delivery_id: IntId, ctx: Annotated[ToolContext, require("hooks:read")]) -> Any:
    """One delivery with its body and attempts."""
    return _run("webhooks.delivery", ctx, {"delivery_id": delivery_id})


@v1.post("/webhook-deliveries/{delivery_id}/replay", response_model=DeliveryRead)
def replay(delivery_id: IntId, ctx: Annotated[ToolContext, require("hooks:write")]) -> Any:
    """Send one delivery again."""
    return _run("webhooks.replay", ctx, {"delivery_id": delivery_id})


# ---- payouts -----------------------------------------------------------------------------------

@v1.get("/payouts", response_model=PayoutList)
def payouts(ctx: Annotated[ToolContext, require("payouts:read")],
            status_: Annotated[str | None, Query(alias="status", max_length=16)] = None) -> Any:
    """List payouts (own, or all for staff)."""
    return _run("payouts.list", ctx, {"status": status_})


def _transfer_in_background() -> None:
    from tools.partner_api.payouts import transfer_pending

    transfer_pending()


@v1.post("/payouts/runs", response_model=PrepareResult, status_code=status.HTTP_202_ACCEPTED)
def payout_run(body: PeriodIn, background: BackgroundTasks,
               ctx: Annotated[ToolContext, require("payouts:write")]) -> Any:
    """Prepare a month's payouts (Levqor staff); transfers are sent right after the answer."""
    result = _run("payouts.prepare", ctx, body)
    background.add_task(_transfer_in_background)
    return result


@v1.post("/payouts/accrue", response_model=AccrueResult)
def accrue(body: PeriodIn, ctx: Annotated[ToolContext, require("payouts:write")]) -> Any:
    """Charge monthly plugin subscriptions for a month (Levqor staff)."""
    return _run("payouts.accrue_subscriptions", ctx, body)


@v1.get("/payouts/statement", response_model=Statement, responses={
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "JSON, or CSV with format=csv"}})
def statement(ctx: Annotated[ToolContext, require("payouts:read")],
              period: Annotated[str | None, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")] = None,
              format: Annotated[str, Query(pattern="^(json|csv)$")] = "json") -> Any:
    """The partner's revenue statement (JSON or CSV)."""
    from tools.partner_api.payouts import statement_csv

    st = _run("payouts.statement", ctx, {"period": period})
    if format == "csv":
        name = f"levqor-statement-{period or 'all'}.csv"
        return Response(statement_csv(st), media_type="text/csv",
                        headers={"content-disposition": f'attachment; filename="{name}"'})
    return st


@v1.post("/stripe/webhook", response_model=StripeWebhookResult, dependencies=[public()])
async def stripe_webhook(request: Request, session: SessionDep) -> Any:
    """Stripe Connect events (verified with Stripe-Signature): transfers, payouts, accounts."""
    from starlette.concurrency import run_in_threadpool

    from tools.partner_api.payouts import handle_stripe_webhook

    payload = await request.body()
    return await run_in_threadpool(handle_stripe_webhook, session, payload, request.headers.get("stripe-signature"))


# ---- marketplace.json --------------------------------------------------------------------------

@market.get("/marketplace.json", response_model=MarketplaceDocument, dependencies=[public()])
def marketplace_json(session: SessionDep) -> Any:
    """The marketplace catalogue: every listed plugin's public metadata (schema: docs/dev_portal)."""
    from levqor.settings import get_settings
    from tools.partner_api.registry import marketplace_document

    doc = marketplace_document(session, get_settings().base_url)
    return JSONResponse(doc.model_dump(mode="json"), headers={"cache-control": "public, max-age=60"})


router.include_router(v1)
router.include_router(market)
