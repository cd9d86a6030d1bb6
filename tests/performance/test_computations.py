"""core.performance computations, each against an independent pandas computation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.backtest import metrics
from core.model.cycle import Cycle
from core.performance.curves import book_equity, curves, drawdown, thin
from core.performance.cycle_stats import WEEK_MS, per_asset
from core.performance.monthly import monthly_returns, year_table
from core.performance.rolling import rolling_sharpe
from core.performance.win_loss import win_loss

HOUR = 3_600_000
T0 = 1_610_668_800_000          # 2021-01-15 00:00 UTC


def walk(n: int = 24 * 140, seed: int = 1, start: float = 10_000.0, step: int = HOUR, t0: int = T0):
    """A random-walk equity (USDT) every `step` ms from t0."""
    rng = np.random.default_rng(seed)
    ts = t0 + step * np.arange(n, dtype=np.int64)
    eq = start * np.exp(np.cumsum(rng.normal(0.0002, 0.004, n)))
    return ts, eq


def series(ts, eq) -> pd.Series:
    return pd.Series(eq, index=pd.to_datetime(ts, unit="ms"))


def test_drawdown_curve_equals_pandas_and_its_max_is_the_metric() -> None:
    ts, eq = walk()
    s = series(ts, eq)
    want = ((s.cummax() - s) / s.cummax()).to_numpy()
    c = curves(ts, eq)
    np.testing.assert_allclose(c.drawdown, want, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(c.equity, eq)
    assert c.drawdown.max() == pytest.approx(metrics.max_drawdown(eq), abs=1e-15)
    assert drawdown([]).size == 0


def test_thin_keeps_first_last_and_deepest_point() -> None:
    ts, eq = walk()
    c = curves(ts, eq)
    t = thin(c, 200)
    assert len(t) <= 201 and t.ts[0] == ts[0] and t.ts[-1] == ts[-1]
    assert t.drawdown.max() == pytest.approx(c.drawdown.max(), abs=1e-15)
    assert thin(c, 10**6) is c
    with pytest.raises(ValueError, match="max_points"):
        thin(c, 2)


def test_book_equity_equals_pandas_forward_fill() -> None:
    a_ts, a_eq = walk(500, seed=2)
    b_ts, b_eq = walk(300, seed=3, start=5_000.0, step=4 * HOUR, t0=T0 + 7 * HOUR)
    ts, eq = book_equity([(a_ts, a_eq), (b_ts, b_eq), ([], [])])
    df = pd.concat([series(a_ts, a_eq).rename("a"), series(b_ts, b_eq).rename("b")], axis=1).sort_index()
    want = df.ffill().bfill().sum(axis=1)
    np.testing.assert_array_equal(ts, want.index.as_unit("ms").asi8)
    np.testing.assert_allclose(eq, want.to_numpy(), rtol=1e-12)


def test_bad_series_are_refused_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="same length"):
        curves([1, 2], [1.0])
    with pytest.raises(ValueError, match="increasing"):
        curves([2, 1], [1.0, 1.0])
    with pytest.raises(ValueError, match="finite"):
        curves([1, 2], [1.0, float("nan")])
    with pytest.raises(ValueError, match="first equity"):
        curves([1, 2], [0.0, 1.0])


def test_monthly_returns_equal_pandas_resample() -> None:
    ts, eq = walk()
    c0 = 9_900.0
    got = monthly_returns(ts, eq, start_equity=c0)
    month_end = series(ts, eq).resample("ME").last().dropna()
    want = month_end / month_end.shift(1, fill_value=c0) - 1.0
    assert [(r.year, r.month) for r in got] == [(d.year, d.month) for d in month_end.index]
    np.testing.assert_allclose([r.ret for r in got], want.to_numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose([r.end_equity for r in got], month_end.to_numpy(), rtol=0, atol=0)
    # the months compound to the total return; the year column compounds the year's months
    total = math.prod(1 + r.ret for r in got) - 1
    assert total == pytest.approx(eq[-1] / c0 - 1, abs=1e-12)
    table = year_table(got)
    assert list(table) == [2021]
    assert table[2021]["year"] == pytest.approx(total, abs=1e-12)
    assert set(table[2021]) == {1, 2, 3, 4, 5, 6, "year"}


def test_monthly_default_start_is_the_first_point() -> None:
    ts, eq = walk(24 * 40)
    got = monthly_returns(ts, eq)
    assert got[0].ret == pytest.approx(got[0].end_equity / eq[0] - 1, abs=1e-15)
    assert monthly_returns([], []) == []
    with pytest.raises(ValueError, match="start_equity"):
        monthly_returns(ts, eq, start_equity=0.0)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-0.05, 0.05), min_size=1, max_size=120), st.integers(1, 40))
def test_monthly_returns_always_compound_to_the_total(steps, hours_per_step) -> None:
    eq = 1_000.0 * np.cumprod(1 + np.array(steps))
    ts = T0 + np.arange(len(steps), dtype=np.int64) * hours_per_step * HOUR * 6
    got = monthly_returns(ts, eq, start_equity=1_000.0)
    assert math.prod(1 + r.ret for r in got) == pytest.approx(eq[-1] / 1_000.0, rel=1e-9)


def test_rolling_sharpe_equals_pandas_rolling_and_the_metric() -> None:
    ts, eq = walk()
    w = 20
    days, got = rolling_sharpe(ts, eq, w)
    daily = series(ts, eq).resample("D").last().dropna()
    r = daily.pct_change().dropna()
    want = (r.rolling(w).mean() / r.rolling(w).std(ddof=1) * math.sqrt(365)).dropna()
    np.testing.assert_array_equal(days, want.index.as_unit("ms").asi8)
    np.testing.assert_allclose(got, want.to_numpy(), rtol=1e-9, atol=1e-12)
    # the last window is the spec's daily Sharpe of the last w+1 days
    tail = ts >= days[-1] - w * metrics.DAY_MS
    assert got[-1] == pytest.approx(metrics.daily_sharpe(ts[tail], eq[tail]), rel=1e-12)


def test_rolling_sharpe_short_series_and_bad_window() -> None:
    ts, eq = walk(24 * 5)
    days, vals = rolling_sharpe(ts, eq, 30)
    assert days.size == 0 and vals.size == 0
    with pytest.raises(ValueError, match=">= 2 days"):
        rolling_sharpe(ts, eq, 1)


def _cycles(rng, n, t0=T0):
    out, t = [], t0
    for _ in range(n):
        dur = int(rng.integers(0, 72)) * HOUR
        pnl = float(np.round(rng.normal(5, 20), 2)) if rng.random() > 0.1 else 0.0
        out.append(Cycle(t, t + dur, "long", 1, 100.0, 101.0, "tp", 1.0, pnl))
        t += dur + int(rng.integers(1, 30)) * HOUR
    return out


def test_cycle_stats_per_asset_equal_pandas_groupby() -> None:
    rng = np.random.default_rng(7)
    groups = {"ETH/USDT": _cycles(rng, 25), "BTC/USDT": _cycles(rng, 40), "SOL/USDT": []}
    span = 60 * metrics.DAY_MS
    rows = per_asset(groups, span)
    assert [r.asset for r in rows] == ["BTC/USDT", "ETH/USDT", "SOL/USDT", "all"]
    df = pd.DataFrame([{"asset": a, "dur": c.close_time - c.open_time, "pnl": c.pnl}
                       for a, cs in groups.items() for c in cs])
    g = df.groupby("asset")
    for r in rows[:2]:
        assert r.n_cycles == g.size()[r.asset]
        assert r.avg_duration_ms == pytest.approx(g["dur"].mean()[r.asset], rel=1e-12)
        assert r.median_duration_ms == pytest.approx(g["dur"].median()[r.asset], rel=1e-12)
        assert r.max_duration_ms == g["dur"].max()[r.asset]
        assert r.cycles_per_week == pytest.approx(g.size()[r.asset] / (span / WEEK_MS), rel=1e-12)
        assert r.win_rate == pytest.approx((g["pnl"].apply(lambda s: (s > 0).mean()))[r.asset], abs=1e-12)
        assert r.total_pnl == pytest.approx(g["pnl"].sum()[r.asset], abs=1e-9)
    sol, every = rows[2], rows[3]
    assert sol.n_cycles == 0 and sol.avg_duration_ms is None and sol.cycles_per_week == 0.0
    assert every.n_cycles == len(df) and every.avg_duration_ms == pytest.approx(df["dur"].mean(), rel=1e-12)
    assert per_asset({"X": []}, 0)[0].cycles_per_week is None


def test_win_loss_equals_pandas() -> None:
    rng = np.random.default_rng(11)
    pnls = np.round(rng.normal(3, 25, 300), 2)
    pnls[:7] = 0.0
    wl = win_loss(pnls, bins=12)
    s = pd.Series(pnls)
    assert (wl.n_win, wl.n_loss, wl.n_flat) == ((s > 0).sum(), (s < 0).sum(), (s == 0).sum())
    assert wl.avg_win == pytest.approx(s[s > 0].mean(), rel=1e-12)
    assert wl.avg_loss == pytest.approx(s[s < 0].mean(), rel=1e-12)
    assert (wl.largest_win, wl.largest_loss) == (s.max(), s.min())
    assert wl.profit_factor == pytest.approx(s[s > 0].sum() / -s[s < 0].sum(), rel=1e-12)
    counts = pd.cut(s, bins=wl.edges, include_lowest=True, right=False).value_counts(sort=False).to_numpy().copy()
    counts[-1] += int((s == wl.edges[-1]).sum())                 # numpy's last bin is closed
    np.testing.assert_array_equal(wl.counts, counts)
    assert wl.counts.sum() == 300 and wl.edges[0] == s.min() and wl.edges[-1] == s.max()
    empty = win_loss([])
    assert empty.n_win == 0 and empty.avg_win is None and empty.counts.size == 0 and empty.profit_factor is None
    with pytest.raises(ValueError, match="bins"):
        win_loss(pnls, bins=0)
