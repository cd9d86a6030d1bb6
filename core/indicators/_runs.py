"""Missing-data handling shared by every indicator: split a series into finite runs.

Rule (the same for all indicators in this package): an input row is *missing* when any
of the indicator's inputs is NaN or +/-inf at that index. Missing rows get NaN output, and
each maximal run of non-missing rows is computed as an independent series, with its own
warm-up. So a gap never poisons the rest of the series (a rolling sum or a recursive
average would otherwise carry the NaN forever), and no value is computed across a gap.

For leading NaNs this is exactly what the `talib` Python wrapper does (it starts the C
function at the first row where no input is NaN). For interior NaNs TA-Lib differs: it
propagates them (NaN forever for recursive indicators).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def finite_runs(valid):
    """Maximal runs of True in the bool array `valid`, as an int64 (k, 2) array of [start, stop)."""
    n = valid.shape[0]
    runs = np.empty((n // 2 + 1, 2), dtype=np.int64)
    k = 0
    i = 0
    while i < n:
        if valid[i]:
            j = i + 1
            while j < n and valid[j]:
                j += 1
            runs[k, 0] = i
            runs[k, 1] = j
            k += 1
            i = j
        else:
            i += 1
    return runs[:k]


@njit(cache=True, nogil=True)
def valid1(a):
    """True where `a` is finite."""
    n = a.shape[0]
    out = np.empty(n, dtype=np.bool_)
    for i in range(n):
        out[i] = np.isfinite(a[i])
    return out


@njit(cache=True, nogil=True)
def valid2(a, b):
    """True where `a` and `b` are both finite (same length required)."""
    if b.shape[0] != a.shape[0]:
        raise ValueError("indicator inputs must have the same length")
    n = a.shape[0]
    out = np.empty(n, dtype=np.bool_)
    for i in range(n):
        out[i] = np.isfinite(a[i]) and np.isfinite(b[i])
    return out


@njit(cache=True, nogil=True)
def valid3(a, b, c):
    """True where `a`, `b` and `c` are all finite (same length required)."""
    if b.shape[0] != a.shape[0] or c.shape[0] != a.shape[0]:
        raise ValueError("indicator inputs must have the same length")
    n = a.shape[0]
    out = np.empty(n, dtype=np.bool_)
    for i in range(n):
        out[i] = np.isfinite(a[i]) and np.isfinite(b[i]) and np.isfinite(c[i])
    return out


@njit(cache=True, nogil=True)
def nan_array(n):
    """A float64 array of `n` NaNs."""
    return np.full(n, np.nan)
