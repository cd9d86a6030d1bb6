"""liquidation: the numba fast engine and the event-driven engine agree (1e-9 relative).

Real candles (the binance-futures 5m perpetual series) with a deterministic synthetic
open-interest series (`tests/support/open_interest_data.py`: no OI history is stored
offline). Per series: 6 seeded combos of the default grid (`config/param_grids.yaml`) and
the whole comparison of `check` (n_cycles, final_equity, max_drawdown, sharpe, and for the
first combo run_fast's trades and equity curve), as the other single-position strategies.
"""

from __future__ import annotations

import pytest

from core.backtest.event_engine import run_event_backtest
from core.backtest.fast import run_fast
from core.strategies.base import ParamError
from tests.backtest.test_single_position_engines_agree import check, futures, grid, sample
from tests.support.open_interest_data import synthetic_oi


@pytest.mark.parametrize("sym", ("BTC", "SOL"))
def test_engines_agree_liquidation_sample(sym: str) -> None:
    candles, _ = futures(sym)
    oi = synthetic_oi(candles)
    assert check(candles, "liquidation", sample("liquidation"), oi) == []
    # the check exercises the strategy: both sides, and sl / tp / time exits
    ev = run_event_backtest(candles, "liquidation", {}, funding=oi)
    assert ev.n_cycles > 20
    assert {c.side for c in ev.cycles} == {"long", "short"}
    assert {"sl", "tp", "time"} <= {c.exit_reason for c in ev.cycles}


def test_without_open_interest_every_engine_refuses() -> None:
    candles, _ = futures("BTC")
    few = candles.between(None, int(candles.ts[50]))
    with pytest.raises(ParamError, match="open-interest"):
        run_event_backtest(few, "liquidation", {})
    with pytest.raises(ParamError, match="open-interest"):
        run_fast(few, "liquidation", {})


@pytest.mark.slow
@pytest.mark.parametrize("sym", ("BTC", "ETH", "SOL", "LINK"))
def test_engines_agree_liquidation_full_grid(sym: str) -> None:
    candles, _ = futures(sym)
    assert check(candles, "liquidation", range(len(grid("liquidation"))), synthetic_oi(candles)) == []
