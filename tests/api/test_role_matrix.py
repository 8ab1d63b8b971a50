"""Every route declares a permission (or is explicitly public), and every role gets exactly the
answers the permission map says: 403 when the map denies, never 401/403 when it allows."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.routing import APIRoute

from api.deps import _public_marker, _Require
from tests.factories.orgs import OrgFixture, make_org
from tools.enterprise.rbac import PERMISSIONS, ROLE_PERMISSIONS, ROLES


def _declared(dependant: Any) -> tuple[set[str], bool]:
    perms: set[str] = set()
    public = False
    for dep in dependant.dependencies:
        call = dep.call
        if isinstance(call, _Require):
            perms.add(call.permission)
        if call is _public_marker:
            public = True
        sub_perms, sub_public = _declared(dep)
        perms |= sub_perms
        public = public or sub_public
    return perms, public


def _routes(app: Any) -> list[tuple[APIRoute, str | None]]:
    out = []
    for route in app.routes:
        if not isinstance(route, APIRoute):
            continue
        perms, public = _declared(route.dependant)
        assert perms or public, f"{sorted(route.methods)} {route.path} declares no permission and is not public()"
        assert not (perms and public), f"{route.path} is both public and permissioned"
        assert len(perms) <= 1, f"{route.path} declares several permissions: {perms}"
        out.append((route, next(iter(perms)) if perms else None))
    return out


def test_every_route_declares_a_permission_or_is_public(app) -> None:
    routes = _routes(app)
    assert len(routes) > 10
    used = {p for _, p in routes if p}
    unknown = used - set(PERMISSIONS)
    assert not unknown


def test_role_map_is_consistent() -> None:
    assert set(ROLE_PERMISSIONS) == set(ROLES)
    for role, perms in ROLE_PERMISSIONS.items():
        assert perms <= set(PERMISSIONS), role
    assert ROLE_PERMISSIONS["admin"] == frozenset(PERMISSIONS)
    # Viewers never write; auditors read the audit log, viewers do not.
    assert not any(p.endswith((":write", ":export", ":verify")) for p in ROLE_PERMISSIONS["viewer"])
    assert "audit:read" in ROLE_PERMISSIONS["auditor"] and "audit:read" not in ROLE_PERMISSIONS["viewer"]
    # Partner keys, as docs/dev_portal/partners.md says: manage plugins, read deliveries and payouts,
    # nothing else in the organisation.
    assert ROLE_PERMISSIONS["partner"] == {"org:read", "tools:read", "plugins:read", "plugins:write", "hooks:read",
                                           "payouts:read"}


@pytest.fixture(scope="module")
def matrix_org() -> OrgFixture:
    return make_org()


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "999999", path)


def test_each_role_gets_exactly_what_the_map_says(app, client, matrix_org: OrgFixture, set_settings) -> None:
    # The organisation is staff, so platform-wide routes answer by the role map alone (the staff rule has
    # its own test in tests/api/test_tenancy.py).
    set_settings(staff_orgs=[matrix_org.slug])
    checked = 0
    for route, perm in _routes(app):
        if perm is None:
            continue
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            for role in ROLES:
                kwargs: dict[str, Any] = {"headers": matrix_org.headers(role)}
                if method in ("POST", "PUT", "PATCH"):
                    kwargs["json"] = {}
                r = client.request(method, _concrete(route.path), **kwargs)
                expect_denied = perm not in ROLE_PERMISSIONS[role]
                if expect_denied:
                    assert r.status_code == 403, (role, method, route.path, r.status_code, r.text[:200])
                    assert r.json()["status"] == 403
                else:
                    assert r.status_code not in (401, 403), (role, method, route.path, r.status_code, r.text[:200])
                checked += 1
    assert checked >= 3 * 10


def test_unauthenticated_requests_get_401_on_every_protected_route(app, client) -> None:
    for route, perm in _routes(app):
        if perm is None:
            continue
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            r = client.request(method, _concrete(route.path), headers={"accept": "application/json"},
                               follow_redirects=False)
            assert r.status_code == 401, (method, route.path, r.status_code)
