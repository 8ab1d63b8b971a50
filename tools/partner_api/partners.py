"""Partners: registering an organisation as one, its profile, and suspending or reinstating it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from memory.partner.models import Partner
from memory.partner.repository import PartnerRepository
from tools.context import ToolContext
from tools.enterprise import audit_log
from tools.enterprise.rbac import require_staff
from tools.errors import Conflict, NotFound
from tools.identity.service import NoInput
from tools.partner_api.access import own_partner
from tools.partner_api.manifest import check_partner_url
from tools.registry import tool


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
