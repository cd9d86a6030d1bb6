"""A closed cycle: one grid cycle (first entry to exit) or one single-position trade."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cycle:
    """One closed cycle (a grid cycle, or a single-position trade).

    open_time/close_time: open timestamps (ms UTC) of the candles holding the first fill and the exit.
    side: "long" | "short". levels_filled: entries filled (1 for single-position trades).
    avg_entry, exit_price: quote prices. exit_reason: "tp" | "sl" | "end" (strategies may add others).
    qty: total base quantity. pnl: realised P&L minus every fee of the cycle, USDT.
    """

    open_time: int
    close_time: int
    side: str
    levels_filled: int
    avg_entry: float
    exit_price: float
    exit_reason: str
    qty: float
    pnl: float
