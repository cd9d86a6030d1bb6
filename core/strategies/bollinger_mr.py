"""bollinger_mr: Bollinger-band mean reversion, take-profit at the (moving) middle band.

Rules (`docs/single_position.md`), with N = bb_period, k = bb_std, p = sl_percent and
`(upper, middle, lower) = core.indicators.bollinger(close, N, k)`:

* Signal for candle t, from the values at t−1: long when `close[t−1] < lower[t−1]`, short
  when `close[t−1] > upper[t−1]` (strict; NaN bands during the N−1 warm-up: no signal).
  Ignored while a trade is open.
* Entry: market at candle t's open X (taker fee), notional = cash · leverage.
* Stop: fixed from the fill, long `X·(1 − p)`, short `X·(1 + p)`.
* Take-profit: the middle band `middle[t−1]`, re-quoted at the open of every candle of the
  trade (a touch closes the trade; a middle band already on the wrong side of the open
  closes it at the open by "tp", possibly at a loss).
* No time exit; end of data closes at the last close.
"""

from __future__ import annotations

import numpy as np

from core.indicators import bollinger
from core.strategies.array_signal import LINE, PCT, ArraySignalStrategy, SignalArrays, lag_signal, lagged
from core.strategies.params import BollingerMrParams


class BollingerMr(ArraySignalStrategy):
    """bollinger_mr (see the module docstring). Params: bb_period, bb_std, sl_percent."""

    name = "bollinger_mr"
    MODEL = BollingerMrParams
    STOP_MODE = PCT
    TP_MODE = LINE

    @classmethod
    def indicator_key(cls, p: dict) -> tuple:
        return (p["bb_period"], p["bb_std"])

    @classmethod
    def signal_arrays(cls, p: dict, ts, o, h, l, c, v, funding=None) -> SignalArrays:
        upper, middle, lower = bollinger(c, int(p["bb_period"]), float(p["bb_std"]))
        s = np.where(c < lower, 1, np.where(c > upper, -1, 0)).astype(np.int8)
        return SignalArrays(lag_signal(s), np.full(c.shape[0], np.nan), lagged(middle))

    @classmethod
    def exit_params(cls, p: dict) -> tuple[float, float, int]:
        return float(p["sl_percent"]), 0.0, 0
