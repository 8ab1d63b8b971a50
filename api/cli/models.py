"""``levqor detect`` and ``levqor forecast``: the anomaly detector and the load forecaster on a CSV."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, NoReturn, TextIO

import typer

from tools.auto_intel.calendars import COUNTRIES, CalendarError, country_holidays
from tools.auto_intel.clock import ClockError, zone
from tools.auto_intel.predictor import ForecastError
from tools.auto_intel.series_io import Holiday, SeriesError, detect_stream, forecast_csv, read_holidays

cli = typer.Typer()


def fail(message: str, code: int = 2) -> NoReturn:
    """One line on stderr and exit ``code``. Not ``api.cli.common.fail``: that module imports the
    database layer, which alone takes longer than the one second a forecast call may take."""
    sys.stderr.write(message + "\n")
    raise typer.Exit(code)


def _run(command: str, path: Path | None, body: Callable[[Iterable[str]], object]) -> None:
    """Run ``body`` on the file's lines (or stdin); a bad file is a one-line error, exit 2."""
    try:
        if path is None:
            body(sys.stdin)
        else:
            with path.open(encoding="utf-8") as f:
                body(f)
    except BrokenPipeError:  # the reader of the output went away (`| head`): stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's last flush of stdout must not fail again
        raise typer.Exit(141) from None  # the shell's status for a process stopped by SIGPIPE
    except FileNotFoundError:
        fail(f"{command}: no such file: {path}", 2)
    except IsADirectoryError:
        fail(f"{command}: {path} is a directory, not a CSV file", 2)
    except UnicodeDecodeError:
        fail(f"{command}: {path or 'stdin'} is not a UTF-8 text CSV of timestamp,value", 2)
    except OSError as exc:
        fail(f"{command}: cannot read {path or 'stdin'}: {exc.strerror or exc}", 2)
    except (SeriesError, ForecastError) as exc:
        fail(f"{command}: {path or 'stdin'}: {exc}", 2)


def _check_zone(command: str, tz: str | None) -> None:
    if tz is not None:
        try:
            zone(tz)
        except ClockError as exc:
            fail(f"{command}: --tz: {exc}", 2)


@cli.command()
def detect(path: Annotated[Path | None, typer.Argument(help="CSV of timestamp,value (default stdin)")] = None,
           tz: Annotated[str | None, typer.Option(
               "--tz", help="The time zone whose clock the series follows (IANA name: Europe/Berlin): naive "
                            "timestamps are its local time, and the daily and weekly rhythm is learned on its "
                            "hours, so a clock change is not an anomaly (default: UTC)")] = None,
           ) -> None:
    """Print timestamp,score (score in [0, 1]) per row, scoring each row as it is read (causal)."""
    _check_zone("levqor detect", tz)
    out: TextIO = sys.stdout
    _run("levqor detect", path,
         lambda lines: detect_stream(lines, out, flush=path is None, err=sys.stderr, tz=tz))


@cli.command()
def forecast(
    horizon: Annotated[int, typer.Option(min=1, help="Steps to forecast after the last row")],
    path: Annotated[Path | None, typer.Argument(help="CSV of timestamp,value (default stdin)")] = None,
    holidays: Annotated[Path | None, typer.Option(
        help="File of holidays, past and future, one per line: YYYY-MM-DD or YYYY-MM-DD,name. Each "
             "holiday's effect is learned from its past days (the same name, or for an unnamed one the "
             "same month and day), shrunk toward the effect shared by all holidays when it has few; a "
             "holiday not seen in the history gets the shared effect")] = None,
    country: Annotated[str | None, typer.Option(
        help="Add this country's national public holidays, with their names (built in: "
             + ", ".join(sorted(COUNTRIES)) + "; UK = GB), with weekend substitute days; combined with "
             "--holidays (a name from the file wins on its day)")] = None,
    tz: Annotated[str | None, typer.Option(
        "--tz", help="The time zone whose clock the series follows (IANA name: Europe/Berlin, "
                     "America/New_York): naive timestamps are its local time, holidays its dates, the daily "
                     "shape stays on its hours across clock changes, and the output's timestamps are local "
                     "with their UTC offset (default: UTC)")] = None,
) -> None:
    """Print timestamp,yhat,lower,upper (90% interval) for the steps after the history; on stderr, one
    line saying which seasons were found and which method the backtests chose."""
    if country is not None:
        try:
            country_holidays(country, [])
        except CalendarError as exc:
            fail(f"levqor forecast: --country: {exc}", 2)
    _check_zone("levqor forecast", tz)
    days: list[Holiday] | None = None
    if holidays is not None:
        got: list[list[Holiday]] = []
        _run("levqor forecast", holidays, lambda lines: got.append(read_holidays(lines)))
        days = got[0]
    _run("levqor forecast", path,
         lambda lines: forecast_csv(lines, sys.stdout, horizon=horizon, holidays=days, country=country,
                                    tz=tz, err=sys.stderr))
