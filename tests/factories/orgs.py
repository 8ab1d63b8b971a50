"""Organisations: one with an admin user and an API key per role, and a tool context acting for it."""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
from sqlalchemy.orm import Session

from memory.db import session_scope
from tests.factories.settings import HIGH_TIERS_JSON, scratch_sqlite
from tests.support.database import IS_PG
from tests.support.processes import levqor_env, start_api
from tools.context import SYSTEM, Principal, ToolContext
from tools.identity.service import ApiKeyCreate, OrgCreate, UserCreate, create_key, create_org, create_user

_counter = itertools.count(1)


@dataclass
class OrgFixture:
    org_id: int
    slug: str
    keys: dict[str, str]  # role -> full API key
    admin_email: str
    admin_password: str

    def headers(self, role: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


def org_ctx(session: Session, org_id: int) -> ToolContext:
    """A tool context acting as an admin system principal of ``org_id``."""
    return ToolContext(session, Principal(kind="system", id="test", org_id=org_id, role="admin", name="test"))


def make_org(plan: Literal["free", "pro", "business", "enterprise"] = "pro") -> OrgFixture:
    """Create an organisation with an admin user and one API key per role (committed)."""
    slug = f"t{next(_counter)}-{uuid.uuid4().hex[:8]}"
    email = f"admin-{slug}@acme-test.io"
    password = "correct horse battery staple"
    with session_scope() as s:
        org_id = create_org(ToolContext(s, SYSTEM), OrgCreate(name=f"Org {slug}", slug=slug, plan=plan)).id
        ctx = org_ctx(s, org_id)
        create_user(ctx, UserCreate(email=email, role="admin", password=password))
        keys = {role: create_key(ctx, ApiKeyCreate(name=f"{role} key", role=role)).key
                for role in ("admin", "viewer", "auditor", "partner")}
    return OrgFixture(org_id, slug, keys, email, password)


@pytest.fixture(params=["sqlite", "test database"] if IS_PG else ["sqlite"])
def api_on(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, OrgFixture]]:
    """A real API process with an organisation: on a scratch SQLite file, or on the PostgreSQL test database."""
    if request.param == "sqlite":
        with scratch_sqlite(tmp_path) as url:
            org = make_org()
            proc, base = start_api(tmp_path / "logs", levqor_env(var_dir=tmp_path, db_url=url,
                                                                 LEVQOR_API_TIERS=HIGH_TIERS_JSON))
            try:
                yield base, org
            finally:
                proc.stop()
    else:
        org = make_org()
        proc, base = start_api(tmp_path / "logs", levqor_env(var_dir=tmp_path, LEVQOR_API_TIERS=HIGH_TIERS_JSON))
        try:
            yield base, org
        finally:
            proc.stop()


@pytest.fixture()
def org() -> OrgFixture:
    """A fresh organisation (plan pro) for the test."""
    return make_org()


def page_login(client: Any, email: str, password: str) -> Any:
    """Sign in through the /login form (its CSRF token included); the response, not followed."""
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token},
                       follow_redirects=False)
