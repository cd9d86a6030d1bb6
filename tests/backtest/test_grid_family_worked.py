"""The worked examples of docs/grid_family.md, reproduced by both engines (event and fast).

Each example is a handful of hand-made 1h candles; the expected levels, fills and P&L are
the hand computations of the document (tolerance 1e-9 absolute on USDT amounts).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.backtest.event_engine import run_event_backtest
from core.backtest.fast import run_fast
from core.model.candles import Candles

H = 3_600_000
TOL = 1e-9
MAKER, TAKER = 0.0002, 0.0006


def candles(rows: list[tuple[float, float, float, float]]) -> Candles:
    arr = np.asarray([(i * H, o, h, lo, c, 1.0) for i, (o, h, lo, c) in enumerate(rows)], dtype=np.float64)
    return Candles.from_rows("TEST/USDT", "spot", "1h", arr)


def both(cd: Candles, strategy: str, params: dict, funding=None):
    ev = run_event_backtest(cd, strategy, params, funding=funding)
    fa = run_fast(cd, strategy, params, funding=funding)
    assert ev.cycles == fa.cycles
    assert np.array_equal(ev.equity, fa.equity)
    assert ev.final_equity == fa.final_equity
    return ev


def one_cycle_pnl(q: float, entry: float, exit_: float, maker_fees: float) -> float:
    return q * (exit_ - entry) - maker_fees - q * exit_ * TAKER


def test_grid_atr_worked_example() -> None:
    cd = candles([(100, 102, 98, 100), (100, 104, 98, 102), (102, 103, 99, 100),
                  (100, 100.5, 95, 97), (97, 99, 96.5, 98.8)])
    p = {"ma_period": 2, "atr_period": 2, "num_levels": 2, "start_atr": 1.0, "step_atr": 1.0, "sl_percent": 0.5}
    res = both(cd, "grid_atr", p)
    (cyc,) = res.cycles
    q0 = 5000.0 / 96.0
    assert (cyc.open_time, cyc.close_time, cyc.levels_filled, cyc.exit_reason) == (3 * H, 4 * H, 1, "tp")
    assert math.isclose(cyc.avg_entry, 96.0, abs_tol=TOL) and math.isclose(cyc.exit_price, 98.5, abs_tol=TOL)
    assert math.isclose(cyc.qty, q0, rel_tol=1e-12)
    assert math.isclose(res.equity[3], 9999.0 + q0 * 1.0, abs_tol=TOL)
    assert math.isclose(cyc.pnl, 130.20833333333334 - 1.0 - 3.078125, abs_tol=TOL)
    assert math.isclose(res.final_equity, 10126.130208333334, abs_tol=TOL)
    assert list(res.equity[:3]) == [10_000.0] * 3


def test_grid_atr_short_mirrors_the_long_example() -> None:
    """The long example mirrored through a price of 200 (x -> 200 - x) is a short example
    with the same quantities: levels m + off·ATR, the same fill/exit distances."""
    rows = [(100, 102, 98, 100), (100, 104, 98, 102), (102, 103, 99, 100), (100, 100.5, 95, 97), (97, 99, 96.5, 98.8)]
    cd = candles([(200 - o, 200 - lo, 200 - h, 200 - c) for o, h, lo, c in rows])
    p = {"ma_period": 2, "atr_period": 2, "num_levels": 2, "start_atr": 1.0, "step_atr": 1.0, "sl_percent": 0.5}
    res = both(cd, "grid_atr_short", p)
    (cyc,) = res.cycles
    assert (cyc.side, cyc.levels_filled, cyc.exit_reason) == ("short", 1, "tp")
    assert math.isclose(cyc.avg_entry, 104.0, abs_tol=TOL) and math.isclose(cyc.exit_price, 101.5, abs_tol=TOL)
    q0 = 5000.0 / 104.0
    assert math.isclose(cyc.pnl, q0 * 2.5 - 1.0 - q0 * 101.5 * TAKER, abs_tol=TOL)


def test_grid_rsi_worked_example() -> None:
    rows = [(100, 100, 100, 100)] * 3 + [(100, 100, 90, 94), (94, 96.9, 92, 96.9), (96, 97, 95.5, 96.5)]
    cd = candles(rows)
    p = {"ma_period": 2, "num_levels": 1, "envelope_start": 0.05, "envelope_step": 0.0, "sl_percent": 0.5,
         "rsi_period": 2, "rsi_oversold": 30.0, "rsi_overbought": 70.0}
    res = both(cd, "grid_rsi", p)
    (cyc,) = res.cycles
    entry = 97 * 0.95
    q = 10_000.0 / entry
    assert (cyc.open_time, cyc.close_time, cyc.exit_reason) == (4 * H, 5 * H, "tp")
    assert math.isclose(cyc.avg_entry, 92.15, abs_tol=TOL) and cyc.exit_price == 96.0   # TP at the open
    assert math.isclose(cyc.pnl, one_cycle_pnl(q, entry, 96.0, 2.0), abs_tol=TOL)
    assert math.isclose(cyc.pnl, 409.546, abs_tol=1e-3)
    # the RSI gate is what kept candle 3 flat: envelope_dca fills there
    env = run_event_backtest(cd, "envelope_dca", {k: p[k] for k in
                                                  ("ma_period", "num_levels", "envelope_start", "envelope_step",
                                                   "sl_percent")})
    assert env.cycles[0].open_time == 3 * H


def test_grid_funding_worked_example() -> None:
    rows = [(100, 100, 100, 100)] * 2 + [(100, 100, 94, 96), (96, 99, 95.5, 98.5), (98.5, 98.5, 90, 92)]
    cd = candles(rows)
    funding = (np.asarray([0, 3 * H], dtype=np.int64), np.asarray([-0.0002, 0.0001]))
    p = {"ma_period": 2, "num_levels": 1, "envelope_start": 0.05, "envelope_step": 0.0, "sl_percent": 0.5,
         "funding_threshold": 0.0001}
    res = both(cd, "grid_funding", p, funding)
    (cyc,) = res.cycles
    q = 10_000.0 / 95.0
    assert (cyc.open_time, cyc.close_time, cyc.exit_reason, cyc.exit_price) == (2 * H, 3 * H, "tp", 98.0)
    assert math.isclose(cyc.pnl, one_cycle_pnl(q, 95.0, 98.0, 2.0), abs_tol=TOL)
    assert math.isclose(cyc.pnl, 307.600, abs_tol=1e-3)
    assert res.equity[-1] == res.final_equity == res.equity[3]          # t = 4: flat, gate closed
    # without funding the gate never opens (fail closed)
    assert run_event_backtest(cd, "grid_funding", p).cycles == []


def test_grid_mtf_worked_example() -> None:
    rows = [(100, 100, 100, 100)] * 2 + [(104, 104, 104, 104)] * 2 + [(104, 104, 96, 97), (97, 102.5, 97, 101)]
    cd = candles(rows)
    p = {"ma_period": 2, "num_levels": 1, "envelope_start": 0.05, "envelope_step": 0.0, "sl_percent": 0.5,
         "htf_hours": 2, "trend_period": 2}
    res = both(cd, "grid_mtf", p)
    (cyc,) = res.cycles
    q = 10_000.0 / (102 * 0.95)
    assert (cyc.open_time, cyc.close_time, cyc.exit_reason, cyc.exit_price) == (4 * H, 5 * H, "tp", 102.0)
    assert math.isclose(cyc.avg_entry, 96.9, abs_tol=TOL)
    assert math.isclose(cyc.pnl, one_cycle_pnl(q, 102 * 0.95, 102.0, 2.0), abs_tol=TOL)
    assert math.isclose(cyc.pnl, 518.0, abs_tol=1e-9)


@pytest.mark.parametrize("strategy,params", [
    ("grid_atr", {"num_levels": 0}), ("grid_rsi", {"rsi_oversold": 80, "rsi_overbought": 70}),
    ("grid_mtf", {"htf_hours": 5}), ("grid_funding", {"funding_threshold": 0}), ("grid_atr", {"nope": 1}),
])
def test_bad_params_are_named(strategy: str, params: dict) -> None:
    from core.strategies import registry
    from core.strategies.base import ParamError

    with pytest.raises(ParamError, match=strategy):
        registry.create(strategy, params)


def test_grid_mtf_refuses_a_htf_that_is_not_a_multiple() -> None:
    from core.strategies.base import ParamError

    cd = Candles.from_rows("TEST/USDT", "spot", "4h",
                           np.asarray([(i * 4 * H, 1, 1, 1, 1, 1) for i in range(3)], dtype=np.float64))
    with pytest.raises(ParamError, match="htf_hours=2 is not a whole multiple"):
        run_event_backtest(cd, "grid_mtf", {"htf_hours": 2})
