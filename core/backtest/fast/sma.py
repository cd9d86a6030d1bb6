"""Per-ma_period indicator arrays of the fast engine: the spec SMA and the skip-ahead tables.

The jitted loops are in `envelope_kernel.py` (see there why all jitted code shares one file).

The SMA follows `../shared/specs/envelope_dca.md` to the bit: `sma[t]` is a fresh float64
sum of `close[t-N+1] + … + close[t]`, oldest first, divided by N (no rolling sum, no
pairwise mean). The loops below add the N terms in that order for every t at once
(outer loop over the term, inner over t), which vectorises and gives exactly the same
bits as the naive per-t loop.

Skip-ahead tables (one per ma_period and side): while flat, candle t can only start a
cycle if a point of its path touches level 0, i.e. `min(O,H,L,C) = low[t] <= sma[t-1]·f0`
(long) or `high[t] >= sma[t-1]·f0` (short), f0 = the level-0 factor. We store the ratio
`rr[t] = min(O,H,L,C)/sma[t-1]` (long) or `rr[t] = -(max(O,H,L,C)/sma[t-1])` (short, negated
so both sides are "touch when rr <= threshold"; min/max of the four rather than L/H so
that even an inconsistent candle is never skipped wrongly), +inf for t < N (no trading),
-inf where a NaN is involved (always a candidate), and the minimum of rr over blocks of
`BLOCK` candles and super-blocks of `SUPER` candles. The kernel skips
every (super-)block whose minimum is above a threshold with a relative safety margin,
and then tests each remaining candidate with the exact spec comparison.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.backtest.fast.envelope_kernel import BLOCK, LOG_BLOCK, LOG_SUPER, build_indicators, sma_fresh

__all__ = ["Indicators", "compute_indicators", "sma_fresh"]


@dataclass(frozen=True)
class Indicators:
    """Indicator tables for a set of distinct ma_periods on one candle series and one side.

    periods: int64 (K,), the distinct ma_periods; row k of every table belongs to periods[k].
    sma: (K, n) spec SMA (NaN before N-1). rr, bmin, smin: skip-ahead tables (see module doc).
    """

    periods: np.ndarray
    sgn: float
    sma: np.ndarray
    rr: np.ndarray
    bmin: np.ndarray
    smin: np.ndarray

    def row(self, ma_period: int) -> int:
        return int(np.searchsorted(self.periods, ma_period))


def compute_indicators(o: np.ndarray, h: np.ndarray, l: np.ndarray, c: np.ndarray,
                       periods, sgn: float) -> Indicators:
    """The tables for every distinct period in `periods`, each computed once."""
    ps = np.unique(np.asarray(periods, dtype=np.int64))
    n = c.shape[0]
    k = ps.shape[0]
    nb = (n + BLOCK - 1) >> LOG_BLOCK
    nsb = (nb + (1 << LOG_SUPER) - 1) >> LOG_SUPER
    sma2d = np.empty((k, n))
    rr2d = np.empty((k, n))
    bmin2d = np.empty((k, max(nb, 1)))
    smin2d = np.empty((k, max(nsb, 1)))
    if n:
        build_indicators(o, h, l, c, ps, float(sgn), sma2d, rr2d, bmin2d, smin2d)
    return Indicators(ps, float(sgn), sma2d, rr2d, bmin2d, smin2d)
