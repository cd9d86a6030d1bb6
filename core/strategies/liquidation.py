"""liquidation: fade a liquidation cascade (an open-interest drop with a large price move).

Bitget offers, through ccxt, neither an open-interest history (`fetchOpenInterestHistory`
is False in ccxt 4.5 for bitget) nor a public liquidation stream (no `watchLiquidations` in
ccxt.pro's bitget; `fetchLiquidations` is False, only the account's own
`fetchMyLiquidations`). The strategy therefore works on a liquidation PROXY: the
open-interest series (ts ms UTC, open interest in contracts/base units) — downloaded where
an exchange offers its history (`radar data download --open-interest`), or recorded live
from bitget's open-interest snapshot at every candle close
(`core.data.liquidation_stream`) — plus the candles.

Rules (`docs/single_position.md`, "liquidation"), with `oi[t]` = the latest open-interest
sample whose time is <= candle t's open time (nan: none yet), `n = oi_period`,
`a = atr(high, low, close, atr_period)[t−1]`:

* `drop = 1 − oi[t] / oi[t−n]` (fraction; needs t >= n, both samples known, oi[t−n] > 0);
  `move = close[t−1] − open[t−n]` (the price change over the same n candles, quote units).
* Signal for candle t: long (longs were liquidated: fade the fall) when
  `drop >= oi_drop_threshold` and `move <= −move_atr·a`; short (shorts were squeezed) when
  `drop >= oi_drop_threshold` and `move >= move_atr·a`; `a` must be a number.
  Ignored while a trade is open.
* Entry: market at candle t's open X (taker fee), notional = cash · leverage.
* Stop / take-profit fixed at the entry in ATRs of candle t−1: long `X − sl_atr·a` /
  `X + tp_atr·a`, short `X + sl_atr·a` / `X − tp_atr·a`.
* Time exit: still open at the open of candle te + max_hold_candles: exit there, "time".

The open-interest series travels through the engines' `funding=` argument (the strategy's
side series, `(ts, value)` sorted by ts): `run_event_backtest(..., funding=oi)`,
`run_fast`, `sweep`, the walk-forward evaluators and the live runner.
"""

from __future__ import annotations

from math import isfinite

import numpy as np

from core.indicators import atr
from core.strategies.array_signal import ATR, ArraySignalStrategy, SignalArrays, lagged
from core.strategies.base import ParamError
from core.strategies.funding import rate_at_open
from core.strategies.params import LiquidationParams

def oi_at_open(ts: np.ndarray, oi) -> np.ndarray:
    """Per candle (open times ts, int64 ms UTC), the latest open interest with sample time <= ts
    (nan: none yet). oi: (ts int64 ms UTC sorted, value float64). Shape (n,) float64."""
    return rate_at_open(ts, oi)


def cascade_signal(oi_t: float, oi_n: float, move: float, a: float, thr: float, k: float) -> int:
    """The rule for one candle, in Python floats (the live stream's twin of `signal_arrays`):
    +1 long, −1 short, 0 none. oi_t, oi_n: open interest at candle t and t−n; move:
    close[t−1] − open[t−n]; a: atr[t−1]; thr: oi_drop_threshold; k: move_atr."""
    if not (oi_n > 0.0 and isfinite(oi_t) and isfinite(move) and isfinite(a)):
        return 0
    drop = 1.0 - oi_t / oi_n
    if not drop >= thr:
        return 0
    d = k * a
    if move <= -d:
        return 1
    if move >= d:
        return -1
    return 0


class Liquidation(ArraySignalStrategy):
    """liquidation (see the module docstring). Params: oi_period, oi_drop_threshold,
    move_atr, atr_period, sl_atr, tp_atr, max_hold_candles. Needs the open-interest series
    (`set_open_interest`, or `funding=(ts, oi)` of the engines)."""

    name = "liquidation"
    MODEL = LiquidationParams
    STOP_MODE = ATR
    TP_MODE = ATR
    NEEDS_OPEN_INTEREST = True      # the engines, evaluators and runners pass it the open interest

    def set_open_interest(self, ts: np.ndarray, oi: np.ndarray) -> None:
        """The open-interest series (ts int64 ms UTC sorted, open interest float64)."""
        self.set_funding(ts, oi)

    def _compute(self, ts, o, h, l, c, v) -> SignalArrays:
        if self.funding is None:
            raise ParamError(f"{self.name}: needs an open-interest series (set_open_interest / funding=(ts, oi))")
        return super()._compute(ts, o, h, l, c, v)

    @classmethod
    def indicator_key(cls, p: dict) -> tuple:
        return (p["oi_period"], p["oi_drop_threshold"], p["move_atr"], p["atr_period"])

    @classmethod
    def signal_arrays(cls, p: dict, ts, o, h, l, c, v, funding=None) -> SignalArrays:
        """SignalArrays of params p (module docstring); `funding` is the open-interest series.

        Raises:
            ParamError: no open-interest series given.
        """
        if funding is None:
            raise ParamError("liquidation: needs an open-interest series (funding=(ts, oi))")
        m = ts.shape[0]
        n = int(p["oi_period"])
        oi = oi_at_open(ts, funding)
        a1 = lagged(atr(h, l, c, int(p["atr_period"])))
        oi_n = np.full(m, np.nan)
        move = np.full(m, np.nan)
        if m > n:
            oi_n[n:] = oi[:-n]
            move[n:] = c[n - 1:-1] - o[:-n]
        with np.errstate(invalid="ignore", divide="ignore"):
            ok = (oi_n > 0.0) & np.isfinite(oi) & np.isfinite(move) & np.isfinite(a1)
            drop = 1.0 - oi / np.where(ok, oi_n, 1.0)
            d = float(p["move_atr"]) * a1
            hit = ok & (drop >= float(p["oi_drop_threshold"]))
            s = np.where(hit & (move <= -d), 1, np.where(hit & (move >= d), -1, 0)).astype(np.int8)
        return SignalArrays(s, a1, a1)

    @classmethod
    def exit_params(cls, p: dict) -> tuple[float, float, int]:
        return float(p["sl_atr"]), float(p["tp_atr"]), int(p["max_hold_candles"])

