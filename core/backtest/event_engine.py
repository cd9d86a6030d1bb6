"""The event-driven backtester: strategy objects through the shared matching engine, candle by candle.

`run_event_backtest` is the reference engine of the project: it is the same code path as
the paper executor (strategy quote → `core.venues.sim.matching` walk), replayed on stored
candles, and it follows `../shared/specs/envelope_dca.md` exactly.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from core.backtest.result import BacktestResult
from core.backtest.single_driver import run_single_backtest
from core.model.account import Account
from core.model.candles import Candles
from core.model.fills import END
from core.strategies import registry
from core.strategies.base import CandleHistory, GridStrategy, SinglePositionStrategy
from core.venues.sim.matching import MatchingEngine, create_matching_engine


def run_event_backtest(candles: Candles, strategy: str, params: dict, account: Account = Account(), *,
                       observer: Callable[[int, MatchingEngine], None] | None = None,
                       funding: tuple[np.ndarray, np.ndarray] | None = None) -> BacktestResult:
    """Backtest one strategy on one candle series.

    Args:
        candles: closed, valid OHLC candles of one symbol (n >= 0), sorted by open time.
        strategy: registry name, e.g. "envelope_dca" or "envelope_dca_short".
        params: the strategy's parameters (missing ones take its defaults).
        account: initial capital (USDT), leverage, maker/taker fees (fractions).
        observer: called as `observer(t, engine)` after candle t has been processed
            (before the end-of-data exit on the last candle), for tests and tracing.
            For single-position strategies the engine is a
            `core.venues.sim.single_matching.SingleMatchingEngine`.
        funding: (ts int64 ms UTC, rate float64) funding-rate series, sorted; required by
            `funding` and `grid_funding`/`grid_funding_short`; for `liquidation` its open-interest
            series (ts, oi) instead; ignored by the others.

    Returns:
        BacktestResult with `params` normalised, the closed cycles in order, per-candle
        equity (float64, shape (n,)) at each close = cash + unrealised P&L (spec "Money"),
        `C0` while no position has been taken, the last point after the end-of-data exit
        (spec rule 4), and `final_equity` = the cash after the last exit.

    Per candle t (spec "Per candle t"): the strategy sees candles 0 … t−1 and quotes
    candle t (no trading while t < N); the matching engine walks candle t; candle t is
    then appended to the history. At the end an open cycle is closed at the last close,
    reason "end", taker fee. Single-position strategies (`SinglePositionStrategy`) go to
    `core.backtest.single_driver.run_single_backtest` (docs/single_position.md).

    Raises:
        UsageError: unknown strategy. ParamError: invalid parameters.
        TypeError: the strategy is neither a grid nor a single-position strategy.
    """
    strat = registry.create(strategy, params)
    if isinstance(strat, SinglePositionStrategy):
        return run_single_backtest(candles, strat, account, observer=observer, funding=funding)
    if not isinstance(strat, GridStrategy):
        raise TypeError(f"{strategy}: the event engine drives grid and single-position strategies only")
    strat.bind_market(candles.timeframe, funding)
    eng = create_matching_engine(strat, account)
    n = len(candles)
    ts = candles.ts.tolist()
    op = candles.open.tolist()
    hi = candles.high.tolist()
    lo = candles.low.tolist()
    cl = candles.close.tolist()
    equity = [0.0] * n
    hist = CandleHistory()
    quote = strat.on_candle_open
    walk = eng.process_candle
    remember = hist.append
    for t in range(n):
        c = cl[t]
        if quote(hist):
            walk(ts[t], op[t], hi[t], lo[t], c)
        remember(ts[t], op[t], hi[t], lo[t], c)
        equity[t] = eng.cash if eng.levels_filled == 0 else eng.equity(c)
        if observer is not None:
            observer(t, eng)
    if n and eng.levels_filled:
        eng.close_position(ts[-1], cl[-1], END)
        equity[-1] = eng.cash
    return BacktestResult(
        strategy=strategy, symbol=candles.symbol, timeframe=candles.timeframe, params=dict(strat.params),
        cycles=list(eng.cycles), final_equity=float(eng.cash),
        ts=np.asarray(candles.ts, dtype=np.int64).copy(), equity=np.asarray(equity, dtype=np.float64),
        account=account,
    )
