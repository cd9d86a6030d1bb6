"""momentum: EMA crossover trend following, exits in ATRs.

Rules (`docs/single_position.md`), with `ef = ema(close, fast_ema)`,
`es = ema(close, slow_ema)`, `atr = atr(high, low, close, atr_period)` (core.indicators):

* Signal for candle t (a crossover on candle t−1): long when `ef[t−1] > es[t−1]` and
  `ef[t−2] <= es[t−2]`; short when `ef[t−1] < es[t−1]` and `ef[t−2] >= es[t−2]`; only when
  all four EMA values and `atr[t−1]` are numbers. Ignored while a trade is open.
* Entry: market at candle t's open X (taker fee), notional = cash · leverage.
* Stop / take-profit, fixed at the entry with `a = atr[t−1]`: long `X − sl_atr·a` /
  `X + tp_atr·a`, short `X + sl_atr·a` / `X − tp_atr·a`.
* No time exit; end of data closes at the last close.
"""

from __future__ import annotations

import numpy as np

from core.indicators import atr, ema
from core.strategies.array_signal import ATR, ArraySignalStrategy, SignalArrays, lag_signal, lagged
from core.strategies.params import MomentumParams


class Momentum(ArraySignalStrategy):
    """momentum (see the module docstring). Params: fast_ema, slow_ema, atr_period, sl_atr, tp_atr."""

    name = "momentum"
    MODEL = MomentumParams
    STOP_MODE = ATR
    TP_MODE = ATR

    @classmethod
    def indicator_key(cls, p: dict) -> tuple:
        return (p["fast_ema"], p["slow_ema"], p["atr_period"])

    @classmethod
    def signal_arrays(cls, p: dict, ts, o, h, l, c, v, funding=None) -> SignalArrays:
        ef = ema(c, int(p["fast_ema"]))
        es = ema(c, int(p["slow_ema"]))
        a = atr(h, l, c, int(p["atr_period"]))
        ef1 = lagged(ef)
        es1 = lagged(es)
        ok = np.isfinite(a) & np.isfinite(ef) & np.isfinite(es) & np.isfinite(ef1) & np.isfinite(es1)
        up = ok & (ef > es) & (ef1 <= es1)
        down = ok & (ef < es) & (ef1 >= es1)
        s = np.where(up, 1, np.where(down, -1, 0)).astype(np.int8)
        ref = lagged(a)
        return SignalArrays(lag_signal(s), ref, ref)

    @classmethod
    def exit_params(cls, p: dict) -> tuple[float, float, int]:
        return float(p["sl_atr"]), float(p["tp_atr"]), 0
