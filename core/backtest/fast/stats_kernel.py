"""The fast engines' running statistics, shared by `envelope_kernel` and `single_kernels`
(numba, no Python objects): max drawdown and the daily Sharpe ratio from the equity curve.

Daily Sharpe, as `core.backtest.metrics` computes it: the last equity point of each UTC day;
r_d = E_d / E_{d−1} − 1 for consecutive days; mean and sample standard deviation (n − 1) of
the r_d; Sharpe = mean / std · √365 (0 with fewer than two returns or zero variance). The sums
of r and r² are Neumaier-compensated so the fast engines agree with the event engine to the
last bits. Every function keeps the operations of the code it replaced, in the same order.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def kahan(s, comp, x):
    """Neumaier compensated summation step: returns the new (sum, compensation)."""
    u = s + x
    if abs(s) >= abs(x):
        comp += (s - u) + x
    else:
        comp += (x - u) + s
    return u, comp


@njit(cache=True, nogil=True)
def add_day_return(cur_eq, prev_eq, s1, c1, s2, c2):
    """Close a day: add r = cur_eq / prev_eq − 1 (when nonzero) to the compensated sums of r
    (s1, c1) and r² (s2, c2). Returns the new (s1, c1, s2, c2)."""
    r = cur_eq / prev_eq - 1.0
    if r != 0.0:
        s1, c1 = kahan(s1, c1, r)
        s2, c2 = kahan(s2, c2, r * r)
    return s1, c1, s2, c2


@njit(cache=True, nogil=True)
def drawdown_step(eq, peak, maxdd):
    """One equity point (USDT): the new (peak, max drawdown as a fraction of the peak)."""
    if eq > peak:
        peak = eq
    else:
        dd = (peak - eq) / peak
        if dd > maxdd:
            maxdd = dd
    return peak, maxdd


@njit(cache=True, nogil=True)
def daily_sharpe(s1, c1, s2, c2, n_days):
    """The annualised daily Sharpe from the compensated sums of `n_days − 1` daily returns."""
    sharpe = 0.0
    n_ret = n_days - 1
    if n_ret >= 2:
        tot1 = s1 + c1
        tot2 = s2 + c2
        mean = tot1 / n_ret
        var = (tot2 - tot1 * mean) / (n_ret - 1)
        if var > 0.0:
            sharpe = mean / np.sqrt(var) * np.sqrt(365.0)
    return sharpe
