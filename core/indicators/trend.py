"""Trend indicators: SuperTrend and Wilder's ADX."""

from __future__ import annotations

import math

from numba import njit

from core.indicators._runs import finite_runs, nan_array, valid3
from core.indicators.volatility import atr_run, tr_value


@njit(cache=True, nogil=True)
def _supertrend_run(high, low, close, p, mult, line, direction):
    m = high.shape[0]
    if m <= p:
        return
    a = nan_array(m)
    atr_run(high, low, close, p, a)
    fu = 0.0
    fl = 0.0
    d = -1.0
    for i in range(p, m):
        hl2 = (high[i] + low[i]) / 2.0
        bu = hl2 + mult * a[i]
        bl = hl2 - mult * a[i]
        if i == p:
            fu = bu
            fl = bl
            d = -1.0
        else:
            # final bands: only tighten, unless the previous close crossed them
            if not (bu < fu or close[i - 1] > fu):
                bu = fu
            if not (bl > fl or close[i - 1] < fl):
                bl = fl
            fu = bu
            fl = bl
            if d < 0.0:
                d = 1.0 if close[i] > fu else -1.0
            else:
                d = -1.0 if close[i] < fl else 1.0
        direction[i] = d
        line[i] = fl if d > 0.0 else fu


@njit(cache=True, nogil=True)
def supertrend(high, low, close, atr_period, multiplier):
    """SuperTrend (Olivier Seban), with the standard final-band rules of TradingView's
    Pine Script v5 reference implementation of `ta.supertrend`:

        hl2 = (H + L) / 2,  basic_upper = hl2 + multiplier * ATR,  basic_lower = hl2 - multiplier * ATR
        upper[t] = basic_upper[t] if basic_upper[t] < upper[t-1] or close[t-1] > upper[t-1] else upper[t-1]
        lower[t] = basic_lower[t] if basic_lower[t] > lower[t-1] or close[t-1] < lower[t-1] else lower[t-1]
        previous direction down: direction = up   if close[t] > upper[t] else down
        previous direction up:   direction = down if close[t] < lower[t] else up
        line = lower if direction is up else upper

    On the first candle with an ATR (t = atr_period) the final bands are the basic bands and
    the direction is down, as in Pine. Differences from Pine: the ATR is `atr` (TA-Lib
    seeding, first value at t = atr_period; Pine's ta.atr seeds one candle earlier with
    TR[0] = H - L, so the first few hundred values differ slightly), and the previous
    direction is read from the direction state rather than from `supertrend[1] ==
    upper[1]` (identical except when the bands coincide, ATR = 0).

    Sign convention: direction = +1.0 for an uptrend (line = lower band, a support below
    price), -1.0 for a downtrend (line = upper band). Pine uses the opposite signs
    (-1 = up).

    Args:
        high, low, close: float64 arrays, shape (m,), price units.
        atr_period: ATR period in candles, >= 1.
        multiplier: band distance in ATRs, finite and >= 0 (commonly 3).
    Returns:
        (line, direction): float64 arrays of shape (m,); line in price units, direction
        +1.0/-1.0; both NaN for t < atr_period (warm-up atr_period). A row with any missing
        input (NaN/inf) restarts the indicator (new ATR warm-up, direction down).
    """
    if atr_period < 1:
        raise ValueError("supertrend: atr_period must be >= 1")
    if not (multiplier >= 0.0 and math.isfinite(multiplier)):
        raise ValueError("supertrend: multiplier must be finite and >= 0")
    m = high.shape[0]
    line = nan_array(m)
    direction = nan_array(m)
    runs = finite_runs(valid3(high, low, close))
    for r in range(runs.shape[0]):
        s, e = runs[r, 0], runs[r, 1]
        _supertrend_run(high[s:e], low[s:e], close[s:e], atr_period, multiplier,
                        line[s:e], direction[s:e])
    return line, direction


@njit(cache=True, nogil=True)
def _adx_run(high, low, close, n, out):
    """TA-Lib's ADX loop on one finite run (ta_ADX.c, unstable period 0)."""
    m = high.shape[0]
    if m < 2 * n:
        return
    pdm = 0.0
    mdm = 0.0
    tr = 0.0
    ph = high[0]
    pl = low[0]
    pc = close[0]
    today = 0
    # n-1 first moves: plain sums of +DM, -DM and TR
    for _ in range(n - 1):
        today += 1
        diff_p = high[today] - ph
        ph = high[today]
        diff_m = pl - low[today]
        pl = low[today]
        if diff_m > 0 and diff_p < diff_m:
            mdm += diff_m
        elif diff_p > 0 and diff_p > diff_m:
            pdm += diff_p
        tr += tr_value(ph, pl, pc)
        pc = close[today]
    # next n moves: Wilder smoothing, DX summed for the first ADX
    sum_dx = 0.0
    for _ in range(n):
        today += 1
        diff_p = high[today] - ph
        ph = high[today]
        diff_m = pl - low[today]
        pl = low[today]
        mdm -= mdm / n
        pdm -= pdm / n
        if diff_m > 0 and diff_p < diff_m:
            mdm += diff_m
        elif diff_p > 0 and diff_p > diff_m:
            pdm += diff_p
        tr = tr - tr / n + tr_value(ph, pl, pc)
        pc = close[today]
        if tr != 0.0:
            mdi = 100.0 * (mdm / tr)
            pdi = 100.0 * (pdm / tr)
            s = mdi + pdi
            if s != 0.0:
                sum_dx += 100.0 * (abs(mdi - pdi) / s)
    adx_v = sum_dx / n
    out[today] = adx_v
    while today < m - 1:
        today += 1
        diff_p = high[today] - ph
        ph = high[today]
        diff_m = pl - low[today]
        pl = low[today]
        mdm -= mdm / n
        pdm -= pdm / n
        if diff_m > 0 and diff_p < diff_m:
            mdm += diff_m
        elif diff_p > 0 and diff_p > diff_m:
            pdm += diff_p
        tr = tr - tr / n + tr_value(ph, pl, pc)
        pc = close[today]
        if tr != 0.0:
            mdi = 100.0 * (mdm / tr)
            pdi = 100.0 * (pdm / tr)
            s = mdi + pdi
            if s != 0.0:
                dx = 100.0 * (abs(mdi - pdi) / s)
                adx_v = (adx_v * (n - 1) + dx) / n
        out[today] = adx_v


@njit(cache=True, nogil=True)
def adx(high, low, close, n):
    """Average Directional Index, Wilder 1978 ("New Concepts in Technical Trading
    Systems"), computed exactly as TA-Lib's ADX (ta_ADX.c, unstable period 0):

        up = H[t] - H[t-1], dn = L[t-1] - L[t]
        +DM = up if up > dn and up > 0 else 0;  -DM = dn if dn > up and dn > 0 else 0
        +DM_s, -DM_s, TR_s: sums of the first n-1 moves, then S = S - S/n + v (Wilder)
        +DI = 100 * +DM_s / TR_s,  -DI = 100 * -DM_s / TR_s
        DX = 100 * |+DI - -DI| / (+DI + -DI)
        ADX: first value (t = 2n-1) = mean of the first n DX (t = n..2n-1),
             then ADX = (ADX * (n-1) + DX) / n.

    When TR_s or +DI + -DI is 0 (flat market) DX is undefined: it is skipped (adds 0 to
    the first mean; leaves ADX unchanged afterwards), as TA-Lib does. TA-Lib tests for
    zero with |v| < 1e-14 where this tests == 0; that only matters for prices ~1e-14.

    Args:
        high, low, close: float64 arrays, shape (m,), price units.
        n: period in candles, n >= 2.
    Returns:
        float64 array, shape (m,), values in [0, 100]; NaN for t < 2n-1 (warm-up 2n-1,
        as TA-Lib). A row with any missing input (NaN/inf) restarts the ADX (warm-up 2n-1
        again).
    """
    if n < 2:
        raise ValueError("adx: n must be >= 2")
    out = nan_array(high.shape[0])
    runs = finite_runs(valid3(high, low, close))
    for r in range(runs.shape[0]):
        s, e = runs[r, 0], runs[r, 1]
        _adx_run(high[s:e], low[s:e], close[s:e], n, out[s:e])
    return out
