"""The plugin catalogue: plugins and their versions, review, and who sees which.

States: draft -> in_review -> listed (by a Levqor staff review) -> suspended | retired. A listed
version is immutable; a change is a new, higher version that goes through review again.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field

from memory.db import utcnow
from memory.partner.models import Plugin, PluginVersion
from memory.partner.repository import PartnerRepository
from tools.context import ToolContext
from tools.enterprise import audit_log
from tools.enterprise.rbac import is_staff, require_staff
from tools.errors import Conflict, Forbidden, NotFound, Unprocessable
from tools.events.service import emit
from tools.partner_api.access import own_partner, owned_plugin, visible_plugin
from tools.partner_api.manifest import SLUG, semver_key, validate_manifest
from tools.registry import tool


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


def plugin_read(repo: PartnerRepository, plugin: Plugin, *, with_versions: bool,
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


# ---- plugins and versions ------------------------------------------------------------------------

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
    return plugin_read(repo, plugin, with_versions=True)


class VersionPut(BaseModel):
    plugin: str = Field(min_length=3, max_length=64, pattern=SLUG)
    manifest: dict[str, Any]


@tool("plugins.put_version", risk="write")
def put_version(ctx: ToolContext, params: VersionPut) -> PluginRead:
    """Edit a draft version's manifest, or start a new (higher) version of a plugin."""
    plugin = owned_plugin(ctx, params.plugin)
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
    return plugin_read(repo, plugin, with_versions=True)


# ---- review --------------------------------------------------------------------------------------

class VersionRef(BaseModel):
    plugin: str = Field(min_length=3, max_length=64, pattern=SLUG)
    version: str = Field(min_length=5, max_length=64)


def _version(repo: PartnerRepository, plugin: Plugin, version: str) -> PluginVersion:
    v = next((v for v in repo.versions(plugin.id) if v.version == version), None)
    if v is None:
        raise NotFound(f"version {version} of {plugin.slug} not found", field="version")
    return v


@tool("plugins.submit", risk="write")
def submit_version(ctx: ToolContext, params: VersionRef) -> PluginRead:
    """Send a draft version to Levqor review."""
    plugin = owned_plugin(ctx, params.plugin)
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
    # The review cycle (tools.governance) queues a partner audit of the version on this event.
    emit(ctx.session, "plugin_version_submitted", {"plugin": plugin.slug, "version": v.version,
                                                   "by": ctx.principal.actor}, org_id=ctx.org_id)
    return plugin_read(repo, plugin, with_versions=True)


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
    return plugin_read(repo, plugin, with_versions=True)


class PluginState(BaseModel):
    plugin: str = Field(min_length=3, max_length=64, pattern=SLUG)
    state: Literal["listed", "suspended", "retired"]
    reason: str = Field("", max_length=500)


@tool("plugins.set_state", risk="destructive")
def set_plugin_state(ctx: ToolContext, params: PluginState) -> PluginRead:
    """Retire a plugin (its partner), or suspend and reinstate it (Levqor staff)."""
    plugin = owned_plugin(ctx, params.plugin)
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
    return plugin_read(PartnerRepository(ctx.session), plugin, with_versions=True)


# ---- browsing ------------------------------------------------------------------------------------

class PluginQuery(BaseModel):
    q: str | None = Field(None, max_length=100, description="Search in name, description and author")
    category: str | None = Field(None, max_length=40)
    state: Literal["draft", "in_review", "listed", "suspended", "retired"] | None = None
    mine: bool = Field(False, description="Only the caller's own plugins (partners)")


class PluginList(BaseModel):
    items: list[PluginRead]


def matches(m: dict[str, Any] | None, q: str | None, category: str | None) -> bool:
    """Whether manifest-like ``m`` is in ``category`` and holds every word of ``q``."""
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
        item = plugin_read(repo, p, with_versions=owner or staff, installs=counts.get(p.id, 0))
        if matches(item.manifest, params.q, params.category):
            out.append(item)
    return PluginList(items=out)


class PluginRef(BaseModel):
    plugin: str = Field(min_length=1, max_length=64)


@tool("plugins.get", risk="read")
def get_plugin(ctx: ToolContext, params: PluginRef) -> PluginRead:
    """Show one plugin: listed manifest, installs, rating (and versions for its owner)."""
    plugin = visible_plugin(ctx, params.plugin)
    repo = PartnerRepository(ctx.session)
    partner = repo.partner_for_org(ctx.principal.org_id) if ctx.principal.org_id is not None else None
    owner = is_staff(ctx) or (partner is not None and partner.id == plugin.partner_id)
    return plugin_read(repo, plugin, with_versions=owner)
