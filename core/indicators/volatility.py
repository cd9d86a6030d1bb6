"""Volatility: true range, ATR (Wilder) and Bollinger Bands."""

from __future__ import annotations

import math

from numba import njit

from core.indicators._runs import finite_runs, nan_array, valid1, valid3
from core.indicators.moving_averages import sma_run


@njit(cache=True, nogil=True)
def tr_value(high, low, prev_close):
    """One true range, max(H - L, |C[t-1] - H|, |C[t-1] - L|), in TA-Lib's evaluation order."""
    greatest = high - low
    v = abs(prev_close - high)
    if v > greatest:
        greatest = v
    v = abs(prev_close - low)
    if v > greatest:
        greatest = v
    return greatest


@njit(cache=True, nogil=True)
def true_range(high, low, close):
    """True range, `TR[t] = max(H[t] - L[t], |H[t] - C[t-1]|, |L[t] - C[t-1]|)`.

    Source: Wilder 1978, "New Concepts in Technical Trading Systems"; as TA-Lib's TRANGE.

    Args:
        high, low, close: float64 arrays, shape (m,), price units.
    Returns:
        float64 array, shape (m,), price units, >= 0 for valid candles (H >= L); NaN at
        t = 0 (warm-up 1, no previous close) and at the first row of each finite run.
    """
    out = nan_array(high.shape[0])
    runs = finite_runs(valid3(high, low, close))
    for r in range(runs.shape[0]):
        s, e = runs[r, 0], runs[r, 1]
        for i in range(s + 1, e):
            out[i] = tr_value(high[i], low[i], close[i - 1])
    return out


@njit(cache=True, nogil=True)
def atr_run(high, low, close, n, out):
    """TA-Lib's ATR loop on one finite run (ta_ATR.c, unstable period 0)."""
    m = high.shape[0]
    if m <= n:
        return
    total = 0.0
    for i in range(1, n + 1):
        total += tr_value(high[i], low[i], close[i - 1])
    prev = total / n
    out[n] = prev
    for i in range(n + 1, m):
        prev *= n - 1
        prev += tr_value(high[i], low[i], close[i - 1])
        prev /= n
        out[i] = prev


@njit(cache=True, nogil=True)
def atr(high, low, close, n):
    """Average True Range with Wilder's smoothing, `ATR[t] = (ATR[t-1] * (n-1) + TR[t]) / n`.

    Source: Wilder 1978, "New Concepts in Technical Trading Systems"; seeded as TA-Lib's
    ATR (ta_ATR.c, unstable period 0): the first value, at t = n, is the plain mean of the
    first n true ranges TR[1..n] (TR[0] does not exist: no previous close). Matches
    talib.ATR to ~1e-14 relative. (TradingView's ta.atr differs at the start: it uses
    H-L as TR[0] and so seeds one candle earlier.)

    Args:
        high, low, close: float64 arrays, shape (m,), price units.
        n: period in candles, n >= 1 (n = 1 gives the true range).
    Returns:
        float64 array, shape (m,), price units, >= 0; NaN for t < n (warm-up n). A row with
        any missing input restarts the ATR (warm-up n again).
    """
    if n < 1:
        raise ValueError("atr: n must be >= 1")
    out = nan_array(high.shape[0])
    runs = finite_runs(valid3(high, low, close))
    for r in range(runs.shape[0]):
        s, e = runs[r, 0], runs[r, 1]
        atr_run(high[s:e], low[s:e], close[s:e], n, out[s:e])
    return out


@njit(cache=True, nogil=True)
def bollinger(close, n, k):
    """Bollinger Bands: middle = SMA(n), upper/lower = middle +/- k * sigma.

    Source: Bollinger 2001, "Bollinger on Bollinger Bands"; as TA-Lib's BBANDS with
    matype=0 (SMA) and nbdevup = nbdevdn = k: sigma is the POPULATION standard deviation
    (divide by n) of the n closes in the window, and the middle band is `sma` (TA-Lib's
    rolling-sum SMA). sigma is computed per window with a two-pass formula
    (mean, then sum of squared deviations), which is more accurate than TA-Lib's rolling
    E[x^2] - E[x]^2 (that one loses digits to cancellation and returns 0 below 1e-14);
    the bands still agree with talib.BBANDS to ~1e-12 relative on real prices. Cost O(m*n).

    Args:
        close: float64 array, shape (m,).
        n: window length in candles, n >= 1 (n = 1 gives sigma = 0).
        k: band width in standard deviations, finite and >= 0 (commonly 2).
    Returns:
        (upper, middle, lower): three float64 arrays of shape (m,), price units, with
        lower <= middle <= upper; NaN for t < n-1 (warm-up n-1) and for windows that
        contain a missing (NaN/inf) input.
    """
    if n < 1:
        raise ValueError("bollinger: n must be >= 1")
    if not (k >= 0.0 and math.isfinite(k)):
        raise ValueError("bollinger: k must be finite and >= 0")
    m = close.shape[0]
    upper = nan_array(m)
    middle = nan_array(m)
    lower = nan_array(m)
    runs = finite_runs(valid1(close))
    for r in range(runs.shape[0]):
        s, e = runs[r, 0], runs[r, 1]
        sma_run(close[s:e], n, middle[s:e])
        for t in range(s + n - 1, e):
            total = 0.0
            for j in range(t - n + 1, t + 1):
                total += close[j]
            mean = total / n
            ss = 0.0
            for j in range(t - n + 1, t + 1):
                d = close[j] - mean
                ss += d * d
            width = math.sqrt(ss / n) * k
            upper[t] = middle[t] + width
            lower[t] = middle[t] - width
    return upper, middle, lower
