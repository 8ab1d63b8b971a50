"""Wall clocks for the forecaster and the detector: time zones and calendar steps.

A series of people's activity follows their local clock: its daily shape moves an hour against UTC
when the clocks change, its holidays are local dates, and a monthly series steps by calendar months,
not by a fixed number of seconds. These helpers turn epoch seconds into *wall times* (seconds since
1970-01-01 00:00 on the local clock, the form ``datetime`` arithmetic on naive times uses) and back,
and step a series' timestamps the way its calendar does.
"""

from __future__ import annotations

import calendar
import math
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    Array = NDArray[np.float64]

DAY_S = 86400.0
_EPOCH = datetime(1970, 1, 1)
_MONTH_STEPS = (1, 2, 3, 4, 6, 12)  # calendar steps recognised: months, quarters, half years, years


class ClockError(ValueError):
    """A time zone name that is not in the IANA time zone database."""


def zone(name: str) -> tzinfo:
    """The IANA time zone ``name`` (``Europe/Berlin``, ``America/New_York``, ``UTC``); ``ClockError``
    when there is no such zone."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # kept lazy: start-up time

    key = name.strip()
    try:
        if not key:
            raise ValueError
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError):
        raise ClockError(f"unknown time zone {name!r}: expected an IANA name such as Europe/Berlin, "
                         "America/New_York or UTC") from None


def _offset(ts: float, tz: tzinfo) -> float:
    off = datetime.fromtimestamp(ts, tz).utcoffset()
    return off.total_seconds() if off is not None else 0.0


def utc_offsets(t: Array, tz: tzinfo) -> Array:
    """The zone's UTC offset (seconds, east positive) at each epoch second of ``t``. Looked up once per
    UTC day (at its first and last second) and per point only on days where the offset changes."""
    import numpy as np  # kept lazy: start-up time

    days = np.floor(t / DAY_S)
    uniq, inv = np.unique(days, return_inverse=True)
    steady = np.array([_day_offset(float(d), tz) for d in uniq])  # NaN: the offset changes that day
    out: Array = steady[inv]
    for i in np.flatnonzero(np.isnan(out)):
        out[i] = _offset(float(t[i]), tz)
    return out


def _day_offset(day: float, tz: tzinfo) -> float:
    """The zone's offset through UTC day number ``day`` (its first and last second agree), else NaN."""
    first, last = _offset(day * DAY_S, tz), _offset(day * DAY_S + DAY_S - 1, tz)
    return first if first == last else math.nan


class WallClock:
    """Epoch seconds to the zone's wall times one at a time, for a stream of increasing timestamps: the
    offset is looked up once per UTC day (at its first and last second) and per point only on a day
    where it changes."""

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        self._day = math.nan
        self._off = math.nan  # the day's offset (``_day_offset``: NaN when it changes that day)

    def wall(self, ts: float) -> float:
        """The wall time of epoch second ``ts``."""
        day = ts // DAY_S
        if day != self._day:
            self._day = day
            self._off = _day_offset(day, self.tz)
        return ts + (self._off if self._off == self._off else _offset(ts, self.tz))


def wall_to_utc(wall: float, tz: tzinfo | None) -> float:
    """Epoch seconds of the wall time ``wall`` on the zone's clock (UTC when ``tz`` is None): the first of
    the two moments when the clock shows it twice (autumn), and the moment an hour later when the clock
    skips it (spring), as ``datetime`` does for ``fold=0``."""
    if tz is None:
        return wall
    return (_EPOCH + timedelta(seconds=wall)).replace(tzinfo=tz).timestamp()


def month_step(wall: Array) -> tuple[int, int]:
    """(months per step, anchor day) when the wall times ``wall`` step by calendar months (1, 2, 3, 4, 6
    or 12; gaps of whole steps allowed), all at the same time of day, each on the anchor day of its month
    or on the month's last day when the month is shorter (the 1st, the 15th, month ends); (0, 0) otherwise."""
    import numpy as np  # kept lazy: start-up time

    if len(wall) < 2:
        return 0, 0
    typical = float(np.median(np.diff(wall))) / DAY_S
    if not 27.5 <= typical <= 367.0:
        return 0, 0
    dts = [_EPOCH + timedelta(seconds=float(w)) for w in wall]
    if any(d.time() != dts[0].time() for d in dts):
        return 0, 0
    months = np.array([d.year * 12 + d.month for d in dts])
    steps = np.diff(months)
    k = int(np.median(steps))
    if k not in _MONTH_STEPS or (steps <= 0).any() or (steps % k).any():
        return 0, 0
    anchor = max(d.day for d in dts)
    if any(d.day != min(anchor, calendar.monthrange(d.year, d.month)[1]) for d in dts):
        return 0, 0
    return k, anchor


def add_months(wall: float, months: int, anchor: int) -> float:
    """The wall time ``months`` calendar months after ``wall``, on the ``anchor`` day of that month (its
    last day when the month is shorter), at the same time of day."""
    d = _EPOCH + timedelta(seconds=wall)
    year, month0 = divmod(d.year * 12 + d.month - 1 + months, 12)
    day = min(anchor, calendar.monthrange(year, month0 + 1)[1])
    return (d.replace(year=year, month=month0 + 1, day=day) - _EPOCH).total_seconds()


def future_stamps(t: Array, off: Array, step_s: float, horizon: int, tz: tzinfo | None
                  ) -> tuple[list[float], int]:
    """(Epoch seconds of the ``horizon`` steps after the timestamps ``t`` (UTC offsets ``off``), calendar
    months per step or 0): by calendar months when the series steps by months (``month_step`` on its
    wall times), by the local clock's days for a daily or longer step in a time zone ``tz`` (the same
    local time each day across clock changes), else ``step_s`` seconds apart."""
    wall = t + off
    last = float(wall[-1])
    months, anchor = month_step(wall)
    if months:
        return [wall_to_utc(add_months(last, months * h, anchor), tz) for h in range(1, horizon + 1)], months
    if tz is not None and step_s >= DAY_S and step_s % DAY_S == 0:
        return [wall_to_utc(last + step_s * h, tz) for h in range(1, horizon + 1)], 0
    return [float(t[-1]) + step_s * h for h in range(1, horizon + 1)], 0


def format_local(ts: float, tz: tzinfo) -> str:
    """``YYYY-MM-DD HH:MM:SS+HH:MM``: the zone's local time with its UTC offset (ISO 8601)."""
    return datetime.fromtimestamp(ts, UTC).astimezone(tz).isoformat(sep=" ")
