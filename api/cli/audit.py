"""``levqor audit``: verify the chain, sign a checkpoint, export entries."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from api.cli.common import JsonFlag, boot, console, err, org_session
from memory.db import session_scope
from tools.enterprise.audit_log import verify_chain, write_checkpoint
from tools.enterprise.audit_tools import AuditSearch, export_jsonl

audit = typer.Typer(help="Audit log: verify, checkpoint, export.", no_args_is_help=True)


@audit.command("verify")
def audit_verify(json_out: JsonFlag = False) -> None:
    """Verify the audit chain; exit 0 when intact, 1 naming the first bad entry."""
    boot(log=False)
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


@audit.command("checkpoint")
def audit_checkpoint() -> None:
    """Write a signed checkpoint of the chain head now."""
    boot(log=False)
    with session_scope() as s:
        cp = write_checkpoint(s)
        msg = f"checkpoint at entry {cp.seq} ({cp.head_hash[:16]}…)" if cp else "log is empty"
    console.print(msg)


@audit.command("export")
def audit_export(org: Annotated[str, typer.Option()] = "demo",
                 out: Annotated[Path | None, typer.Option(help="File (default stdout)")] = None) -> None:
    """Export an organisation's audit entries as JSON lines."""
    boot(log=False)
    with org_session(org) as ctx:
        lines = list(export_jsonl(ctx.session, ctx.principal.org_id, AuditSearch()))
    if out:
        out.write_text("".join(lines))
        err.print(f"{len(lines)} entries written to {out}")
    else:
        sys.stdout.write("".join(lines))
