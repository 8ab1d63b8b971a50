"""``levqor marketplace-json`` and ``levqor payouts-run``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from api.cli.common import boot, console, params
from memory.db import session_scope
from tools.partner_api.marketplace import MARKETPLACE_JSON, write_marketplace_json
from tools.partner_api.payouts import run_payouts
from tools.partner_api.revenue import PeriodIn

cli = typer.Typer()


@cli.command("marketplace-json")
def marketplace_json(out: Annotated[str | None, typer.Option(help="File (default tools/partner_api/marketplace.json)")]
                     = None) -> None:
    """Write marketplace.json (every listed plugin's public metadata) from the registry."""
    boot(log=False)
    with session_scope() as s:
        path = write_marketplace_json(s, Path(out) if out else MARKETPLACE_JSON)
    console.print(f"wrote {path}")


@cli.command("payouts-run")
def payouts_run(period: Annotated[str, typer.Option(help="Month to pay, YYYY-MM")]) -> None:
    """Prepare a month's partner payouts and transfer them through Stripe Connect (idempotent)."""
    boot(log=False)
    month = params(PeriodIn, period=period).period  # a bad month exits 2 naming --period
    prepared, sent = run_payouts(month)
    for p in prepared.payouts:
        console.print(f"payout #{p.id} partner {p.partner_id}: {p.amount_minor} {p.currency} minor units")
    for h in prepared.held:
        console.print(f"held partner {h.partner_id}: {h.amount_minor} ({h.reason})")
    console.print(f"transferred: {sent}")
