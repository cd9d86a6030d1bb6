"""Moving averages: SMA (TA-Lib arithmetic), the spec's exact SMA, and EMA (TA-Lib seeding).

All functions take 1-D float64 arrays (contiguous for best speed) and return a float64
array of the input length, NaN through the warm-up. Units are those of the input
(prices in quote currency for closes). Missing data (NaN/inf) follows the package rule
in `core/indicators/_runs.py`: each finite run is an independent series.
"""

from __future__ import annotations

from numba import njit

from core.indicators._runs import finite_runs, nan_array, valid1


@njit(cache=True, nogil=True)
def sma_run(x, n, out):
    """TA-Lib's SMA loop on one finite run: a rolling sum, `out[i] = total / n` for i >= n-1.

    Reproduces TA_INT_SMA (ta_SMA.c) operation for operation, so results agree with
    talib.SMA to the last bit or very nearly: add the newest value, divide, subtract the
    oldest.
    """
    m = x.shape[0]
    if m < n:
        return
    total = 0.0
    for i in range(n - 1):
        total += x[i]
    trailing = 0
    for i in range(n - 1, m):
        total += x[i]
        tmp = total
        total -= x[trailing]
        trailing += 1
        out[i] = tmp / n


@njit(cache=True, nogil=True)
def sma(x, n):
    """Simple moving average, `sma[t] = (x[t-n+1] + ... + x[t]) / n`.

    Source: TA-Lib's SMA (ta_SMA.c), computed with the same rolling sum, so it matches
    talib.SMA to ~1e-15 relative. Use `sma_exact` when bit-reproducibility independent of
    where the series starts matters.

    Args:
        x: float64 array, shape (m,).
        n: window length in samples, n >= 1.
    Returns:
        float64 array, shape (m,); NaN for t < n-1 (warm-up n-1) and for windows that
        contain a missing (NaN/inf) input.
    """
    if n < 1:
        raise ValueError("sma: n must be >= 1")
    out = nan_array(x.shape[0])
    runs = finite_runs(valid1(x))
    for r in range(runs.shape[0]):
        s, e = runs[r, 0], runs[r, 1]
        sma_run(x[s:e], n, out[s:e])
    return out


@njit(cache=True, nogil=True)
def sma_exact(x, n):
    """SMA with fixed arithmetic: for every t, a FRESH float64 sum of the n values taken
    oldest first, `((0.0 + x[t-n+1]) + x[t-n+2]) + ... + x[t]`, divided by n.

    Why: the envelope/grid DCA strategy spec (`../shared/specs/envelope_dca.md`, "Per
    candle t") fixes this arithmetic, because its entry/exit touches are tested with <=/>=
    against prices derived from the SMA and exact equalities occur on real data. A rolling
    sum carries rounding error from every earlier candle, so its value at t depends on
    where the loaded history starts (backtest vs live would disagree in the last bit and
    flip such touches); numpy's pairwise `mean` rounds differently again. A fresh sum
    depends only on the n values in the window. Cost O(m*n). Same bits as the fast
    engine's `core.backtest.fast.sma.sma_fresh`.

    Args:
        x: float64 array, shape (m,).
        n: window length in samples, n >= 1.
    Returns:
        float64 array, shape (m,); NaN for t < n-1 (warm-up n-1) and for windows that
        contain a missing (NaN/inf) input.
    """
    if n < 1:
        raise ValueError("sma_exact: n must be >= 1")
    m = x.shape[0]
    out = nan_array(m)
    valid = valid1(x)
    bad = 0  # missing values in the current window
    for t in range(m):
        if not valid[t]:
            bad += 1
        if t >= n and not valid[t - n]:
            bad -= 1
        if t >= n - 1 and bad == 0:
            total = 0.0
            for j in range(t - n + 1, t + 1):
                total += x[j]
            out[t] = total / n
    return out


@njit(cache=True, nogil=True)
def ema_run(x, n, out):
    """TA-Lib's EMA loop on one finite run (default compatibility mode, no unstable period)."""
    m = x.shape[0]
    if m < n:
        return
    k = 2.0 / (n + 1)
    total = 0.0
    for i in range(n):
        total += x[i]
    prev = total / n
    out[n - 1] = prev
    for i in range(n, m):
        prev = (x[i] - prev) * k + prev
        out[i] = prev


@njit(cache=True, nogil=True)
def ema(x, n):
    """Exponential moving average, `ema[t] = ema[t-1] + k * (x[t] - ema[t-1])`, k = 2/(n+1).

    Seeding as TA-Lib's EMA (ta_EMA.c, TA_COMPATIBILITY_DEFAULT, unstable period 0): the
    first value, at t = n-1, is the SMA of the first n values (sequential sum / n); the
    recursion is evaluated as `(x - prev) * k + prev` like TA-Lib, so talib.EMA matches to
    ~1e-15 relative. (Metastock mode, which seeds with x[0], is not reproduced.)

    Args:
        x: float64 array, shape (m,).
        n: period in samples, n >= 1 (n = 1 returns x).
    Returns:
        float64 array, shape (m,); NaN for t < n-1 (warm-up n-1). After a missing input
        the EMA restarts with a fresh SMA seed (warm-up n-1 again).
    """
    if n < 1:
        raise ValueError("ema: n must be >= 1")
    out = nan_array(x.shape[0])
    runs = finite_runs(valid1(x))
    for r in range(runs.shape[0]):
        s, e = runs[r, 0], runs[r, 1]
        ema_run(x[s:e], n, out[s:e])
    return out
