"""The numba fast engine of envelope_dca / envelope_dca_short (`radar backtest --engine fast`).

`run_fast` backtests one combo with the full per-candle equity curve and the cycle list;
`sweep` backtests many combos at once (stats only), in parallel. Both follow
`../shared/specs/envelope_dca.md` exactly and agree with the event-driven engine.
"""

from __future__ import annotations

import numpy as np

from core.backtest.fast.combos import DEFAULT_GRID, DEFAULT_PARAMS, Combos, as_combos, grid_combos
from core.backtest.fast.envelope_kernel import REASONS, run_combo
from core.backtest.fast.grid_family import is_grid_family, run_grid_fast
from core.backtest.fast.single_kernels import is_single, run_single_fast
from core.backtest.fast.sma import compute_indicators
from core.backtest.fast.sweep import SweepResult, candle_arrays, side_sign, sweep
from core.backtest.result import BacktestResult
from core.model.account import Account
from core.model.candles import Candles
from core.model.cycle import Cycle

__all__ = ["run_fast", "sweep", "SweepResult", "Combos", "grid_combos", "as_combos",
           "DEFAULT_GRID", "DEFAULT_PARAMS"]


def run_fast(candles: Candles, strategy: str, params: dict, account: Account = Account(), *,
             skip: bool = True, funding=None) -> BacktestResult:
    """Backtest one combo: per-candle equity and every cycle. skip=False scans every candle.

    Single-position strategies (`docs/single_position.md`) run in
    `core.backtest.fast.single_kernels` (skip is ignored; funding=(ts, rate) is required by
    `funding`); the grid family in `core.backtest.fast.grid_family` (skip ignored; funding
    required by grid_funding)."""
    if is_single(strategy):
        return run_single_fast(candles, strategy, params, account, funding=funding)
    if is_grid_family(strategy):      # grid_atr, grid_rsi, grid_funding, grid_mtf (docs/grid_family.md)
        return run_grid_fast(candles, strategy, params, account, funding=funding)
    sgn = side_sign(strategy)
    cmb = as_combos([params])
    p = cmb.params(0)
    day, o, h, l, c, n_days = candle_arrays(candles)
    n = o.shape[0]
    ts = np.asarray(candles.ts, dtype=np.int64)
    if n == 0:
        return BacktestResult(strategy, candles.symbol, candles.timeframe, p, [],
                              float(account.initial_capital), ts, np.empty(0), account)
    ind = compute_indicators(o, h, l, c, cmb.ma_period, sgn)
    eq = np.empty(n)
    cyc_i = np.empty((n, 4), dtype=np.int64)
    cyc_f = np.empty((n, 4))
    st = run_combo(day, o, h, l, c, ind.sma[0], ind.rr[0], ind.bmin[0], ind.smin[0], n_days,
                   p["ma_period"], p["num_levels"], p["envelope_start"], p["envelope_step"], p["sl_percent"], sgn,
                   float(account.initial_capital), float(account.leverage),
                   float(account.maker_fee), float(account.taker_fee), bool(skip), True, eq, cyc_i, cyc_f)
    side = "long" if sgn > 0 else "short"
    cycles = [
        Cycle(open_time=int(ts[ci[0]]), close_time=int(ts[ci[1]]), side=side, levels_filled=int(ci[2]),
              avg_entry=float(cf[0]), exit_price=float(cf[1]), exit_reason=REASONS[ci[3]],
              qty=float(cf[2]), pnl=float(cf[3]))
        for ci, cf in zip(cyc_i[: st[1]].tolist(), cyc_f[: st[1]].tolist())
    ]
    return BacktestResult(strategy, candles.symbol, candles.timeframe, p, cycles, float(st[0]), ts, eq, account)
