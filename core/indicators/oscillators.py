"""RSI, Wilder's Relative Strength Index."""

from __future__ import annotations

from numba import njit

from core.indicators._runs import finite_runs, nan_array, valid1


@njit(cache=True, nogil=True)
def _rsi_value(avg_gain, avg_loss):
    total = avg_gain + avg_loss
    if total == 0.0:
        return 50.0  # no price change over the window: neutral (TA-Lib returns 0.0 here)
    return 100.0 * (avg_gain / total)


@njit(cache=True, nogil=True)
def rsi_run(x, n, out):
    """TA-Lib's RSI loop on one finite run (ta_RSI.c, default mode, unstable period 0)."""
    m = x.shape[0]
    if m <= n:
        return
    gain = 0.0
    loss = 0.0
    prev = x[0]
    for i in range(1, n + 1):
        d = x[i] - prev
        prev = x[i]
        if d < 0:
            loss -= d
        else:
            gain += d
    loss /= n
    gain /= n
    out[n] = _rsi_value(gain, loss)
    for i in range(n + 1, m):
        d = x[i] - prev
        prev = x[i]
        loss *= n - 1
        gain *= n - 1
        if d < 0:
            loss -= d
        else:
            gain += d
        loss /= n
        gain /= n
        out[i] = _rsi_value(gain, loss)


@njit(cache=True, nogil=True)
def rsi(close, n):
    """Relative Strength Index, `RSI = 100 * AG / (AG + AL)` (= 100 - 100/(1 + AG/AL)).

    Source: Wilder 1978, "New Concepts in Technical Trading Systems"; computed exactly as
    TA-Lib's RSI (ta_RSI.c, default compatibility, unstable period 0): with
    d[t] = close[t] - close[t-1], the first averages (at t = n) are the plain means of
    the gains max(d, 0) and losses max(-d, 0) over t = 1..n; afterwards Wilder's smoothing
    `A[t] = (A[t-1] * (n-1) + v[t]) / n`. Matches talib.RSI to ~1e-15 relative.

    Deliberate difference from TA-Lib: when AG + AL == 0 exactly (no close has changed
    since the run started, e.g. a frozen/halted market) the RSI is 50 (neutral), where
    TA-Lib gives 0, which would read as "extremely oversold". Any earlier move keeps
    AG + AL > 0 (Wilder averages decay geometrically), so this case is only a flat start.

    Args:
        close: float64 array, shape (m,).
        n: period in candles, n >= 2.
    Returns:
        float64 array, shape (m,), values in [0, 100]; NaN for t < n (warm-up n, as TA-Lib).
        After a missing input the RSI restarts (warm-up n again).
    """
    if n < 2:
        raise ValueError("rsi: n must be >= 2")
    out = nan_array(close.shape[0])
    runs = finite_runs(valid1(close))
    for r in range(runs.shape[0]):
        s, e = runs[r, 0], runs[r, 1]
        rsi_run(close[s:e], n, out[s:e])
    return out
