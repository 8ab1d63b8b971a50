"""Demo Partner Network for ``make run``: three demo partners whose plugins go through the normal partner
registry and staff review (create, submit, approve), flagged and labelled demo, and the three launch announcements
(the marketplace opening published, web only; the other two drafts for staff to publish)."""

from __future__ import annotations

from typing import Any

from memory.partner.repository import PartnerRepository
from tools.community.announcements import AnnouncementCreate, AnnouncementRef, create_announcement, publish_announcement
from tools.community.network import LAUNCH_ANNOUNCEMENTS
from tools.context import SYSTEM, Principal, ToolContext
from tools.identity.service import OrgCreate, create_org
from tools.partner_api.catalog import PluginSubmit, Review, VersionRef, create_plugin, review_version, submit_version
from tools.partner_api.partners import PartnerRegister, register_partner

DEMO_PARTNERS: tuple[dict[str, Any], ...] = (
    {"slug": "demo-northwind", "name": "Northwind Integrations (demo)", "plugins": (
        ("northwind.slack-alerts", "Slack alerts", ["communication"], {"model": "free"},
         "Posts failed and finished job summaries to a Slack channel."),
        ("northwind.teams-digest", "Teams daily digest", ["communication"], {"model": "monthly", "monthly_minor": 900},
         "A daily digest of pipeline runs in Microsoft Teams."))},
    {"slug": "demo-ledgerly", "name": "Ledgerly (demo)", "plugins": (
        ("ledgerly.invoice-sync", "Invoice sync", ["finance"], {"model": "per_run", "credits_per_run": 2},
         "Syncs paid invoices from your billing system into your ledger after each pipeline run."),)},
    {"slug": "demo-dataforge", "name": "DataForge Labs (demo)", "plugins": (
        ("dataforge.csv-cleaner", "CSV cleaner", ["data"], {"model": "free"},
         "Normalises dates, currencies and encodings in CSV payloads before they reach your warehouse."),
        ("dataforge.warehouse-loader", "Warehouse loader", ["data"], {"model": "monthly", "monthly_minor": 2900},
         "Loads job outputs into Postgres, BigQuery or Snowflake tables."))},
)


def _manifest(slug: str, name: str, author: str, categories: list[str], pricing: dict[str, Any],
              description: str) -> dict[str, Any]:
    return {"id": slug, "name": name, "author": author, "version": "1.0.0",
            "description": f"[Demo plugin] {description}", "categories": categories, "pricing": pricing,
            "scopes": ["jobs:read"], "events": [], "endpoints": {}, "revenue_share": 0.7,
            "support_url": "https://example.com/levqor-demo/support",
            "privacy_url": "https://example.com/levqor-demo/privacy"}


def seed_community(ctx: ToolContext) -> None:
    """Create the demo partners and their listed plugins, and the launch announcements (idempotent per partner)."""
    session = ctx.session
    for spec in DEMO_PARTNERS:
        org = create_org(ToolContext(session, SYSTEM), OrgCreate(name=spec["name"], slug=spec["slug"]))
        if PartnerRepository(session).partner_for_org(org.id) is not None:
            continue
        in_org = ToolContext(session, Principal(kind="system", id="seed", org_id=org.id, role="admin", name="seed"))
        register_partner(in_org, PartnerRegister(display_name=spec["name"],
                                                 contact_email=f"partners@{spec['slug']}.example",
                                                 bio="A demo partner created by make run's seed; not a real company."))
        partner = PartnerRepository(session).partner_for_org(org.id)
        assert partner is not None
        partner.demo = True  # audited like any partner, never enforced against (tools.governance)
        for slug, name, cats, pricing, desc in spec["plugins"]:
            create_plugin(in_org, PluginSubmit(manifest=_manifest(slug, name, spec["name"], cats, pricing, desc)))
            submit_version(in_org, VersionRef(plugin=slug, version="1.0.0"))
            review_version(ToolContext(session, SYSTEM), Review(plugin=slug, version="1.0.0", decision="approve",
                                                                 note="demo data"))
    staff = ToolContext(session, SYSTEM, extra={"demo": True})
    for spec in LAUNCH_ANNOUNCEMENTS:
        row = create_announcement(staff, AnnouncementCreate(**spec))
        if spec["slug"] == "marketplace-opening":
            publish_announcement(staff, AnnouncementRef(announcement_id=row.id))
