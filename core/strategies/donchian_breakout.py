"""donchian_breakout: breakout of the previous Donchian channel, exits in ATRs.

Rules (`docs/single_position.md`), with C = channel_period, A = atr_period,
`(upper, lower, _) = core.indicators.donchian(high, low, C)` (window includes its own
candle) and `atr = core.indicators.atr(high, low, close, A)`:

* Signal for candle t: long when `close[t−1] > upper[t−2]` (the close breaks above the
  highest high of candles t−1−C … t−2), short when `close[t−1] < lower[t−2]` (strict);
  only when `atr[t−1]` is a number (no signal during the warm-ups). Ignored in a trade.
* Entry: market at candle t's open X (taker fee), notional = cash · leverage.
* Stop / take-profit, fixed at the entry with `a = atr[t−1]`: long `X − sl_atr·a` /
  `X + tp_atr·a`, short `X + sl_atr·a` / `X − tp_atr·a`.
* No time exit; end of data closes at the last close.
"""

from __future__ import annotations

import numpy as np

from core.indicators import atr, donchian
from core.strategies.array_signal import ATR, ArraySignalStrategy, SignalArrays, lag_signal, lagged
from core.strategies.params import DonchianBreakoutParams


class DonchianBreakout(ArraySignalStrategy):
    """donchian_breakout (see the module docstring). Params: channel_period, atr_period, sl_atr, tp_atr."""

    name = "donchian_breakout"
    MODEL = DonchianBreakoutParams
    STOP_MODE = ATR
    TP_MODE = ATR

    @classmethod
    def indicator_key(cls, p: dict) -> tuple:
        return (p["channel_period"], p["atr_period"])

    @classmethod
    def signal_arrays(cls, p: dict, ts, o, h, l, c, v, funding=None) -> SignalArrays:
        upper, lower, _ = donchian(h, l, int(p["channel_period"]))
        a = atr(h, l, c, int(p["atr_period"]))
        up_prev = lagged(upper)
        lo_prev = lagged(lower)
        ok = np.isfinite(a)
        s = np.where(ok & (c > up_prev), 1, np.where(ok & (c < lo_prev), -1, 0)).astype(np.int8)
        ref = lagged(a)
        return SignalArrays(lag_signal(s), ref, ref)

    @classmethod
    def exit_params(cls, p: dict) -> tuple[float, float, int]:
        return float(p["sl_atr"]), float(p["tp_atr"]), 0
