"""``levqor docs api-reference``: write (or ``--check``) docs/dev_portal/api_reference.md from the OpenAPI document."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from api.cli.common import console, err

docs = typer.Typer(help="Developer docs.", no_args_is_help=True)


def current_reference() -> str:
    """The API reference the app's OpenAPI document gives now."""
    from api.app import create_app
    from tools.dev_portal.docs import render_api_reference

    return render_api_reference(create_app().openapi())


@docs.command("api-reference")
def api_reference(
    out: Annotated[Path | None, typer.Option("--out", help="File to write (default docs/dev_portal/api_reference.md)")]
    = None,
    check: Annotated[bool, typer.Option("--check", help="Exit 1 if the file differs from the OpenAPI document")]
    = False,
) -> None:
    """Generate the Markdown API reference from the OpenAPI document."""
    from tools.dev_portal.docs import API_REFERENCE

    path = out or API_REFERENCE
    text = current_reference()
    if check:
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            err.print(f"[red]{path} is stale: run `levqor docs api-reference`[/red]")
            raise typer.Exit(1)
        console.print(f"{path} is up to date")
        return
    path.write_text(text, encoding="utf-8")
    console.print(f"wrote {path} ({len(text.splitlines())} lines)")
