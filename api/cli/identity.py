"""``levqor users`` and ``levqor keys``."""

from __future__ import annotations

from typing import Annotated

import typer

from api.cli.common import boot, console, err, org_session, params, session_or_exit, table
from tools.context import SYSTEM, ToolContext
from tools.errors import NotFound
from tools.identity.service import (
    ApiKeyCreate,
    ApiKeyRevoke,
    NoInput,
    OrgCreate,
    UserCreate,
    create_key,
    create_org,
    create_user,
    list_keys,
    org_context,
    revoke_key,
)

users = typer.Typer(help="Manage users.", no_args_is_help=True)
keys = typer.Typer(help="Manage API keys.", no_args_is_help=True)


@users.command("create-admin")
def create_admin(
    email: Annotated[str, typer.Option(help="Admin email")],
    org: Annotated[str, typer.Option(help="Organisation slug (created if missing)")] = "default",
    password: Annotated[str | None, typer.Option(help="Password (prompted when omitted)")] = None,
) -> None:
    """Create an admin user (and the organisation if needed)."""
    boot(log=False)
    if password is None:
        password = typer.prompt("Password (12+ characters)", hide_input=True, confirmation_prompt=True)
    new_org = params(OrgCreate, name=org.title(), slug=org)
    new_user = params(UserCreate, email=email, role="admin", password=password)
    with session_or_exit() as s:
        try:
            ctx = org_context(s, org)
        except NotFound:
            create_org(ToolContext(s, SYSTEM), new_org)
            ctx = org_context(s, org)
        user = create_user(ctx, new_user)
    console.print(f"[green]admin created:[/green] {user.email} in {org}")


@keys.command("create")
def keys_create(
    name: Annotated[str, typer.Option()],
    org: Annotated[str, typer.Option(help="Organisation slug")] = "demo",
    role: Annotated[str, typer.Option(help="admin | viewer | auditor")] = "viewer",
    mode: Annotated[str, typer.Option(help="live | test")] = "live",
    expires_in_days: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Create an API key and print it once."""
    boot(log=False)
    body = params(ApiKeyCreate, name=name, role=role, mode=mode, expires_in_days=expires_in_days)
    with org_session(org) as ctx:
        out = create_key(ctx, body)
    console.print(f"{out.key}")
    err.print(f"[dim]key {out.prefix} ({role}, {mode}) created; it will not be shown again[/dim]")


@keys.command("list")
def keys_list(org: Annotated[str, typer.Option()] = "demo") -> None:
    """List API keys of an organisation."""
    boot(log=False)
    with org_session(org) as ctx:
        out = list_keys(ctx, NoInput())
    t = table("id", "name", "prefix", "role", "mode", "created", "last used", "status")
    for k in out.items:
        t.add_row(str(k.id), k.name, k.prefix, k.role, k.mode, f"{k.created_at:%Y-%m-%d %H:%M}",
                  f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "never",
                  "revoked" if k.revoked_at else "active")
    console.print(t)


@keys.command("revoke")
def keys_revoke(key: Annotated[str, typer.Argument(help="Key id or visible prefix")],
                org: Annotated[str, typer.Option()] = "demo") -> None:
    """Revoke an API key by id or prefix."""
    boot(log=False)
    which = params(ApiKeyRevoke, key_id=int(key)) if key.isdigit() else params(ApiKeyRevoke, prefix=key)
    with org_session(org) as ctx:
        out = revoke_key(ctx, which)
    console.print(f"[green]revoked[/green] {out.prefix}")
