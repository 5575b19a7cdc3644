"""Paired two-sample permutation test of Valverde & Tohka 2022, Sec. 4.1 (random sign flips of per-case differences).

The paper tests "using a paired two-sample permutation test using the mean-absolute difference of the
performance measure between the two losses as the test statistic", approximated with 10 000 permutations,
p < 0.05 significant. For paired values ``a_i`` (method A, case i) and ``b_i`` (method B, same case) with
differences ``d_i = a_i − b_i``, ``i = 1..n``:

- statistic: ``T = | (1/n) Σ_i d_i |`` — the absolute value of the mean paired difference (equal to
  ``|mean(a) − mean(b)|``). The other reading, ``(1/n) Σ_i |d_i|``, is unchanged by every permutation of a
  paired design and could never reject, so it cannot be what a permutation test uses.
- null hypothesis: within each pair the two labels (A, B) are exchangeable, i.e. each ``d_i`` is equally
  likely to have either sign. A permutation swaps A and B in a subset of pairs, which flips the sign of
  those ``d_i``: ``T* = | (1/n) Σ_i ε_i d_i |`` with ``ε_i ∈ {−1, +1}``.
- p-value (two-sided through the absolute value): with ``R`` random sign vectors,
  ``p = (1 + #{T* ≥ T}) / (1 + R)`` (the observed labelling counted once, so ``p > 0``, as in
  ``scipy.stats.permutation_test``); when ``2^n ≤ R`` all ``2^n`` sign vectors are enumerated and
  ``p = #{T* ≥ T} / 2^n`` exactly. Comparisons allow a relative tolerance of ``1e-12`` so that
  floating-point noise does not break ties between equal statistics.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

SIGNIFICANCE_LEVEL = 0.05
_TIE_RTOL = 1e-12
_CHUNK = 2048


@dataclass(frozen=True)
class PermutationTestResult:
    """Outcome of :func:`paired_permutation_test`.

    Attributes:
        statistic: observed ``T = |mean(a − b)|``.
        mean_difference: signed ``mean(a − b)``.
        p_value: permutation p-value (NaN when there are no pairs).
        n_pairs: number of pairs used.
        n_permutations: sign vectors evaluated (``2^n`` when exact).
        exact: whether all sign vectors were enumerated.
    """

    statistic: float
    mean_difference: float
    p_value: float
    n_pairs: int
    n_permutations: int
    exact: bool

    @property
    def significant(self) -> bool:
        """``p < 0.05`` (the threshold of Valverde & Tohka 2022)."""
        return math.isfinite(self.p_value) and self.p_value < SIGNIFICANCE_LEVEL


def paired_permutation_test(
    a: np.ndarray, b: np.ndarray, n_permutations: int = 10000, seed: int | None = 0
) -> PermutationTestResult:
    """Paired permutation test of ``H0: a and b are exchangeable within pairs`` (see module docstring).

    Args:
        a: values of method A, one per case.
        b: values of method B for the same cases, same order.
        n_permutations: random sign vectors (default 10 000, as in Valverde & Tohka 2022). If ``2^n`` does not exceed
            it, the exact test over all ``2^n`` sign vectors is done instead.
        seed: seed of numpy's ``default_rng`` for the random sign vectors (default 0: reproducible).

    Returns:
        A :class:`PermutationTestResult`.
    """
    a = np.asarray(a, dtype=float).ravel()
    b = np.asarray(b, dtype=float).ravel()
    if a.shape != b.shape:
        raise ValueError(
            f"paired test needs one value per case from each method, got {a.size} and {b.size} values; "
            "pair the cases first (only cases present in both)."
        )
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("values must be finite; drop pairs with an undefined (NaN) value before testing.")
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be at least 1, got {n_permutations}.")
    n = a.size
    if n == 0:
        return PermutationTestResult(math.nan, math.nan, math.nan, 0, 0, False)
    d = a - b
    observed = abs(float(d.mean()))
    threshold = observed - _TIE_RTOL * max(observed, 1.0)

    if is_exact(n, n_permutations):
        count, total = _exact_count(d, threshold)
        return PermutationTestResult(observed, float(d.mean()), count / total, n, total, True)

    rng = np.random.default_rng(seed)
    count = 0
    remaining = n_permutations
    while remaining:
        size = min(_CHUNK, remaining)
        signs = rng.integers(0, 2, size=(size, n), dtype=np.int8) * 2 - 1
        stats = np.abs(signs @ d) / n
        count += int(np.count_nonzero(stats >= threshold))
        remaining -= size
    p_value = (count + 1) / (n_permutations + 1)
    return PermutationTestResult(observed, float(d.mean()), p_value, n, n_permutations, False)


def is_exact(n_pairs: int, n_permutations: int) -> bool:
    """Whether :func:`paired_permutation_test` enumerates all ``2^n`` sign vectors (``2^n <= n_permutations``)."""
    return 0 < n_pairs <= 62 and 2**n_pairs <= n_permutations


def smallest_p_value(n_pairs: int, n_permutations: int = 10000) -> float:
    """The smallest p-value :func:`paired_permutation_test` can return for ``n_pairs`` pairs.

    Exact test: the observed sign vector and its negation always reach the observed statistic, so
    ``p >= 2 / 2^n`` (0.25 with 3 pairs, 0.0625 with 5, 0.03125 with 6: six pairs are the fewest that can reach
    p < 0.05). With ``R`` random sign flips (``2^n > R``): ``p = (1 + count) / (R + 1) >= 1 / (R + 1)``. NaN
    without pairs.
    """
    if n_pairs < 1:
        return math.nan
    if is_exact(n_pairs, n_permutations):
        return 2.0 / 2.0**n_pairs
    return 1.0 / (n_permutations + 1)


def _exact_count(d: np.ndarray, threshold: float) -> tuple[int, int]:
    """Number of the ``2^n`` sign vectors whose statistic reaches ``threshold``, and ``2^n``."""
    n = d.size
    count = 0
    total = 0
    sign_iter = itertools.product((1.0, -1.0), repeat=n)
    while True:
        block = np.array(list(itertools.islice(sign_iter, _CHUNK)), dtype=float)
        if block.size == 0:
            break
        stats = np.abs(block @ d) / n
        count += int(np.count_nonzero(stats >= threshold))
        total += block.shape[0]
    return count, total
