"""CSV plumbing for ``levqor detect`` and ``levqor forecast``: ``timestamp,value`` rows in, text out.

Timestamps may be ISO 8601 (naive ones are taken as UTC) or epoch seconds; a header row and a
missing timestamp column are both accepted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TextIO

from tools.auto_intel.anomaly_detector import AnomalyDetector
from tools.auto_intel.predictor import Forecast, ForecastError, forecast


def parse_ts(text: str) -> tuple[float | None, bool]:
    """Return (epoch seconds or None, whether the text was ISO) for one timestamp field."""
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
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp(), True


def parse_row(line: str) -> tuple[float | None, float, bool] | None:
    """Split one CSV line into (timestamp, value, iso); None for a header or blank line."""
    parts = line.strip().split(",")
    if not parts or parts[0] == "":
        return None
    raw = parts[1] if len(parts) > 1 else parts[0]
    try:
        value = float(raw)
    except ValueError:
        if raw.strip().lower() in ("", "nan", "null", "none"):
            value = math.nan
        else:
            return None  # a header (or a row with no number): nothing to score
    if len(parts) == 1:
        return None, value, False
    ts, iso = parse_ts(parts[0])
    return ts, value, iso


def detect_stream(lines: Iterable[str], out: TextIO, *, flush: bool = True) -> int:
    """Score each data row as it is read and write one score per row; return rows scored."""
    det = AnomalyDetector()
    update = det.update
    n = 0
    first = True
    for line in lines:
        row = parse_row(line)
        if row is None:
            if first or not line.strip():
                first = False
                continue  # header or blank line
            out.write("0.0\n")  # an unreadable data row still gets its line
            n += 1
            continue
        first = False
        out.write(f"{update(row[1], row[0]):.6f}\n")
        if flush:
            out.flush()
        n += 1
    out.flush()
    return n


def format_ts(ts: float, iso: bool) -> str:
    if not iso:
        return f"{ts:.0f}" if ts == int(ts) else f"{ts:.3f}"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def forecast_csv(lines: Iterable[str], out: TextIO, *, horizon: int) -> Forecast:
    """Read the whole history, forecast ``horizon`` steps and write ``timestamp,yhat,lower,upper``."""
    ts: list[float] = []
    ys: list[float] = []
    iso = False
    for line in lines:
        row = parse_row(line)
        if row is None or row[1] != row[1]:
            continue
        if row[0] is None:
            raise ForecastError("every row needs a timestamp (timestamp,value)")
        ts.append(row[0])
        ys.append(row[1])
        iso = iso or row[2]
    if len(ys) < 3:
        raise ForecastError(f"need at least three rows of history, got {len(ys)}")
    fc = forecast(ys, horizon=horizon, timestamps=ts)
    for t, y, lo, hi in zip(fc.timestamps, fc.yhat, fc.lower, fc.upper, strict=True):
        out.write(f"{format_ts(t, iso)},{y:.6g},{lo:.6g},{hi:.6g}\n")
    out.flush()
    return fc
