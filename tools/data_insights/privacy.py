"""The two privacy mechanisms of the published aggregates: k-anonymity (suppression with complementary
pooling) and optional Laplace noise. Pure functions, so the guarantees can be tested directly."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping

_RNG = random.SystemRandom()


def laplace(scale: float, rng: random.Random | None = None) -> float:
    """One draw from Laplace(0, scale): the difference of two exponentials."""
    r = rng or _RNG
    return scale * (r.expovariate(1.0) - r.expovariate(1.0))


def noisy_count(value: float, *, sensitivity: float, epsilon: float, rng: random.Random | None = None) -> float:
    """``value`` with Laplace(sensitivity / epsilon) noise, clamped at 0 (post-processing keeps the guarantee);
    unchanged when ``epsilon`` is 0 (noise off)."""
    if epsilon <= 0:
        return value
    return max(0.0, value + laplace(sensitivity / epsilon, rng))


def pool_groups(sizes: Mapping[str, int], k: int) -> tuple[list[str], list[str]]:
    """Split group labels into (published, pooled).

    Every group with fewer than ``k`` organisations is pooled. If the pool is not empty but smaller than
    ``k``, the smallest published groups join it until it reaches ``k`` (otherwise the small groups could
    be recovered as "total minus the published groups"). The pool is published as one "other" group only
    when it holds at least ``k`` organisations."""
    published = sorted((g for g, n in sizes.items() if n >= k), key=lambda g: (sizes[g], g))
    pooled = [g for g, n in sizes.items() if n < k]
    pool = sum(sizes[g] for g in pooled)
    while 0 < pool < k and published:
        g = published.pop(0)
        pooled.append(g)
        pool += sizes[g]
    return sorted(published), sorted(pooled)


def epsilon_note(epsilon: float, clip_jobs: int) -> str:
    """The guarantee in words, for the methodology."""
    if epsilon <= 0:
        return ("Laplace noise is off (LEVQOR_INSIGHTS_EPSILON = 0): figures are exact sums over groups of at "
                "least k organisations; protection rests on k-anonymity and suppression alone.")
    return (f"Every published count and sum carries independent Laplace noise with scale sensitivity/ε, "
            f"ε = {epsilon:g}. Adding or removing one organisation changes an organisation count by at most 1 "
            f"and a job count by at most {clip_jobs:,} (each organisation's jobs are clipped to that bound), so "
            f"each figure on its own is {epsilon:g}-differentially private with respect to one organisation; "
            f"a snapshot of m figures about the same organisations is (m·{epsilon:g})-DP by basic composition. "
            f"Rates and averages are computed from the noisy figures (post-processing). Noise is drawn once per "
            f"snapshot and stored, so repeated requests cannot average it away.")


def finite(x: float) -> float:
    return x if math.isfinite(x) else 0.0
