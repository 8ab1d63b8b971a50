"""Roles, the one permission map (``api.deps.require("area:action")`` checks against it), and the
one rule for platform-wide operations: Levqor staff only."""

from __future__ import annotations

from sqlalchemy.orm import Session

from levqor.settings import get_settings
from memory.identity.repository import IdentityRepository
from tools.context import Principal, ToolContext
from tools.errors import Forbidden

ROLES: tuple[str, ...] = ("admin", "viewer", "auditor", "partner")

# Every permission the application knows. A route declares exactly one of these (or is public).
PERMISSIONS: tuple[str, ...] = (
    "org:read", "org:write",
    "users:read", "users:write",
    "keys:read", "keys:write",
    "audit:read", "audit:export", "audit:verify", "audit:write",
    "tools:read",
    "policy:read",
    "events:read", "events:write",
    "jobs:read", "jobs:write", "pipelines:read", "pipelines:write",
    "workers:read", "workers:write", "credits:read", "credits:write",
    "plugins:read", "plugins:write", "plugins:install", "hooks:read", "hooks:write", "payouts:read", "payouts:write",
    "agents:read", "agents:run",
    "approvals:read", "approvals:write",
    "pulse:read", "pulse:write", "decisions:read", "decisions:write",
    "incidents:read", "incidents:write",
    "billing:read", "billing:write",
    "usage:read",
    "sso:read", "sso:write",
    "sla:read", "sla:write",
    "certification:read", "certification:write", "certification:admin",
    "insights:write",
    "community:read", "community:write",
)

# SLA reports carry the organisation's fee and credits: its admins and auditors read them, not viewers.
_READS = {p for p in PERMISSIONS if p.endswith(":read") and not p.startswith(("audit:", "sla:"))}

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset(PERMISSIONS),
    "viewer": frozenset(_READS),  # certification:read included; writes (taking exams) are admin's
    "auditor": frozenset({"audit:read", "audit:export", "audit:verify", "org:read", "users:read",
                          "keys:read", "policy:read", "tools:read", "events:read",
                          "jobs:read", "pipelines:read", "workers:read", "credits:read", "sla:read"}),
    # A partner organisation's developers (docs/dev_portal/partners.md): manage its plugins, read their
    # deliveries and its payouts, nothing else. Rotating secrets, enabling installs, replaying
    # deliveries and Stripe onboarding are for the organisation's admins.
    "partner": frozenset({"org:read", "tools:read", "plugins:read", "plugins:write", "hooks:read", "payouts:read"}),
}


def allowed(role: str, permission: str) -> bool:
    """Whether ``role`` holds ``permission``."""
    if permission not in PERMISSIONS:
        raise KeyError(f"unknown permission {permission!r}")
    return permission in ROLE_PERMISSIONS.get(role, frozenset())


def is_platform(p: Principal) -> bool:
    """The platform's own principals: the system or an agent acting with no organisation.

    A system or agent principal that carries an organisation (the CLI inside an org, a scheduled Pulse
    snapshot, an agent run for one tenant) is scoped to that organisation like any other caller."""
    return p.kind in ("system", "agent") and p.org_id is None


def is_staff(ctx: ToolContext, *, read: bool = False) -> bool:
    """Levqor staff: a platform principal, or an admin of an organisation in LEVQOR_STAFF_ORGS.

    ``read``: any person or key of a staff organisation counts (reading platform-wide data still needs
    the route's permission, e.g. ``audit:read`` for an auditor)."""
    p = ctx.principal
    if is_platform(p):
        return True
    if p.kind not in ("user", "api_key") or p.org_id is None or (p.role != "admin" and not read):
        return False
    org = IdentityRepository(ctx.session).org(p.org_id)
    return org is not None and org.slug in get_settings().staff_orgs


def first_staff_org_id(session: Session) -> int | None:
    """The first organisation of LEVQOR_STAFF_ORGS that exists: the one that owns platform-wide work (its
    agent runs, their costs and approvals), e.g. partner audits and the certification question bank."""
    repo = IdentityRepository(session)
    for slug in get_settings().staff_orgs:
        org = repo.org_by_slug(slug)
        if org is not None:
            return int(org.id)
    return None


def require_staff(ctx: ToolContext, what: str, *, read: bool = False) -> None:
    """Refuse (403) unless the caller is Levqor staff: "only Levqor staff may ``what``"."""
    if not is_staff(ctx, read=read):
        raise Forbidden(f"only Levqor staff may {what}")
