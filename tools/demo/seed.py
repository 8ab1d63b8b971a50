"""Demo data: one organisation with an admin (idempotent), and a fresh admin API key each run."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from memory.identity.repository import IdentityRepository
from tools.context import SYSTEM, Principal, ToolContext
from tools.demo.certification import seed_certification
from tools.demo.community import seed_community
from tools.demo.enterprise import seed_enterprise
from tools.demo.insights import seed_insights, seed_insights_report
from tools.demo.pulse import seed_pulse
from tools.identity.service import ApiKeyCreate, OrgCreate, UserCreate, create_key, create_org, create_user
from tools.jobs.demo import seed_jobs_demo

DEMO_SLUG = "demo"
DEMO_EMAIL = "admin@demo.levqor.ai"

# Each area's demo data: ``fn(ctx)`` runs inside the seeding transaction.
SEEDERS: tuple[Callable[[ToolContext], None], ...] = (seed_jobs_demo, seed_certification, seed_pulse, seed_insights,
                                                      seed_community, seed_insights_report)


def seed(session: Session) -> dict[str, Any]:
    """Create the demo org and admin when missing; always issue a new admin key (the caller commits)."""
    out: dict[str, Any] = {"org": DEMO_SLUG, "email": DEMO_EMAIL}
    repo = IdentityRepository(session)
    org = repo.org_by_slug(DEMO_SLUG)
    fresh = org is None
    if org is None:
        create_org(ToolContext(session, SYSTEM), OrgCreate(name="Acme Demo", slug=DEMO_SLUG, plan="pro"))
        org = repo.org_by_slug(DEMO_SLUG)
    assert org is not None
    ctx = ToolContext(session, Principal(kind="system", id="seed", org_id=org.id, role="admin", name="seed"))
    if repo.user_by_email(DEMO_EMAIL) is None:
        password = secrets.token_urlsafe(12)
        create_user(ctx, UserCreate(email=DEMO_EMAIL, name="Demo Admin", role="admin", password=password))
        out["password"] = password
    if fresh:
        for seeder in SEEDERS:
            seeder(ctx)
    # The demo enterprise organisation (SLA report, credits): its own org, admin and history.
    out.update(seed_enterprise(session))
    out["key"] = create_key(ctx, ApiKeyCreate(name="demo admin (make run)", role="admin")).key
    return out
