"""The background roles: ``levqor worker``, ``scheduler``, and ``up`` (API, scheduler and workers supervised)."""

from __future__ import annotations

from typing import Annotated

import typer

from api.cli.common import boot, policy_or_exit
from workers.scheduler import run_scheduler
from workers.supervisor import supervise
from workers.worker import run_worker

cli = typer.Typer()


@cli.command()
def worker(concurrency: Annotated[int | None, typer.Option(help="Jobs at once")] = None) -> None:
    """Run a worker: background work from the database (job queue, event outbox)."""
    boot(service=True)
    policy_or_exit()
    run_worker(concurrency)


@cli.command()
def scheduler() -> None:
    """Run the scheduler (only the lease holder leads; others stand by)."""
    boot(service=True)
    policy_or_exit()
    run_scheduler()


@cli.command()
def up(workers: Annotated[int | None, typer.Option(help="Worker processes")] = None) -> None:
    """Run API + scheduler + N workers under one supervisor; Ctrl-C stops them all."""
    boot(service=True)
    policy_or_exit()
    raise typer.Exit(supervise(workers))
