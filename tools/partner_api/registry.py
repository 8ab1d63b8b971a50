"""Plugin registry: partners, manifests, review, installs, ratings, ``marketplace.json`` and KPIs.

A partner is an organisation with a partner profile; its ``partner``-role keys (and its admins)
manage its plugins. A plugin's manifest is validated strictly (HTTPS endpoints through the one
SSRF guard in :mod:`tools.jobs.ssrf`, revenue share within ``policy.json`` bounds, unique ids,
semver). States: draft -> in_review -> listed (by a Levqor staff review) -> suspended | retired.
A listed version is immutable; a change is a new, higher version that goes through review again.

Levqor staff are the admins of the organisations named in ``LEVQOR_STAFF_ORGS`` (and the system
principal): they approve or reject versions, suspend plugins and partners, and run payouts.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import re
import secrets
from collections.abc import Collection
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from memory.db import utcnow
from memory.identity.repository import IdentityRepository
from memory.partner.models import Partner, Plugin, PluginInstall, PluginVersion
from memory.partner.repository import PartnerRepository
from tools.context import ToolContext
from tools.enterprise import audit_log
from tools.errors import BadRequest, Conflict, Forbidden, NotFound, Unprocessable
from tools.events.service import KNOWN_EVENTS
from tools.registry import tool

HERE = Path(__file__).resolve().parent
MARKETPLACE_JSON = HERE / "marketplace.json"
MARKETPLACE_SCHEMA_VERSION = "1.0"
CATEGORIES: tuple[str, ...] = ("analytics", "communication", "crm", "data", "devops", "finance", "marketing",
                               "productivity", "security", "support")
# Scopes a plugin may request; they decide which event fields reach it (see hooks.SCOPE_FIELDS).
PLUGIN_SCOPES: dict[str, str] = {
    "events:read": "Receive the names and ids of subscribed platform events.",
    "jobs:read": "Job and pipeline ids, states, attempts and errors in job events.",
    "users:read": "User ids, emails and roles in user events (personal data).",
    "org:read": "The installing organisation's id and slug.",
    "credits:read": "Credit balances in billing events.",
}
SECRET_ROTATION_GRACE = dt.timedelta(hours=24)
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$")
_SLUG = r"^[a-z0-9][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)*$"


def semver_key(version: str) -> tuple[int, int, int, int, tuple[Any, ...]]:
    """Sort key following semver precedence (pre-releases before the release; build ignored)."""
    m = _SEMVER.match(version)
    if m is None:
        raise Unprocessable(f"version {version!r} is not semver (MAJOR.MINOR.PATCH)", field="version")
    pre = m.group(4)
    parts = pre.split(".") if pre else []
    pre_key: tuple[Any, ...] = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)
    return int(m.group(1)), int(m.group(2)), int(m.group(3)), 0 if pre else 1, pre_key


# ---- the manifest ------------------------------------------------------------------------------

class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Pricing(Strict):
    model: Literal["free", "monthly", "per_run"] = Field(description="How installs are charged.")
    monthly_minor: int | None = Field(None, ge=1, le=10_000_000, description="Monthly price in minor units.")
    credits_per_run: int | None = Field(None, ge=1, le=10_000, description="Credits per pipeline run using it.")
    currency: Literal["usd"] = "usd"

    @model_validator(mode="after")
    def _consistent(self) -> Pricing:
        if self.model == "monthly" and self.monthly_minor is None:
            raise ValueError("pricing.monthly_minor is required for monthly pricing")
        if self.model == "per_run" and self.credits_per_run is None:
            raise ValueError("pricing.credits_per_run is required for per-run pricing")
        if self.model == "free" and (self.monthly_minor or self.credits_per_run):
            raise ValueError("free pricing takes no monthly_minor or credits_per_run")
        return self


class Action(Strict):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
    url: str = Field(max_length=2000, description="HTTPS URL the pipeline step calls (signed).")
    description: str = Field("", max_length=500)


class Endpoints(Strict):
    webhook_url: str | None = Field(None, max_length=2000, description="HTTPS URL receiving subscribed events.")
    actions: list[Action] = Field(default_factory=list, max_length=20)



def _known(values: list[str], allowed: Collection[str], what: str) -> list[str]:
    """Refuse values outside ``allowed`` (naming them); return the rest sorted without repeats."""
    bad = [v for v in values if v not in allowed]
    if bad:
        raise ValueError(f"unknown {what} {bad}; use {', '.join(allowed)}")
    return sorted(set(values))

class Manifest(Strict):
    """A plugin manifest (the roadmap's ``id, name, author, endpoints, revenue_share`` and more)."""

    id: str = Field(min_length=3, max_length=64, pattern=_SLUG, description="Unique plugin id, e.g. acme.slack")
    name: str = Field(min_length=1, max_length=100)
    author: str = Field(min_length=1, max_length=200)
    version: str = Field(max_length=64, description="Semantic version, e.g. 1.2.0")
    description: str = Field("", max_length=5000)
    categories: list[str] = Field(default_factory=list, max_length=5)
    icon: str | None = Field(None, max_length=2000, description="HTTPS URL of a square icon")
    pricing: Pricing = Field(default_factory=lambda: Pricing(model="free"))
    scopes: list[str] = Field(default_factory=list, max_length=len(PLUGIN_SCOPES))
    events: list[str] = Field(default_factory=list, max_length=len(KNOWN_EVENTS))
    endpoints: Endpoints = Field(default_factory=Endpoints)
    revenue_share: float = Field(ge=0, le=1, description="Partner's share of the plugin's revenue (0-1)")
    support_url: str = Field(max_length=2000)
    privacy_url: str = Field(max_length=2000)

    @field_validator("version")
    @classmethod
    def _semver(cls, v: str) -> str:
        if not _SEMVER.match(v):
            raise ValueError(f"{v!r} is not semver (MAJOR.MINOR.PATCH, e.g. 1.0.0)")
        return v

    @field_validator("categories")
    @classmethod
    def _categories(cls, v: list[str]) -> list[str]:
        return _known(v, CATEGORIES, "categories")

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, v: list[str]) -> list[str]:
        return _known(v, PLUGIN_SCOPES, "scopes")

    @field_validator("events")
    @classmethod
    def _events(cls, v: list[str]) -> list[str]:
        return _known(v, sorted(KNOWN_EVENTS), "events")

    @model_validator(mode="after")
    def _webhook_needed(self) -> Manifest:
        if self.events and not self.endpoints.webhook_url:
            raise ValueError("endpoints.webhook_url is required when events are subscribed")
        return self


def _loopback_host(host: str) -> bool:
    bare = host.strip("[]").rstrip(".")
    if bare == "localhost":
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return False


def check_partner_url(url: str, field: str, *, resolve: bool) -> None:
    """HTTPS only (http to loopback only with LEVQOR_ALLOW_LOOPBACK_URLS), then the SSRF guard."""
    from levqor.settings import get_settings
    from tools.shared.ssrf import SSRFBlocked, check_url

    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise Unprocessable(f"{field}: invalid URL: {exc}", field=field) from None
    if parts.scheme != "https":
        loop_ok = get_settings().allow_loopback_urls and parts.scheme == "http" and _loopback_host(
            parts.hostname or "")
        if not loop_ok:
            raise Unprocessable(f"{field}: partner URLs must use https, not {parts.scheme or 'no scheme'!r}",
                                field=field)
    try:
        check_url(url, resolve=resolve)
    except SSRFBlocked as exc:
        raise SSRFBlocked(f"{field}: {exc.detail}", field=field) from None


def validate_manifest(raw: dict[str, Any]) -> Manifest:
    """Parse ``raw`` into a :class:`Manifest` and check URLs and the revenue share; clear errors."""
    from pydantic import ValidationError

    from policies.engine import get_engine

    try:
        m = Manifest.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in ("manifest", *err["loc"]))
        raise Unprocessable(f"{loc}: {err['msg']}", field=loc) from None
    if m.endpoints.webhook_url:
        check_partner_url(m.endpoints.webhook_url, "manifest.endpoints.webhook_url", resolve=True)
    for i, action in enumerate(m.endpoints.actions):
        check_partner_url(action.url, f"manifest.endpoints.actions.{i}.url", resolve=True)
    for name in ("icon", "support_url", "privacy_url"):
        value = getattr(m, name)
        if value:
            check_partner_url(value, f"manifest.{name}", resolve=False)
    rules = get_engine().doc.revenue_share
    share = m.revenue_share
    if not rules.min_partner_share <= share <= rules.max_partner_share:
        raise Unprocessable(
            f"manifest.revenue_share: {share:g} is outside the policy bounds "
            f"{rules.min_partner_share:g}-{rules.max_partner_share:g}", field="manifest.revenue_share")
    if 1 - share < rules.platform_fee_floor - 1e-9:
        raise Unprocessable(f"manifest.revenue_share: the platform fee {1 - share:g} is under the floor "
                            f"{rules.platform_fee_floor:g}", field="manifest.revenue_share")
    return m


def share_bps(manifest: dict[str, Any]) -> int:
    return int(round(float(manifest["revenue_share"]) * 10000))


# ---- who is calling ----------------------------------------------------------------------------

def is_staff(ctx: ToolContext) -> bool:
    """Levqor staff: the system principal, or an admin of an organisation in LEVQOR_STAFF_ORGS."""
    from levqor.settings import get_settings

    p = ctx.principal
    if p.kind == "system":
        return True
    if p.role != "admin" or p.org_id is None:
        return False
    org = IdentityRepository(ctx.session).org(p.org_id)
    return org is not None and org.slug in get_settings().staff_orgs


def require_staff(ctx: ToolContext, what: str) -> None:
    if not is_staff(ctx):
        raise Forbidden(f"only Levqor staff may {what}")


def own_partner(ctx: ToolContext) -> Partner:
    partner = PartnerRepository(ctx.session).partner_for_org(ctx.org_id)
    if partner is None:
        raise NotFound("this organisation has no partner profile: register with POST /v1/partners first",
                       field="partner")
    return partner


def _owned_plugin(ctx: ToolContext, slug: str) -> Plugin:
    repo = PartnerRepository(ctx.session)
    plugin = repo.plugin_by_slug(slug)
    if plugin is None:
        raise NotFound(f"plugin {slug!r} not found", field="plugin")
    if is_staff(ctx):
        return plugin
    partner = repo.partner_for_org(ctx.org_id) if ctx.principal.org_id is not None else None
    if partner is None or partner.id != plugin.partner_id:
        raise NotFound(f"plugin {slug!r} not found", field="plugin")
    return plugin


def _visible_plugin(ctx: ToolContext, slug: str) -> Plugin:
    repo = PartnerRepository(ctx.session)
    plugin = repo.plugin_by_slug(slug)
    if plugin is None:
        raise NotFound(f"plugin {slug!r} not found", field="plugin")
    if plugin.state == "listed" or is_staff(ctx):
        return plugin
    partner = repo.partner_for_org(ctx.principal.org_id) if ctx.principal.org_id is not None else None
    if partner is None or partner.id != plugin.partner_id:
        raise NotFound(f"plugin {slug!r} not found", field="plugin")
    return plugin


# ---- schemas -----------------------------------------------------------------------------------

class PartnerRead(BaseModel):
    id: int
    org_id: int
    display_name: str
    website: str
    contact_email: str
    bio: str
    status: str
    stripe_account_id: str | None
    payouts_enabled: bool

    @classmethod
    def of(cls, p: Partner) -> PartnerRead:
        return cls(id=p.id, org_id=p.org_id, display_name=p.display_name, website=p.website,
                   contact_email=p.contact_email, bio=p.bio, status=p.status,
                   stripe_account_id=p.stripe_account_id, payouts_enabled=p.payouts_enabled)


class VersionRead(BaseModel):
    id: int
    version: str
    state: str
    manifest: dict[str, Any]
    review_note: str
    created_at: dt.datetime
    listed_at: dt.datetime | None

    @classmethod
    def of(cls, v: PluginVersion) -> VersionRead:
        return cls(id=v.id, version=v.version, state=v.state, manifest=dict(v.manifest),
                   review_note=v.review_note, created_at=v.created_at, listed_at=v.listed_at)


class PluginRead(BaseModel):
    id: str
    name: str
    state: str
    partner_id: int
    partner_name: str
    listed_version: str | None
    manifest: dict[str, Any] | None = Field(description="The listed manifest (or the newest one, for its owner)")
    installs: int
    rating: float | None
    rating_count: int
    versions: list[VersionRead] | None = Field(None, description="Every version (owner and staff only)")


def _plugin_read(repo: PartnerRepository, plugin: Plugin, *, with_versions: bool,
                 installs: int | None = None) -> PluginRead:
    partner = repo.partner(plugin.partner_id)
    versions = repo.versions(plugin.id)
    listed = next((v for v in versions if v.id == plugin.listed_version_id), None)
    shown = listed or (versions[-1] if with_versions and versions else None)
    if installs is None:
        installs = repo.install_counts().get(plugin.id, 0)
    return PluginRead(
        id=plugin.slug, name=plugin.name, state=plugin.state, partner_id=plugin.partner_id,
        partner_name=partner.display_name if partner else "", listed_version=listed.version if listed else None,
        manifest=dict(shown.manifest) if shown else None, installs=installs,
        rating=round(plugin.rating_sum / plugin.rating_count, 2) if plugin.rating_count else None,
        rating_count=plugin.rating_count,
        versions=[VersionRead.of(v) for v in versions] if with_versions else None)


# ---- partners ----------------------------------------------------------------------------------

class PartnerRegister(BaseModel):
    display_name: str = Field(min_length=1, max_length=200)
    contact_email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    website: str = Field("", max_length=500)
    bio: str = Field("", max_length=2000)


@tool("partners.register", risk="write")
def register_partner(ctx: ToolContext, params: PartnerRegister) -> PartnerRead:
    """Register the caller's organisation as a partner that can publish plugins."""
    repo = PartnerRepository(ctx.session)
    if repo.partner_for_org(ctx.org_id) is not None:
        raise Conflict("this organisation is already a partner", field="org_id")
    if params.website:
        check_partner_url(params.website, "website", resolve=False)
    partner = Partner(org_id=ctx.org_id, display_name=params.display_name, website=params.website,
                      contact_email=params.contact_email, bio=params.bio)
    repo.add(partner)
    audit_log.record(ctx, "partners.registered", f"partner:{partner.id}", after=PartnerRead.of(partner).model_dump())
    return PartnerRead.of(partner)


class NoInput(BaseModel):
    pass


@tool("partners.get", risk="read")
def get_partner(ctx: ToolContext, params: NoInput) -> PartnerRead:
    """Show the caller's partner profile."""
    return PartnerRead.of(own_partner(ctx))


class PartnerStatus(BaseModel):
    partner_id: int = Field(ge=1, le=2**31 - 1)
    status: Literal["active", "suspended"]
    reason: str = Field("", max_length=500)


@tool("partners.set_status", risk="destructive")
def set_partner_status(ctx: ToolContext, params: PartnerStatus) -> PartnerRead:
    """Suspend a partner (payouts held, its plugins hidden) or reinstate it (Levqor staff)."""
    repo = PartnerRepository(ctx.session)
    partner = repo.partner(params.partner_id)
    if partner is None:
        raise NotFound(f"partner {params.partner_id} not found", field="partner_id")
    require_staff(ctx, "suspend partners")
    before = partner.status
    partner.status = params.status
    ctx.session.flush()
    audit_log.record(ctx, "partners.status_changed", f"partner:{partner.id}", before={"status": before},
                     after={"status": params.status}, detail={"reason": params.reason})
    return PartnerRead.of(partner)


# ---- plugins -----------------------------------------------------------------------------------

class PluginSubmit(BaseModel):
    manifest: dict[str, Any] = Field(description="The plugin manifest (see docs/dev_portal/marketplace_schema.md)")


@tool("plugins.create", risk="write")
def create_plugin(ctx: ToolContext, params: PluginSubmit) -> PluginRead:
    """Register a new plugin (draft) from its manifest."""
    partner = own_partner(ctx)
    m = validate_manifest(params.manifest)
    repo = PartnerRepository(ctx.session)
    if repo.plugin_by_slug(m.id) is not None:
        raise Conflict(f"plugin id {m.id!r} is taken", field="manifest.id")
    plugin = Plugin(slug=m.id, partner_id=partner.id, name=m.name, state="draft")
    repo.add(plugin)
    repo.add(PluginVersion(plugin_id=plugin.id, version=m.version, state="draft", manifest=m.model_dump(mode="json")))
    audit_log.record(ctx, "plugins.created", f"plugin:{m.id}", after={"version": m.version})
    return _plugin_read(repo, plugin, with_versions=True)


class VersionPut(BaseModel):
    plugin: str = Field(min_length=3, max_length=64, pattern=_SLUG)
    manifest: dict[str, Any]


@tool("plugins.put_version", risk="write")
def put_version(ctx: ToolContext, params: VersionPut) -> PluginRead:
    """Edit a draft version's manifest, or start a new (higher) version of a plugin."""
    plugin = _owned_plugin(ctx, params.plugin)
    m = validate_manifest(params.manifest)
    if m.id != plugin.slug:
        raise Unprocessable(f"manifest.id {m.id!r} must stay {plugin.slug!r}", field="manifest.id")
    if plugin.state == "retired":
        raise Conflict("the plugin is retired", field="plugin")
    repo = PartnerRepository(ctx.session)
    versions = repo.versions(plugin.id)
    same = next((v for v in versions if v.version == m.version), None)
    if same is not None:
        if same.state not in ("draft", "rejected"):
            raise Conflict(f"version {m.version} is {same.state} and immutable; publish a new version",
                           field="manifest.version")
        same.manifest, same.state = m.model_dump(mode="json"), "draft"
    else:
        newest = max(versions, key=lambda v: semver_key(v.version))
        if semver_key(m.version) <= semver_key(newest.version):
            raise Conflict(f"version {m.version} must be higher than {newest.version}", field="manifest.version")
        repo.add(PluginVersion(plugin_id=plugin.id, version=m.version, state="draft",
                               manifest=m.model_dump(mode="json")))
    if plugin.listed_version_id is None:
        plugin.name = m.name
    plugin.updated_at = utcnow()
    ctx.session.flush()
    audit_log.record(ctx, "plugins.version_saved", f"plugin:{plugin.slug}", after={"version": m.version})
    return _plugin_read(repo, plugin, with_versions=True)


class VersionRef(BaseModel):
    plugin: str = Field(min_length=3, max_length=64, pattern=_SLUG)
    version: str = Field(min_length=5, max_length=64)


def _version(repo: PartnerRepository, plugin: Plugin, version: str) -> PluginVersion:
    v = next((v for v in repo.versions(plugin.id) if v.version == version), None)
    if v is None:
        raise NotFound(f"version {version} of {plugin.slug} not found", field="version")
    return v


@tool("plugins.submit", risk="write")
def submit_version(ctx: ToolContext, params: VersionRef) -> PluginRead:
    """Send a draft version to Levqor review."""
    plugin = _owned_plugin(ctx, params.plugin)
    repo = PartnerRepository(ctx.session)
    v = _version(repo, plugin, params.version)
    if v.state != "draft":
        raise Conflict(f"version {v.version} is {v.state}; only drafts are submitted", field="version")
    validate_manifest(dict(v.manifest))  # URLs and policy may have changed since it was saved
    v.state = "in_review"
    if plugin.state == "draft":
        plugin.state = "in_review"
    ctx.session.flush()
    audit_log.record(ctx, "plugins.submitted", f"plugin:{plugin.slug}", after={"version": v.version})
    return _plugin_read(repo, plugin, with_versions=True)


class Review(VersionRef):
    decision: Literal["approve", "reject"]
    note: str = Field("", max_length=2000)


@tool("plugins.review", risk="write")
def review_version(ctx: ToolContext, params: Review) -> PluginRead:
    """Approve (list) or reject a version in review (Levqor staff)."""
    repo = PartnerRepository(ctx.session)
    plugin = repo.plugin_by_slug(params.plugin)
    if plugin is None:
        raise NotFound(f"plugin {params.plugin!r} not found", field="plugin")
    require_staff(ctx, "review plugins")
    v = _version(repo, plugin, params.version)
    if v.state != "in_review":
        raise Conflict(f"version {v.version} is {v.state}, not in review", field="version")
    v.review_note, v.reviewed_by = params.note, ctx.principal.actor
    if params.decision == "reject":
        v.state = "rejected"
        if plugin.state == "in_review":
            plugin.state = "draft"
    else:
        now = utcnow()
        old = repo.version(plugin.listed_version_id) if plugin.listed_version_id else None
        if old is not None:
            old.state = "superseded"
        v.state, v.listed_at = "listed", now
        plugin.listed_version_id, plugin.name, plugin.updated_at = v.id, str(v.manifest["name"]), now
        if plugin.state in ("draft", "in_review"):
            plugin.state = "listed"
        # Installs move to the new version when it asks for no scope they have not granted.
        wanted = set(v.manifest.get("scopes", []))
        for inst in repo.active_installs(plugin.id):
            if wanted <= set(inst.scopes):
                inst.version_id = v.id
    ctx.session.flush()
    audit_log.record(ctx, f"plugins.{'approved' if params.decision == 'approve' else 'rejected'}",
                     f"plugin:{plugin.slug}", after={"version": v.version, "note": params.note})
    return _plugin_read(repo, plugin, with_versions=True)


class PluginState(BaseModel):
    plugin: str = Field(min_length=3, max_length=64, pattern=_SLUG)
    state: Literal["listed", "suspended", "retired"]
    reason: str = Field("", max_length=500)


@tool("plugins.set_state", risk="destructive")
def set_plugin_state(ctx: ToolContext, params: PluginState) -> PluginRead:
    """Retire a plugin (its partner), or suspend and reinstate it (Levqor staff)."""
    plugin = _owned_plugin(ctx, params.plugin)
    staff = is_staff(ctx)
    before = plugin.state
    if params.state in ("suspended", "listed") and not staff:
        raise Forbidden("only Levqor staff may suspend or reinstate a plugin", field="state")
    if params.state == "listed" and (plugin.listed_version_id is None or before != "suspended"):
        raise Conflict("only a suspended plugin with a listed version can be reinstated", field="state")
    if before == "retired":
        raise Conflict("the plugin is retired", field="state")
    plugin.state, plugin.updated_at = params.state, utcnow()
    ctx.session.flush()
    audit_log.record(ctx, "plugins.state_changed", f"plugin:{plugin.slug}", before={"state": before},
                     after={"state": params.state}, detail={"reason": params.reason})
    return _plugin_read(PartnerRepository(ctx.session), plugin, with_versions=True)


class PluginQuery(BaseModel):
    q: str | None = Field(None, max_length=100, description="Search in name, description and author")
    category: str | None = Field(None, max_length=40)
    state: Literal["draft", "in_review", "listed", "suspended", "retired"] | None = None
    mine: bool = Field(False, description="Only the caller's own plugins (partners)")


class PluginList(BaseModel):
    items: list[PluginRead]


def _matches(m: dict[str, Any] | None, q: str | None, category: str | None) -> bool:
    if m is None:
        return q is None and category is None
    if category and category not in m.get("categories", []):
        return False
    if q:
        hay = " ".join(str(m.get(k, "")) for k in ("name", "description", "author", "id")).lower()
        return all(word in hay for word in q.lower().split())
    return True


@tool("plugins.list", risk="read")
def list_plugins(ctx: ToolContext, params: PluginQuery) -> PluginList:
    """List plugins: listed ones for everyone, plus the caller's own (partners) or all (staff)."""
    repo = PartnerRepository(ctx.session)
    staff = is_staff(ctx)
    partner = repo.partner_for_org(ctx.principal.org_id) if ctx.principal.org_id is not None else None
    counts = repo.install_counts()
    out = []
    for p in repo.plugins(states=[params.state] if params.state else None):
        owner = partner is not None and partner.id == p.partner_id
        if params.mine and not owner:
            continue
        if not (p.state == "listed" or owner or staff):
            continue
        item = _plugin_read(repo, p, with_versions=owner or staff, installs=counts.get(p.id, 0))
        if _matches(item.manifest, params.q, params.category):
            out.append(item)
    return PluginList(items=out)


class PluginRef(BaseModel):
    plugin: str = Field(min_length=1, max_length=64)


@tool("plugins.get", risk="read")
def get_plugin(ctx: ToolContext, params: PluginRef) -> PluginRead:
    """Show one plugin: listed manifest, installs, rating (and versions for its owner)."""
    plugin = _visible_plugin(ctx, params.plugin)
    repo = PartnerRepository(ctx.session)
    partner = repo.partner_for_org(ctx.principal.org_id) if ctx.principal.org_id is not None else None
    owner = is_staff(ctx) or (partner is not None and partner.id == plugin.partner_id)
    return _plugin_read(repo, plugin, with_versions=owner)


# ---- installs ----------------------------------------------------------------------------------

def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


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


def _install_read(repo: PartnerRepository, inst: PluginInstall) -> InstallRead:
    plugin = repo.plugin(inst.plugin_id)
    version = repo.version(inst.version_id)
    return InstallRead(id=inst.id, plugin=plugin.slug if plugin else "", org_id=inst.org_id,
                       version=version.version if version else "", status=inst.status, scopes=list(inst.scopes),
                       endpoint_disabled_at=inst.endpoint_disabled_at, disabled_reason=inst.disabled_reason,
                       created_at=inst.created_at)


def _secrets(repo: PartnerRepository, inst: PluginInstall) -> InstallSecrets:
    valid_prev = inst.previous_secret if inst.previous_expires_at and inst.previous_expires_at > utcnow() else None
    return InstallSecrets(**_install_read(repo, inst).model_dump(), secret=inst.secret, previous_secret=valid_prev,
                          previous_expires_at=inst.previous_expires_at if valid_prev else None)


class InstallCreate(BaseModel):
    plugin: str = Field(min_length=3, max_length=64, pattern=_SLUG)
    scopes: list[str] | None = Field(None, max_length=len(PLUGIN_SCOPES),
                                     description="Scopes to grant (default: every scope the plugin requests)")


@tool("plugins.install", risk="write")
def install_plugin(ctx: ToolContext, params: InstallCreate) -> InstallRead:
    """Install a listed plugin in the organisation, granting its requested scopes."""
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
    inst = repo.install_for(plugin.id, ctx.org_id)
    now = utcnow()
    if inst is not None and inst.status == "active":
        raise Conflict(f"{plugin.slug} is already installed", field="plugin")
    if inst is None:
        inst = PluginInstall(plugin_id=plugin.id, org_id=ctx.org_id, version_id=version.id, scopes=sorted(granted),
                             secret=new_secret(), installed_by=ctx.principal.actor)
        repo.add(inst)
    else:
        inst.status, inst.version_id, inst.scopes, inst.uninstalled_at = "active", version.id, sorted(granted), None
        inst.secret, inst.previous_secret, inst.previous_expires_at = new_secret(), None, None
        inst.endpoint_disabled_at = inst.disabled_reason = inst.failing_since = None
        inst.installed_by, inst.created_at = ctx.principal.actor, now
        ctx.session.flush()
    audit_log.record(ctx, "plugins.installed", f"install:{inst.id}",
                     after={"plugin": plugin.slug, "version": version.version, "scopes": sorted(granted)})
    from tools.partner_api import payouts

    payouts.accrue_install(ctx.session, inst, plugin, version)
    return _install_read(repo, inst)


class InstallRef(BaseModel):
    install_id: int = Field(ge=1, le=2**31 - 1)


def _org_install(ctx: ToolContext, install_id: int) -> PluginInstall:
    inst = PartnerRepository(ctx.session).install(install_id)
    if inst is None or inst.org_id != ctx.org_id:
        raise NotFound(f"install {install_id} not found", field="install_id")
    return inst


def visible_to_org_or_publisher(repo: PartnerRepository, org_id: int, row_org_id: int, plugin_id: int) -> bool:
    """Whether org ``org_id`` owns a row (install, delivery) or publishes the row's plugin."""
    if row_org_id == org_id:
        return True
    partner = repo.partner_for_org(org_id)
    plugin = repo.plugin(plugin_id)
    return partner is not None and plugin is not None and plugin.partner_id == partner.id


def _install_for_org_or_partner(ctx: ToolContext, install_id: int) -> PluginInstall:
    """The install, when the caller's org installed it or publishes its plugin."""
    repo = PartnerRepository(ctx.session)
    inst = repo.install(install_id)
    if inst is None or not visible_to_org_or_publisher(repo, ctx.org_id, inst.org_id, inst.plugin_id):
        raise NotFound(f"install {install_id} not found", field="install_id")
    return inst


@tool("plugins.uninstall", risk="destructive")
def uninstall_plugin(ctx: ToolContext, params: InstallRef) -> InstallRead:
    """Uninstall a plugin: no more events reach it."""
    inst = _org_install(ctx, params.install_id)
    if inst.status != "active":
        raise Conflict("the plugin is not installed", field="install_id")
    inst.status, inst.uninstalled_at = "uninstalled", utcnow()
    ctx.session.flush()
    repo = PartnerRepository(ctx.session)
    audit_log.record(ctx, "plugins.uninstalled", f"install:{inst.id}", before={"status": "active"},
                     after={"status": "uninstalled"})
    return _install_read(repo, inst)


class InstallList(BaseModel):
    items: list[InstallRead]


@tool("plugins.installs", risk="read")
def list_installs(ctx: ToolContext, params: NoInput) -> InstallList:
    """List the plugins installed in the organisation."""
    repo = PartnerRepository(ctx.session)
    return InstallList(items=[_install_read(repo, i) for i in repo.installs_for_org(ctx.org_id)])


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
        out += [_secrets(repo, i) for i in repo.active_installs(plugin.id)]
    return SecretList(items=out)


@tool("plugins.rotate_secret", risk="write")
def rotate_secret(ctx: ToolContext, params: InstallRef) -> InstallSecrets:
    """Rotate an install's signing secret; the old one stays valid for 24 hours."""
    inst = _install_for_org_or_partner(ctx, params.install_id)
    now = utcnow()
    inst.previous_secret, inst.previous_expires_at = inst.secret, now + SECRET_ROTATION_GRACE
    inst.secret = new_secret()
    ctx.session.flush()
    audit_log.record(ctx, "plugins.secret_rotated", f"install:{inst.id}",
                     detail={"previous_valid_until": inst.previous_expires_at.isoformat()})
    return _secrets(PartnerRepository(ctx.session), inst)


@tool("plugins.enable_endpoint", risk="write")
def enable_endpoint(ctx: ToolContext, params: InstallRef) -> InstallRead:
    """Re-enable an install's disabled webhook endpoint; held deliveries resume."""
    inst = _install_for_org_or_partner(ctx, params.install_id)
    before = inst.disabled_reason
    inst.endpoint_disabled_at = inst.disabled_reason = inst.failing_since = None
    ctx.session.flush()
    audit_log.record(ctx, "plugins.endpoint_enabled", f"install:{inst.id}", before={"disabled_reason": before})
    return _install_read(PartnerRepository(ctx.session), inst)


class EndpointDisable(InstallRef):
    reason: str = Field(min_length=1, max_length=400, description="Why: told to the partner by email")


@tool("plugins.disable_endpoint", risk="write")
def disable_endpoint(ctx: ToolContext, params: EndpointDisable) -> InstallRead:
    """Disable an install's failing webhook endpoint (deliveries are held) and email the partner why."""
    from tools.partner_api.hooks import disable_install_endpoint

    p = ctx.principal
    if (p.org_id is None and p.kind in ("system", "agent")) or is_staff(ctx):
        inst = PartnerRepository(ctx.session).install(params.install_id)
        if inst is None:
            raise NotFound(f"install {params.install_id} not found", field="install_id")
    else:
        inst = _install_for_org_or_partner(ctx, params.install_id)
    if inst.endpoint_disabled_at is not None:
        raise Conflict(f"the endpoint of install {inst.id} is already disabled", field="install_id")
    disable_install_endpoint(ctx.session, inst, f"{params.reason} (by {p.actor})")
    ctx.session.flush()
    audit_log.record(ctx, "plugins.endpoint_disabled", f"install:{inst.id}", detail={"reason": params.reason})
    return _install_read(PartnerRepository(ctx.session), inst)


class RatingIn(BaseModel):
    plugin: str = Field(min_length=3, max_length=64, pattern=_SLUG)
    stars: int = Field(ge=1, le=5)


@tool("plugins.rate", risk="write")
def rate_plugin(ctx: ToolContext, params: RatingIn) -> PluginRead:
    """Rate an installed plugin from 1 to 5 stars (one rating per organisation)."""
    repo = PartnerRepository(ctx.session)
    plugin = repo.plugin_by_slug(params.plugin)
    inst = repo.install_for(plugin.id, ctx.org_id) if plugin else None
    if plugin is None or inst is None:
        raise BadRequest("install the plugin before rating it", field="plugin")
    repo.rate(plugin, ctx.org_id, params.stars)
    return _plugin_read(repo, plugin, with_versions=False)


# ---- marketplace.json --------------------------------------------------------------------------

class MarketplacePricing(BaseModel):
    model: Literal["free", "monthly", "per_run"]
    monthly_minor: int | None = None
    credits_per_run: int | None = None
    currency: str


class MarketplacePlugin(BaseModel):
    id: str = Field(description="Unique plugin id")
    name: str
    version: str = Field(description="The listed (reviewed) version, semver")
    author: str
    partner: str = Field(description="Publishing partner's display name")
    description: str
    categories: list[str]
    icon: str | None
    pricing: MarketplacePricing
    scopes: list[str] = Field(description="Scopes the plugin asks for on install")
    events: list[str] = Field(description="Platform events it subscribes to")
    actions: list[str] = Field(description="Names of the actions usable as pipeline steps")
    revenue_share: float
    support_url: str
    privacy_url: str
    installs: int
    rating: float | None
    rating_count: int
    listed_at: dt.datetime | None
    url: str = Field(description="Marketplace page of the plugin")


class MarketplaceDocument(BaseModel):
    """``/marketplace.json``: metadata of every listed plugin (never endpoints or secrets)."""

    schema_version: str = MARKETPLACE_SCHEMA_VERSION
    generated_at: dt.datetime
    categories: list[str]
    plugins: list[MarketplacePlugin]


def marketplace_document(session: Any, base_url: str = "") -> MarketplaceDocument:
    """Build the marketplace document from the registry (listed plugins only)."""
    repo = PartnerRepository(session)
    plugins = repo.plugins(states=["listed"])
    versions = repo.listed_versions([p.id for p in plugins])
    counts = repo.install_counts()
    partners = {p.id: p for p in repo.partners()}
    items = []
    for p in plugins:
        v = versions.get(p.id)
        partner = partners.get(p.partner_id)
        if v is None or partner is None or partner.status != "active":
            continue
        m = v.manifest
        items.append(MarketplacePlugin(
            id=p.slug, name=m["name"], version=v.version, author=m["author"], partner=partner.display_name,
            description=m.get("description", ""), categories=list(m.get("categories", [])), icon=m.get("icon"),
            pricing=MarketplacePricing(**m["pricing"]), scopes=list(m.get("scopes", [])),
            events=list(m.get("events", [])),
            actions=[a["name"] for a in m.get("endpoints", {}).get("actions", [])],
            revenue_share=float(m["revenue_share"]), support_url=m["support_url"], privacy_url=m["privacy_url"],
            installs=counts.get(p.id, 0),
            rating=round(p.rating_sum / p.rating_count, 2) if p.rating_count else None, rating_count=p.rating_count,
            listed_at=v.listed_at, url=f"{base_url}/marketplace/{p.slug}"))
    return MarketplaceDocument(generated_at=utcnow(), categories=list(CATEGORIES), plugins=items)


def write_marketplace_json(session: Any, path: Path = MARKETPLACE_JSON, base_url: str = "") -> Path:
    """Write ``marketplace.json`` (the generated catalogue file) from the registry."""
    doc = marketplace_document(session, base_url)
    path.write_text(json.dumps(doc.model_dump(mode="json"), indent=2, sort_keys=True) + "\n")
    return path


@tool("plugins.marketplace", risk="read")
def marketplace(ctx: ToolContext, params: NoInput) -> MarketplaceDocument:
    """Return the marketplace catalogue (every listed plugin's public metadata)."""
    from levqor.settings import get_settings

    return marketplace_document(ctx.session, get_settings().base_url)


# ---- KPIs --------------------------------------------------------------------------------------

class KpiRead(BaseModel):
    scope: Literal["platform", "partner", "org"]
    plugins_listed: int
    plugin_installs: int
    installs_by_plugin: dict[str, int]
    revenue_minor: int = Field(description="Plugin revenue in scope, minor units")
    partner_revenue_minor: int = Field(description="The partners' share of it")
    partner_share_of_revenue: float = Field(description="partner_revenue_minor / revenue_minor (0 when none)")
    paid_out_minor: int


@tool("partners.kpis", risk="read")
def kpis(ctx: ToolContext, params: NoInput) -> KpiRead:
    """Report plugin installs and partner revenue with its share of total plugin revenue."""
    repo = PartnerRepository(ctx.session)
    plugins = {p.id: p for p in repo.plugins()}
    counts = repo.install_counts()
    if is_staff(ctx):
        scope: Literal["platform", "partner", "org"] = "platform"
        keep = set(plugins)
        entries = repo.revenue()
        payouts = repo.payouts()
    else:
        partner = repo.partner_for_org(ctx.org_id)
        if partner is not None:
            scope = "partner"
            keep = {pid for pid, p in plugins.items() if p.partner_id == partner.id}
            entries = repo.revenue(partner_id=partner.id)
            payouts = repo.payouts(partner_id=partner.id)
        else:
            scope = "org"
            keep = {i.plugin_id for i in repo.installs_for_org(ctx.org_id)}
            entries = [e for e in repo.revenue() if e.org_id == ctx.org_id]
            payouts = []
            counts = {pid: 1 for pid in keep}
    gross = sum(e.amount_minor for e in entries)
    share = sum(e.amount_minor * e.share_bps // 10000 for e in entries)
    by_plugin = {plugins[pid].slug: counts.get(pid, 0) for pid in sorted(keep) if pid in plugins}
    return KpiRead(
        scope=scope, plugins_listed=sum(1 for pid in keep if plugins[pid].state == "listed"),
        plugin_installs=sum(by_plugin.values()), installs_by_plugin=by_plugin, revenue_minor=gross,
        partner_revenue_minor=share, partner_share_of_revenue=round(share / gross, 4) if gross else 0.0,
        paid_out_minor=sum(p.amount_minor for p in payouts if p.status in ("transferred", "paid")))
