"""The worked example of `liquidation` in docs/single_position.md, in both engines, by hand.

Account: C0 = 10,000 USDT, leverage 1, taker 0.0006. Hourly candles from ts 0; open interest
1000 at 00:00, 970 at 03:00, 940 at 05:00.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.backtest.event_engine import run_event_backtest
from core.backtest.fast import run_fast
from core.model.candles import Candles
from core.strategies.liquidation import Liquidation, cascade_signal

H = 3_600_000
TOL = 1e-9
ROWS = [(100, 101, 99, 100), (100, 101, 99, 100), (100, 100.5, 95, 96), (97, 99, 96.5, 98.5),
        (98.5, 105, 98, 104), (104, 104.5, 103, 103.5), (103.5, 104, 102, 103), (103, 103.5, 102.5, 103),
        (102, 102.5, 101.5, 102)]
OI = (np.array([0, 3 * H, 5 * H], dtype=np.int64), np.array([1000.0, 970.0, 940.0]))
P = dict(oi_period=1, oi_drop_threshold=0.02, move_atr=1.0, atr_period=2, sl_atr=1.0, tp_atr=2.0,
         max_hold_candles=3)


def candles() -> Candles:
    a = np.asarray([[i * H, *r, 1.0] for i, r in enumerate(ROWS)], dtype=np.float64)
    return Candles.from_rows("X/USDT:USDT", "futures", "1h", a)


def test_signal_arrays_of_the_example() -> None:
    c = candles()
    a = Liquidation.signal_arrays(P, c.ts, c.open, c.high, c.low, c.close, c.volume, OI)
    assert a.sig.tolist() == [0, 0, 0, 1, 0, -1, 0, 0, 0]
    assert a.sref[3:6].tolist() == pytest.approx([3.75, 3.375, 5.1875], rel=TOL)
    # the scalar rule (the live stream's) gives the same signals
    assert cascade_signal(970.0, 1000.0, 96.0 - 100.0, 3.75, 0.02, 1.0) == 1
    assert cascade_signal(940.0, 970.0, 104.0 - 98.5, 5.1875, 0.02, 1.0) == -1
    assert cascade_signal(970.0, 970.0, -10.0, 3.75, 0.02, 1.0) == 0       # no drop
    assert cascade_signal(970.0, 1000.0, -3.7, 3.75, 0.02, 1.0) == 0       # move too small
    assert cascade_signal(970.0, float("nan"), -4.0, 3.75, 0.02, 1.0) == 0


@pytest.mark.parametrize("engine", ("event", "fast"))
def test_worked_example(engine: str) -> None:
    run = run_event_backtest if engine == "event" else run_fast
    res = run(candles(), "liquidation", P, funding=OI)
    q1 = 10000 / 97
    pnl1 = q1 * 7.5 - 6.0 - q1 * 104.5 * 0.0006
    cash1 = 10000 + pnl1
    q2 = cash1 / 104
    pnl2 = q2 * 2 - q2 * 104 * 0.0006 - q2 * 102 * 0.0006
    got = [(c.side, c.open_time // H, c.close_time // H, c.avg_entry, c.exit_price, c.exit_reason)
           for c in res.cycles]
    assert got == [("long", 3, 4, 97.0, 104.5, "tp"), ("short", 5, 8, 104.0, 102.0, "time")]
    assert [c.pnl for c in res.cycles] == pytest.approx([pnl1, pnl2], rel=TOL)
    assert pnl1 == pytest.approx(760.7319587628866, rel=TOL)
    assert pnl2 == pytest.approx(194.14843699444887, rel=TOL)
    assert res.final_equity == pytest.approx(cash1 + pnl2, rel=TOL)
    assert res.final_equity == pytest.approx(10954.880395757335, rel=TOL)
    assert res.equity[3] == pytest.approx(9994 + q1 * 1.5, rel=TOL)
