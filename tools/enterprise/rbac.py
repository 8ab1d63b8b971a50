"""Roles and the one permission map. ``api.deps.require("area:action")`` checks against it."""

from __future__ import annotations

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
)

_READS = {p for p in PERMISSIONS if p.endswith(":read") and not p.startswith("audit:")}

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset(PERMISSIONS),
    "viewer": frozenset(_READS),
    "auditor": frozenset({"audit:read", "audit:export", "audit:verify", "org:read", "users:read",
                          "keys:read", "policy:read", "tools:read", "events:read",
                          "jobs:read", "pipelines:read", "workers:read", "credits:read"}),
    # A partner organisation's developers: manage its plugins, their deliveries and payouts.
    "partner": frozenset({"org:read", "keys:read", "tools:read", "plugins:read", "plugins:write", "hooks:read",
                          "hooks:write", "payouts:read", "payouts:write"}),
}


def allowed(role: str, permission: str) -> bool:
    """Whether ``role`` holds ``permission``."""
    if permission not in PERMISSIONS:
        raise KeyError(f"unknown permission {permission!r}")
    return permission in ROLE_PERMISSIONS.get(role, frozenset())
