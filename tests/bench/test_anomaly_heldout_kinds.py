"""The detector's held-out synthetic kinds (bench/anomaly/synthetic.py): deterministic, one labelled
window around each anomaly, and never drawn with a seed that a training corpus uses."""

from __future__ import annotations

import importlib.util
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from tests.support import ROOT


@pytest.fixture(scope="module")
def syn() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_anomaly_synthetic", ROOT / "bench/anomaly/synthetic.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_heldout_kinds_are_deterministic(syn: ModuleType) -> None:
    a = syn.corpus(seeds=syn.HELDOUT_SEEDS, kinds=syn.HELDOUT_KINDS)
    b = syn.corpus(seeds=syn.HELDOUT_SEEDS, kinds=syn.HELDOUT_KINDS)
    assert len(a) == 10 * len(syn.HELDOUT_KINDS)
    for (ka, ta, ya, wa), (kb, tb, yb, wb) in zip(a, b, strict=True):
        assert ka == kb and wa == wb
        assert np.array_equal(ta, tb) and np.array_equal(ya, yb)


def test_each_heldout_series_has_one_window_around_its_anomaly(syn: ModuleType) -> None:
    signs: dict[str, set[float]] = {}
    for key, _, y, wins in syn.corpus(seeds=syn.HELDOUT_SEEDS, kinds=syn.HELDOUT_KINDS):
        kind, seed = key.removeprefix("synthetic/").removesuffix(".csv").rsplit("_", 1)
        if kind.endswith("_clean"):
            assert wins == [], key
            continue
        assert len(wins) == 1, key
        w0, w1 = wins[0]
        if kind not in syn.UNSEEN_KINDS:  # flat-line kinds: the window is centred on the anomaly's start
            at = syn.series(kind, int(seed) * 1000 + syn.ALL_KINDS.index(kind))[2]
            assert w0 < at < w1, key
            continue
        # the same series without its anomaly departs from it first inside the window, and after the
        # window the two differ by a constant (0, or a level shift that persists)
        clean = syn.heldout_series(kind, int(seed) * 1000 + syn.ALL_KINDS.index(kind), inject=False)[1]
        diff = y - clean
        moved = np.nonzero(np.abs(diff) > 1e-9)[0]
        assert len(moved) and w0 <= moved[0] <= w1, key
        assert np.allclose(diff[w1 + 1:], diff[-1]), key
        if kind == "ramp_drift":  # the window covers the whole ramp: it has ended by the window's end
            assert np.isclose(diff[w1], diff[-1]), key
        signs.setdefault(kind, set()).add(float(np.sign(diff[moved[0]])))
        if kind == "weekly_level_shift":  # 3-6 noise sigmas (sd 10)
            assert 30 <= abs(diff[-1]) <= 60, key
    assert signs["weekly_level_shift"] == {-1.0, 1.0}  # shifts up and down
    assert signs["growing_season"] == {-1.0, 1.0}  # spikes and dips
    assert signs["sparse_counts_burst"] == {1.0}


def test_no_heldout_series_shares_a_seed_or_kind_with_training(syn: ModuleType) -> None:
    def generator_seeds(kinds: tuple[str, ...], seeds: tuple[int, ...] | range) -> set[int]:
        return {s * 1000 + syn.ALL_KINDS.index(k) for k in kinds for s in seeds}

    training_kinds = syn.KINDS + syn.EXTRA_KINDS
    assert not set(syn.UNSEEN_KINDS) & set(training_kinds)
    assert min(syn.HELDOUT_SEEDS) > 100 and len(set(syn.ALL_KINDS)) == len(syn.ALL_KINDS) < 1000
    training = generator_seeds(training_kinds, range(1, 101))  # every draw the bench offers (--synthetic-seeds)
    assert not generator_seeds(syn.HELDOUT_KINDS, syn.HELDOUT_SEEDS) & training
    # and no held-out series equals a training one
    held = {y.tobytes() for _, _, y, _ in syn.corpus(seeds=syn.HELDOUT_SEEDS, kinds=syn.HELDOUT_KINDS)}
    train = {y.tobytes() for _, _, y, _ in syn.corpus(seeds=(1, 2, 3, 4, 5, 6, 7, 8), extra=True)}
    assert not held & train


def test_fresh_kind_is_hourly_weekly_and_shifts_inside_its_window(syn: ModuleType) -> None:
    items = syn.corpus(seeds=syn.FRESH_SEEDS, kinds=syn.FRESH_KINDS)
    assert len(items) == 10 and min(syn.FRESH_SEEDS) > 200
    signs = set()
    for key, ts, y, wins in items:
        seed = int(key.removesuffix(".csv").rsplit("_", 1)[1])
        assert np.all(np.diff(ts) == 3600) and 8 * 168 <= len(y) <= 10 * 168, key
        clean = syn.fresh_series("weekly_shift_hourly", seed * 1000 + syn.ALL_KINDS.index("weekly_shift_hourly"),
                                 inject=False)[1]
        diff = y - clean
        moved = np.nonzero(np.abs(diff) > 1e-9)[0]
        (w0, w1), = wins
        assert w0 <= moved[0] <= w1 and np.allclose(diff[moved[0]:], diff[-1]), key
        assert 18 <= abs(diff[-1]) <= 36, key  # 3-6 noise sigmas (sd 6)
        signs.add(float(np.sign(diff[-1])))
    assert signs == {-1.0, 1.0}
    # never a training draw
    training = {s * 1000 + syn.ALL_KINDS.index(k) for k in syn.KINDS + syn.EXTRA_KINDS for s in range(1, 101)}
    assert not {s * 1000 + syn.ALL_KINDS.index(k) for k in syn.FRESH_KINDS for s in syn.FRESH_SEEDS} & training


def test_fresh_scaling_kind_grows_or_shrinks_and_departs_inside_its_window(syn: ModuleType) -> None:
    items = syn.corpus(seeds=syn.FRESH_SCALE_SEEDS, kinds=syn.FRESH_SCALE_KINDS)
    assert len(items) == 20 and min(syn.FRESH_SCALE_SEEDS) > 300
    again = syn.corpus(seeds=syn.FRESH_SCALE_SEEDS, kinds=syn.FRESH_SCALE_KINDS)
    assert all(np.array_equal(a[2], b[2]) and a[3] == b[3] for a, b in zip(items, again, strict=True))
    signs, folds = set(), set()
    for key, ts, y, wins in items:
        kind, seed = key.removeprefix("synthetic/").removesuffix(".csv").rsplit("_", 1)
        assert np.all(np.diff(ts) == 3600) and 8 * 168 <= len(y) <= 10 * 168 and (y > 0).all(), key
        week = 168
        ratio = y[-week:].mean() / y[:week].mean()
        assert 2 <= max(ratio, 1 / ratio) <= 7, (key, ratio)
        folds.add(ratio > 1)
        if kind.endswith("_clean"):
            assert wins == [], key
            continue
        clean = syn.fresh_series(kind, int(seed) * 1000 + syn.ALL_KINDS.index(kind), inject=False)[1]
        diff = y - clean
        moved = np.nonzero(np.abs(diff) > 1e-9)[0]
        (w0, w1), = wins
        assert w0 <= moved[0] <= moved[-1] <= w1 and moved[0] >= 0.66 * len(y), key
        signs.add(float(np.sign(diff[moved[0]])))
    assert signs == {-1.0, 1.0} and folds == {True, False}  # spikes and dips; growth and decline
    training = {s * 1000 + syn.ALL_KINDS.index(k) for k in syn.KINDS + syn.EXTRA_KINDS for s in range(1, 101)}
    fresh = {s * 1000 + syn.ALL_KINDS.index(k) for k in syn.FRESH_SCALE_KINDS for s in syn.FRESH_SCALE_SEEDS}
    assert not fresh & training
    assert not fresh & {s * 1000 + syn.ALL_KINDS.index(k) for k in syn.HELDOUT_KINDS for s in syn.HELDOUT_SEEDS}


def sealed_corpus(syn: ModuleType, kinds: tuple[str, ...], seeds: tuple[int, ...], above: int) -> list[Any]:
    """A sealed fresh set's 40 series (seeds above ``above``, none a training seed), the same when drawn again."""
    items = syn.corpus(seeds=seeds, kinds=kinds)
    assert len(items) == 40 and min(seeds) > above
    again = syn.corpus(seeds=seeds, kinds=kinds)
    assert all(np.array_equal(a[2], b[2]) and a[3] == b[3] for a, b in zip(items, again, strict=True))
    training = {s * 1000 + syn.ALL_KINDS.index(k) for k in syn.KINDS + syn.EXTRA_KINDS for s in range(1, 101)}
    fresh = {s * 1000 + syn.ALL_KINDS.index(k) for k in kinds for s in seeds}
    assert not fresh & training
    return items


def injected_sign(syn: ModuleType, key: str, y: np.ndarray, wins: list[tuple[int, int]], after: float) -> float:
    """Check that the rows the anomaly changed (against the series drawn without it) lie inside the one window
    and after ``after`` of the file; return the sign of the change (1 up, -1 down)."""
    kind, seed = key.removeprefix("synthetic/").removesuffix(".csv").rsplit("_", 1)
    clean = syn.fresh_series(kind, int(seed) * 1000 + syn.ALL_KINDS.index(kind), inject=False)[1]
    moved = np.nonzero(np.abs(y - clean) > 1e-9)[0]
    (w0, w1), = wins
    assert w0 <= moved[0] <= moved[-1] <= w1 and moved[0] >= after * len(y), key
    return float(np.sign((y - clean)[moved].sum()))


def test_fifth_fresh_kinds_are_declining_counts_with_the_anomaly_inside_its_window(syn: ModuleType) -> None:
    items = sealed_corpus(syn, syn.FRESH5_KINDS, syn.FRESH5_SEEDS, 600)
    signs = set()
    for key, ts, y, wins in items:
        kind = key.removeprefix("synthetic/").removesuffix(".csv").rsplit("_", 1)[0]
        step = 3600 if kind.startswith("shrinking") else 300
        assert np.all(np.diff(ts) == step) and (y >= 0).all() and np.array_equal(y, np.round(y)), key
        week = 7 * 86400 // step
        assert y[-week:].mean() < y[:week].mean() / 1.5, key  # the rate declines
        if kind.endswith("_clean"):
            assert wins == [], key
            continue
        signs.add(injected_sign(syn, key, y, wins, 0.65))
    assert signs == {-1.0, 1.0}  # outages and bursts


def test_sixth_fresh_kinds_are_integer_series_that_are_not_poisson_with_the_anomaly_inside_its_window(
        syn: ModuleType) -> None:
    items = sealed_corpus(syn, syn.FRESH6_KINDS, syn.FRESH6_SEEDS, 700)
    signs: dict[str, set[float]] = {"campaign": set(), "sessions": set()}
    for key, ts, y, wins in items:
        kind = key.removeprefix("synthetic/").removesuffix(".csv").rsplit("_", 1)[0]
        campaign = kind.startswith("campaign")
        assert np.all(np.diff(ts) == (600 if campaign else 300)), key
        assert (y >= 0).all() and np.array_equal(y, np.round(y)), key
        if campaign:  # over-dispersed: half the variance of the steps well above the mean (about 1 for Poisson)
            assert np.diff(y).var() / 2 > 1.4 * y.mean(), key
        else:  # a gauge: consecutive values are close, and it grows along the file
            assert np.corrcoef(y[:-1], y[1:])[0, 1] > 0.9 and y[-len(y) // 5:].mean() > y[:len(y) // 5].mean(), key
        if kind.endswith("_clean"):
            assert wins == [], key
            continue
        signs["campaign" if campaign else "sessions"].add(injected_sign(syn, key, y, wins, 0.7))
    assert signs == {"campaign": {-1.0, 1.0}, "sessions": {-1.0, 1.0}}  # outages and bursts, drops and leaks
