"""Monte Carlo stationary block bootstrap (core.optimize.bootstrap)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from core.optimize.bootstrap import (
    MIN_CYCLES,
    bootstrap_sharpe,
    default_block_length,
    stationary_indices,
)


def _noise(seed: int, n: int = 200, mean: float = 0.0, sd: float = 0.02) -> np.ndarray:
    return np.random.default_rng(seed).normal(mean, sd, n)


def test_planted_edge_is_significant() -> None:
    # 200 cycles, mean 1 %, sd 2 %: per-cycle Sharpe ≈ 0.5, far outside the null
    res = bootstrap_sharpe(_noise(1, mean=0.01), n_sims=1000, seed=3)
    assert res.p_value < 0.01
    assert res.p_value == pytest.approx(1 / 1001)  # no null Sharpe reaches it: the +1 floor
    assert res.observed_sharpe == pytest.approx(0.5, abs=0.12)
    assert not res.underpowered


def test_noise_p_values_are_spread_uniformly() -> None:
    ps = np.array([bootstrap_sharpe(_noise(100 + s), n_sims=500, seed=s).p_value for s in range(50)])
    assert 0.3 < ps.mean() < 0.7
    assert ps.min() < 0.25 and ps.max() > 0.75


def test_noise_rejection_rate_near_nominal() -> None:
    # a correct null gives P(p <= 0.1) ≈ 0.1; a bootstrap that forgot to demean
    # would centre the null on the observed Sharpe and give p ≈ 0.5 every time
    ps = np.array([bootstrap_sharpe(_noise(1000 + s, n=100), n_sims=300, seed=s).p_value for s in range(120)])
    assert 0.03 <= np.mean(ps <= 0.1) <= 0.2


def test_single_noise_series_not_significant() -> None:
    assert bootstrap_sharpe(_noise(5), seed=0).p_value > 0.05


def test_p_value_formula() -> None:
    res = bootstrap_sharpe(_noise(9, mean=0.001), n_sims=777, seed=4)
    expected = (1 + np.count_nonzero(res.null_sharpes >= res.observed_sharpe)) / 778
    assert res.p_value == pytest.approx(expected)
    assert res.null_sharpes.shape == (777,)
    r = _noise(9, mean=0.001)
    assert res.observed_sharpe == pytest.approx(r.mean() / r.std(ddof=1))
    # the null is centred on zero: demeaned returns
    assert abs(float(np.median(res.null_sharpes))) < 0.03


def test_underpowered_below_30_cycles() -> None:
    assert MIN_CYCLES == 30
    assert bootstrap_sharpe(_noise(2, n=29), n_sims=100).underpowered
    assert not bootstrap_sharpe(_noise(2, n=30), n_sims=100).underpowered


def test_reproducible_with_seed() -> None:
    r = _noise(3)
    a = bootstrap_sharpe(r, seed=42)
    b = bootstrap_sharpe(r, seed=42)
    c = bootstrap_sharpe(r, seed=43)
    assert a.p_value == b.p_value
    np.testing.assert_array_equal(a.null_sharpes, b.null_sharpes)
    assert not np.array_equal(a.null_sharpes, c.null_sharpes)
    g1, g2 = np.random.default_rng(8), np.random.default_rng(8)
    np.testing.assert_array_equal(bootstrap_sharpe(r, seed=g1).null_sharpes,
                                  bootstrap_sharpe(r, seed=g2).null_sharpes)


def test_default_block_length_rule() -> None:
    assert [default_block_length(n) for n in (1, 8, 9, 27, 28, 200, 1000)] == [1, 2, 3, 3, 4, 6, 10]
    assert bootstrap_sharpe(_noise(1), n_sims=10).block_length == 6.0
    assert bootstrap_sharpe(_noise(1), n_sims=10, block_length=2.5).block_length == 2.5


def test_stationary_indices_blocks() -> None:
    n, b = 500, 8.0
    idx = stationary_indices(np.random.default_rng(0), 200, n, b)
    assert idx.shape == (200, n)
    assert idx.min() >= 0 and idx.max() < n
    continues = (np.diff(idx, axis=1) % n) == 1  # next cycle of the same block (wrapping)
    mean_block = 1.0 / (1.0 - continues.mean())
    assert mean_block == pytest.approx(b, rel=0.1)
    iid = stationary_indices(np.random.default_rng(0), 200, n, 1.0)
    assert ((np.diff(iid, axis=1) % n) == 1).mean() < 0.01  # b = 1: only chance continuations


def test_blocks_widen_the_null_of_autocorrelated_returns() -> None:
    # AR(1), φ = 0.6: the Sharpe's sampling spread is ≈ √((1+φ)/(1−φ)) = 2× the i.i.d. one;
    # blocks keep that dependence, the i.i.d. bootstrap (b = 1) does not
    rng = np.random.default_rng(12)
    e = rng.normal(0, 0.01, 1000)
    x = np.empty_like(e)
    x[0] = e[0]
    for i in range(1, x.size):
        x[i] = 0.6 * x[i - 1] + e[i]
    iid = bootstrap_sharpe(x, block_length=1, seed=1).null_sharpes.std()
    blocks = bootstrap_sharpe(x, block_length=8, seed=1).null_sharpes.std()
    assert blocks > 1.4 * iid  # ≈ 1.6 here; geometric blocks of mean 8 keep most lags


def test_speed_1000_sims_300_cycles() -> None:
    r = _noise(4, n=300)
    best = min(_timed(lambda: bootstrap_sharpe(r, n_sims=1000, seed=s)) for s in range(3))
    assert best < 0.1


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def test_large_inputs_are_chunked_consistently() -> None:
    r = _noise(6, n=5000)
    res = bootstrap_sharpe(r, n_sims=600, seed=2)  # 3,000,000 values: two chunks
    assert res.null_sharpes.shape == (600,)
    assert np.all(np.isfinite(res.null_sharpes))


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"returns": np.zeros((5, 2))}, "1-D"),
        ({"returns": np.array([0.1])}, "at least 2"),
        ({"returns": np.array([0.1, np.nan, 0.2])}, "finite"),
        ({"returns": np.full(40, 0.01)}, "constant"),
        ({"returns": np.arange(40.0), "n_sims": 0}, "n_sims"),
        ({"returns": np.arange(40.0), "n_sims": 10.0}, "n_sims"),
        ({"returns": np.arange(40.0), "block_length": 0.5}, "block_length"),
        ({"returns": np.arange(40.0), "block_length": 41}, "block_length"),
        ({"returns": np.arange(40.0), "block_length": float("nan")}, "block_length"),
        ({"returns": np.arange(40.0), "seed": -1}, "seed"),
        ({"returns": np.arange(40.0), "seed": "abc"}, "seed"),
    ],
)
def test_bad_input(kwargs, word) -> None:
    with pytest.raises(ValueError, match=word):
        bootstrap_sharpe(**kwargs)
