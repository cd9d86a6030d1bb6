"""Technical indicators: numba-jitted (`@njit(cache=True, nogil=True)`) functions over 1-D
float64 arrays (contiguous for best speed), callable from Python and from other jitted code.

Every function returns float64 array(s) of the input length, NaN through its warm-up
(documented per function). Missing data: a row where any input is NaN or +/-inf gets NaN
output and splits the series; each finite run is computed as an independent series with
its own warm-up (see `core/indicators/_runs.py`). Periods are in candles; prices and
outputs are in the input's units.

Caching caveat: numba's on-disk cache (`cache=True`) is keyed on each function's own
source file only. After editing a helper another module calls (`_runs.py`,
`volatility.tr_value`/`atr_run`, `moving_averages.sma_run`), delete
`core/indicators/__pycache__/` or the callers keep running the old compiled helper.

| function | warm-up (NaN rows) | matches |
|---|---|---|
| sma(x, n) | n-1 | talib.SMA |
| sma_exact(x, n) | n-1 | the envelope_dca spec's fresh-sum SMA (bit-exact) |
| ema(x, n) | n-1 | talib.EMA |
| rsi(close, n) | n | talib.RSI (except a flat start: 50, TA-Lib 0) |
| true_range(high, low, close) | 1 | talib.TRANGE |
| atr(high, low, close, n) | n | talib.ATR |
| bollinger(close, n, k) -> (upper, middle, lower) | n-1 | talib.BBANDS(matype=0) |
| donchian(high, low, n) -> (upper, lower, middle) | n-1 | talib.MAX / talib.MIN |
| supertrend(high, low, close, atr_period, multiplier) -> (line, direction) | atr_period | Pine ta.supertrend rules |
| rolling_vwap(high, low, close, volume, n) | n-1 | — |
| adx(high, low, close, n) | 2n-1 | talib.ADX |

Step by step (pure Python, one candle at a time, bit-identical to the functions above; not
re-exported here): `incremental` holds the incremental indicators (Ema, Rsi, Atr, ...),
`signal_streams` the per-strategy signal streams a live single-position runner is fed by.
"""

from core.indicators.channels import donchian
from core.indicators.moving_averages import ema, sma, sma_exact
from core.indicators.oscillators import rsi
from core.indicators.trend import adx, supertrend
from core.indicators.volatility import atr, bollinger, true_range
from core.indicators.vwap import rolling_vwap

__all__ = [
    "adx",
    "atr",
    "bollinger",
    "donchian",
    "ema",
    "rolling_vwap",
    "rsi",
    "sma",
    "sma_exact",
    "supertrend",
    "true_range",
]
