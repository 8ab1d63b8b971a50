"""The anomaly bench's weighted threshold sweep (bench/anomaly/run.py): NAB's own sweep and per-file
scores (../shared/tools/nabscore.py) on files weighted in the training objective."""

from __future__ import annotations

import importlib.util
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from tests.support import ROOT

_spec = importlib.util.spec_from_file_location("anomaly_bench_run", ROOT / "bench" / "anomaly" / "run.py")
assert _spec and _spec.loader
run = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run)


@pytest.fixture(scope="module")
def nab() -> ModuleType:
    try:
        shared = run.shared_dir()
    except SystemExit:
        pytest.skip("../shared/tools/nabscore.py not found")
    return run.load_nabscore(shared)


def case(nab: ModuleType, key: str, scores: list[float], window: tuple[int, int] | None) -> Any:
    """A prepared file of len(scores) rows (the first 15 % are probationary), one window or none."""
    ts = np.arange(len(scores), dtype=np.int64) * 300_000_000_000
    wins = [] if window is None else [(int(ts[window[0]]), int(ts[window[1]]))]
    return nab.prepare_file(key, ts, wins, np.asarray(scores, np.float64))


def random_cases(nab: ModuleType, n: int = 6) -> list[Any]:
    rng = np.random.default_rng(3)
    out = []
    for i in range(n):
        scores = rng.uniform(0, 1, 200) ** 3
        out.append(case(nab, f"f{i}.csv", list(scores), None if i % 3 == 2 else (120, 139)))
    return out


def test_a_weighted_file_scores_its_weight_times_the_raw_score_plus_a_constant(nab: ModuleType) -> None:
    for c in random_cases(nab):
        for prof in nab.PROFILES:
            for w in (0.0, 0.25, 1.0, 3.0):
                wc = run.weighted_case(c, w, prof)
                for t in (0.0, 0.05, 0.3, 0.9, np.inf):
                    got = nab.score_file(wc, prof, t).raw - run.weighted_shift(c, w, prof)
                    assert got == pytest.approx(w * nab.score_file(c, prof, t).raw, abs=1e-9)
    with pytest.raises(ValueError):
        run.weighted_case(random_cases(nab)[0], -1.0, nab.PROFILES[0])


def test_equal_weights_give_nabscores_sweep(nab: ModuleType) -> None:
    cases = random_cases(nab)
    for prof in nab.PROFILES:
        best = nab.optimise(cases, prof)
        assert run.weighted_optimise(nab, cases, [1.0] * len(cases), prof) == (best.threshold, best.raw)
        thr, raw = run.weighted_optimise(nab, cases, [2.5] * len(cases), prof)
        assert thr == best.threshold
        assert raw == pytest.approx(2.5 * best.raw)


def test_the_weighted_sweep_maximises_the_weighted_sum_of_per_file_scores(nab: ModuleType) -> None:
    cases = random_cases(nab)
    weights = [1.0, 0.2, 1.0, 0.5, 2.0, 0.0]
    for prof in nab.PROFILES:
        thr, raw = run.weighted_optimise(nab, cases, weights, prof)

        def total(t: float, prof: Any = prof) -> float:
            return sum(w * nab.score_file(c, prof, t).raw for c, w in zip(cases, weights, strict=True))

        assert raw == pytest.approx(total(thr))
        cands = {float(s) for c in cases for s in c.scores} | {np.inf}
        assert raw >= max(total(t) for t in cands) - 1e-9


def test_weighting_a_file_less_changes_the_chosen_threshold(nab: ModuleType) -> None:
    # "hit" has its anomaly scored 0.3 only; "noisy" has no anomaly and 30 false alerts at 0.3. At weight
    # 1 the false alerts cost more (30 x 0.11) than the detection gains (about 2), so nothing is detected;
    # with "noisy" weighted 0.1 the threshold comes down to 0.3.
    hit = case(nab, "hit.csv", [0.0] * 120 + [0.3] * 20 + [0.0] * 60, (120, 139))
    noisy = case(nab, "noisy.csv", [0.0] * 140 + [0.3] * 30 + [0.0] * 30, None)
    prof = nab.PROFILES[0]
    assert run.weighted_optimise(nab, [hit, noisy], [1.0, 1.0], prof)[0] > 0.3
    thr, raw = run.weighted_optimise(nab, [hit, noisy], [1.0, 0.1], prof)
    assert thr == 0.3
    assert raw == pytest.approx(nab.score_file(hit, prof, 0.3).raw + 0.1 * nab.score_file(noisy, prof, 0.3).raw)


def test_scaling_every_weight_keeps_the_fit_and_the_normalised_score(nab: ModuleType) -> None:
    # NAB's normalisation is a ratio of sums (raw, null, perfect): the weighted one is scale-free.
    data = run.shared_dir() / "data" / "nab-dev"
    cp = run.Corpus(nab, data, synthetic_seeds=())
    cp.add_reference("ARTime", data / "reference-results" / "ARTime")
    keys = cp.nab_keys

    def fitted() -> tuple[list[float], list[float]]:
        thr = cp.fit(keys, ["ARTime"])[1]
        raw = [sum(cp.weight(k) * r[i] for k, r in ((k, cp.raw(k, "ARTime", thr)) for k in keys))
               for i in range(3)]
        return thr, cp.normalised(keys, raw)

    thr1, norm1 = fitted()
    cp.weights = {k: 3.0 for k in keys}
    thr3, norm3 = fitted()
    assert thr3 == thr1
    assert norm3 == pytest.approx(norm1)
    cp.weights = {k: 0.2 if k.startswith("artificial") else 1.0 for k in keys}
    assert fitted()[1] != pytest.approx(norm1)  # and unequal weights do matter


def test_a_union_of_draws_weighs_as_much_as_the_default_draw(nab: ModuleType) -> None:
    cp = run.Corpus(nab, run.shared_dir() / "data" / "nab-dev", synthetic_seeds=(1, 2, 3, 4, 5, 6, 7, 8),
                    synthetic_share=0.5)
    assert len(cp.synth_keys) == 56
    assert {cp.weight(k) for k in cp.synth_keys} == {0.5 * 2 / 8}
    assert cp.weight(cp.nab_keys[0]) == 1.0
