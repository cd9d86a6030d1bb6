"""vwap_rsi: mean reversion to a rolling VWAP, filtered by the RSI.

Rules (`docs/single_position.md`), with `vwap = rolling_vwap(high, low, close, volume,
vwap_period)` and `r = rsi(close, rsi_period)` (core.indicators):

* Signal for candle t, from the values at t−1: long when `close[t−1] < vwap[t−1]` and
  `r[t−1] <= rsi_oversold`; short when `close[t−1] > vwap[t−1]` and
  `r[t−1] >= rsi_overbought` (the thresholds are inclusive, as the parameter model says;
  NaN during the warm-ups or zero-volume windows: no signal). Ignored while in a trade.
* Entry: market at candle t's open X (taker fee), notional = cash · leverage.
* Stop / take-profit, fixed from the fill: long `X·(1 − sl_percent)` / `X·(1 + tp_percent)`,
  short `X·(1 + sl_percent)` / `X·(1 − tp_percent)`.
* No time exit; end of data closes at the last close.
"""

from __future__ import annotations

import numpy as np

from core.indicators import rolling_vwap, rsi
from core.strategies.array_signal import PCT, ArraySignalStrategy, SignalArrays, lag_signal
from core.strategies.params import VwapRsiParams


class VwapRsi(ArraySignalStrategy):
    """vwap_rsi (see the module docstring). Params: vwap_period, rsi_period, rsi_oversold,
    rsi_overbought, sl_percent, tp_percent."""

    name = "vwap_rsi"
    MODEL = VwapRsiParams
    STOP_MODE = PCT
    TP_MODE = PCT

    @classmethod
    def indicator_key(cls, p: dict) -> tuple:
        return (p["vwap_period"], p["rsi_period"], p["rsi_oversold"], p["rsi_overbought"])

    @classmethod
    def signal_arrays(cls, p: dict, ts, o, h, l, c, v, funding=None) -> SignalArrays:
        vw = rolling_vwap(h, l, c, v, int(p["vwap_period"]))
        r = rsi(c, int(p["rsi_period"]))
        long = (c < vw) & (r <= float(p["rsi_oversold"]))
        short = (c > vw) & (r >= float(p["rsi_overbought"]))
        s = np.where(long, 1, np.where(short, -1, 0)).astype(np.int8)
        nan = np.full(c.shape[0], np.nan)
        return SignalArrays(lag_signal(s), nan, nan)

    @classmethod
    def exit_params(cls, p: dict) -> tuple[float, float, int]:
        return float(p["sl_percent"]), float(p["tp_percent"]), 0
