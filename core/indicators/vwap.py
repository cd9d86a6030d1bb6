"""Rolling volume-weighted average price over the last n candles."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from core.indicators._runs import finite_runs, nan_array


@njit(cache=True, nogil=True)
def rolling_vwap(high, low, close, volume, n):
    """Rolling VWAP over the last n candles including the current one:

        tp[t] = (H[t] + L[t] + C[t]) / 3             (typical price, as TA-Lib TYPPRICE)
        vwap[t] = sum(tp * V over t-n+1..t) / sum(V over t-n+1..t)

    Source: the standard VWAP (Berkowitz, Logue & Noser 1988, "The Total Cost of
    Transactions on the NYSE") estimated from candles with the typical price, over a
    rolling window instead of a session. No TA-Lib equivalent.

    Both sums are taken fresh for every window (cost O(m*n)), not as rolling sums: volume
    spans many orders of magnitude, and after a spike leaves the window a rolling sum
    keeps an absolute rounding residue of the spike's size, which can be a large relative
    error on a quiet window's small volume sum (and turn an all-zero window into a
    nonzero one).

    Args:
        high, low, close: float64 arrays, shape (m,), price units.
        volume: float64 array, shape (m,), base-currency volume, expected >= 0.
        n: window length in candles, n >= 1.
    Returns:
        float64 array, shape (m,), price units; NaN for t < n-1 (warm-up n-1), NaN where
        every volume in the window is 0 (sum of volume is 0), and NaN for windows that
        contain a missing row: any input NaN/inf, or a negative volume (invalid data).
    """
    if n < 1:
        raise ValueError("rolling_vwap: n must be >= 1")
    m = high.shape[0]
    if low.shape[0] != m or close.shape[0] != m or volume.shape[0] != m:
        raise ValueError("indicator inputs must have the same length")
    out = nan_array(m)
    valid = np.empty(m, dtype=np.bool_)
    tp = np.empty(m)
    for i in range(m):
        ok = (math.isfinite(high[i]) and math.isfinite(low[i]) and math.isfinite(close[i])
              and math.isfinite(volume[i]) and volume[i] >= 0.0)
        valid[i] = ok
        tp[i] = (high[i] + low[i] + close[i]) / 3.0 if ok else 0.0
    runs = finite_runs(valid)
    for r in range(runs.shape[0]):
        s, e = runs[r, 0], runs[r, 1]
        for t in range(s + n - 1, e):
            pv = 0.0
            vol = 0.0
            for j in range(t - n + 1, t + 1):
                pv += tp[j] * volume[j]
                vol += volume[j]
            if vol > 0.0:
                out[t] = pv / vol
    return out
