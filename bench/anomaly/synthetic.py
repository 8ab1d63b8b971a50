"""Synthetic series with known anomalies: extra *training* data for the detector's cross-validation.

Kinds the NAB development files under-represent: level shifts (also in a daily series), daily
seasonality whose scale changes, spiky counts (also with a daily rate), slow drifts (also as the
anomaly: a leak's ramp), flat lines (also a frozen sensor), each with one labelled anomaly (a NAB-style
window: 10 % of the file, centred on the anomaly's start) or none. Deterministic (seeded).
The training kinds are never scored as results; they only help choose parameters. ``HELDOUT_KINDS`` with
seeds 101-110 are flat-line test series that no training corpus uses (the bench scores them once, with
the configuration and thresholds chosen on the training data).
"""

from __future__ import annotations

import numpy as np

N = 4032  # 14 days of 5-minute samples
STEP_S = 300
T0 = 1_400_000_000  # epoch seconds
DAY = 288


def _daily(t: np.ndarray) -> np.ndarray:
    return np.sin(2 * np.pi * t / DAY)


def series(kind: str, seed: int) -> tuple[np.ndarray, np.ndarray, int | None]:
    """Return (epoch seconds, values, anomaly start index or None) for one synthetic series."""
    rng = np.random.default_rng(seed)
    t = np.arange(N)
    at: int | None = int(rng.integers(int(0.45 * N), int(0.85 * N)))
    if kind == "level_shift":
        y = 20 + rng.normal(0, 1.0, N)
        y[at:] += rng.choice([-1, 1]) * rng.uniform(4, 8)
    elif kind == "seasonal_scale":  # daily shape whose amplitude grows 3x; anomaly: a flat day
        amp = 10 * (1 + 2 * t / N)
        y = 100 + amp * _daily(t) + rng.normal(0, 1.5, N) * (1 + t / N)
        y[at:at + DAY // 3] = y[at]
    elif kind == "spiky_counts":  # Poisson counts with routine single spikes; anomaly: a burst
        y = rng.poisson(2.0, N).astype(float)
        spikes = rng.choice(N, N // 100, replace=False)
        y[spikes] += rng.poisson(8, len(spikes))
        y[at:at + 60] += rng.poisson(12, 60)
    elif kind == "slow_drift":  # trending random walk; anomaly: a spike
        y = 50 + np.cumsum(rng.normal(0.01, 0.3, N))
        y[at] += 25 * rng.choice([-1, 1])
    elif kind == "flat_line":  # constant with rare tiny steps; anomaly: noise appears
        y = np.full(N, 5.0) + np.repeat(rng.normal(0, 0.01, N // 288 + 1), 288)[:N]
        y[at:at + 200] += rng.normal(0, 2.0, 200)
    elif kind == "drift_leak":  # daily noise around a steady level; anomaly: a slow upward ramp begins
        y = 40 + 3 * _daily(t) + rng.normal(0, 1.0, N)
        y[at:] += 0.02 * (t[at:] - at)
    elif kind == "seasonal_counts":  # tweet-like counts with a daily rate; anomaly: a two-hour burst
        rate = 6 * (1.2 + _daily(t))
        y = rng.poisson(rate).astype(float)
        y[at:at + 24] += rng.poisson(4 * rate[at:at + 24].mean() + 10, 24)
    elif kind == "stuck_sensor":  # noisy daily series; anomaly: the value freezes for a day and a half
        y = 60 + 10 * _daily(t) + rng.normal(0, 2.0, N)
        y[at:at + 432] = y[at]
    elif kind == "seasonal_level_shift":  # daily series; anomaly: its level drops and stays down
        y = 200 + 30 * _daily(t) + rng.normal(0, 5.0, N)
        y[at:] -= rng.uniform(25, 40)
    elif kind == "frozen_walk":  # noisy random walk (no daily rhythm); anomaly: it freezes for 6 hours
        y = 30 + np.cumsum(rng.normal(0, 0.5, N))
        y[at:at + 72] = y[at]
    elif kind == "frozen_counts":  # Poisson counts with a daily rate; anomaly: stuck at 0 for 4 hours
        y = rng.poisson(8 * (1.2 + _daily(t))).astype(float)
        y[at:at + 48] = 0.0
    elif kind == "seasonal_scale_clean":
        amp = 10 * (1 + 2 * t / N)
        y = 100 + amp * _daily(t) + rng.normal(0, 1.5, N) * (1 + t / N)
        at = None
    elif kind == "spiky_counts_clean":
        y = rng.poisson(2.0, N).astype(float)
        spikes = rng.choice(N, N // 100, replace=False)
        y[spikes] += rng.poisson(8, len(spikes))
        at = None
    else:
        raise ValueError(kind)
    return T0 + t * STEP_S, y, at


KINDS = ("level_shift", "seasonal_scale", "spiky_counts", "slow_drift", "flat_line",
         "seasonal_scale_clean", "spiky_counts_clean")
# More kinds, not in the default training corpus (``corpus(extra=True)`` adds them): with them the
# cross-validation's choice collapses (docs/models.md, "Not reached yet"), so they are kept for study.
EXTRA_KINDS = ("drift_leak", "seasonal_counts", "stuck_sensor", "seasonal_level_shift")
# Flat-line kinds used only as held-out test series (never in training): a frozen value in a noisy
# series, with or without a daily rhythm or counts, and the flat line of KINDS with unseen seeds.
HELDOUT_KINDS = ("flat_line", "stuck_sensor", "frozen_walk", "frozen_counts")
ALL_KINDS = KINDS + EXTRA_KINDS + ("frozen_walk", "frozen_counts")


def corpus(seeds: tuple[int, ...] = (1, 2), extra: bool = False, kinds: tuple[str, ...] | None = None,
           ) -> list[tuple[str, np.ndarray, np.ndarray, list[tuple[int, int]]]]:
    """(key, epoch seconds, values, windows as (first row, last row)) for every kind and seed."""
    out = []
    width = N // 10
    for kind in kinds or (KINDS + EXTRA_KINDS if extra else KINDS):
        for seed in seeds:
            ts, y, at = series(kind, seed * 1000 + ALL_KINDS.index(kind))
            wins = [] if at is None else [(max(0, at - width // 2), min(N - 1, at + width // 2))]
            out.append((f"synthetic/{kind}_{seed}.csv", ts, y, wins))
    return out
