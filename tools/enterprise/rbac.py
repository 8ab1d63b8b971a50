"""Roles and the one permission map. ``api.deps.require("area:action")`` checks against it."""

from __future__ import annotations

ROLES: tuple[str, ...] = ("admin", "viewer", "auditor")

# Every permission the application knows. A route declares exactly one of these (or is public).
PERMISSIONS: tuple[str, ...] = (
    "org:read", "org:write",
    "users:read", "users:write",
    "keys:read", "keys:write",
    "audit:read", "audit:export", "audit:verify", "audit:write",
    "tools:read",
    "policy:read",
    "events:read", "events:write",
)

_READS = {p for p in PERMISSIONS if p.endswith(":read") and not p.startswith("audit:")}

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset(PERMISSIONS),
    "viewer": frozenset(_READS),
    "auditor": frozenset({"audit:read", "audit:export", "audit:verify", "org:read", "users:read",
                          "keys:read", "policy:read", "tools:read", "events:read"}),
}


def allowed(role: str, permission: str) -> bool:
    """Whether ``role`` holds ``permission``."""
    if permission not in PERMISSIONS:
        raise KeyError(f"unknown permission {permission!r}")
    return permission in ROLE_PERMISSIONS.get(role, frozenset())
