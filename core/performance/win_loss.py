"""The distribution of the cycles' P&L: wins, losses, their sizes and a histogram.

A win is a cycle with pnl > 0, a loss pnl < 0; pnl == 0 is neither (as
`core.backtest.metrics.win_rate`). The histogram is numpy's (`np.histogram`, equal-width bins
over [min, max] of the P&L).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.backtest import metrics


@dataclass(frozen=True)
class WinLoss:
    """Win/loss figures of a set of cycles (money in USDT).

    n_win, n_loss, n_flat; win_rate (fraction of all cycles); avg_win, avg_loss (mean pnl of the
    wins / of the losses, the latter negative; None when there is none); largest_win,
    largest_loss (None when none); profit_factor (sum of wins / −sum of losses, None without a
    loss); edges: bin edges shape (bins + 1,), counts: cycles per bin shape (bins,) (both empty
    without cycles).
    """

    n_win: int
    n_loss: int
    n_flat: int
    win_rate: float
    avg_win: float | None
    avg_loss: float | None
    largest_win: float | None
    largest_loss: float | None
    profit_factor: float | None
    edges: np.ndarray
    counts: np.ndarray

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["edges"], d["counts"] = self.edges.tolist(), self.counts.tolist()
        return d


def win_loss(pnls, bins: int = 10) -> WinLoss:
    """The `WinLoss` of cycle P&Ls (USDT, shape (n,)).

    Raises:
        ValueError: bins < 1, or a P&L that is not finite.
    """
    if int(bins) < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    p = np.asarray(pnls, dtype=np.float64).ravel()
    if not np.all(np.isfinite(p)):
        raise ValueError("cycle P&L must be finite")
    wins, losses = p[p > 0], p[p < 0]
    if p.size:
        counts, edges = np.histogram(p, bins=int(bins))
    else:
        counts, edges = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    return WinLoss(
        n_win=int(wins.size), n_loss=int(losses.size), n_flat=int(p.size - wins.size - losses.size),
        win_rate=metrics.win_rate(p),
        avg_win=float(wins.mean()) if wins.size else None, avg_loss=float(losses.mean()) if losses.size else None,
        largest_win=float(wins.max()) if wins.size else None,
        largest_loss=float(losses.min()) if losses.size else None,
        profit_factor=metrics.profit_factor(p), edges=edges.astype(np.float64), counts=counts.astype(np.int64))
