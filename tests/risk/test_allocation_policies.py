"""Allocation policies (issue 14): the returns they read, each policy against skfolio called
directly on the same returns, the Kelly formula, and the config's clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.backtest.loading import load_from_file
from core.config.allocation import AllocationConfig
from core.risk.allocation import (DAY_MS, AllocationError, daily_closes, fixed_weights, grade_weights,
                                  policy_weights, returns_matrix, skfolio_model)
from tests.support.shared_data import shared_file

SYMBOLS = ("BTC", "ETH", "SOL", "DOGE", "LINK")
D0 = 18_628 * DAY_MS          # 2021-01-01 00:00 UTC


def test_daily_closes_take_the_last_close_of_each_complete_day() -> None:
    ts = [D0 + h * 3_600_000 for h in range(0, 24 * 3 + 5)]          # 3 whole days + 5 h of the 4th
    close = [float(i + 1) for i in range(len(ts))]
    out = daily_closes(ts, close, before_ms=ts[-1], max_days=10)
    assert out == {D0 // DAY_MS: 24.0, D0 // DAY_MS + 1: 48.0, D0 // DAY_MS + 2: 72.0}    # day in progress left out
    assert daily_closes(ts, close, before_ms=ts[-1], max_days=2) == {D0 // DAY_MS + 1: 48.0, D0 // DAY_MS + 2: 72.0}
    assert daily_closes(ts, close, before_ms=D0, max_days=5) == {}


def test_returns_use_the_common_days_only() -> None:
    a = {1: 100.0, 2: 110.0, 3: 99.0, 4: 99.0}
    b = {2: 10.0, 3: 12.0, 4: 6.0}
    days, r = returns_matrix([a, b], lookback_days=10)
    assert days == [3, 4]
    np.testing.assert_allclose(r, [[99 / 110 - 1, 12 / 10 - 1], [0.0, 6 / 12 - 1]], rtol=0, atol=1e-15)
    days, r = returns_matrix([a, b], lookback_days=1)
    assert days == [4] and r.shape == (1, 2)
    assert returns_matrix([{1: 1.0}, {2: 1.0}], 5)[1].shape == (0, 2)


def _real_returns(days: int = 60) -> np.ndarray:
    """Daily returns of the five spot symbols' 1d closes (2021-01..), shape (days, 5)."""
    closes = []
    for s in SYMBOLS:
        c = load_from_file(shared_file(f"binance-spot/{s}_USDT-1d.json.gz"))
        closes.append(daily_closes(c.ts.tolist(), c.close.tolist(), D0 + (days + 1) * DAY_MS, days + 1))
    _, r = returns_matrix(closes, days)
    assert r.shape == (days, 5)
    return r


@pytest.mark.parametrize("policy", ["inverse_volatility", "risk_parity", "kelly"])
def test_library_policies_equal_skfolio_on_the_same_returns(policy: str) -> None:
    r = _real_returns()
    w = policy_weights(policy, r, n=5, kelly_fraction=0.5, kelly_cap=0.4)
    want = np.asarray(skfolio_model(policy, 0.5, 0.4).fit(r).weights_)
    np.testing.assert_allclose(w, np.clip(want, 0, 1), rtol=0, atol=1e-9)
    assert (w >= 0).all() and w.sum() <= 1 + 1e-9


def test_inverse_volatility_and_risk_parity_by_their_definitions() -> None:
    r = _real_returns()
    sd = r.std(axis=0, ddof=1)
    w = policy_weights("inverse_volatility", r, n=5)
    np.testing.assert_allclose(w, (1 / sd) / (1 / sd).sum(), rtol=1e-6)
    w = policy_weights("risk_parity", r, n=5)
    cov = np.cov(r.T, ddof=1)
    contrib = w * (cov @ w)
    np.testing.assert_allclose(contrib / contrib.sum(), np.full(5, 0.2), atol=2e-3)   # equal risk contributions
    assert w.sum() == pytest.approx(1.0, abs=1e-6)


def test_fractional_kelly_is_f_times_full_kelly_when_the_cap_does_not_bind() -> None:
    rng = np.random.default_rng(7)
    cov = np.array([[0.04, 0.01, 0.0], [0.01, 0.09, 0.02], [0.0, 0.02, 0.16]]) / 365
    x = rng.multivariate_normal(np.zeros(3), cov, size=400)
    x = x - x.mean(axis=0) + np.array([0.00004, 0.00006, 0.00008])        # small positive edges
    full = np.linalg.solve(np.cov(x.T, ddof=1), x.mean(axis=0))           # full Kelly: Sigma^-1 mu
    assert (full > 0).all() and full.sum() < 1                            # interior: no constraint binds
    for f in (0.25, 0.5):
        w = policy_weights("kelly", x, n=3, kelly_fraction=f, kelly_cap=1.0)
        np.testing.assert_allclose(w, f * full, rtol=5e-3, atol=1e-5)


def test_kelly_cap_and_budget() -> None:
    r = _real_returns()
    w = policy_weights("kelly", r, n=5, kelly_fraction=1.0, kelly_cap=0.15)
    assert (w <= 0.15 + 1e-6).all() and (w >= 0).all() and w.sum() <= 1 + 1e-9


def test_equal_fixed_and_grade() -> None:
    from skfolio.optimization import EqualWeighted

    r = _real_returns(20)
    np.testing.assert_allclose(policy_weights("equal", r, n=5), EqualWeighted().fit(r).weights_, atol=1e-15)
    fx = fixed_weights([("envelope_dca", "BTC/USDT"), ("grid_atr", "BTC/USDT"), ("envelope_dca", "ETH/USDT")],
                       {"BTC/USDT": 0.3, "grid_atr@BTC/USDT": 0.1})
    np.testing.assert_allclose(fx, [0.3, 0.1, 0.0])
    np.testing.assert_allclose(policy_weights("fixed", r[:, :3], n=3, fixed=fx), [0.3, 0.1, 0.0])
    np.testing.assert_allclose(grade_weights([80.0, None, 20.0, math.nan, -5.0]), [0.8, 0, 0.2, 0, 0])
    assert grade_weights([None, 0.0]).tolist() == [0.0, 0.0]                   # no score: nothing allocated


def test_policy_errors_are_clear() -> None:
    r = _real_returns(20)
    with pytest.raises(AllocationError, match="zero variance"):
        policy_weights("risk_parity", np.c_[r[:, :2], np.zeros(20)], n=3)
    with pytest.raises(AllocationError, match=r"shape \(T >= 2, 5\)"):
        policy_weights("kelly", r[:1], n=5)
    with pytest.raises(AllocationError, match="unknown allocation policy 'magic'"):
        policy_weights("magic", r, n=5)
    with pytest.raises(AllocationError, match="policy grade"):
        policy_weights("grade", r, n=5)


def test_config_errors_name_the_key(tmp_path) -> None:
    import shutil

    import yaml

    from core.config import load_config
    from core.errors import ConfigError
    from core.paths import DEFAULT_CONFIG_DIR

    ok = AllocationConfig(policy="kelly", rebalance_interval_h=24)
    assert ok.kelly_fraction == 0.5 and ok.max_drawdown_account is None
    cases = [({"policy": "fixed"}, "weights"), ({"weights": {"BTC/USDT": 0.7, "ETH/USDT": 0.6}}, "summing to <= 1"),
             ({"min_history_days": 40}, "lookback_days"), ({"policy": "best"}, "policy"),
             ({"kelly_fraction": 0}, "kelly_fraction"), ({"max_drawdown_strategy": 1.5}, "max_drawdown_strategy")]
    for change, needle in cases:
        dst = tmp_path / f"c{len(list(tmp_path.iterdir()))}"
        shutil.copytree(DEFAULT_CONFIG_DIR, dst)
        doc = yaml.safe_load((dst / "risk.yaml").read_text())
        doc["allocation"].update(change)
        (dst / "risk.yaml").write_text(yaml.safe_dump(doc))
        with pytest.raises(ConfigError) as e:
            load_config(dst)
        assert "allocation" in str(e.value) and needle in str(e.value), str(e.value)
