"""Performance metrics of a backtest, with their formulas.

The ones named in `../shared/specs/envelope_dca.md` ("Outputs") follow that text exactly:
max_drawdown, daily_sharpe, win_rate, profit_factor.
"""

from __future__ import annotations

import math

import numpy as np

DAY_MS = 86_400_000


def max_drawdown(equity: np.ndarray) -> float:
    """Largest (peak − equity)/peak over the curve, peak = running max from the first point (fraction, >= 0)."""
    eq = np.asarray(equity, dtype=np.float64)
    if eq.size == 0:
        return 0.0
    peak = np.maximum.accumulate(eq)
    return float(np.max((peak - eq) / peak))


def daily_equity(ts: np.ndarray, equity: np.ndarray) -> np.ndarray:
    """Last equity point of each UTC day that has candles (day of the candle's open time), in order."""
    ts = np.asarray(ts, dtype=np.int64)
    eq = np.asarray(equity, dtype=np.float64)
    if ts.size == 0:
        return eq[:0]
    day = ts // DAY_MS
    last_of_day = np.nonzero(np.diff(day) != 0)[0]
    return np.concatenate([eq[last_of_day], eq[-1:]])


def daily_sharpe(ts: np.ndarray, equity: np.ndarray) -> float:
    """Annualised Sharpe of daily simple returns: mean/std(ddof=1) × √365.

    Days are the UTC days of the candles' open times; days without candles are skipped.
    0.0 when there are fewer than two returns or the std is 0.
    """
    d = daily_equity(ts, equity)
    if d.size < 3:
        return 0.0
    r = d[1:] / d[:-1] - 1.0
    sd = float(np.std(r, ddof=1))
    if sd == 0.0 or not math.isfinite(sd):
        return 0.0
    return float(np.mean(r) / sd * math.sqrt(365.0))


def win_rate(pnls: np.ndarray) -> float:
    """Share of cycles with pnl > 0 (0 when there is no cycle; pnl == 0 is neither win nor loss)."""
    p = np.asarray(pnls, dtype=np.float64)
    return 0.0 if p.size == 0 else float(np.count_nonzero(p > 0) / p.size)


def profit_factor(pnls: np.ndarray) -> float | None:
    """Sum of positive pnl / −(sum of negative pnl); None when no cycle has pnl < 0."""
    p = np.asarray(pnls, dtype=np.float64)
    neg = p[p < 0]
    if neg.size == 0:
        return None
    return float(p[p > 0].sum() / -neg.sum())
