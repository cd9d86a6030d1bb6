"""VaR / CVaR of the book (`core.risk.var`): the estimator by hand, the joint daily returns of
the runners, the seeded Monte Carlo against the normal quantile, and real BTC/ETH days."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from core.errors import RadarError
from core.risk.var import DAY_MS, book_var, daily_equity_returns, tail


def test_tail_is_the_kth_worst_and_the_mean_of_the_k_worst() -> None:
    pnl = np.array([float(x) for x in range(-50, 50)])        # 100 outcomes, worst −50
    var95, cvar95 = tail(pnl, 0.95)                           # k = 5: −46; mean of −50..−46 = −48
    assert var95 == pytest.approx(46.0, abs=1e-12)
    assert cvar95 == pytest.approx(48.0, abs=1e-12)
    var99, cvar99 = tail(pnl, 0.99)                           # k = 1
    assert (var99, cvar99) == (50.0, 50.0)
    assert tail(np.array([3.0, -1.0, 2.0]), 0.95) == (1.0, 1.0)
    with pytest.raises(RadarError):
        tail(pnl, 1.5)


def test_daily_returns_of_the_runners_are_joint_and_carried_forward() -> None:
    d = DAY_MS
    series = {"a": ([0, d // 2, d, 2 * d], [100.0, 105.0, 110.0, 99.0]),   # day 0 closes at 105
              "b": ([0, 2 * d], [200.0, 220.0])}                           # nothing on day 1: 200 carried
    days, r, labels = daily_equity_returns(series)
    assert labels == ["a", "b"]
    assert days.tolist() == [1, 2]
    assert r[:, 0] == pytest.approx([110.0 / 105.0 - 1.0, 99.0 / 110.0 - 1.0], abs=1e-15)
    assert r[:, 1] == pytest.approx([0.0, 0.1], abs=1e-15)
    _, last, _ = daily_equity_returns(series, lookback_days=1)
    assert last.shape == (1, 2)


def test_historical_is_the_book_pnl_of_each_day_and_mc_matches_the_normal_quantile() -> None:
    rng = np.random.default_rng(1)
    r = rng.normal(0.001, 0.02, size=(400, 2))
    expo = np.array([6000.0, 4000.0])
    rep = book_var(r, expo, 10_000.0, n_paths=200_000, seed=3)
    assert rep.available and rep.days == 400
    h99 = rep.get("historical", 0.99)
    pnl = np.sort(r @ expo)
    assert h99.var == pytest.approx(-pnl[3], abs=1e-9)                        # k = ⌈400·0.01⌉ = 4
    assert h99.cvar == pytest.approx(-pnl[:4].mean(), abs=1e-9)
    assert h99.var_fraction == pytest.approx(h99.var / 10_000.0, abs=1e-15)
    mu = r.mean(axis=0) @ expo
    sd = float(np.sqrt(expo @ np.cov(r, rowvar=False) @ expo))
    for lv in (0.95, 0.99):
        mc = rep.get("monte_carlo", lv)
        z = norm.ppf(1 - lv)
        assert mc.var == pytest.approx(-(mu + z * sd), rel=0.02)                       # normal VaR
        assert mc.cvar == pytest.approx(-(mu - sd * norm.pdf(z) / (1 - lv)), rel=0.02)  # normal ES
        assert mc.cvar >= mc.var
    again = book_var(r, expo, 10_000.0, n_paths=200_000, seed=3)
    assert again.figures == rep.figures                                          # seeded: repeatable


def test_too_few_days_says_why() -> None:
    rep = book_var(np.zeros((3, 1)), np.array([1.0]), 1.0)
    assert not rep.available and "3 daily return" in rep.reason and rep.figures == ()


def test_real_btc_eth_days() -> None:
    from core.data.freqtrade import read_rows
    from tests.support.shared_data import shared_file

    btc = read_rows(shared_file("binance-spot/BTC_USDT-1d.json.gz"))
    eth = read_rows(shared_file("binance-spot/ETH_USDT-1d.json.gz"))
    start, end = 1609459200000, 1640995200000                               # 2021
    series = {}
    for name, rows in (("btc", btc), ("eth", eth)):
        sel = rows[(rows[:, 0] >= start) & (rows[:, 0] < end)]
        series[name] = (sel[:, 0].astype(np.int64).tolist(), (sel[:, 4] / sel[0, 4] * 5000.0).tolist())
    _, r, _ = daily_equity_returns(series)
    assert r.shape == (364, 2)
    rep = book_var(r, np.array([5000.0, 5000.0]), 10_000.0, seed=11)
    h95, h99 = rep.get("historical", 0.95), rep.get("historical", 0.99)
    # 2021: a fully invested BTC+ETH book lost more than 5 % on its worst 5 % of days
    assert 0.05 < h95.var_fraction < h99.var_fraction < 0.25
    assert h99.cvar >= h99.var
    assert rep.get("monte_carlo", 0.99).var_fraction == pytest.approx(h99.var_fraction, rel=0.5)
