"""Partner-ecosystem KPIs: plugin installs and partner revenue, in the caller's scope."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from memory.partner.repository import PartnerRepository
from tools.context import ToolContext
from tools.enterprise.rbac import is_staff
from tools.identity.service import NoInput
from tools.registry import tool


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
