"""Partner API: partners, plugins and review, installs, webhook deliveries, payouts (Stripe webhooks: billing)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Query, status
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from api.deps import SessionDep, public, require
from tools.context import ToolContext
from tools.identity.service import NoInput
from tools.partner_api import catalog, partners, revenue, statements, stripe_connect, webhooks
from tools.partner_api import installs as install_tools
from tools.partner_api import payouts as payout_tools
from tools.partner_api.catalog import PluginList, PluginQuery, PluginRead, PluginSubmit
from tools.partner_api.installs import InstallCreate, InstallList, InstallRead, InstallSecrets, SecretList
from tools.partner_api.kpis import KpiRead, kpis
from tools.partner_api.marketplace import MarketplaceDocument, public_catalogue
from tools.partner_api.partners import PartnerRead, PartnerRegister
from tools.partner_api.payouts import PayoutList, PrepareResult, transfer_pending
from tools.partner_api.revenue import AccrueResult, PeriodIn
from tools.partner_api.statements import Statement, statement_csv
from tools.partner_api.stripe_connect import OnboardingLink
from tools.partner_api.webhooks import (
    DeferralPage,
    DeferralQuery,
    DeliveryPage,
    DeliveryQuery,
    DeliveryRead,
    ReplayDeferredResult,
    ReplayResult,
)

v1 = APIRouter(prefix="/v1", tags=["partners"])
market = APIRouter(tags=["partners"])
router = APIRouter()

Slug = Annotated[str, Path(min_length=3, max_length=64, pattern=r"^[a-z0-9][a-z0-9.-]*$")]
Version = Annotated[str, Path(min_length=5, max_length=64)]
IntId = Annotated[int, Path(ge=1, le=2**31 - 1)]


# ---- partners ----------------------------------------------------------------------------------

@v1.post("/partners", response_model=PartnerRead, status_code=status.HTTP_201_CREATED)
def register_partner(body: PartnerRegister, ctx: Annotated[ToolContext, require("plugins:write")]) -> PartnerRead:
    """Register the caller's organisation as a partner."""
    return partners.register_partner(ctx, body)


@v1.get("/partners/me", response_model=PartnerRead)
def my_partner(ctx: Annotated[ToolContext, require("plugins:read")]) -> PartnerRead:
    """Show the caller's partner profile."""
    return partners.get_partner(ctx, NoInput())


class StatusIn(BaseModel):
    status: Literal["active", "suspended"]
    reason: str = Field("", max_length=500)


@v1.post("/partners/{partner_id}/status", response_model=PartnerRead)
def partner_status(partner_id: IntId, body: StatusIn,
                   ctx: Annotated[ToolContext, require("plugins:write")]) -> PartnerRead:
    """Suspend or reinstate a partner (Levqor staff)."""
    return partners.set_partner_status(
        ctx, partners.PartnerStatus(partner_id=partner_id, status=body.status, reason=body.reason))


@v1.post("/partners/me/stripe-onboarding", response_model=OnboardingLink)
def stripe_onboarding(ctx: Annotated[ToolContext, require("payouts:write")]) -> OnboardingLink:
    """Create the partner's Stripe Express account if needed; return an onboarding link."""
    return stripe_connect.stripe_onboard(ctx, NoInput())


@v1.get("/partners/kpis", response_model=KpiRead)
def partner_kpis(ctx: Annotated[ToolContext, require("plugins:read")]) -> KpiRead:
    """Plugin installs and partner revenue with its share of plugin revenue."""
    return kpis(ctx, NoInput())


# ---- plugins -----------------------------------------------------------------------------------

@v1.get("/plugins", response_model=PluginList)
def list_plugins(q: Annotated[PluginQuery, Depends()],
                 ctx: Annotated[ToolContext, require("plugins:read")]) -> PluginList:
    """List plugins (listed ones; the caller's own too for partners; all for staff)."""
    return catalog.list_plugins(ctx, q)


@v1.post("/plugins", response_model=PluginRead, status_code=status.HTTP_201_CREATED)
def create_plugin(body: PluginSubmit, ctx: Annotated[ToolContext, require("plugins:write")]) -> PluginRead:
    """Register a plugin from its manifest (as a draft)."""
    return catalog.create_plugin(ctx, body)


@v1.get("/plugins/{plugin}", response_model=PluginRead)
def get_plugin(plugin: Slug, ctx: Annotated[ToolContext, require("plugins:read")]) -> PluginRead:
    """Show a plugin."""
    return catalog.get_plugin(ctx, catalog.PluginRef(plugin=plugin))


@v1.put("/plugins/{plugin}/versions", response_model=PluginRead)
def put_version(plugin: Slug, body: PluginSubmit,
                ctx: Annotated[ToolContext, require("plugins:write")]) -> PluginRead:
    """Edit a draft version or start a new higher version."""
    return catalog.put_version(ctx, catalog.VersionPut(plugin=plugin, manifest=body.manifest))


@v1.post("/plugins/{plugin}/versions/{version}/submit", response_model=PluginRead)
def submit(plugin: Slug, version: Version, ctx: Annotated[ToolContext, require("plugins:write")]) -> PluginRead:
    """Send a draft version to review."""
    return catalog.submit_version(ctx, catalog.VersionRef(plugin=plugin, version=version))


class ReviewIn(BaseModel):
    decision: Literal["approve", "reject"]
    note: str = Field("", max_length=2000)


@v1.post("/plugins/{plugin}/versions/{version}/review", response_model=PluginRead)
def review(plugin: Slug, version: Version, body: ReviewIn,
           ctx: Annotated[ToolContext, require("plugins:write")]) -> PluginRead:
    """Approve or reject a version in review (Levqor staff)."""
    return catalog.review_version(
        ctx, catalog.Review(plugin=plugin, version=version, decision=body.decision, note=body.note))


class StateIn(BaseModel):
    state: Literal["listed", "suspended", "retired"]
    reason: str = Field("", max_length=500)


@v1.post("/plugins/{plugin}/state", response_model=PluginRead)
def plugin_state(plugin: Slug, body: StateIn, ctx: Annotated[ToolContext, require("plugins:write")]) -> PluginRead:
    """Retire a plugin (partner) or suspend / reinstate it (Levqor staff)."""
    return catalog.set_plugin_state(ctx, catalog.PluginState(plugin=plugin, state=body.state, reason=body.reason))


class RatingIn(BaseModel):
    stars: int = Field(ge=1, le=5)


@v1.post("/plugins/{plugin}/rating", response_model=PluginRead)
def rate(plugin: Slug, body: RatingIn, ctx: Annotated[ToolContext, require("plugins:install")]) -> PluginRead:
    """Rate an installed plugin (1-5 stars)."""
    return install_tools.rate_plugin(ctx, install_tools.RatingIn(plugin=plugin, stars=body.stars))


# ---- installs ----------------------------------------------------------------------------------

@v1.get("/installs", response_model=InstallList)
def installs(ctx: Annotated[ToolContext, require("plugins:read")]) -> InstallList:
    """List plugins installed in the organisation."""
    return install_tools.list_installs(ctx, NoInput())


@v1.post("/installs", response_model=InstallRead, status_code=status.HTTP_201_CREATED)
def install(body: InstallCreate, ctx: Annotated[ToolContext, require("plugins:install")]) -> InstallRead:
    """Install a listed plugin, granting its requested scopes."""
    return install_tools.install_plugin(ctx, body)


@v1.delete("/installs/{install_id}", response_model=InstallRead)
def uninstall(install_id: IntId, ctx: Annotated[ToolContext, require("plugins:install")]) -> InstallRead:
    """Uninstall a plugin."""
    return install_tools.uninstall_plugin(ctx, install_tools.InstallRef(install_id=install_id))


@v1.post("/installs/{install_id}/rotate-secret", response_model=InstallSecrets)
def rotate(install_id: IntId, ctx: Annotated[ToolContext, require("hooks:write")]) -> InstallSecrets:
    """Rotate an install's signing secret (the old one stays valid 24 h)."""
    return install_tools.rotate_secret(ctx, install_tools.InstallRef(install_id=install_id))


@v1.post("/installs/{install_id}/enable", response_model=InstallRead)
def enable(install_id: IntId, ctx: Annotated[ToolContext, require("hooks:write")]) -> InstallRead:
    """Re-enable a disabled webhook endpoint."""
    return install_tools.enable_endpoint(ctx, install_tools.InstallRef(install_id=install_id))


class DisableIn(BaseModel):
    reason: str = Field(min_length=1, max_length=400)


@v1.post("/installs/{install_id}/disable", response_model=InstallRead)
def disable(install_id: IntId, body: DisableIn, ctx: Annotated[ToolContext, require("hooks:write")]) -> InstallRead:
    """Disable a failing webhook endpoint (deliveries are held) and email the partner."""
    params = install_tools.EndpointDisable(install_id=install_id, reason=body.reason)
    return install_tools.disable_endpoint(ctx, params)


class SinceIn(BaseModel):
    since: dt.datetime


@v1.post("/installs/{install_id}/replay", response_model=ReplayResult)
def replay_failures(install_id: IntId, body: SinceIn,
                    ctx: Annotated[ToolContext, require("hooks:write")]) -> ReplayResult:
    """Send again every failed delivery of an install since a time."""
    return webhooks.replay_failures(ctx, webhooks.ReplaySince(install_id=install_id, since=body.since))


class ReplayDeferredIn(BaseModel):
    limit: int = Field(1000, ge=1, le=10000, description="Events to go through in this call, oldest first")


@v1.post("/installs/{install_id}/replay-deferred", response_model=ReplayDeferredResult)
def replay_deferred(install_id: IntId, body: ReplayDeferredIn,
                    ctx: Annotated[ToolContext, require("hooks:write")]) -> ReplayDeferredResult:
    """Create the deliveries of an install that were shed under overload (oldest first, up to a limit)."""
    return webhooks.replay_deferred(ctx, webhooks.ReplayDeferred(install_id=install_id, limit=body.limit))


@v1.get("/partner/installs", response_model=SecretList)
def partner_installs(ctx: Annotated[ToolContext, require("plugins:write")],
                     plugin: Annotated[str | None, Query(max_length=64)] = None) -> SecretList:
    """Installs of the partner's plugins with their signing secrets."""
    return install_tools.partner_installs(ctx, install_tools.PartnerInstallQuery(plugin=plugin))


# ---- webhook deliveries ------------------------------------------------------------------------

@v1.get("/webhook-deliveries", response_model=DeliveryPage)
def deliveries(q: Annotated[DeliveryQuery, Depends()],
               ctx: Annotated[ToolContext, require("hooks:read")]) -> DeliveryPage:
    """The partner webhook delivery log."""
    return webhooks.list_deliveries(ctx, q)


@v1.get("/webhook-deliveries/{delivery_id}", response_model=DeliveryRead)
def delivery(delivery_id: IntId, ctx: Annotated[ToolContext, require("hooks:read")]) -> DeliveryRead:
    """One delivery with its body and attempts."""
    return webhooks.get_delivery(ctx, webhooks.DeliveryRef(delivery_id=delivery_id))


@v1.get("/webhook-deferrals", response_model=DeferralPage)
def deferrals(q: Annotated[DeferralQuery, Depends()],
              ctx: Annotated[ToolContext, require("hooks:read")]) -> DeferralPage:
    """Partner webhook deliveries shed under overload, per install and minute (replayable)."""
    return webhooks.list_deferrals(ctx, q)


@v1.post("/webhook-deliveries/{delivery_id}/replay", response_model=DeliveryRead)
def replay(delivery_id: IntId, ctx: Annotated[ToolContext, require("hooks:write")]) -> DeliveryRead:
    """Send one delivery again."""
    return webhooks.replay(ctx, webhooks.DeliveryRef(delivery_id=delivery_id))


# ---- payouts -----------------------------------------------------------------------------------

@v1.get("/payouts", response_model=PayoutList)
def payouts(ctx: Annotated[ToolContext, require("payouts:read")],
            status_: Annotated[str | None, Query(alias="status", max_length=16)] = None) -> PayoutList:
    """List payouts (own, or all for staff)."""
    return payout_tools.list_payouts(ctx, payout_tools.PayoutQuery(status=status_))


@v1.post("/payouts/runs", response_model=PrepareResult, status_code=status.HTTP_202_ACCEPTED)
def payout_run(body: PeriodIn, background: BackgroundTasks,
               ctx: Annotated[ToolContext, require("payouts:write")]) -> PrepareResult:
    """Prepare a month's payouts (Levqor staff); transfers are sent right after the answer."""
    result = payout_tools.prepare_payouts(ctx, body)
    background.add_task(transfer_pending)
    return result


@v1.post("/payouts/accrue", response_model=AccrueResult)
def accrue(body: PeriodIn, ctx: Annotated[ToolContext, require("payouts:write")]) -> AccrueResult:
    """Charge monthly plugin subscriptions for a month (Levqor staff)."""
    return revenue.accrue_subscriptions(ctx, body)


@v1.get("/payouts/statement", response_model=Statement, responses={
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "JSON, or CSV with format=csv"}})
def statement(ctx: Annotated[ToolContext, require("payouts:read")],
              period: Annotated[str | None, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")] = None,
              format: Annotated[str, Query(pattern="^(json|csv)$")] = "json") -> Any:
    """The partner's revenue statement (JSON or CSV)."""
    st = statements.statement(ctx, statements.StatementQuery(period=period))
    if format == "csv":
        name = f"levqor-statement-{period or 'all'}.csv"
        return Response(statement_csv(st), media_type="text/csv",
                        headers={"content-disposition": f'attachment; filename="{name}"'})
    return st


# ---- marketplace.json --------------------------------------------------------------------------

@market.get("/marketplace.json", response_model=MarketplaceDocument, dependencies=[public()])
def marketplace_json(session: SessionDep) -> JSONResponse:
    """The marketplace catalogue: every listed plugin's public metadata (schema: docs/dev_portal)."""
    doc = public_catalogue(session)
    return JSONResponse(doc.model_dump(mode="json"), headers={"cache-control": "public, max-age=60"})


router.include_router(v1)
router.include_router(market)
