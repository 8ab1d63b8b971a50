"""The ``levqor`` command. Heavy libraries are imported inside commands so it starts fast."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Levqor: automation platform operations, agents and partner ecosystem.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
users_app = typer.Typer(help="Manage users.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
audit_app = typer.Typer(help="Audit log: verify, checkpoint, export.", no_args_is_help=True)
tools_app = typer.Typer(help="The tools registry.", no_args_is_help=True)
policy_app = typer.Typer(help="The policy file.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
app.add_typer(tools_app, name="tools")
app.add_typer(policy_app, name="policy")
console = Console()
err = Console(stderr=True)


def _boot(log: bool = True) -> None:
    from levqor.logging import configure_logging
    from levqor.settings import get_settings

    s = get_settings()
    if log:
        configure_logging(s.log_level, s.log_json)


def _policy_or_exit() -> None:
    from policies.engine import PolicyError, get_engine

    try:
        get_engine()
    except PolicyError as exc:
        err.print(f"[red]policy error:[/red] {exc}")
        raise typer.Exit(2) from None


def _org_ctx(session: object, org_slug: str) -> object:
    from memory.identity.repository import IdentityRepository
    from tools.context import Principal, ToolContext

    org = IdentityRepository(session).org_by_slug(org_slug)  # type: ignore[arg-type]
    if org is None:
        err.print(f"[red]no organisation {org_slug!r}[/red]")
        raise typer.Exit(1)
    principal = Principal(kind="system", id="cli", org_id=org.id, role="admin", name="levqor CLI")
    return ToolContext(session=session, principal=principal)  # type: ignore[arg-type]


# ---- processes ---------------------------------------------------------------------------------

@app.command()
def migrate() -> None:
    """Apply database migrations up to head."""
    _boot()
    from memory.migrate import upgrade

    upgrade()
    console.print("[green]database at head[/green]")


@app.command()
def api(host: Annotated[str | None, typer.Option()] = None, port: Annotated[int | None, typer.Option()] = None) -> None:
    """Run the API server (uvicorn)."""
    _boot()
    _policy_or_exit()
    import uvicorn

    from levqor.settings import get_settings

    s = get_settings()
    uvicorn.run("api.app:create_app", factory=True, host=host or s.host, port=port or s.port,
                log_config=None, access_log=False, timeout_graceful_shutdown=10)


@app.command()
def worker(concurrency: Annotated[int | None, typer.Option(help="Jobs at once")] = None) -> None:
    """Run a worker: background work from the database (job queue, event outbox)."""
    _boot()
    _policy_or_exit()
    from levqor.processes import run_worker

    run_worker(concurrency)


@app.command()
def scheduler() -> None:
    """Run the scheduler (only the lease holder leads; others stand by)."""
    _boot()
    _policy_or_exit()
    from levqor.processes import run_scheduler

    run_scheduler()


@app.command()
def up(workers: Annotated[int | None, typer.Option(help="Worker processes")] = None) -> None:
    """Run API + scheduler + N workers under one supervisor; Ctrl-C stops them all."""
    _boot()
    _policy_or_exit()
    from levqor.processes import supervise

    raise typer.Exit(supervise(workers))


@app.command("seed-demo")
def seed_demo() -> None:
    """Create the demo organisation and admin (idempotent) and print a fresh admin API key."""
    _boot(log=False)
    from levqor.seed import seed

    out = seed()
    from levqor.settings import get_settings

    s = get_settings()
    console.print(f"[bold]Levqor demo[/bold] organisation [cyan]{out['org']}[/cyan]")
    console.print(f"  URL:            {s.base_url}  (API docs: {s.base_url}/docs)")
    console.print(f"  Admin login:    {out['email']}" + (f"  password: {out['password']}" if out.get("password")
                                                          else "  (password set on first seed)"))
    console.print(f"  Admin API key:  [bold yellow]{out['key']}[/bold yellow]  (shown once)", soft_wrap=True)


# ---- users and keys ------------------------------------------------------------------------------

@users_app.command("create-admin")
def create_admin(
    email: Annotated[str, typer.Option(help="Admin email")],
    org: Annotated[str, typer.Option(help="Organisation slug (created if missing)")] = "default",
    password: Annotated[str | None, typer.Option(help="Password (prompted when omitted)")] = None,
) -> None:
    """Create an admin user (and the organisation if needed)."""
    _boot(log=False)
    from memory.db import session_scope
    from memory.identity.repository import IdentityRepository
    from tools.context import SYSTEM, Principal, ToolContext
    from tools.errors import AppError
    from tools.registry import registry

    if password is None:
        password = typer.prompt("Password (12+ characters)", hide_input=True, confirmation_prompt=True)
    try:
        with session_scope() as s:
            repo = IdentityRepository(s)
            o = repo.org_by_slug(org)
            if o is None:
                registry.invoke("org.create", ToolContext(s, SYSTEM), {"name": org.title(), "slug": org})
                o = repo.org_by_slug(org)
            assert o is not None
            ctx = ToolContext(s, Principal(kind="system", id="cli", org_id=o.id, role="admin"))
            user = registry.invoke("users.create", ctx, {"email": email, "role": "admin", "password": password})
    except AppError as exc:
        err.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from None
    console.print(f"[green]admin created:[/green] {user.email} in {org}")  # type: ignore[attr-defined]


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option()],
    org: Annotated[str, typer.Option(help="Organisation slug")] = "demo",
    role: Annotated[str, typer.Option(help="admin | viewer | auditor")] = "viewer",
    mode: Annotated[str, typer.Option(help="live | test")] = "live",
    expires_in_days: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Create an API key and print it once."""
    _boot(log=False)
    from memory.db import session_scope
    from tools.errors import AppError
    from tools.registry import registry

    try:
        with session_scope() as s:
            out = registry.invoke("keys.create", _org_ctx(s, org), {  # type: ignore[arg-type]
                "name": name, "role": role, "mode": mode, "expires_in_days": expires_in_days})
    except AppError as exc:
        err.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from None
    console.print(f"{out.key}")  # type: ignore[attr-defined]
    err.print(f"[dim]key {out.prefix} ({role}, {mode}) created; it will not be shown again[/dim]")  # type: ignore[attr-defined]


@keys_app.command("list")
def keys_list(org: Annotated[str, typer.Option()] = "demo") -> None:
    """List API keys of an organisation."""
    _boot(log=False)
    from memory.db import session_scope
    from tools.registry import registry

    with session_scope() as s:
        out = registry.invoke("keys.list", _org_ctx(s, org), {})  # type: ignore[arg-type]
    t = Table("id", "name", "prefix", "role", "mode", "created", "last used", "status")
    for k in out.items:  # type: ignore[attr-defined]
        t.add_row(str(k.id), k.name, k.prefix, k.role, k.mode, f"{k.created_at:%Y-%m-%d %H:%M}",
                  f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "never",
                  "revoked" if k.revoked_at else "active")
    console.print(t)


@keys_app.command("revoke")
def keys_revoke(key: Annotated[str, typer.Argument(help="Key id or visible prefix")],
                org: Annotated[str, typer.Option()] = "demo") -> None:
    """Revoke an API key by id or prefix."""
    _boot(log=False)
    from memory.db import session_scope
    from tools.errors import AppError
    from tools.registry import registry

    params = {"key_id": int(key)} if key.isdigit() else {"prefix": key}
    try:
        with session_scope() as s:
            out = registry.invoke("keys.revoke", _org_ctx(s, org), params)  # type: ignore[arg-type]
    except AppError as exc:
        err.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from None
    console.print(f"[green]revoked[/green] {out.prefix}")  # type: ignore[attr-defined]


# ---- audit ------------------------------------------------------------------------------------

@audit_app.command("verify")
def audit_verify(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Verify the audit chain; exit 0 when intact, 1 naming the first bad entry."""
    _boot(log=False)
    from memory.db import session_scope
    from tools.enterprise.audit_log import verify_chain

    with session_scope() as s:
        result = verify_chain(s)
    if json_out:
        print(result.model_dump_json())
    elif result.ok:
        console.print(f"[green]audit log intact[/green]: {result.entries} entries, "
                      f"{result.checkpoints_checked} signed checkpoints verified")
    else:
        console.print(f"[red]audit log broken at entry {result.first_bad_seq}[/red]: {result.problem}")
    raise typer.Exit(0 if result.ok else 1)


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Write a signed checkpoint of the chain head now."""
    _boot(log=False)
    from memory.db import session_scope
    from tools.enterprise.audit_log import write_checkpoint

    with session_scope() as s:
        cp = write_checkpoint(s)
        msg = f"checkpoint at entry {cp.seq} ({cp.head_hash[:16]}…)" if cp else "log is empty"
    console.print(msg)


@audit_app.command("export")
def audit_export(org: Annotated[str, typer.Option()] = "demo",
                 out: Annotated[Path | None, typer.Option(help="File (default stdout)")] = None) -> None:
    """Export an organisation's audit entries as JSON lines."""
    _boot(log=False)
    from memory.db import session_scope
    from tools.enterprise.audit_log import AuditSearch, export_jsonl

    with session_scope() as s:
        ctx = _org_ctx(s, org)
        lines = list(export_jsonl(s, ctx.principal.org_id, AuditSearch()))  # type: ignore[attr-defined]
    if out:
        out.write_text("".join(lines))
        err.print(f"{len(lines)} entries written to {out}")
    else:
        sys.stdout.write("".join(lines))


# ---- tools and policy ---------------------------------------------------------------------------

@tools_app.command("list")
def tools_list(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Print every registered tool with its risk."""
    from tools.registry import registry

    specs = registry.all()
    if json_out:
        print(json.dumps([{"name": t.name, "risk": t.risk, "description": t.description} for t in specs]))
        return
    t = Table("tool", "risk", "description")
    for spec in specs:
        t.add_row(spec.name, spec.risk, spec.description)
    console.print(t)


@policy_app.command("check")
def policy_check(path: Annotated[Path | None, typer.Argument()] = None) -> None:
    """Validate a policy file (default: the configured one)."""
    from levqor.settings import get_settings
    from policies.engine import PolicyError, load_policy

    p = path or get_settings().policy_path
    try:
        load_policy(p)
    except PolicyError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    console.print(f"[green]{p} is valid[/green]")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
