"""PBO with ties compared by tolerance (issue 13, finding 5).

Trials that are equal in exact arithmetic (duplicated columns: combos that trade
identically) must rank as ties however the floating-point noise falls: the PBO is the
same with 1e-17 noise added to the copies and under any permutation of the columns.
With exact comparisons (tie_rtol = 0) the noise changes ranks and the PBO moves, which
is what the test guards against.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.optimize.pbo import TIE_RTOL, pbo


def _tied_matrix(seed: int = 3, t: int = 320, distinct: int = 8, copies: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = 0.01 * rng.standard_normal((t, distinct)) + 0.0005 * rng.standard_normal(distinct)
    return np.repeat(base, copies, axis=1)            # columns 4k..4k+3 equal exactly


def _noisy(m: np.ndarray, seed: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return m + 1e-17 * rng.choice([-1.0, 1.0], size=m.shape)


@pytest.mark.parametrize("metric", ["sharpe", "mean"])
def test_pbo_is_the_same_under_noise_and_permutation(metric: str) -> None:
    m = _tied_matrix()
    noisy = _noisy(m)
    assert np.any(noisy != m)                          # the noise does change the values
    exact = pbo(m, metric=metric)
    with_noise = pbo(noisy, metric=metric)
    assert with_noise.pbo == exact.pbo
    np.testing.assert_array_equal(with_noise.logits, exact.logits)
    rng = np.random.default_rng(5)
    for _ in range(3):
        perm = rng.permutation(m.shape[1])
        assert pbo(m[:, perm], metric=metric).pbo == exact.pbo
        np.testing.assert_array_equal(pbo(noisy[:, perm], metric=metric).logits, exact.logits)


def test_exact_comparisons_are_noise_sensitive() -> None:
    """Without the tolerance the same noise moves logits: the guard above is not vacuous."""
    m = _tied_matrix()
    noisy = _noisy(m)
    exact = pbo(m, metric="sharpe", tie_rtol=0.0)
    with_noise = pbo(noisy, metric="sharpe", tie_rtol=0.0)
    assert np.count_nonzero(exact.logits != with_noise.logits) > 0


def test_tolerance_does_not_merge_real_differences() -> None:
    m = _tied_matrix(copies=1)
    assert TIE_RTOL == 1e-12
    np.testing.assert_array_equal(pbo(m, metric="sharpe").logits, pbo(m, metric="sharpe", tie_rtol=0.0).logits)


def test_bad_tie_rtol() -> None:
    with pytest.raises(ValueError, match="tie_rtol"):
        pbo(_tied_matrix(), tie_rtol=-1.0)
