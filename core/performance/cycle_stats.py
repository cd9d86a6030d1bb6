"""Cycle statistics per asset: how many cycles, how long they last, how often they close, how they pay.

Duration of a cycle = close_time − open_time (ms), the open times of the candles of its first
fill and of its exit (`core.model.cycle.Cycle`), so a cycle opened and closed in one candle
lasts 0 ms. Cycles per week = cycles / (span / 7 days), span = the period observed (ms).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Mapping

import numpy as np

from core.backtest import metrics

WEEK_MS = 7 * metrics.DAY_MS


@dataclass(frozen=True)
class CycleStats:
    """The cycles of one asset (symbol, or "all").

    n_cycles; avg_duration_ms / median_duration_ms / max_duration_ms (ms, None without cycles);
    cycles_per_week (per 7 days of the span; None when the span is not positive); win_rate
    (fraction of cycles with pnl > 0); total_pnl and avg_pnl (USDT).
    """

    asset: str
    n_cycles: int
    avg_duration_ms: float | None
    median_duration_ms: float | None
    max_duration_ms: int | None
    cycles_per_week: float | None
    win_rate: float
    total_pnl: float
    avg_pnl: float

    def to_dict(self) -> dict:
        return asdict(self)


def cycle_stats(asset: str, cycles: Iterable, span_ms: int) -> CycleStats:
    """The `CycleStats` of `cycles` (objects with open_time, close_time ms UTC and pnl USDT)
    observed over `span_ms` ms."""
    cs = list(cycles)
    dur = np.array([c.close_time - c.open_time for c in cs], dtype=np.int64)
    pnl = np.array([c.pnl for c in cs], dtype=np.float64)
    n = len(cs)
    return CycleStats(
        asset=asset, n_cycles=n,
        avg_duration_ms=float(dur.mean()) if n else None,
        median_duration_ms=float(np.median(dur)) if n else None,
        max_duration_ms=int(dur.max()) if n else None,
        cycles_per_week=n / (span_ms / WEEK_MS) if span_ms > 0 else None,
        win_rate=metrics.win_rate(pnl), total_pnl=float(pnl.sum()), avg_pnl=metrics.expectancy(pnl))


def per_asset(cycles_by_asset: Mapping[str, Iterable], span_ms: int) -> list[CycleStats]:
    """`cycle_stats` of every asset (sorted by name) and, when there are several, a last row "all"."""
    groups = {a: list(cs) for a, cs in cycles_by_asset.items()}
    rows = [cycle_stats(a, groups[a], span_ms) for a in sorted(groups)]
    if len(rows) > 1:
        rows.append(cycle_stats("all", [c for a in sorted(groups) for c in groups[a]], span_ms))
    return rows
