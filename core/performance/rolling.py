"""Rolling Sharpe: the annualised Sharpe of the last `window_days` daily returns, day by day.

Each value is exactly `core.backtest.metrics.daily_sharpe` (mean / std(ddof=1) of daily simple
returns × √365, 0.0 when the std is 0) on the window's daily equity points: the points of UTC
days with candles (`metrics.daily_equity`), `window_days` returns = `window_days` + 1 points.
"""

from __future__ import annotations

import numpy as np

from core.backtest import metrics
from core.performance.curves import check_series

DAY_MS = metrics.DAY_MS


def daily_points(ts, equity) -> tuple[np.ndarray, np.ndarray]:
    """(day start ms UTC int64, the day's last equity float64) for every UTC day with points."""
    t, e = check_series(ts, equity)
    if t.size == 0:
        return t, e
    day = t // DAY_MS
    last = np.concatenate([np.nonzero(np.diff(day) != 0)[0], [day.size - 1]])
    return day[last] * DAY_MS, metrics.daily_equity(t, e)


def rolling_sharpe(ts, equity, window_days: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """(day start ms UTC int64 shape (k,), Sharpe float64 shape (k,)): the Sharpe of the
    `window_days` daily returns ending with each day, from the first day with a full window
    (k = days − window_days, 0 when there are too few days).

    Raises:
        ValueError: window_days < 2, or a malformed series (`curves.check_series`).
    """
    if int(window_days) < 2:
        raise ValueError(f"rolling Sharpe window must be >= 2 days, got {window_days}")
    w = int(window_days)
    days, eq = daily_points(ts, equity)
    if days.size <= w:
        return days[:0], eq[:0]
    values = np.array([metrics.daily_sharpe(days[i - w:i + 1], eq[i - w:i + 1]) for i in range(w, days.size)])
    return days[w:], values
