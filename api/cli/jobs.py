"""``levqor credits-grant``."""

from __future__ import annotations

from typing import Annotated

import typer

from api.cli.common import boot, console, in_org, params
from tools.jobs.credits import CreditGrant, grant_credits

cli = typer.Typer()


@cli.command("credits-grant")
def credits_grant(amount: Annotated[int, typer.Argument(help="Credits to add")],
                  org: Annotated[str, typer.Option(help="Organisation slug")] = "demo",
                  note: Annotated[str, typer.Option()] = "granted with the levqor CLI") -> None:
    """Add job credits to an organisation (a ledger row records it)."""
    boot(log=False)
    grant = params(CreditGrant, amount=amount, note=note)
    out = in_org(org, lambda ctx: grant_credits(ctx, grant))
    console.print(f"balance of {org}: {out.balance}")
