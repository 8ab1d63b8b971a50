"""``levqor api``: the HTTP API alone (at scale, any number of replicas)."""

from __future__ import annotations

from typing import Annotated

import typer

from api.cli.common import boot, policy_or_exit
from levqor.settings import get_settings

cli = typer.Typer()


@cli.command()
def api(host: Annotated[str | None, typer.Option()] = None, port: Annotated[int | None, typer.Option()] = None) -> None:
    """Run the API server (uvicorn)."""
    boot()
    policy_or_exit()
    import uvicorn  # kept lazy: only this command serves HTTP

    s = get_settings()
    uvicorn.run("api.app:create_app", factory=True, host=host or s.host, port=port or s.port,
                log_config=None, access_log=False, timeout_graceful_shutdown=10)
