"""``levqor tools list`` and ``levqor policy check``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from api.cli.common import JsonFlag, console, err, table
from levqor.settings import get_settings
from policies.engine import PolicyError, load_policy, policy_digest
from tools.registry import registry

tools = typer.Typer(help="The tools registry.", no_args_is_help=True)
policy = typer.Typer(help="The policy file.", no_args_is_help=True)


@tools.command("list")
def tools_list(json_out: JsonFlag = False) -> None:
    """Print every registered tool with its risk."""
    specs = registry.all()
    if json_out:
        print(json.dumps([{"name": t.name, "risk": t.risk, "description": t.description} for t in specs]))
        return
    t = table("tool", "risk", "description")
    for spec in specs:
        t.add_row(spec.name, spec.risk, spec.description)
    console.print(t)


@policy.command("check")
def policy_check(path: Annotated[Path | None, typer.Argument()] = None) -> None:
    """Validate a policy file (default: the configured one) and show its version and digest."""
    p = path or get_settings().policy_path
    try:
        doc = load_policy(p)
    except PolicyError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    conduct = "with a code of conduct" if doc.code_of_conduct else "without a code of conduct"
    console.print(f"[green]{p} is valid[/green]: version {doc.version} (digest {policy_digest(doc)[:12]}), "
                  f"{len(doc.actors)} actors, {conduct}")
