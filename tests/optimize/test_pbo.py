"""Probability of Backtest Overfitting by CSCV (core.optimize.pbo)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from core.optimize.pbo import DEFAULT_MAX_COMBINATIONS, pbo


def _reference_pbo(m: np.ndarray, s: int, metric: str) -> tuple[float, np.ndarray]:
    """Loop-by-loop CSCV straight from Bailey et al. (2017), Section 2, for cross-checking."""
    t, n = m.shape
    blocks = np.array_split(np.arange(t), s)
    logits = []
    for combo in itertools.combinations(range(s), s // 2):
        train = np.concatenate([blocks[i] for i in combo])
        test = np.concatenate([blocks[i] for i in range(s) if i not in combo])

        def perf(rows: np.ndarray) -> np.ndarray:
            x = m[rows]
            return x.mean(axis=0) if metric == "mean" else x.mean(axis=0) / x.std(axis=0, ddof=1)

        is_perf, oos_perf = perf(train), perf(test)
        star = int(np.argmax(is_perf))
        order = oos_perf.argsort().argsort() + 1  # ranks 1..N (no ties in random data)
        omega = order[star] / (n + 1)
        logits.append(math.log(omega / (1 - omega)))
    lam = np.array(logits)
    return float(np.mean(lam <= 0)), lam


@pytest.mark.parametrize("metric", ["mean", "sharpe"])
def test_matches_reference_loop(metric: str) -> None:
    m = np.random.default_rng(3).normal(0.0, 1.0, (25, 7))  # 25 rows in 8 blocks: unequal sizes
    res = pbo(m, 8, metric=metric)
    ref_pbo, ref_logits = _reference_pbo(m, 8, metric)
    assert res.n_combinations == math.comb(8, 4) == 70
    assert not res.sampled
    assert res.pbo == pytest.approx(ref_pbo)
    np.testing.assert_allclose(np.sort(res.logits), np.sort(ref_logits), rtol=1e-9)


def test_dominant_column_gives_pbo_zero() -> None:
    m = np.random.default_rng(1).normal(0.0, 1.0, (16, 50))
    m[:, 3] += 3.0 + np.abs(m).max()  # column 3 is best in every block
    res = pbo(m)
    assert res.pbo == 0.0
    assert np.allclose(res.relative_ranks, 50 / 51)
    assert np.all(res.logits > 0)


def test_real_edge_among_noise_gives_low_pbo() -> None:
    # column 0 has a true edge of 1 sd per block; the others are noise
    m = np.random.default_rng(2).normal(0.0, 1.0, (16, 30))
    m[:, 0] += 1.5
    assert pbo(m).pbo < 0.1


def test_pure_noise_gives_pbo_near_one_half() -> None:
    one = pbo(np.random.default_rng(7).normal(0.0, 1.0, (16, 50)))
    assert 0.3 < one.pbo < 0.7
    many = [pbo(np.random.default_rng(s).normal(0.0, 1.0, (16, 50))).pbo for s in range(10)]
    assert 0.4 < float(np.mean(many)) < 0.6


def test_pure_noise_returns_with_sharpe_metric() -> None:
    # the paper's setting: per-period returns, Sharpe of each half
    many = [pbo(np.random.default_rng(s).normal(0.0, 0.01, (400, 40)), metric="sharpe").pbo for s in range(8)]
    assert 0.35 < float(np.mean(many)) < 0.65


def test_in_sample_winners_are_out_of_sample_losers() -> None:
    # every column sums to 0 over all rows, so with equal halves its OOS mean is
    # minus its IS mean: the IS best is exactly the OOS worst in every split
    m = np.random.default_rng(4).normal(0.0, 1.0, (16, 20))
    m -= m.mean(axis=0)
    res = pbo(m)
    assert res.pbo == 1.0
    assert np.allclose(res.relative_ranks, 1 / 21)
    assert np.all(res.oos_performance < res.is_performance)


def test_default_submatrices() -> None:
    m = np.random.default_rng(0).normal(size=(40, 5))
    assert pbo(m).n_submatrices == 16
    assert pbo(m).n_combinations == 12_870
    assert pbo(m[:10]).n_submatrices == 10
    assert pbo(m[:11]).n_submatrices == 10  # odd: largest even <= rows
    assert pbo(m[:2]).n_combinations == 2


def test_large_s_is_sampled_symmetrically_and_reproducibly() -> None:
    m = np.random.default_rng(5).normal(size=(30, 10))
    a = pbo(m, 30, max_combinations=500, seed=1)
    b = pbo(m, 30, max_combinations=500, seed=1)
    c = pbo(m, 30, max_combinations=500, seed=2)
    assert a.sampled and a.n_combinations == 500
    np.testing.assert_array_equal(a.logits, b.logits)
    assert not np.array_equal(a.logits, c.logits)
    assert DEFAULT_MAX_COMBINATIONS >= math.comb(16, 8)


def test_sample_holds_each_split_with_its_complement() -> None:
    # CSCV's symmetry: every sampled training half also appears as a testing half
    from core.optimize.pbo import _combinations

    combos, sampled = _combinations(30, 500, np.random.default_rng(0))
    assert sampled and combos.shape == (500, 30)
    assert np.all(combos.sum(axis=1) == 15)
    keys = {row.tobytes() for row in combos}
    assert len(keys) == 500
    assert all((~row).tobytes() in keys for row in combos)


def test_ties_use_first_is_best_and_average_oos_rank() -> None:
    m = np.zeros((4, 3))  # all trials identical: IS best = column 0, OOS rank = average of 1..3 = 2
    res = pbo(m, 4)
    assert np.allclose(res.relative_ranks, 0.5)
    assert res.pbo == 1.0  # λ = 0 counts as overfit (λ <= 0)


@pytest.mark.parametrize(
    ("args", "kwargs", "word"),
    [
        ((np.zeros(10),), {}, "2-D"),
        ((np.zeros((1, 5)),), {}, "rows"),
        ((np.zeros((10, 1)),), {}, "columns"),
        ((np.full((10, 3), np.nan),), {}, "finite"),
        ((np.zeros((10, 3)), 3), {}, "n_submatrices"),
        ((np.zeros((10, 3)), 12), {}, "n_submatrices"),
        ((np.zeros((10, 3)), 0), {}, "n_submatrices"),
        ((np.zeros((10, 3)), 4.0), {}, "n_submatrices"),
        ((np.zeros((10, 3)),), {"metric": "median"}, "metric"),
        ((np.zeros((2, 3)), 2), {"metric": "sharpe"}, "sharpe"),
        ((np.zeros((10, 3)),), {"max_combinations": 1}, "max_combinations"),
        ((np.zeros((10, 3)),), {"seed": -3}, "seed"),
    ],
)
def test_bad_input(args, kwargs, word) -> None:
    with pytest.raises(ValueError, match=word):
        pbo(*args, **kwargs)
