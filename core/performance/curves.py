"""Equity and drawdown curves from a per-candle equity series, and the book's equity of several runners.

Drawdown at a point = (peak − equity) / peak, peak = running maximum of the equity from the
first point (fraction, >= 0): the curve whose maximum is `core.backtest.metrics.max_drawdown`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Curves:
    """Equity and drawdown over time.

    ts: int64 candle open times (ms UTC), shape (n,), increasing. equity: float64 USDT at each
    candle's close, shape (n,). drawdown: float64 fraction (peak − equity) / peak, shape (n,).
    """

    ts: np.ndarray
    equity: np.ndarray
    drawdown: np.ndarray

    def __len__(self) -> int:
        return int(self.ts.size)


def check_series(ts, equity, what: str = "equity series") -> tuple[np.ndarray, np.ndarray]:
    """`ts` as int64 and `equity` as float64 arrays, checked.

    Raises:
        ValueError: shapes differ or are not 1-D, ts not strictly increasing, an equity value
            not finite, or a first equity <= 0 (the message names `what`).
    """
    t = np.asarray(ts, dtype=np.int64)
    e = np.asarray(equity, dtype=np.float64)
    if t.ndim != 1 or e.ndim != 1 or t.shape != e.shape:
        raise ValueError(f"{what}: ts and equity must be 1-D of the same length, got {t.shape} and {e.shape}")
    if t.size > 1 and not np.all(np.diff(t) > 0):
        raise ValueError(f"{what}: timestamps must be strictly increasing")
    if e.size and not np.all(np.isfinite(e)):
        bad = int(np.nonzero(~np.isfinite(e))[0][0])
        raise ValueError(f"{what}: equity must be finite, got {e[bad]!r} at ts {int(t[bad])}")
    if e.size and e[0] <= 0:
        raise ValueError(f"{what}: the first equity must be > 0 (it is the first peak), got {e[0]!r}")
    return t, e


def drawdown(equity) -> np.ndarray:
    """(running peak − equity) / running peak at every point, float64 fraction >= 0, shape (n,)."""
    e = np.asarray(equity, dtype=np.float64)
    if e.size == 0:
        return e.copy()
    peak = np.maximum.accumulate(e)
    return (peak - e) / peak


def curves(ts, equity) -> Curves:
    """The `Curves` of a per-candle equity series (ts ms UTC, equity USDT).

    Raises:
        ValueError: see `check_series`.
    """
    t, e = check_series(ts, equity)
    return Curves(t, e, drawdown(e))


def book_equity(series: Sequence[tuple[Sequence[int], Sequence[float]]]) -> tuple[np.ndarray, np.ndarray]:
    """The equity of a book of runners: at every timestamp of any runner, the sum of each runner's
    latest equity at or before it (a runner counts with its first equity before its first point,
    its starting cash, so the book does not jump when a runner starts later).

    series: [(ts int ms UTC, equity USDT)] per runner; empty ones are ignored.
    Returns (ts int64 shape (m,), equity float64 shape (m,)), m = distinct timestamps.

    Raises:
        ValueError: a runner's series is malformed (`check_series`).
    """
    checked = [check_series(t, e, f"runner {i} equity") for i, (t, e) in enumerate(series)]
    checked = [(t, e) for t, e in checked if t.size]
    if not checked:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    all_ts = np.unique(np.concatenate([t for t, _ in checked]))
    total = np.zeros(all_ts.size, dtype=np.float64)
    for t, e in checked:
        idx = np.searchsorted(t, all_ts, side="right") - 1
        total += e[np.maximum(idx, 0)]
    return all_ts, total


def thin(c: Curves, max_points: int) -> Curves:
    """At most `max_points` points of `c` for a chart: evenly spaced indices, always the first, the
    last and the deepest drawdown point (so the chart shows the max drawdown). `c` itself when it is
    short enough.

    Raises:
        ValueError: max_points < 3.
    """
    if max_points < 3:
        raise ValueError(f"max_points must be >= 3, got {max_points}")
    n = len(c)
    if n <= max_points:
        return c
    idx = np.unique(np.concatenate([np.linspace(0, n - 1, max_points - 1).round().astype(np.int64),
                                    [int(np.argmax(c.drawdown))]]))
    return Curves(c.ts[idx], c.equity[idx], c.drawdown[idx])
