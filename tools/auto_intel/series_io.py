"""CSV plumbing for ``levqor detect`` and ``levqor forecast``: ``timestamp,value`` rows in, text out.

Timestamps may be ISO 8601 (naive ones are taken as UTC, or as local time in the time zone
``--tz`` names) or epoch seconds; a header row and a missing timestamp column are
both accepted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, tzinfo
from typing import TextIO

from tools.auto_intel.anomaly_detector import AnomalyDetector, DetectorConfig
from tools.auto_intel.calendars import named_holiday_starts
from tools.auto_intel.clock import ClockError, WallClock, format_local, zone
from tools.auto_intel.predictor import Forecast, ForecastError, forecast, holiday_key, infer_step


def parse_ts(text: str, tz: tzinfo | None = None, fold: int = 0) -> tuple[float | None, bool]:
    """Return (epoch seconds or None, whether the text was ISO) for one timestamp field. A naive ISO
    time is in ``tz`` (UTC when None); ``fold`` 1 reads a wall time the clock shows twice as the later."""
    t = text.strip()
    if not t:
        return None, False
    try:
        return float(t), False
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        return None, False
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz if tz is not None else UTC, fold=fold)
    return dt.timestamp(), True


class SeriesError(ValueError):
    """A row of the CSV cannot be read; the message names the row (1-based line number)."""


_MISSING = ("", "nan", "null", "none", "na")
_NO_ROWS = "no data rows: expected a CSV of timestamp,value rows (an optional header first)"


def parse_row(line: str, tz: tzinfo | None = None) -> tuple[float | None, float, bool] | None:
    """Split one CSV line into (timestamp, value, iso); None for a blank line.

    A missing value (empty, ``nan``, ``null``) gives NaN; any other value that is not a number
    raises ``ValueError`` (the caller names the row), as does a timestamp it cannot read. A naive
    ISO timestamp is in ``tz`` (UTC when None).
    """
    parts = line.strip().split(",")
    if not parts or parts[0] == "" and len(parts) == 1:
        return None
    if len(parts) > 2:
        raise ValueError(f"{len(parts)} columns, expected timestamp,value")
    raw = parts[1] if len(parts) > 1 else parts[0]
    try:
        value = float(raw)
    except ValueError:
        if raw.strip().lower() not in _MISSING:
            raise ValueError(f"value {raw.strip()[:40]!r} is not a number") from None
        value = math.nan
    if len(parts) == 1:
        return None, value, False
    ts, iso = parse_ts(parts[0], tz)
    if ts is None and parts[0].strip():
        raise ValueError(f"timestamp {parts[0].strip()[:40]!r} is neither ISO 8601 nor epoch seconds")
    return ts, value, iso


def _rows(lines: Iterable[str], tz: tzinfo | None = None
          ) -> Iterator[tuple[int, str, tuple[float | None, float, bool]]]:
    """Yield (line number, timestamp text, parsed row) for each data row; a first-line header is skipped."""
    first = True
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = parse_row(line, tz)
        except ValueError as exc:
            if first and line.count(",") <= 1:
                first = False
                continue  # a header row (timestamp,value or any other names)
            raise SeriesError(f"row {no}: {exc}") from None
        first = False
        if row is not None:
            yield no, line.split(",", 1)[0].strip() if "," in line else "", row


def detect_stream(lines: Iterable[str], out: TextIO, *, flush: bool = True,
                  err: TextIO | None = None, tz: str | None = None) -> int:
    """Score each data row as it is read and write ``timestamp,score`` per row; return rows scored.

    Writes a ``timestamp,score`` header first and, at the end, to ``err`` how many rows were
    scored and how many of them were warm-up rows scoring 0. Raises ``SeriesError`` naming the
    row for a value that is not a number, a row with the wrong number of columns or an input
    without data rows, or for an unknown ``tz``. With ``tz`` (an IANA name) the series follows that
    zone's clock: naive timestamps are its local time, and the detector's daily and weekly
    profiles stay on local hours across clock changes (``DetectorConfig.wall_clock``); each row's
    timestamp is written back as it was read.
    """
    try:
        clock = WallClock(zone(tz)) if tz is not None else None
    except ClockError as exc:
        raise SeriesError(str(exc)) from None
    det = AnomalyDetector(DetectorConfig(wall_clock=True)) if clock is not None else AnomalyDetector()
    update = det.update
    out.write("timestamp,score\n")
    if flush:
        out.flush()
    n = 0
    for _no, ts_text, row in _rows(lines, clock.tz if clock is not None else None):
        stamp = row[0] if clock is None or row[0] is None else clock.wall(row[0])
        out.write(f"{ts_text},{update(row[1], stamp):.6f}\n")
        if flush:
            out.flush()
        n += 1
    out.flush()
    if not n:
        raise SeriesError(_NO_ROWS)
    if err is not None:
        clock_note = f"; daily and weekly rhythm on {tz}'s local clock" if tz is not None else ""
        err.write(f"levqor detect: {n} rows scored; the first {min(n, det.cfg.warmup)} are warm-up "
                  f"(learning the series) and score 0{clock_note}\n")
        err.flush()
    return n


def format_ts(ts: float, iso: bool, tz: tzinfo | None = None) -> str:
    """Epoch seconds as the input gave them (``iso`` False), else ``YYYY-MM-DD HH:MM:SS`` in UTC, or
    with ``tz`` the zone's local time with its UTC offset (``2024-03-31 03:00:00+02:00``)."""
    if not iso:
        return f"{ts:.0f}" if ts == int(ts) else f"{ts:.3f}"
    if tz is not None:
        return format_local(ts, tz)
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


Holiday = tuple[float, str | None]  # (epoch seconds of the day, name or None)


def read_holidays(lines: Iterable[str]) -> list[Holiday]:
    """Holidays, one per line: an ISO 8601 date (or time, or epoch seconds), optionally followed by a
    comma and the holiday's name (``2024-12-25,Christmas``); an optional header line is skipped.
    Days with the same name are the same holiday to the forecaster; an unnamed one is the same as
    the others on its month and day. Raises ``SeriesError`` naming the row when a date cannot be
    read."""
    out: list[Holiday] = []
    for no, line in enumerate(lines, 1):
        text, _sep, rest = line.partition(",")
        text = text.strip()
        if not text:
            if rest.strip():
                raise SeriesError(f"holidays row {no}: no date before the name (expected YYYY-MM-DD,name)")
            continue
        ts, _iso = parse_ts(text)
        if ts is None:
            if not out and no == 1:
                continue  # a header
            raise SeriesError(f"holidays row {no}: {text[:40]!r} is not a date (YYYY-MM-DD or YYYY-MM-DD,name)")
        out.append((ts, rest.strip().strip('"').strip() or None))
    return out


def _with_country(holidays: list[Holiday], named: list[tuple[float, str]]) -> list[Holiday]:
    """The file's holidays and a country's named ones: a named day from the file replaces the
    country's entries on that day, and a country's name replaces the file's unnamed entry."""
    day = 86400.0
    file_named = {h[0] // day for h in holidays if h[1]}
    country_days = {t // day for t, _name in named}
    kept: list[Holiday] = [h for h in holidays if h[1] or h[0] // day not in country_days]
    return sorted(kept + [(t, name) for t, name in named if t // day not in file_named],
                  key=lambda h: (h[0], h[1] or ""))


def forecast_csv(lines: Iterable[str], out: TextIO, *, horizon: int, holidays: list[Holiday] | None = None,
                 country: str | None = None, tz: str | None = None, err: TextIO | None = None) -> Forecast:
    """Read the whole history, forecast ``horizon`` steps and write ``timestamp,yhat,lower,upper``.
    ``holidays`` are (day start in epoch seconds, name or None) pairs (``read_holidays``);
    ``country`` adds that country's built-in national calendar with its holidays' names
    (``tools.auto_intel.calendars``) over the history and the horizon. ``tz`` (an IANA name): the
    series follows that zone's clock (``forecast``); naive timestamps are its local time (the hour the
    clock shows twice in autumn read in order: first the earlier, then the later), and the output's
    are local with their UTC offset. At the end, writes to ``err`` one line saying what the forecast
    is based on: rows, step, seasons found, the clock, the method the backtests chose and how many
    holiday dates (and distinct names) were given. Raises ``SeriesError`` for an unknown ``tz``."""
    try:
        tzi = zone(tz) if tz is not None else None
    except ClockError as exc:
        raise SeriesError(str(exc)) from None
    ts: list[float] = []
    ys: list[float] = []
    iso = False
    for no, text, row in _rows(lines, tzi):
        if row[1] != row[1]:
            continue
        stamp = row[0]
        if stamp is None:
            raise SeriesError(f"row {no}: every row needs a timestamp (timestamp,value)")
        if ts and stamp <= ts[-1] and tzi is not None and row[2]:
            later = parse_ts(text, tzi, fold=1)[0]  # the second time the clock shows this hour
            stamp = later if later is not None and later > ts[-1] else stamp
        if ts and stamp <= ts[-1]:
            raise SeriesError(f"row {no}: timestamps must increase")
        ts.append(stamp)
        ys.append(row[1])
        iso = iso or row[2]
    if not ys:
        raise SeriesError(_NO_ROWS)
    if len(ys) < 3:
        raise ForecastError(f"need at least three rows of history, got {len(ys)}")
    if country is not None:
        step = infer_step(ts)
        holidays = _with_country(holidays or [], named_holiday_starts(country, ts[0], ts[-1] + horizon * step))
    fc = forecast(ys, horizon=horizon, timestamps=ts, holidays=[h[0] for h in holidays or []],
                  holiday_names=[h[1] for h in holidays or []], tz=tz)
    out.write("timestamp,yhat,lower,upper\n")
    for t, y, lo, hi in zip(fc.timestamps, fc.yhat, fc.lower, fc.upper, strict=True):
        out.write(f"{format_ts(t, iso, tzi)},{y:.6g},{lo:.6g},{hi:.6g}\n")
    out.flush()
    if err is not None:
        names = {key for h in holidays or [] if (key := holiday_key(h[1]))}
        given = (f"; {len({h[0] // 86400.0 for h in holidays})} holiday dates given"
                 f"{f' ({len(names)} names)' if names else ''}" if holidays else "")
        shape = f" ({fc.shaped_steps} with the season's shape)" if fc.shaped_steps else ""
        gaps = (f"; {fc.missing_steps} missing step{'s' if fc.missing_steps != 1 else ''} interpolated{shape}"
                if fc.missing_steps else "")
        also = (f", averaged with {' and '.join(fc.members[1:])} (as good within the backtests' noise)"
                if len(fc.members) > 1 else "")
        chosen = ("the best of the candidates in backtests on the history" if fc.backtests
                  else "the history is too short to backtest the candidates")
        interval = ("calibrated on the same backtests" if fc.calibrated else
                    "not calibrated (too few backtests): at least as wide as the history's own changes over each "
                    "step's distance")
        err.write(f"levqor forecast: {len(ys)} rows, step {_step_text(fc)}{gaps}; seasons found: "
                  f"{', '.join(fc.seasons) or 'none'}{_clock_text(fc)}; method: {fc.method} ({chosen})"
                  f"{also}{given}; 90% interval {interval}\n")
        err.flush()
    return fc


def _step_text(fc: Forecast) -> str:
    """The step as a user would say it: "1 h", "1 d", or in calendar months ("1 month", "3 months")."""
    if fc.step_months:
        return {1: "1 month", 12: "1 year"}.get(fc.step_months, f"{fc.step_months} months")
    return _duration(fc.step_s)


def _clock_text(fc: Forecast) -> str:
    """Which clock the seasons follow, when a time zone was given."""
    if fc.tz is None:
        return ""
    changes = f"{fc.clock_changes} clock change{'s' if fc.clock_changes != 1 else ''}"
    if fc.local_clock:
        return f"; on {fc.tz}'s local clock ({changes} in the history and horizon)"
    if fc.clock_changes and fc.step_s < 86400:
        return (f"; dates in {fc.tz}, seasons on UTC ({changes}; the rows do not fall on a regular grid of "
                f"{_duration(fc.step_s)} steps of its local clock)")
    return f"; dates in {fc.tz} ({changes})"


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"
