"""What every command shares: the consoles, logging set-up, the policy check, contexts and errors."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, NoReturn, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table
from sqlalchemy.orm import Session

from levqor import db_outage
from levqor.logging import configure_logging
from levqor.settings import get_settings
from memory.db import session_scope
from policies.engine import PolicyError, get_engine
from tools.context import ToolContext
from tools.errors import AppError
from tools.identity.service import org_context

console = Console()
err = Console(stderr=True)
M = TypeVar("M", bound=BaseModel)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def table(*headers: str) -> Table:
    """A table whose cells wrap and fold at the terminal's width and are never cut with an ellipsis: a tool
    name or an id stays whole and copyable however narrow the terminal (80 columns when piped)."""
    first, *rest = headers  # the row's name: kept on one line while the other columns wrap
    return Table(Column(first, no_wrap=True, overflow="fold"), *(Column(h, overflow="fold") for h in rest))


def boot(log: bool = True, *, service: bool = False) -> None:
    """Read the settings; set up JSON logging for the long-running commands. A ``service`` (API, worker,
    scheduler, ``up``) notes database outages for the monitor and backs off through them; its children
    inherit that."""
    if service:
        os.environ.pop(db_outage.ONE_SHOT_ENV, None)
    s = get_settings()
    if log:
        configure_logging(s.log_level, s.log_json)


def policy_or_exit() -> None:
    """Load the policy file or exit 2 naming the file and line."""
    try:
        get_engine()
    except PolicyError as exc:
        # One unwrapped line: the file:LINE stays greppable whatever the terminal width.
        err.print(f"[red]policy error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]{escape(message)}[/red]", soft_wrap=True)
    raise typer.Exit(code)


def params(model: type[M], **values: object) -> M:
    """Build a tool's input from command-line values; a bad value exits 2 naming the option."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]).replace("_", "-")
        fail(f"--{field}: {first['msg']}", 2)


@contextmanager
def org_session(org: str) -> Iterator[ToolContext]:
    """One transaction acting as the CLI inside organisation ``org``; an error exits 1 with its message."""
    try:
        with session_scope() as session:
            yield org_context(session, org)
    except AppError as exc:
        fail(exc.detail)


@contextmanager
def session_or_exit() -> Iterator[Session]:
    """One transaction; a domain error exits 1 with its message."""
    try:
        with session_scope() as session:
            yield session
    except AppError as exc:
        fail(exc.detail)


def in_org(org: str, fn: Callable[[ToolContext], M]) -> M:
    """Run ``fn(ctx)`` in one committed transaction inside ``org``."""
    with org_session(org) as ctx:
        return fn(ctx)
