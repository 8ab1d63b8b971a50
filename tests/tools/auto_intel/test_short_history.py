"""A history too short to backtest gets an interval at least as wide as its own changes (docs/models.md,
"Short histories")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.support import ROOT
from tools.auto_intel.predictor import ForecastConfig, forecast

MONTHS = (np.datetime64("2015-01") + np.arange(160).astype("timedelta64[M]")).astype("datetime64[s]").astype(
    np.int64).astype(float)


def monthly(seed: int, n: int) -> np.ndarray:
    """``n`` months and a year more of a season on a slow trend with AR(1) noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n + 12)
    e = np.zeros(n + 12)
    for i in range(1, n + 12):
        e[i] = 0.7 * e[i - 1] + rng.normal(0, 4.0)
    return 100 + 0.3 * t + 15 * np.sin(2 * np.pi * t / 12 + rng.uniform(0, 6)) + e


def coverage(n: int, floor: bool, seeds: range) -> float:
    inside = total = 0
    for seed in seeds:
        y = monthly(seed, n)
        fc = forecast(y[:n], horizon=12, timestamps=list(MONTHS[:n]), config=ForecastConfig(short_floor=floor))
        actual = y[n:]
        inside += int(np.sum((actual >= np.array(fc.lower)) & (actual <= np.array(fc.upper))))
        total += len(actual)
    return inside / total


def test_two_and_a_half_years_of_monthly_data_get_an_interval_that_covers() -> None:
    # 30 months: too few for any backtest, so nothing calibrates the model's in-sample interval
    off, on = coverage(30, False, range(40)), coverage(30, True, range(40))
    assert on >= 0.85, on
    assert on > off + 0.15, (off, on)  # the in-sample interval alone covers about two thirds


def test_the_floor_only_widens_the_interval() -> None:
    y = monthly(7, 30)[:30]
    ts = list(MONTHS[:30])
    on = forecast(y, horizon=12, timestamps=ts)
    off = forecast(y, horizon=12, timestamps=ts, config=ForecastConfig(short_floor=False))
    assert on.yhat == off.yhat and on.method == off.method
    lo, hi = np.array(on.lower), np.array(on.upper)
    assert np.all(lo <= np.array(off.lower)) and np.all(hi >= np.array(off.upper))
    assert np.any(hi - lo > np.array(off.upper) - np.array(off.lower) + 1e-6)  # widened somewhere


def test_a_history_long_enough_to_calibrate_is_unchanged() -> None:
    y = monthly(3, 120)[:120]
    ts = list(MONTHS[:120])
    on = forecast(y, horizon=12, timestamps=ts)
    off = forecast(y, horizon=12, timestamps=ts, config=ForecastConfig(short_floor=False))
    assert (on.yhat, on.lower, on.upper) == (off.yhat, off.lower, off.upper)


def test_the_cli_says_when_the_history_was_too_short_to_backtest_or_calibrate(tmp_path: Path) -> None:
    def run(n: int) -> str:
        path = tmp_path / f"monthly{n}.csv"
        path.write_text("timestamp,value\n" + "".join(
            f"{2015 + i // 12}-{i % 12 + 1:02d}-01,{v!r}\n" for i, v in enumerate(monthly(5, n)[:n].tolist())))
        got = subprocess.run([sys.executable, "-m", "api.cli", "forecast", "--horizon", "12", str(path)],
                             cwd=ROOT, capture_output=True, text=True, check=False)
        assert got.returncode == 0, got.stderr
        return got.stderr

    short = run(30)
    assert "(the history is too short to backtest the candidates)" in short
    assert "90% interval not calibrated (too few backtests): at least as wide as the history's own changes" in short
    long = run(120)
    assert "(the best of the candidates in backtests on the history)" in long
    assert "90% interval calibrated on the same backtests" in long
    fc = forecast(monthly(5, 120)[:120], horizon=12, timestamps=list(MONTHS[:120]))
    assert fc.backtests > 0 and fc.calibrated
    fc = forecast(monthly(5, 30)[:30], horizon=12, timestamps=list(MONTHS[:30]))
    assert fc.backtests == 0 and not fc.calibrated and fc.method == "model"
