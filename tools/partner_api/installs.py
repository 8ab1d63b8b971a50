"""Installs: a plugin in an organisation, with its granted scopes, signing secrets and endpoint state."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from memory.db import utcnow
from memory.partner.models import PluginInstall
from memory.partner.repository import PartnerRepository
from tools.context import ToolContext
from tools.enterprise import audit_log
from tools.enterprise.rbac import is_staff
from tools.errors import BadRequest, Conflict, Forbidden, NotFound, Unprocessable
from tools.identity.service import NoInput
from tools.partner_api.access import install_for_org_or_partner, org_install, own_partner
from tools.partner_api.catalog import PluginRead, plugin_read
from tools.partner_api.delivery import disable_install_endpoint
from tools.partner_api.manifest import PLUGIN_SCOPES, SLUG
from tools.partner_api.revenue import accrue_install
from tools.partner_api.signing import new_secret
from tools.registry import tool

SECRET_ROTATION_GRACE = dt.timedelta(hours=24)


class InstallRead(BaseModel):
    id: int
    plugin: str
    org_id: int
    version: str
    status: str
    scopes: list[str]
    endpoint_disabled_at: dt.datetime | None
    disabled_reason: str | None
    created_at: dt.datetime


class InstallSecrets(InstallRead):
    secret: str = Field(description="Current signing secret (whsec_...)")
    previous_secret: str | None = Field(None, description="Still valid until previous_expires_at (rotation)")
    previous_expires_at: dt.datetime | None = None


def install_read(repo: PartnerRepository, inst: PluginInstall) -> InstallRead:
    plugin = repo.plugin(inst.plugin_id)
    version = repo.version(inst.version_id)
    return InstallRead(id=inst.id, plugin=plugin.slug if plugin else "", org_id=inst.org_id,
                       version=version.version if version else "", status=inst.status, scopes=list(inst.scopes),
                       endpoint_disabled_at=inst.endpoint_disabled_at, disabled_reason=inst.disabled_reason,
                       created_at=inst.created_at)


def secrets_read(repo: PartnerRepository, inst: PluginInstall) -> InstallSecrets:
    valid_prev = inst.previous_secret if inst.previous_expires_at and inst.previous_expires_at > utcnow() else None
    return InstallSecrets(**install_read(repo, inst).model_dump(), secret=inst.secret, previous_secret=valid_prev,
                          previous_expires_at=inst.previous_expires_at if valid_prev else None)


class InstallCreate(BaseModel):
    plugin: str = Field(min_length=3, max_length=64, pattern=SLUG)
    scopes: list[str] | None = Field(None, max_length=len(PLUGIN_SCOPES),
                                     description="Scopes to grant (default: every scope the plugin requests)")


@tool("plugins.install", risk="write")
def install_plugin(ctx: ToolContext, params: InstallCreate) -> InstallRead:
    """Install a listed plugin in the organisation, granting its requested scopes (a test-mode key makes a
    test install: test events only, no revenue)."""
    repo = PartnerRepository(ctx.session)
    plugin = repo.plugin_by_slug(params.plugin)
    if plugin is None or plugin.state != "listed" or plugin.listed_version_id is None:
        raise NotFound(f"plugin {params.plugin!r} is not in the marketplace", field="plugin")
    version = repo.version(plugin.listed_version_id)
    assert version is not None
    requested = set(version.manifest.get("scopes", []))
    granted = requested if params.scopes is None else set(params.scopes)
    extra = granted - requested
    if extra:
        raise Unprocessable(f"scopes {sorted(extra)} are not requested by {plugin.slug}", field="scopes")
    inst = repo.install_for(plugin.id, ctx.org_id, ctx.mode)
    now = utcnow()
    if inst is not None and inst.status == "active":
        raise Conflict(f"{plugin.slug} is already installed", field="plugin")
    if inst is None:
        inst = PluginInstall(plugin_id=plugin.id, org_id=ctx.org_id, mode=ctx.mode, version_id=version.id,
                             scopes=sorted(granted), secret=new_secret(), installed_by=ctx.principal.actor)
        repo.add(inst)
    else:
        inst.status, inst.version_id, inst.scopes, inst.uninstalled_at = "active", version.id, sorted(granted), None
        inst.secret, inst.previous_secret, inst.previous_expires_at = new_secret(), None, None
        inst.endpoint_disabled_at = inst.disabled_reason = inst.failing_since = None
        inst.installed_by, inst.created_at = ctx.principal.actor, now
        ctx.session.flush()
    audit_log.record(ctx, "plugins.installed", f"install:{inst.id}",
                     after={"plugin": plugin.slug, "version": version.version, "scopes": sorted(granted)})
    accrue_install(ctx.session, inst, plugin, version)
    return install_read(repo, inst)


class InstallRef(BaseModel):
    install_id: int = Field(ge=1, le=2**31 - 1)


@tool("plugins.uninstall", risk="destructive")
def uninstall_plugin(ctx: ToolContext, params: InstallRef) -> InstallRead:
    """Uninstall a plugin: no more events reach it."""
    inst = org_install(ctx, params.install_id)
    if inst.status != "active":
        raise Conflict("the plugin is not installed", field="install_id")
    inst.status, inst.uninstalled_at = "uninstalled", utcnow()
    ctx.session.flush()
    repo = PartnerRepository(ctx.session)
    audit_log.record(ctx, "plugins.uninstalled", f"install:{inst.id}", before={"status": "active"},
                     after={"status": "uninstalled"})
    return install_read(repo, inst)


class InstallList(BaseModel):
    items: list[InstallRead]


@tool("plugins.installs", risk="read")
def list_installs(ctx: ToolContext, params: NoInput) -> InstallList:
    """List the plugins installed in the organisation."""
    repo = PartnerRepository(ctx.session)
    return InstallList(items=[install_read(repo, i) for i in repo.installs_for_org(ctx.org_id, mode=ctx.mode)])


class SecretList(BaseModel):
    items: list[InstallSecrets]


class PartnerInstallQuery(BaseModel):
    plugin: str | None = Field(None, max_length=64)


@tool("plugins.partner_installs", risk="read")
def partner_installs(ctx: ToolContext, params: PartnerInstallQuery) -> SecretList:
    """List installs of the partner's plugins with their signing secrets (to verify webhooks)."""
    partner = own_partner(ctx)
    repo = PartnerRepository(ctx.session)
    out = []
    for plugin in repo.plugins(partner_id=partner.id):
        if params.plugin and plugin.slug != params.plugin:
            continue
        out += [secrets_read(repo, i) for i in repo.active_installs(plugin.id)]
    return SecretList(items=out)


@tool("plugins.rotate_secret", risk="write")
def rotate_secret(ctx: ToolContext, params: InstallRef) -> InstallSecrets:
    """Rotate an install's signing secret; the old one stays valid for 24 hours."""
    inst = install_for_org_or_partner(ctx, params.install_id)
    now = utcnow()
    inst.previous_secret, inst.previous_expires_at = inst.secret, now + SECRET_ROTATION_GRACE
    inst.secret = new_secret()
    ctx.session.flush()
    audit_log.record(ctx, "plugins.secret_rotated", f"install:{inst.id}",
                     detail={"previous_valid_until": inst.previous_expires_at.isoformat()})
    return secrets_read(PartnerRepository(ctx.session), inst)


@tool("plugins.enable_endpoint", risk="write")
def enable_endpoint(ctx: ToolContext, params: InstallRef) -> InstallRead:
    """Re-enable an install's disabled webhook endpoint; held deliveries resume."""
    inst = install_for_org_or_partner(ctx, params.install_id)
    before = inst.disabled_reason
    inst.endpoint_disabled_at = inst.disabled_reason = inst.failing_since = None
    ctx.session.flush()
    audit_log.record(ctx, "plugins.endpoint_enabled", f"install:{inst.id}", before={"disabled_reason": before})
    return install_read(PartnerRepository(ctx.session), inst)


class EndpointDisable(InstallRef):
    reason: str = Field(min_length=1, max_length=400, description="Why: told to the partner by email")


@tool("plugins.disable_endpoint", risk="write")
def disable_endpoint(ctx: ToolContext, params: EndpointDisable) -> InstallRead:
    """Disable an install's failing webhook endpoint (deliveries are held) and email the partner why."""
    p = ctx.principal
    if (p.org_id is None and p.kind in ("system", "agent")) or is_staff(ctx):
        inst = PartnerRepository(ctx.session).install(params.install_id)
        if inst is None:
            raise NotFound(f"install {params.install_id} not found", field="install_id")
    else:
        inst = install_for_org_or_partner(ctx, params.install_id)
    if inst.endpoint_disabled_at is not None:
        raise Conflict(f"the endpoint of install {inst.id} is already disabled", field="install_id")
    disable_install_endpoint(ctx.session, inst, f"{params.reason} (by {p.actor})")
    ctx.session.flush()
    audit_log.record(ctx, "plugins.endpoint_disabled", f"install:{inst.id}", detail={"reason": params.reason})
    return install_read(PartnerRepository(ctx.session), inst)


class RatingIn(BaseModel):
    plugin: str = Field(min_length=3, max_length=64, pattern=SLUG)
    stars: int = Field(ge=1, le=5)


@tool("plugins.rate", risk="write")
def rate_plugin(ctx: ToolContext, params: RatingIn) -> PluginRead:
    """Rate an installed plugin from 1 to 5 stars (one rating per organisation)."""
    repo = PartnerRepository(ctx.session)
    plugin = repo.plugin_by_slug(params.plugin)
    if ctx.mode == "test":
        raise Forbidden("ratings are public and live: rate a plugin with a live key", field="plugin")
    inst = repo.install_for(plugin.id, ctx.org_id, "live") if plugin else None
    if plugin is None or inst is None:
        raise BadRequest("install the plugin before rating it", field="plugin")
    repo.rate(plugin, ctx.org_id, params.stars)
    return plugin_read(repo, plugin, with_versions=False)
