"""Donchian channel: rolling highest high and lowest low."""

from __future__ import annotations

import numpy as np
from numba import njit

from core.indicators._runs import finite_runs, nan_array, valid2


@njit(cache=True, nogil=True)
def _rolling_extreme_run(x, n, out, want_max):
    """Rolling max (or min) over the last n values including the current one, O(m).

    Monotonic deque of indices: values at the queued indices are strictly decreasing
    (max) or increasing (min), so the front is the extreme of the window.
    """
    m = x.shape[0]
    q = np.empty(m, dtype=np.int64)
    head = 0
    tail = 0
    for i in range(m):
        v = x[i]
        if want_max:
            while tail > head and x[q[tail - 1]] <= v:
                tail -= 1
        else:
            while tail > head and x[q[tail - 1]] >= v:
                tail -= 1
        q[tail] = i
        tail += 1
        if q[head] <= i - n:
            head += 1
        if i >= n - 1:
            out[i] = x[q[head]]


@njit(cache=True, nogil=True)
def donchian(high, low, n):
    """Donchian channel over the last n candles INCLUDING the current one:
    `upper[t] = max(high[t-n+1..t])`, `lower[t] = min(low[t-n+1..t])`,
    `middle[t] = (upper[t] + lower[t]) / 2`.

    Source: Richard Donchian's price channel; upper/lower equal TA-Lib's MAX(high, n) and
    MIN(low, n) exactly (a max/min has no rounding). Because the current candle is
    included, close[t] always lies inside [lower[t], upper[t]]; for a breakout rule
    ("close above the previous n-candle high") compare with upper[t-1].

    Args:
        high, low: float64 arrays, shape (m,), price units.
        n: window length in candles, n >= 1.
    Returns:
        (upper, lower, middle): three float64 arrays of shape (m,), price units; NaN for
        t < n-1 (warm-up n-1) and for windows containing a row where high or low is
        missing (NaN/inf).
    """
    if n < 1:
        raise ValueError("donchian: n must be >= 1")
    m = high.shape[0]
    upper = nan_array(m)
    lower = nan_array(m)
    middle = nan_array(m)
    runs = finite_runs(valid2(high, low))
    for r in range(runs.shape[0]):
        s, e = runs[r, 0], runs[r, 1]
        _rolling_extreme_run(high[s:e], n, upper[s:e], True)
        _rolling_extreme_run(low[s:e], n, lower[s:e], False)
    for t in range(m):
        middle[t] = (upper[t] + lower[t]) / 2.0
    return upper, lower, middle
