"""supertrend: enter on a SuperTrend flip; the stop is the (trailing) SuperTrend line.

Rules (`docs/single_position.md`), with
`(line, direction) = core.indicators.supertrend(high, low, close, atr_period, multiplier)`
(direction +1 up / −1 down):

* Signal for candle t (a flip on candle t−1): long when `direction[t−1] = +1` and
  `direction[t−2] = −1`; short when `direction[t−1] = −1` and `direction[t−2] = +1`
  (NaN during the warm-up: no signal). Ignored while a trade is open.
* Entry: market at candle t's open X (taker fee), notional = cash · leverage.
* Stop: the line `line[t−1]`, re-quoted at the open of every candle of the trade (it
  trails; after a flip against the trade it is on the other side of price, so the trade
  exits at the next open by "sl"). A gap through it at the entry open exits at X.
* Take-profit: fixed from the fill, long `X·(1 + tp_percent)`, short `X·(1 − tp_percent)`.
* No time exit; end of data closes at the last close.
"""

from __future__ import annotations

import numpy as np

from core.indicators import supertrend
from core.strategies.array_signal import LINE, PCT, ArraySignalStrategy, SignalArrays, lag_signal, lagged
from core.strategies.params import SupertrendParams


class Supertrend(ArraySignalStrategy):
    """supertrend (see the module docstring). Params: atr_period, multiplier, tp_percent."""

    name = "supertrend"
    MODEL = SupertrendParams
    STOP_MODE = LINE
    TP_MODE = PCT

    @classmethod
    def indicator_key(cls, p: dict) -> tuple:
        return (p["atr_period"], p["multiplier"])

    @classmethod
    def signal_arrays(cls, p: dict, ts, o, h, l, c, v, funding=None) -> SignalArrays:
        line, d = supertrend(h, l, c, int(p["atr_period"]), float(p["multiplier"]))
        d1 = lagged(d)
        s = np.where((d == 1.0) & (d1 == -1.0), 1, np.where((d == -1.0) & (d1 == 1.0), -1, 0)).astype(np.int8)
        return SignalArrays(lag_signal(s), lagged(line), np.full(c.shape[0], np.nan))

    @classmethod
    def exit_params(cls, p: dict) -> tuple[float, float, int]:
        return 0.0, float(p["tp_percent"]), 0
