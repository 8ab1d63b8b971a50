"""Who may see or change what in the partner API.

A partner is an organisation with a partner profile; its ``partner``-role keys (and its admins)
manage its plugins. Levqor staff (:func:`tools.enterprise.rbac.is_staff`) approve or reject
versions, suspend plugins and partners, and run payouts. Rows a caller may not see are answered
with 404, as if they did not exist.
"""

from __future__ import annotations

from memory.partner.models import Partner, Plugin, PluginInstall
from memory.partner.repository import PartnerRepository
from tools.context import ToolContext
from tools.enterprise.rbac import is_staff
from tools.errors import NotFound


def own_partner(ctx: ToolContext) -> Partner:
    partner = PartnerRepository(ctx.session).partner_for_org(ctx.org_id)
    if partner is None:
        raise NotFound("this organisation has no partner profile: register with POST /v1/partners first",
                       field="partner")
    return partner


def _plugin(ctx: ToolContext, slug: str, *, listed_is_public: bool) -> Plugin:
    repo = PartnerRepository(ctx.session)
    plugin = repo.plugin_by_slug(slug)
    if plugin is None:
        raise NotFound(f"plugin {slug!r} not found", field="plugin")
    if (listed_is_public and plugin.state == "listed") or is_staff(ctx):
        return plugin
    partner = repo.partner_for_org(ctx.principal.org_id) if ctx.principal.org_id is not None else None
    if partner is None or partner.id != plugin.partner_id:
        raise NotFound(f"plugin {slug!r} not found", field="plugin")
    return plugin


def owned_plugin(ctx: ToolContext, slug: str) -> Plugin:
    """Plugin ``slug`` when the caller's partner publishes it (or the caller is staff)."""
    return _plugin(ctx, slug, listed_is_public=False)


def visible_plugin(ctx: ToolContext, slug: str) -> Plugin:
    """Plugin ``slug`` when it is listed, the caller's partner publishes it, or the caller is staff."""
    return _plugin(ctx, slug, listed_is_public=True)


def org_install(ctx: ToolContext, install_id: int) -> PluginInstall:
    """The install, when the caller's org installed it."""
    inst = PartnerRepository(ctx.session).install(install_id)
    if inst is None or inst.org_id != ctx.org_id or inst.mode != ctx.mode:
        raise NotFound(f"install {install_id} not found", field="install_id")
    return inst


def visible_to_org_or_publisher(repo: PartnerRepository, org_id: int, row_org_id: int, plugin_id: int) -> bool:
    """Whether org ``org_id`` owns a row (install, delivery) or publishes the row's plugin."""
    if row_org_id == org_id:
        return True
    partner = repo.partner_for_org(org_id)
    plugin = repo.plugin(plugin_id)
    return partner is not None and plugin is not None and plugin.partner_id == partner.id


def install_for_org_or_partner(ctx: ToolContext, install_id: int) -> PluginInstall:
    """The install, when the caller's org installed it or publishes its plugin."""
    repo = PartnerRepository(ctx.session)
    inst = repo.install(install_id)
    if inst is None or not visible_to_org_or_publisher(repo, ctx.org_id, inst.org_id, inst.plugin_id) or (
            inst.org_id == ctx.org_id and inst.mode != ctx.mode):
        raise NotFound(f"install {install_id} not found", field="install_id")
    return inst
