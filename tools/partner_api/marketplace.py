"""The marketplace: the public catalogue of listed plugins (``/marketplace.json`` and the pages).

It shows metadata only, never endpoints or secrets, and only plugins of active partners.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from levqor.settings import get_settings
from memory.db import utcnow
from memory.partner.repository import PartnerRepository
from tools.context import ToolContext
from tools.identity.service import NoInput
from tools.partner_api.catalog import matches
from tools.partner_api.manifest import CATEGORIES
from tools.registry import tool

HERE = Path(__file__).resolve().parent
MARKETPLACE_JSON = HERE / "marketplace.json"
MARKETPLACE_SCHEMA_VERSION = "1.0"


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


def public_catalogue(session: Any) -> MarketplaceDocument:
    """The marketplace document with absolute plugin URLs (``LEVQOR_BASE_URL``), as served."""
    return marketplace_document(session, get_settings().base_url)


@tool("plugins.marketplace", risk="read")
def marketplace(ctx: ToolContext, params: NoInput) -> MarketplaceDocument:
    """Return the marketplace catalogue (every listed plugin's public metadata)."""
    return public_catalogue(ctx.session)


def search(doc: MarketplaceDocument, q: str | None, category: str | None) -> list[MarketplacePlugin]:
    """The catalogue's plugins in ``category`` holding every word of ``q``."""
    return [p for p in doc.plugins if matches(p.model_dump(), q, category)]


# ---- what the public pages show besides the catalogue ----------------------------------------------

class PartnerProfile(BaseModel):
    """A partner's public profile."""

    id: int
    display_name: str
    bio: str
    website: str


def publisher_id(session: Any, slug: str) -> int | None:
    """The id of the partner publishing plugin ``slug`` (None if there is no such plugin)."""
    plugin = PartnerRepository(session).plugin_by_slug(slug)
    return plugin.partner_id if plugin else None


def partner_profile(session: Any, partner_id: int) -> PartnerProfile | None:
    """An active partner's public profile (None for an unknown or suspended partner)."""
    partner = PartnerRepository(session).partner(partner_id)
    if partner is None or partner.status != "active":
        return None
    return PartnerProfile(id=partner.id, display_name=partner.display_name, bio=partner.bio, website=partner.website)
