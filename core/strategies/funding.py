"""funding: fade an extreme perpetual funding rate.

Rules (`docs/single_position.md`), with the funding series (ts ms UTC, rate per 8 h; the
`open` column of `*-8h-funding_rate` files):

* Signal for candle t: `rate` = the latest funding rate whose funding time is <= candle t's
  open time (none yet, or older than `MAX_RATE_AGE_MS` = 16 h, two funding intervals — the
  series stopped being updated, e.g. a live engine whose stored rates end at its start: no
  signal, fail closed). Short when `rate > funding_threshold`, long when
  `rate < −funding_threshold` (strict). Ignored while a trade is open.
* Entry: market at candle t's open X (taker fee), notional = cash · leverage.
* Stop / take-profit, fixed from the fill: long `X·(1 − sl_percent)` / `X·(1 + tp_percent)`,
  short `X·(1 + sl_percent)` / `X·(1 − tp_percent)`.
* Time exit: a trade entered on candle te still open at the open of candle
  te + max_hold_candles exits there at the open, reason "time" (after the SL/TP checks at
  that open). Candles are counted as they exist in the series.
* Funding payments are not applied to the account.
"""

from __future__ import annotations

import numpy as np

from core.strategies.array_signal import PCT, ArraySignalStrategy, SignalArrays
from core.strategies.params import FundingParams


#: the oldest funding rate a signal still trusts, ms (two 8 h funding intervals); older: none
MAX_RATE_AGE_MS = 16 * 3_600_000


def rate_at_open(ts: np.ndarray, funding, max_age_ms: int | None = None) -> np.ndarray:
    """Per candle (open times ts, int64 ms), the latest funding rate with time <= ts (nan: none,
    or older than `max_age_ms` when given).

    funding: (fts int64 ms sorted, rate float64)."""
    fts, rate = funding
    fts = np.asarray(fts, dtype=np.int64)
    idx = np.searchsorted(fts, ts, "right") - 1
    out = np.full(ts.shape[0], np.nan)
    ok = idx >= 0
    if max_age_ms is not None:
        ok[ok] = ts[ok] - fts[idx[ok]] <= max_age_ms
    out[ok] = np.asarray(rate, dtype=np.float64)[idx[ok]]
    return out


class Funding(ArraySignalStrategy):
    """funding (see the module docstring). Params: funding_threshold, sl_percent, tp_percent,
    max_hold_candles. Needs the funding series (`set_funding`, or `funding=` of the engines)."""

    name = "funding"
    MODEL = FundingParams
    STOP_MODE = PCT
    TP_MODE = PCT
    NEEDS_FUNDING = True
    MAX_RATE_AGE_MS = MAX_RATE_AGE_MS

    @classmethod
    def indicator_key(cls, p: dict) -> tuple:
        return (p["funding_threshold"],)

    @classmethod
    def signal_arrays(cls, p: dict, ts, o, h, l, c, v, funding=None) -> SignalArrays:
        r = rate_at_open(ts, funding, MAX_RATE_AGE_MS)
        thr = float(p["funding_threshold"])
        s = np.where(r > thr, -1, np.where(r < -thr, 1, 0)).astype(np.int8)
        nan = np.full(ts.shape[0], np.nan)
        return SignalArrays(s, nan, nan)

    @classmethod
    def exit_params(cls, p: dict) -> tuple[float, float, int]:
        return float(p["sl_percent"]), float(p["tp_percent"]), int(p["max_hold_candles"])
