"""``levqor detect`` and ``levqor forecast``: the anomaly detector and the load forecaster on a CSV."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from api.cli.common import fail
from tools.auto_intel.predictor import ForecastError
from tools.auto_intel.series_io import detect_stream, forecast_csv

cli = typer.Typer()


@cli.command()
def detect(path: Annotated[Path | None, typer.Argument(help="CSV of timestamp,value (default stdin)")] = None
           ) -> None:
    """Print one anomaly score in [0, 1] per row, scoring each row as it is read (causal)."""
    if path is None:
        detect_stream(sys.stdin, sys.stdout)
    else:
        with path.open() as f:
            detect_stream(f, sys.stdout, flush=False)


@cli.command()
def forecast(
    horizon: Annotated[int, typer.Option(min=1, help="Steps to forecast after the last row")],
    path: Annotated[Path | None, typer.Argument(help="CSV of timestamp,value (default stdin)")] = None,
) -> None:
    """Print timestamp,yhat,lower,upper (90% interval) for the steps after the history."""
    try:
        if path is None:
            forecast_csv(sys.stdin, sys.stdout, horizon=horizon)
        else:
            with path.open() as f:
                forecast_csv(f, sys.stdout, horizon=horizon)
    except ForecastError as exc:
        fail(f"forecast error: {exc}", 2)
