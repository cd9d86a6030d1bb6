"""The event-engine loop of single-position strategies.

`run_single_backtest` drives one `SinglePositionStrategy` through
`core.venues.sim.single_matching.SingleMatchingEngine`, candle by candle, exactly as
`docs/single_position.md` says. Per candle t (the history holds candles 0 … t−1):

* in a position: `manage(history, entry_price)` re-quotes (stop, take-profit) (None keeps
  them), then the engine walks candle t (at-open exits, the maximum holding, the path);
* flat: `on_candle_open(history)` returns an EntryIntent or None; an intent is placed for
  candle t and the engine walks it (fill, exits from the fill, the rest of the path).

Then candle t joins the history and the equity point (cash + unrealised P&L at the close)
is taken. At the end an open trade closes at the last close, reason "end". The strategies'
array-signal base lives in `core.strategies.array_signal`.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from core.backtest.result import BacktestResult
from core.model.account import Account
from core.model.candles import Candles
from core.model.fills import END
from core.strategies.base import CandleHistory, SinglePositionStrategy
from core.venues.sim.single_matching import SingleMatchingEngine


def run_single_backtest(candles: Candles, strat: SinglePositionStrategy, account: Account = Account(), *,
                        observer: Callable[[int, SingleMatchingEngine], None] | None = None,
                        funding: tuple[np.ndarray, np.ndarray] | None = None) -> BacktestResult:
    """Backtest one single-position strategy instance on one candle series (docs/single_position.md).

    Args:
        candles: closed, valid OHLC candles (n >= 0), sorted by open time.
        strat: a fresh strategy instance.
        account: capital (USDT), leverage, fees.
        observer: called as observer(t, engine) after candle t (before the end exit).
        funding: the strategy's side series (ts int64 ms, value float64), sorted: the funding
            rates of `funding`, the open interest of `liquidation`; None for the others.

    Returns:
        BacktestResult (cycles = trades, per-candle equity shape (n,), final_equity = cash).
    """
    if funding is not None and hasattr(strat, "set_funding"):
        strat.set_funding(*funding)
    if hasattr(strat, "prepare"):
        strat.prepare(candles)
    hist = CandleHistory()
    eng = SingleMatchingEngine(strat, hist, account)
    max_hold = int(getattr(strat, "max_hold", 0) or 0)
    n = len(candles)
    ts = candles.ts.tolist()
    op = candles.open.tolist()
    hi = candles.high.tolist()
    lo = candles.low.tolist()
    cl = candles.close.tolist()
    equity = [0.0] * n
    remember = hist.append
    walk = eng.process_candle
    for t in range(n):
        c = cl[t]
        if eng.side is not None:
            ex = strat.manage(hist, eng.entry_price)
            if ex is not None:
                eng.amend(*ex)
            walk(ts[t], op[t], hi[t], lo[t], c)
        else:
            intent = strat.on_candle_open(hist)
            if intent is not None:
                eng.place_entry(intent, max_hold)
                walk(ts[t], op[t], hi[t], lo[t], c)
        remember(ts[t], op[t], hi[t], lo[t], c)
        equity[t] = eng.equity(c)
        if observer is not None:
            observer(t, eng)
    if n and eng.side is not None:
        eng.close_position(ts[-1], cl[-1], END)
        equity[-1] = eng.cash
    return BacktestResult(
        strategy=strat.name, symbol=candles.symbol, timeframe=candles.timeframe, params=dict(strat.params),
        cycles=list(eng.cycles), final_equity=float(eng.cash),
        ts=np.asarray(candles.ts, dtype=np.int64).copy(), equity=np.asarray(equity, dtype=np.float64),
        account=account,
    )
