"""Wall clocks in the forecaster: time zones (``--tz``) and calendar steps (monthly, quarterly, yearly)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from tests.tools.auto_intel.test_models import cli, csv_text, feed, one_line_error, round_trip_continues
from tools.auto_intel.anomaly_detector import ALERT_THRESHOLD, AnomalyDetector, DetectorConfig
from tools.auto_intel.clock import (
    ClockError,
    WallClock,
    add_months,
    future_stamps,
    month_step,
    utc_offsets,
    wall_to_utc,
    zone,
)
from tools.auto_intel.predictor import (
    ForecastConfig,
    ForecastError,
    _fill_season,
    _naive,
    _on_grid,
    _seasonal_fill,
    forecast,
)
from tools.auto_intel.series_io import SeriesError, detect_stream, forecast_csv

BERLIN = ZoneInfo("Europe/Berlin")
DAY = 86400.0


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def wall(*args: int) -> float:
    return (datetime(*args) - datetime(1970, 1, 1)).total_seconds()


# ---- clock helpers ------------------------------------------------------------------------------

def test_utc_offsets_match_the_zone_database_at_every_hour_of_a_year() -> None:
    t = utc(2023, 1, 1) + 3600.0 * np.arange(366 * 24) + 1800.0
    want = [datetime.fromtimestamp(x, BERLIN).utcoffset().total_seconds() for x in t]  # type: ignore[union-attr]
    got = utc_offsets(t, BERLIN)
    assert got.tolist() == want
    assert sorted(set(want)) == [3600.0, 7200.0] and int(np.count_nonzero(np.diff(got))) == 2
    assert utc_offsets(t[:5], zone("UTC")).tolist() == [0.0] * 5


def test_wall_times_the_clock_skips_or_shows_twice() -> None:
    # autumn: 02:30 is shown twice (CEST, then CET); the first is taken
    assert wall_to_utc(wall(2023, 10, 29, 2, 30), BERLIN) == utc(2023, 10, 29, 0, 30)
    # spring: 02:30 is skipped; the moment is the one an hour later on the clock (03:30 CEST = 01:30 UTC)
    assert wall_to_utc(wall(2023, 3, 26, 2, 30), BERLIN) == utc(2023, 3, 26, 1, 30)
    assert wall_to_utc(wall(2023, 7, 1, 12), BERLIN) == utc(2023, 7, 1, 10)
    assert wall_to_utc(123.0, None) == 123.0


def test_unknown_zone_is_named() -> None:
    for bad in ("Mars/Olympus", "", "../etc/passwd", "Europe/"):
        with pytest.raises(ClockError, match="unknown time zone"):
            zone(bad)
    assert zone(" America/New_York ").utcoffset(datetime(2024, 1, 1)) == timedelta(hours=-5)


def months(start: tuple[int, int, int], count: int, every: int = 1, day_end: bool = False) -> np.ndarray:
    out = []
    y, m = start[0], start[1]
    for _ in range(count):
        d = start[2]
        if day_end:
            nxt = datetime(y + m // 12, m % 12 + 1, 1)
            d = (nxt - timedelta(days=1)).day
        out.append(wall(y, m, d))
        y, m = y + (m - 1 + every) // 12, (m - 1 + every) % 12 + 1
    return np.array(out)


def test_month_step_recognises_calendar_steps_and_nothing_else() -> None:
    assert month_step(months((2020, 1, 1), 30)) == (1, 1)
    assert month_step(months((2020, 1, 15), 30)) == (1, 15)
    assert month_step(months((2020, 1, 31), 30, day_end=True)) == (1, 31)
    assert month_step(months((2019, 3, 1), 20, every=3)) == (3, 1)
    assert month_step(months((2000, 1, 1), 12, every=12)) == (12, 1)
    gaps = np.delete(months((2020, 1, 1), 30), [5, 6, 20])  # missing months are whole steps
    assert month_step(gaps) == (1, 1)
    assert month_step(wall(2020, 1, 1) + 30 * DAY * np.arange(20)) == (0, 0)  # every 30 days
    assert month_step(wall(2020, 1, 1) + 7 * DAY * np.arange(60)) == (0, 0)  # weekly
    mixed = months((2020, 1, 1), 24)
    mixed[7] += 3600.0  # one row at another time of day
    assert month_step(mixed) == (0, 0)
    assert month_step(months((2020, 1, 1), 1)) == (0, 0)


def test_add_months_keeps_the_anchor_day_and_falls_back_to_the_month_end() -> None:
    assert add_months(wall(2024, 1, 31), 1, 31) == wall(2024, 2, 29)
    assert add_months(wall(2024, 2, 29), 1, 31) == wall(2024, 3, 31)
    assert add_months(wall(2023, 11, 15, 6), 3, 15) == wall(2024, 2, 15, 6)
    assert add_months(wall(2023, 12, 1), 12, 1) == wall(2024, 12, 1)


def test_future_stamps_step_by_calendar_months_and_local_days() -> None:
    t = months((2015, 1, 1), 96)
    stamps, per = future_stamps(t, np.zeros(len(t)), 31 * DAY, 14, None)
    assert per == 1
    assert [datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%d") for s in stamps[:3]] == [
        "2023-01-01", "2023-02-01", "2023-03-01"]
    assert datetime.fromtimestamp(stamps[-1], UTC).strftime("%Y-%m-%d") == "2024-02-01"
    # daily at local midnight in Berlin, across the spring change: still local midnight
    days = np.array([wall_to_utc(wall(2024, 3, 1) + DAY * i, BERLIN) for i in range(24)])
    stamps, per = future_stamps(days, utc_offsets(days, BERLIN), DAY, 10, BERLIN)
    local = [datetime.fromtimestamp(s, BERLIN) for s in stamps]
    assert per == 0 and all(d.hour == 0 for d in local) and local[-1].day == 3 and local[-1].month == 4
    # hourly: real hours, whatever the clock does
    hours = utc(2024, 3, 30) + 3600.0 * np.arange(48)
    stamps, _ = future_stamps(hours, utc_offsets(hours, BERLIN), 3600.0, 5, BERLIN)
    assert np.diff(stamps).tolist() == [3600.0] * 4


# ---- the forecaster on a local clock ------------------------------------------------------------

def local_sessions(start: datetime, end: datetime, step_min: int = 60, noise: float = 0.0,
                   seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Sessions of a service used on Berlin's clock (UTC timestamps): a working-day shape on local hours
    (each night hour a little busier than the one before), weekends at half, optional log-normal noise."""
    t = np.arange(start.timestamp(), end.timestamp(), 60.0 * step_min)
    local = [datetime.fromtimestamp(x, BERLIN) for x in t]
    hour = np.array([d.hour + d.minute / 60 for d in local])
    weekend = np.array([d.weekday() >= 5 for d in local])
    y = 10 + hour + 100 * np.clip(np.sin(np.pi * (hour - 7) / 12), 0, None) * np.where(weekend, 0.5, 1.0)
    rng = np.random.default_rng(seed)
    return t, y * np.exp(rng.normal(0, noise, len(t)))


def truth(t: np.ndarray) -> np.ndarray:
    """The noiseless sessions at the (evenly spaced) timestamps ``t``."""
    step_min = round((t[1] - t[0]) / 60)
    return local_sessions(datetime.fromtimestamp(t[0], UTC), datetime.fromtimestamp(t[-1] + 1, UTC), step_min)[1]


def test_daily_shape_stays_on_local_hours_after_the_autumn_change() -> None:
    # ten weeks of summer time, then three days of winter time: with the clock, the seasons behind the
    # forecast are on the right hours; on UTC, four of the five weeks behind it are an hour off
    t, y = local_sessions(datetime(2023, 8, 20, tzinfo=UTC), datetime(2023, 11, 1, tzinfo=UTC))
    fut = t[-1] + 3600.0 * np.arange(1, 49)
    want = truth(fut)
    local = forecast(y, horizon=48, timestamps=list(t), tz="Europe/Berlin")
    plain = forecast(y, horizon=48, timestamps=list(t))
    assert local.timestamps == plain.timestamps == fut.tolist()
    assert local.local_clock and local.clock_changes == 1 and not plain.local_clock
    err_local = float(np.mean(np.abs(np.array(local.yhat) - want)))
    err_plain = float(np.mean(np.abs(np.array(plain.yhat) - want)))
    assert err_local < 0.5 and err_plain > 5.0, (err_local, err_plain)


def test_horizon_across_the_spring_change_follows_the_local_clock() -> None:
    t, y = local_sessions(datetime(2024, 1, 8, tzinfo=UTC), datetime(2024, 3, 30, 12, tzinfo=UTC))
    local = forecast(y, horizon=72, timestamps=list(t), tz="Europe/Berlin")
    plain = forecast(y, horizon=72, timestamps=list(t))
    want = truth(np.array(local.timestamps))
    assert local.local_clock and local.clock_changes == 1
    assert float(np.max(np.abs(np.array(local.yhat) - want))) < 1.0
    assert float(np.max(np.abs(np.array(plain.yhat) - want))) > 20.0  # the morning rise an hour late
    peaks = [24 * k + int(np.argmax(local.yhat[24 * k:24 * k + 24])) for k in range(3)]
    assert {datetime.fromtimestamp(local.timestamps[i], BERLIN).hour for i in peaks} == {13}  # local midday


def test_the_repeated_hour_ahead_gets_one_forecast_twice() -> None:
    t, y = local_sessions(datetime(2023, 8, 1, tzinfo=UTC), datetime(2023, 10, 28, 12, tzinfo=UTC))
    fc = forecast(y, horizon=48, timestamps=list(t), tz="Europe/Berlin")
    shown = [datetime.fromtimestamp(s, BERLIN).strftime("%d %H") for s in fc.timestamps]
    first, second = shown.index("29 02"), len(shown) - 1 - shown[::-1].index("29 02")
    assert second == first + 1 and fc.yhat[first] == fc.yhat[second]
    assert len(fc.yhat) == 48 and np.all(np.diff(fc.timestamps) == 3600.0)


def test_ten_minute_steps_on_the_local_clock_and_two_hour_steps_on_utc() -> None:
    t, y = local_sessions(datetime(2023, 9, 1, tzinfo=UTC), datetime(2023, 11, 2, tzinfo=UTC), step_min=10)
    fc = forecast(y, horizon=144, timestamps=list(t), tz="Europe/Berlin")
    assert fc.local_clock and float(np.mean(np.abs(np.array(fc.yhat) - truth(np.array(fc.timestamps))))) < 1.0
    t2, y2 = local_sessions(datetime(2023, 9, 1, tzinfo=UTC), datetime(2023, 11, 2, tzinfo=UTC), step_min=120)
    fc2 = forecast(y2, horizon=12, timestamps=list(t2), tz="Europe/Berlin")
    assert not fc2.local_clock and fc2.clock_changes == 1 and len(fc2.yhat) == 12


def test_a_zone_without_clock_changes_or_a_naive_local_series_changes_nothing() -> None:
    t, y = local_sessions(datetime(2023, 8, 20, tzinfo=UTC), datetime(2023, 10, 20, tzinfo=UTC), noise=0.1)
    assert forecast(y, horizon=24, timestamps=list(t), tz="Asia/Tokyo").yhat == forecast(
        y, horizon=24, timestamps=list(t)).yhat
    # timestamps already on the local clock (read as UTC), one autumn hour's rows summed into one row as
    # nyc_taxi's are: on the zone's clock the positions are the same
    naive = np.array([wall(2023, 10, 20) + 3600.0 * i for i in range(24 * 20)])
    real = np.array([wall_to_utc(w, BERLIN) for w in naive])
    vals = local_sessions(datetime(2023, 10, 20, tzinfo=UTC), datetime(2023, 11, 9, tzinfo=UTC), noise=0.1)[1]
    on_clock = forecast(vals, horizon=24, timestamps=list(real), tz="Europe/Berlin")
    assert on_clock.yhat == forecast(vals, horizon=24, timestamps=list(naive)).yhat
    assert on_clock.missing_steps == 0  # an hour apart on UTC at the merged row, but nothing is missing
    # a file written on the local clock across the spring change: no row at 02:00, and none missing
    spring = np.array([wall(2024, 3, 20) + 3600.0 * i for i in range(24 * 20)])
    spring = spring[[wall_to_utc(w, BERLIN) + utc_offsets(np.array([wall_to_utc(w, BERLIN)]), BERLIN)[0] == w
                     for w in spring]]
    assert len(spring) == 24 * 20 - 1
    stamps = [wall_to_utc(w, BERLIN) for w in spring]
    fc = forecast(vals[:len(stamps)], horizon=24, timestamps=stamps, tz="Europe/Berlin")
    assert fc.local_clock and fc.missing_steps == 0


def test_zone_errors() -> None:
    with pytest.raises(ForecastError, match="unknown time zone 'Moon/Base'"):
        forecast([1.0, 2.0, 3.0], horizon=1, timestamps=[0.0, 60.0, 120.0], tz="Moon/Base")
    with pytest.raises(ForecastError, match="a time zone needs timestamps"):
        forecast([1.0, 2.0, 3.0], horizon=1, tz="UTC")
    with pytest.raises(SeriesError, match="unknown time zone"):
        forecast_csv(["2024-01-01,1", "2024-01-02,2", "2024-01-03,3"], io.StringIO(), horizon=1, tz="Nowhere")


def test_local_holidays_are_local_dates() -> None:
    # daily sales recorded at Berlin midnight (23:00 or 22:00 UTC the day before), low on Christmas Day:
    # on UTC, 25 December's row is dated the 24th and the calendar's Christmas misses it
    start = datetime(2019, 1, 1, tzinfo=BERLIN)
    rows, t = [], []
    rng = np.random.default_rng(3)
    for i in range(5 * 365 + 1):
        d = start + timedelta(days=i)
        v = 100 * (0.7 if d.weekday() >= 5 else 1.0) * (0.2 if (d.month, d.day) in ((12, 25), (12, 26)) else 1.0)
        rows.append(f"{d.isoformat()},{v * np.exp(rng.normal(0, 0.03)):.3f}")
        t.append(d.timestamp())
    upto = rows.index(next(r for r in rows if r.startswith("2023-12-20")))
    out = io.StringIO()
    fc = forecast_csv(rows[:upto], out, horizon=10, country="DE", tz="Europe/Berlin")
    dates = [line.split(",")[0] for line in out.getvalue().splitlines()[1:]]
    assert dates[0] == "2023-12-20 00:00:00+01:00" and dates[5] == "2023-12-25 00:00:00+01:00"
    lows = [dates[i][:10] for i in np.argsort(fc.yhat)[:2]]
    assert sorted(lows) == ["2023-12-25", "2023-12-26"], list(zip(dates, fc.yhat, strict=True))
    utc_fc = forecast_csv(rows[:upto], io.StringIO(), horizon=10, country="DE")
    assert utc_fc.yhat[5] > 2 * fc.yhat[5]  # on UTC, Christmas Day's row is dated the 24th: no holiday


# ---- command line -------------------------------------------------------------------------------

def test_cli_tz_reads_the_autumn_hour_twice_and_writes_offsets(tmp_path: Path) -> None:
    t, y = local_sessions(datetime(2023, 9, 1, tzinfo=UTC), datetime(2023, 10, 29, 4, tzinfo=UTC), noise=0.05)
    naive = "timestamp,value\n" + "".join(
        f"{datetime.fromtimestamp(x, BERLIN):%Y-%m-%d %H:%M:%S},{v:.3f}\n" for x, v in zip(t, y, strict=True))
    path = tmp_path / "local.csv"
    path.write_text(naive)
    assert naive.count("2023-10-29 02:00:00") == 2  # the hour the clock shows twice
    plain = one_line_error(cli("forecast", "--horizon", "3", str(path)))
    assert "timestamps must increase" in plain
    out = cli("forecast", "--horizon", "30", "--tz", "Europe/Berlin", str(path))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "timestamp,yhat,lower,upper" and len(lines) == 31
    assert lines[1].startswith("2023-10-29 05:00:00+01:00,") and lines[-1].startswith("2023-10-30 10:00:00+01:00,")
    assert "on Europe/Berlin's local clock (1 clock change in the history and horizon)" in out.stderr
    utc_rows = "".join(f"{datetime.fromtimestamp(x, UTC):%Y-%m-%dT%H:%M:%SZ},{v:.3f}\n"
                       for x, v in zip(t, y, strict=True))
    same = cli("forecast", "--horizon", "30", "--tz", "Europe/Berlin", stdin=utc_rows)
    assert same.returncode == 0, same.stderr
    assert [x.split(",")[0] for x in same.stdout.splitlines()] == [x.split(",")[0] for x in lines]
    err = one_line_error(cli("forecast", "--horizon", "3", "--tz", "Europe/Berlinn", str(path)))
    assert err.startswith("levqor forecast: --tz: unknown time zone 'Europe/Berlinn'")


def test_cli_monthly_forecast_steps_by_calendar_months(tmp_path: Path) -> None:
    t = months((2015, 1, 1), 96)
    y = 100 + 10 * np.sin(np.arange(96) * np.pi / 6) + np.arange(96)
    path = tmp_path / "monthly.csv"
    path.write_text(csv_text(t, y))
    out = cli("forecast", "--horizon", "14", str(path))
    assert out.returncode == 0, out.stderr
    dates = [line.split(",")[0] for line in out.stdout.splitlines()[1:]]
    assert dates == [f"{2023 + (m // 12)}-{m % 12 + 1:02d}-01 00:00:00" for m in range(14)]
    assert "step 1 month;" in out.stderr
    ends = months((2010, 1, 31), 60, every=3, day_end=True)
    path.write_text(csv_text(ends, np.arange(60.0)))
    out = cli("forecast", "--horizon", "4", str(path))
    assert out.returncode == 0, out.stderr
    assert [line[:10] for line in out.stdout.splitlines()[1:]] == ["2025-01-31", "2025-04-30", "2025-07-31",
                                                                 "2025-10-31"]
    assert "step 3 months;" in out.stderr


# ---- the detector on a local clock --------------------------------------------------------------

def test_wall_clock_matches_the_zone_offsets() -> None:
    t = utc(2023, 3, 20) + 600.0 * np.arange(6 * 24 * 260)  # ten-minute steps over both 2023 changes
    clock = WallClock(BERLIN)
    assert [clock.wall(float(x)) for x in t] == (t + utc_offsets(t, BERLIN)).tolist()


def alerts_after_change(change: datetime, wall_clock: bool, step_min: int, seeds: range) -> int:
    """Alerts in the week after a clock change on clean noisy local-clock series (twelve weeks before it)."""
    start = change - timedelta(weeks=12)
    count = 0
    for seed in seeds:
        t, y = local_sessions(start, change + timedelta(weeks=2), step_min=step_min, noise=0.08, seed=seed)
        det = AnomalyDetector(DetectorConfig(wall_clock=wall_clock))
        stamps = t + utc_offsets(t, BERLIN) if wall_clock else t
        scores = np.array(feed(det, stamps, y))
        after = (t >= change.timestamp()) & (t < change.timestamp() + 7 * DAY)
        count += int(np.sum(scores[after] >= ALERT_THRESHOLD))
    return count


@pytest.mark.parametrize("change", [datetime(2023, 10, 29, 1, tzinfo=UTC), datetime(2024, 3, 31, 1, tzinfo=UTC)])
def test_a_clock_change_is_not_an_anomaly_on_the_local_clock(change: datetime) -> None:
    # on UTC the daily shape moves an hour: nearly every series alerts in the week after the change
    assert alerts_after_change(change, False, 60, range(4)) >= 3
    assert alerts_after_change(change, True, 60, range(4)) == 0


def test_wall_clock_detector_steps_its_phase_back_with_the_clock() -> None:
    # ten-minute rows: the autumn clock goes back 50 minutes after 02:50; the repeated hour's rows take the
    # phases of the first pass, so the phase after the change is the one a day earlier plus a day
    t, y = local_sessions(datetime(2023, 10, 20, tzinfo=UTC), datetime(2023, 10, 31, tzinfo=UTC), step_min=10)
    det = AnomalyDetector(DetectorConfig(wall_clock=True))
    clock = WallClock(BERLIN)
    phases = {}
    for x, v in zip(t, y, strict=True):
        det.update(float(v), clock.wall(float(x)))
        phases[float(x)] = det.s.phase
    day_before = utc(2023, 10, 28, 12)  # noon local on the 28th (CEST), then noon on the 29th (CET)
    assert phases[day_before + DAY + 3600] - phases[day_before] == 144
    plain = AnomalyDetector()
    feed(plain, t, y)
    assert plain.s.phase - det.s.phase == 6  # on UTC the hour is counted twice
    # a snapshot keeps the wall clock
    more_t = t[-1] + 600.0 * np.arange(1, 200)
    assert round_trip_continues(det, more_t + 3600.0, np.resize(y, 199))


def test_cli_detect_tz(tmp_path: Path) -> None:
    t, y = local_sessions(datetime(2023, 8, 5, tzinfo=UTC), datetime(2023, 11, 5, tzinfo=UTC), noise=0.08, seed=2)
    naive = "timestamp,value\n" + "".join(
        f"{datetime.fromtimestamp(x, BERLIN):%Y-%m-%d %H:%M:%S},{v:.3f}\n" for x, v in zip(t, y, strict=True))
    path = tmp_path / "local.csv"
    path.write_text(naive)
    local = cli("detect", "--tz", "Europe/Berlin", str(path))
    plain = cli("detect", str(path))
    assert local.returncode == 0 and plain.returncode == 0, (local.stderr, plain.stderr)
    assert "; daily and weekly rhythm on Europe/Berlin's local clock" in local.stderr
    assert "local clock" not in plain.stderr
    rows = [line.split(",") for line in local.stdout.splitlines()]
    assert [r[0] for r in rows] == [line.split(",")[0] for line in naive.splitlines()]  # as read
    after = [float(r[1]) for r in rows[1:] if r[0] >= "2023-10-29 03"]
    assert max(after) < ALERT_THRESHOLD
    # the same rows read in memory with UTC stamps give the same scores
    out = io.StringIO()
    utc_rows = [f"{datetime.fromtimestamp(x, UTC).isoformat()},{v:.3f}" for x, v in zip(t, y, strict=True)]
    detect_stream(utc_rows, out, tz="Europe/Berlin")
    assert [line.split(",")[-1] for line in out.getvalue().splitlines()] == [r[1] for r in rows]
    # a zone without clock changes scores exactly as UTC (the phase counts the same steps)
    tokyo, plain_out = io.StringIO(), io.StringIO()
    detect_stream(utc_rows, tokyo, tz="Asia/Tokyo")
    detect_stream(utc_rows, plain_out)
    assert tokyo.getvalue() == plain_out.getvalue()
    err = one_line_error(cli("detect", "--tz", "Berlin", str(path)))
    assert err.startswith("levqor detect: --tz: unknown time zone 'Berlin'")


# ---- gaps in the history ------------------------------------------------------------------------

def with_gaps(t: np.ndarray, y: np.ndarray, seed: int = 4) -> tuple[np.ndarray, np.ndarray, int]:
    """The series with 3 % of its rows and two outages of five rows removed (never the last row)."""
    rng = np.random.default_rng(seed)
    drop = rng.random(len(t)) < 0.03
    drop[400:405] = drop[len(t) - 300:len(t) - 295] = True
    drop[-1] = False
    return t[~drop], y[~drop], int(drop.sum())


def outage(t: np.ndarray, y: np.ndarray, start: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """The series without its rows ``start`` to ``start + length``."""
    keep = np.ones(len(t), bool)
    keep[start:start + length] = False
    return t[keep], y[keep]


@pytest.mark.parametrize("step_min", [60, 1440])
def test_missing_rows_are_interpolated_so_the_seasons_stay_aligned(step_min: int) -> None:
    # hourly (daily and weekly shape) and daily (weekly shape): a missing row used to shift every older
    # season by one step against the forecast
    t, y = local_sessions(datetime(2023, 1, 2, tzinfo=UTC), datetime(2023, 1, 2, tzinfo=UTC) + timedelta(
        weeks=12 if step_min == 60 else 60), step_min=step_min, noise=0.05)
    if step_min == 1440:  # a day's total, with a weekly shape
        y = np.where([datetime.fromtimestamp(x, UTC).weekday() >= 5 for x in t], 40.0, 100.0) * y / y.mean()
    cut = len(t) - (48 if step_min == 60 else 14)
    gt, gy, dropped = with_gaps(t[:cut], y[:cut])
    h = len(t) - cut
    want = y[cut:]
    full = forecast(y[:cut], horizon=h, timestamps=list(t[:cut]))
    filled = forecast(gy, horizon=h, timestamps=list(gt))
    shifted = forecast(gy, horizon=h, timestamps=list(gt), config=ForecastConfig(fill_gaps=False))
    assert filled.missing_steps == dropped and shifted.missing_steps == 0 and full.missing_steps == 0
    assert filled.timestamps == full.timestamps == t[cut:].tolist()
    err = {name: float(np.mean(np.abs(np.array(fc.yhat) - want)))
           for name, fc in (("full", full), ("filled", filled), ("shifted", shifted))}
    assert err["filled"] < 1.2 * err["full"] + 0.5 and err["shifted"] > 2 * err["filled"], err


def test_a_history_mostly_missing_is_not_interpolated() -> None:
    t = utc(2024, 1, 1) + 3600.0 * np.arange(0, 24 * 60, 3)  # every third hour of hourly data...
    t = np.concatenate((t, t[-1] + 3600.0 * np.arange(1, 30)))  # ... then hourly: the step is an hour
    y = 10 + np.sin(2 * np.pi * (t / 3600.0) / 24)
    fc = forecast(y, horizon=5, timestamps=list(t))
    assert fc.missing_steps == 0 and len(fc.yhat) == 5


def test_cli_says_how_many_steps_were_missing(tmp_path: Path) -> None:
    t, y = local_sessions(datetime(2023, 1, 2, tzinfo=UTC), datetime(2023, 2, 27, tzinfo=UTC), noise=0.05)
    gt, gy, dropped = with_gaps(t, y)
    path = tmp_path / "gaps.csv"
    path.write_text(csv_text(gt, gy))
    out = cli("forecast", "--horizon", "24", str(path))
    assert out.returncode == 0, out.stderr
    assert f"rows, step 1 h; {dropped} missing steps interpolated (" in out.stderr
    # a day missing: filled with the daily/weekly shape, and the summary says so
    lt, ly = outage(t, y, 24 * 20, 24)
    path.write_text(csv_text(lt, ly))
    out = cli("forecast", "--horizon", "24", str(path))
    assert "; 24 missing steps interpolated (24 with the season's shape); seasons found" in out.stderr, out.stderr


def test_a_long_outage_is_filled_with_the_season_s_shape() -> None:
    # two days missing from eight weeks of hourly sessions: a straight line across them is a flat
    # stretch where two working days were; the season's shape puts the days back
    t, y = local_sessions(datetime(2023, 1, 2, tzinfo=UTC), datetime(2023, 2, 27, tzinfo=UTC), noise=0.05)
    gt, gy = outage(t, y, 24 * 30, 48)
    pos = np.round((gt - gt[0]) / 3600.0).astype(int)
    gone = slice(24 * 30, 24 * 32)
    line = _on_grid(gy, pos, 3600.0, seasonal=False)[0]
    shaped = _on_grid(gy, pos, 3600.0, seasonal=True)[0]
    assert np.array_equal(line[pos], shaped[pos]) and np.allclose(shaped[pos], gy)  # observed rows kept
    err_line = float(np.mean(np.abs(line[gone] - y[gone])))
    err_shape = float(np.mean(np.abs(shaped[gone] - y[gone])))
    assert err_shape < 0.3 * err_line, (err_shape, err_line)
    # and a forecast made just after it (the outage within the last week: the seasons behind the
    # forecast) errs less than with the line
    cut = 24 * 34
    h = 48
    gt, gy = outage(t[:cut], y[:cut], cut - 24 * 5, 48)
    want = truth(t[cut:cut + h])
    fcs = {name: forecast(gy, horizon=h, timestamps=list(gt), config=ForecastConfig(seasonal_fill=sf))
           for name, sf in (("line", False), ("shape", True))}
    assert fcs["shape"].missing_steps == fcs["line"].missing_steps == 48
    assert fcs["shape"].shaped_steps == 48 and fcs["line"].shaped_steps == 0
    err = {name: float(np.mean(np.abs(np.array(fc.yhat) - want))) for name, fc in fcs.items()}
    assert err["shape"] < 0.7 * err["line"], err


def test_gaps_in_a_series_without_a_season_stay_straight_lines() -> None:
    # a random walk on an hourly clock: the "shape" is noise, and the history's own stretches say so
    rng = np.random.default_rng(5)
    t = utc(2024, 1, 1) + 3600.0 * np.arange(24 * 60)
    y = 500 + np.cumsum(rng.normal(0, 1, len(t)))
    gt, gy = outage(t, y, 700, 30)
    pos = np.round((gt - gt[0]) / 3600.0).astype(int)
    assert np.array_equal(_on_grid(gy, pos, 3600.0, seasonal=True)[0], _on_grid(gy, pos, 3600.0, seasonal=False)[0])
    assert forecast(gy, horizon=5, timestamps=list(gt)).shaped_steps == 0


def test_the_year_of_weekly_data_keeps_its_phase_across_the_years() -> None:
    # a yearly shape on weekly data is 52.18 weeks long: a 52-step shape drifts a week every five
    # or six years, and over forty years smears the peak it fills a gap with
    weeks = np.arange(52 * 40)
    z = 100 + 0.02 * weeks + 5 * np.sin(2 * np.pi * weeks * 7 / 365.25)
    have = np.ones(len(z), bool)
    have[1500:1552] = False  # a year missing
    idx = np.flatnonzero(have)
    line = np.interp(np.arange(len(z)), idx, z[idx])
    year = _fill_season(7 * DAY, len(z))
    assert year == pytest.approx(365.25 / 7)
    err = {name: float(np.mean(np.abs(_seasonal_fill(line, have, p)[~have] - z[~have])))
           for name, p in (("fractional", year), ("whole", 52.0))}
    assert err["fractional"] < 0.2 and err["whole"] > 3 * err["fractional"], err


def test_filled_steps_do_not_calibrate_the_interval() -> None:
    # a naive interval comes from the history's k-step changes: a filled straight stretch would make
    # them look calm; with the filled steps marked unobserved, only observed pairs count
    rng = np.random.default_rng(6)
    z = np.cumsum(rng.normal(0, 1, 400))
    z[50:350] = np.linspace(z[50], z[349], 300)  # as filled
    obs = np.ones(400, bool)
    obs[51:349] = False
    cfg = ForecastConfig()
    _, lo_all, hi_all = _naive(z, 5, 0, cfg)
    _, lo_obs, hi_obs = _naive(z, 5, 0, cfg, obs)
    assert np.all(hi_obs - lo_obs > 1.3 * (hi_all - lo_all))
    d1 = (z[1:] - z[:-1])[obs[1:] & obs[:-1]]
    assert hi_obs[0] == pytest.approx(float(np.quantile(d1, 0.95)))


# ---- calibration of the naive family ------------------------------------------------------------


def test_a_series_that_only_fell_gets_a_finite_interval_on_both_sides() -> None:
    # a yearly rate that fell every year but a few (as a fertility rate): the naive forecast's past
    # k-step changes are all negative, so its uncalibrated upper offset was below the forecast; the
    # backtest errors above it were scored against ~0 and the interval came out as [0, inf]
    rng = np.random.default_rng(5)  # (this draw's last cut chose naive with such an upper offset)
    steps = -np.abs(rng.normal(0.08, 0.05, 44))
    steps[[38, 40, 41]] = [0.05, 0.04, 0.06]
    y = 6.0 + np.concatenate(([0.0], np.cumsum(steps)))
    t = months((1970, 1, 1), len(y), every=12)
    for cut in range(len(y) - 8, len(y) + 1):
        fc = forecast(y[:cut], horizon=5, timestamps=list(t[:cut]))
        lo, mid, hi = np.array(fc.lower), np.array(fc.yhat), np.array(fc.upper)
        assert np.isfinite(hi).all() and np.isfinite(lo).all(), (cut, fc.method, hi)
        assert (lo <= mid).all() and (mid < hi).all() and (hi - mid < 5).all(), (cut, fc.method, lo, mid, hi)

def random_walk(calm_last: bool, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Fifty years of a quarterly random walk with drift (as GDP), the last twelve and a half calmer (or
    wilder) than the rest."""
    rng = np.random.default_rng(seed)
    sd = np.where(np.arange(200) < 150, 3.0, 1.0 if calm_last else 9.0)
    return months((1960, 1, 1), 200, every=3), 1000 + np.cumsum(2.0 + rng.normal(0, 1, 200) * sd)


def widths(t: np.ndarray, y: np.ndarray, pooling: bool) -> tuple[str, float]:
    fc = forecast(y, horizon=8, timestamps=list(t), config=ForecastConfig(calm_pooling=pooling, log_scale=False))
    return fc.method, float(np.mean(np.array(fc.upper) - np.array(fc.lower)))


def test_a_calm_recent_stretch_narrows_a_naive_interval_only_halfway() -> None:
    t, y = random_walk(calm_last=True)
    method, pooled = widths(t, y, True)
    same_method, recent_only = widths(t, y, False)
    assert method == same_method == "drift"
    assert pooled > 1.2 * recent_only  # the whole history's changes keep half the say
    # a wilder recent stretch widens the interval as before (the factor is above 1: nothing pooled)
    t, y = random_walk(calm_last=False)
    assert widths(t, y, True) == widths(t, y, False)
    # a seasonal model's interval is its own (recent residuals): unchanged
    ts, ys = local_sessions(datetime(2023, 8, 20, tzinfo=UTC), datetime(2023, 10, 20, tzinfo=UTC), noise=0.1)
    a = forecast(ys, horizon=24, timestamps=list(ts), config=ForecastConfig(calm_pooling=True))
    b = forecast(ys, horizon=24, timestamps=list(ts), config=ForecastConfig(calm_pooling=False))
    assert a.method.startswith("model") and (a.lower, a.upper) == (b.lower, b.upper)
