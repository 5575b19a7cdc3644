"""Paired permutation test (Valverde & Tohka 2022 Sec. 4.1): hand-computed exact p-values and scipy's
permutation_test."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from nnunet_lossplug.evaluation.permutation_test import paired_permutation_test


def _scipy_p(a: np.ndarray, b: np.ndarray, n_resamples: int, seed: int = 0) -> float:
    def statistic(x, y, axis=-1):
        return np.abs(np.mean(x - y, axis=axis))

    res = stats.permutation_test(
        (a, b), statistic, permutation_type="samples", alternative="greater", n_resamples=n_resamples,
        vectorized=True, rng=np.random.default_rng(seed),
    )
    return float(res.pvalue)


def test_exact_p_value_by_hand() -> None:
    # d = (1, 2, 3): T = 2. Over the 8 sign vectors |Σ ε d| / 3 >= 2 only for all + or all −: p = 2/8
    res = paired_permutation_test(np.array([1.0, 2.0, 3.0]), np.zeros(3))
    assert res.exact and res.n_permutations == 8
    assert res.statistic == pytest.approx(2.0) and res.mean_difference == pytest.approx(2.0)
    assert res.p_value == pytest.approx(0.25)
    assert not res.significant


def test_exact_p_value_with_zero_differences_by_hand() -> None:
    # d = (0, 0, 1, 1): T = 0.5, reached when both non-zero d share a sign: 2 * 4 of 16 vectors
    res = paired_permutation_test(np.array([5.0, 5.0, 2.0, 3.0]), np.array([5.0, 5.0, 1.0, 2.0]))
    assert res.p_value == pytest.approx(8 / 16)


def test_statistic_is_absolute_difference_of_means_and_direction_free() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.9, 0.05, 12), rng.normal(0.85, 0.05, 12)
    ab, ba = paired_permutation_test(a, b), paired_permutation_test(b, a)
    assert ab.statistic == pytest.approx(abs(a.mean() - b.mean()))
    assert ab.p_value == pytest.approx(ba.p_value)
    assert ab.mean_difference == pytest.approx(-ba.mean_difference)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_test_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.normal(0.0, 1.0, 10)
    b = a + rng.normal(0.3, 1.0, 10)
    ours = paired_permutation_test(a, b, n_permutations=10000)
    assert ours.exact and ours.n_permutations == 1024
    assert ours.p_value == pytest.approx(_scipy_p(a, b, n_resamples=10000), abs=1e-12)


def test_random_sign_flips_agree_with_scipy_within_monte_carlo_error() -> None:
    rng = np.random.default_rng(7)
    a = rng.normal(0.90, 0.03, 40)
    b = a - rng.normal(0.008, 0.03, 40)
    ours = paired_permutation_test(a, b, n_permutations=10000, seed=0)
    reference = _scipy_p(a, b, n_resamples=10000, seed=1)
    assert not ours.exact and ours.n_permutations == 10000
    standard_error = math.sqrt(reference * (1 - reference) / 10000)
    assert 0.02 < reference < 0.98  # an informative p-value for this comparison
    assert abs(ours.p_value - reference) < 6 * standard_error


def test_clear_difference_is_significant_and_minimum_p_is_one_over_r_plus_one() -> None:
    a = np.linspace(0.8, 0.95, 30)
    res = paired_permutation_test(a, a - 0.05, n_permutations=10000, seed=0)
    assert res.p_value == pytest.approx(1 / 10001)
    assert res.significant


def test_identical_results_give_p_one_and_seed_reproducibility() -> None:
    a = np.linspace(0.0, 1.0, 25)
    assert paired_permutation_test(a, a.copy()).p_value == 1.0
    b = a + np.random.default_rng(0).normal(0, 0.1, 25)
    assert paired_permutation_test(a, b, seed=4).p_value == paired_permutation_test(a, b, seed=4).p_value


def test_no_pairs_and_bad_input() -> None:
    empty = paired_permutation_test(np.array([]), np.array([]))
    assert empty.n_pairs == 0 and math.isnan(empty.p_value) and not empty.significant
    with pytest.raises(ValueError, match="one value per case"):
        paired_permutation_test(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="finite"):
        paired_permutation_test(np.array([1.0, math.nan]), np.ones(2))
    with pytest.raises(ValueError, match="n_permutations"):
        paired_permutation_test(np.ones(3), np.ones(3), n_permutations=0)


@pytest.mark.parametrize("n_pairs", [1, 3, 5, 6, 8])
def test_smallest_p_value_is_what_the_test_returns_for_the_clearest_difference(n_pairs: int) -> None:
    from nnunet_lossplug.evaluation.permutation_test import smallest_p_value

    a = np.linspace(0.9, 0.95, n_pairs)  # every case better by a different margin: the most extreme labelling
    test = paired_permutation_test(a, a - np.linspace(0.1, 0.3, n_pairs))
    assert test.exact and test.p_value == pytest.approx(smallest_p_value(n_pairs)) == pytest.approx(2 / 2**n_pairs)
    assert (smallest_p_value(n_pairs) < 0.05) == (n_pairs >= 6)
    assert smallest_p_value(20, 999) == pytest.approx(1 / 1000)  # random sign flips: (1 + 0) / (R + 1)
