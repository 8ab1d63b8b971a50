"""The ``levqor`` command. Each command group is a module of its own, imported only when one of its
commands runs, so ``levqor`` starts fast and a command loads what it needs and no more."""

from __future__ import annotations

import importlib
import os
import sys
from difflib import get_close_matches
from typing import Annotated, Any, cast

import click
import typer
from typer.core import TyperCommand, TyperGroup

# command -> (module, attribute, short help). The attribute is a typer app: a group of its own (``keys``),
# or the module's ``cli`` holding top-level commands (``migrate``).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "migrate": ("api.cli.database", "cli", "Apply database migrations up to head."),
    "seed-demo": ("api.cli.database", "cli", "Create the demo organisation and admin; print a fresh admin API key."),
    "api": ("api.cli.serve", "cli", "Run the HTTP API (uvicorn)."),
    "worker": ("api.cli.processes", "cli", "Run a worker: job queue, event outbox, webhook deliveries."),
    "scheduler": ("api.cli.processes", "cli", "Run the scheduler (only the lease holder leads)."),
    "up": ("api.cli.processes", "cli", "Run API + scheduler + N workers under one supervisor."),
    "users": ("api.cli.identity", "users", "Manage users."),
    "keys": ("api.cli.identity", "keys", "Manage API keys."),
    "audit": ("api.cli.audit", "audit", "Audit log: verify, checkpoint, export."),
    "tools": ("api.cli.policy", "tools", "The tools registry."),
    "policy": ("api.cli.policy", "policy", "The policy file."),
    "agents": ("api.cli.agents", "agents", "Agents: list them, run one now."),
    "approvals": ("api.cli.agents", "approvals", "Agent approvals: list, approve, reject."),
    "detect": ("api.cli.models", "cli", "One anomaly score in [0, 1] per row of timestamp,value."),
    "forecast": ("api.cli.models", "cli", "Forecast the steps after a timestamp,value history."),
    "pulse": ("api.cli.pulse", "pulse", "Pulse: KPI snapshots, targets, monthly report."),
    "costs": ("api.cli.pulse", "costs", "The Cost DB: import bills, show spend."),
    "planner": ("api.cli.pulse", "planner", "The planner: find KPIs off target and propose suggestions."),
    "marketplace-json": ("api.cli.partners", "cli", "Write marketplace.json from the registry."),
    "payouts-run": ("api.cli.partners", "cli", "Prepare and transfer a month's partner payouts."),
    "credits-grant": ("api.cli.jobs", "cli", "Add job credits to an organisation."),
    "docs": ("api.cli.docs", "docs", "Developer docs: generate the API reference from the OpenAPI document."),
    "announcements": ("api.cli.community", "announcements",
                      "Announcements: list, write the launch ones, publish, send."),
    "chaos": ("api.cli.chaos", "chaos", "The chaos suite: inject faults, measure detection and self-healing."),
}


class LazyGroup(TyperGroup):
    """The root group: lists commands from :data:`COMMANDS` and imports a command's module only to run it."""

    _resolving = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name not in COMMANDS:
            return None
        module, attr, short = COMMANDS[cmd_name]
        if not self._resolving:  # listing (``levqor --help``): the help line is enough
            return TyperCommand(cmd_name, help=short, short_help=short)
        target = getattr(importlib.import_module(module), attr)
        command: Any
        if attr == "cli":  # a module of top-level commands
            command = typer.main.get_command(target)
            if isinstance(command, TyperGroup):
                command = command.get_command(ctx, cmd_name)
        else:  # a group, even of one command
            command = typer.main.get_group(target)
            command.name = cmd_name
        self.commands[cmd_name] = command
        return cast(click.Command, command)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None,
                                                                               list[str]]:
        self._resolving = True
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.UsageError as exc:
            matches = get_close_matches(args[0], list(COMMANDS)) if args and args[0] not in COMMANDS else []
            if matches and "Did you mean" not in exc.message:
                hint = f"{exc.message.rstrip('.')}. Did you mean {', '.join(repr(m) for m in matches)}?"
                raise click.exceptions.UsageError(hint, ctx=exc.ctx) from None
            raise
        finally:
            self._resolving = False


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"levqor {version('levqor')}")
        except PackageNotFoundError:  # a checkout that was never installed
            print("levqor (not installed)")
        raise typer.Exit()


app = typer.Typer(cls=LazyGroup, help="Levqor: automation platform operations, agents and partner ecosystem.",
                  no_args_is_help=True, pretty_exceptions_enable=False)


@app.callback()
def _root(show_version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                     help="Print the version and exit.")] = False) -> None:
    """Levqor: automation platform operations, agents and partner ecosystem."""


def main() -> None:
    """Run the command; a database that cannot be reached or is not migrated, or a file that cannot be read
    or written (a wrong ``--out``), is one line, not a traceback."""
    os.environ["LEVQOR_ONE_SHOT"] = "1"  # levqor.db_outage.ONE_SHOT_ENV; the services clear it (boot(service=True))
    try:
        app()
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError) as exc:
        if exc.filename is None:  # not about a path the user gave
            raise
        sys.stderr.write(f"levqor: {exc.strerror or type(exc).__name__}: {os.path.abspath(exc.filename)}\n")
        raise SystemExit(1) from None
    except Exception as exc:  # noqa: BLE001  (only the database's own errors are answered here)
        from sqlalchemy.exc import OperationalError, ProgrammingError

        if not isinstance(exc, OperationalError | ProgrammingError):
            raise
        from levqor.settings import get_settings

        first = str(exc.orig or exc).strip().splitlines()[0]
        hint = "run `levqor migrate`" if "no such table" in first or "does not exist" in first \
            else "is the database server running?"
        sys.stderr.write(f"database error ({get_settings().resolved_database_url.split('@')[-1]}): {first}; {hint}\n")
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
