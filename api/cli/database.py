"""``levqor migrate`` and ``levqor seed-demo``."""

from __future__ import annotations

import typer

from api.cli.common import boot, console
from levqor.settings import get_settings
from memory.db import session_scope
from tools.demo.seed import seed
from tools.platform.database import migrate as migrate_to_head

cli = typer.Typer()


@cli.command()
def migrate() -> None:
    """Apply database migrations up to head."""
    boot()
    migrate_to_head()
    console.print("[green]database at head[/green]")


@cli.command("seed-demo")
def seed_demo() -> None:
    """Create the demo organisation and admin (idempotent) and print a fresh admin API key."""
    boot(log=False)
    with session_scope() as session:
        out = seed(session)
    s = get_settings()
    console.print(f"[bold]Levqor demo[/bold] organisation [cyan]{out['org']}[/cyan]")
    console.print(f"  URL:            {s.base_url}  (API docs: {s.base_url}/docs)")
    console.print(f"  Admin login:    {out['email']}" + (f"  password: {out['password']}" if out.get("password")
                                                          else "  (password set on first seed)"))
    if out.get("enterprise_org"):
        console.print(f"  Enterprise demo: {out['enterprise_email']}" + (
            f"  password: {out['enterprise_password']}" if out.get("enterprise_password")
            else "  (password set on first seed)") + f"  (organisation {out['enterprise_org']}, see /sla)")
    console.print(f"  Admin API key:  [bold yellow]{out['key']}[/bold yellow]  (shown once)", soft_wrap=True)
