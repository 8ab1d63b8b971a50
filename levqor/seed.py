"""Demo data: one organisation with an admin (idempotent), and a fresh admin API key each run."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from memory.db import session_scope
from memory.identity.repository import IdentityRepository
from tools.context import SYSTEM, Principal, ToolContext
from tools.registry import registry

DEMO_SLUG = "demo"
DEMO_EMAIL = "admin@demo.levqor.ai"

# Later areas add their demo data here: ``fn(ctx)`` runs inside the seeding transaction.
SEEDERS: list[Callable[[ToolContext], None]] = []


def _jobs_demo(ctx: ToolContext) -> None:
    from tools.jobs.demo import seed_jobs_demo

    seed_jobs_demo(ctx)


SEEDERS.append(_jobs_demo)


def _pulse_demo(ctx: ToolContext) -> None:
    from tools.pulse.seed import seed_pulse

    seed_pulse(ctx)


SEEDERS.append(_pulse_demo)


def seed() -> dict[str, Any]:
    """Create the demo org and admin when missing; always issue a new admin key."""
    out: dict[str, Any] = {"org": DEMO_SLUG, "email": DEMO_EMAIL}
    with session_scope() as s:
        repo = IdentityRepository(s)
        org = repo.org_by_slug(DEMO_SLUG)
        fresh = org is None
        if org is None:
            registry.invoke("org.create", ToolContext(s, SYSTEM),
                            {"name": "Acme Demo", "slug": DEMO_SLUG, "plan": "pro"})
            org = repo.org_by_slug(DEMO_SLUG)
        assert org is not None
        ctx = ToolContext(s, Principal(kind="system", id="seed", org_id=org.id, role="admin", name="seed"))
        if repo.user_by_email(DEMO_EMAIL) is None:
            password = secrets.token_urlsafe(12)
            registry.invoke("users.create", ctx, {"email": DEMO_EMAIL, "name": "Demo Admin", "role": "admin",
                                                  "password": password})
            out["password"] = password
        if fresh:
            for seeder in SEEDERS:
                seeder(ctx)
        key = registry.invoke("keys.create", ctx, {"name": "demo admin (make run)", "role": "admin"})
        out["key"] = key.key  # type: ignore[attr-defined]
    return out
