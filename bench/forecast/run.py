"""Benchmark the load forecaster on nyc_taxi (30-minute demand) against seasonal naive and Prophet.

Rolling origin: one origin per day over the last eight weeks, each forecasting the next 48
steps (one day) from all history before it. MASE = MAE / in-sample weekly seasonal-naive MAE of
the history, averaged over origins. Time = fit + predict per origin. Prophet is a bench-only
dependency (requirements/bench.in); when it cannot be imported it is reported as unavailable.
Last line: ``forecast: mase=.. snaive_mase=.. prophet_mase=.. fit_s=.. ratio_snaive=.. ratio_prophet=..``
"""

from __future__ import annotations

import csv
import logging
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tools.auto_intel.predictor import forecast  # noqa: E402

STEPS_PER_DAY = 48
WEEK = 7 * STEPS_PER_DAY
ORIGINS = 56  # eight weeks, one per day

Model = Callable[[np.ndarray, np.ndarray, int], np.ndarray]


def shared_dir() -> Path:
    """Find the shared data directory: $LEVQOR_SHARED_DIR, else ../shared next to the repo."""
    env = os.environ.get("LEVQOR_SHARED_DIR")
    cands = [Path(env)] if env else []
    cands += [REPO.parent / "shared", Path.cwd().parent / "shared"]
    for c in cands:
        if (c / "data" / "forecast-dev" / "nyc_taxi.csv").is_file():
            return c.resolve()
    raise SystemExit("shared data not found: set LEVQOR_SHARED_DIR to the directory holding "
                     "data/forecast-dev/nyc_taxi.csv")


def load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    ts: list[float] = []
    vals: list[float] = []
    with open(path, newline="") as f:
        for row in csv.reader(f):
            if row and row[0] != "timestamp":
                ts.append(datetime.fromisoformat(row[0]).replace(tzinfo=UTC).timestamp())
                vals.append(float(row[1]))
    return np.array(ts), np.array(vals)


def ours(ts: np.ndarray, y: np.ndarray, h: int) -> np.ndarray:
    return np.array(forecast(y, horizon=h, timestamps=list(ts)).yhat)


def snaive(ts: np.ndarray, y: np.ndarray, h: int) -> np.ndarray:
    return y[len(y) - WEEK:len(y) - WEEK + h].copy()


def prophet_model() -> Model | None:
    try:
        import pandas as pd
        from prophet import Prophet
    except Exception:  # noqa: BLE001 - any import failure means "unavailable"
        return None
    for name in ("prophet", "cmdstanpy"):
        logging.getLogger(name).disabled = True

    def run(ts: np.ndarray, y: np.ndarray, h: int) -> np.ndarray:
        df = pd.DataFrame({"ds": pd.to_datetime(ts, unit="s"), "y": y})
        m = Prophet(daily_seasonality=True, weekly_seasonality=True, yearly_seasonality=False)
        m.fit(df)
        fut = m.make_future_dataframe(periods=h, freq="30min", include_history=False)
        return np.asarray(m.predict(fut)["yhat"].to_numpy(), dtype=np.float64)

    return run


def evaluate(model: Model, ts: np.ndarray, y: np.ndarray) -> tuple[float, float, int]:
    n = len(y)
    mases, secs = [], []
    for k in range(ORIGINS, 0, -1):
        o = n - k * STEPS_PER_DAY
        hist_t, hist_y = ts[:o], y[:o]
        actual = y[o:o + STEPS_PER_DAY]
        t0 = time.perf_counter()
        pred = model(hist_t, hist_y, STEPS_PER_DAY)
        secs.append(time.perf_counter() - t0)
        scale = float(np.mean(np.abs(hist_y[WEEK:] - hist_y[:-WEEK])))
        mases.append(float(np.mean(np.abs(actual - pred))) / scale)
    return float(np.mean(mases)), float(np.mean(secs)), len(mases)


def coverage(ts: np.ndarray, y: np.ndarray) -> float:
    n = len(y)
    inside = total = 0
    for k in range(ORIGINS, 0, -1):
        o = n - k * STEPS_PER_DAY
        fc = forecast(y[:o], horizon=STEPS_PER_DAY, timestamps=list(ts[:o]))
        actual = y[o:o + STEPS_PER_DAY]
        inside += int(np.sum((actual >= np.array(fc.lower)) & (actual <= np.array(fc.upper))))
        total += len(actual)
    return inside / total


def main() -> int:
    ts, y = load(shared_dir() / "data" / "forecast-dev" / "nyc_taxi.csv")
    print(f"nyc_taxi: {len(y)} points; {ORIGINS} daily origins over the last eight weeks, "
          f"horizon {STEPS_PER_DAY} steps")
    res: dict[str, tuple[float, float, int] | None] = {}
    for name, model in (("levqor", ours), ("snaive", snaive), ("prophet", prophet_model())):
        if model is None:
            res[name] = None
            print(f"{name:<10} unavailable (pip package prophet could not be imported)")
            continue
        res[name] = evaluate(model, ts, y)
        mase, fit_s, k = res[name]  # type: ignore[misc]
        print(f"{name:<10} MASE={mase:.4f}  fit+predict={fit_s:.4f}s per origin  origins={k}")
    cov = coverage(ts, y)
    print(f"levqor 90% interval coverage over the same origins: {cov:.3f}")
    m, fit_s, _ = res["levqor"]  # type: ignore[misc]
    sn = res["snaive"][0]  # type: ignore[index]
    pr = res["prophet"]
    pr_txt = f"{pr[0]:.4f}" if pr else "unavailable"
    ratio_pr = f"{m / pr[0]:.3f}" if pr else "unavailable"
    pr_fit = f" prophet_fit_s={pr[1]:.3f}" if pr else ""
    print(f"forecast: mase={m:.4f} snaive_mase={sn:.4f} prophet_mase={pr_txt} fit_s={fit_s:.4f} "
          f"ratio_snaive={m / sn:.3f} ratio_prophet={ratio_pr}{pr_fit} coverage90={cov:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
