"""The in-memory form of a candle series: columnar numpy arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Candles:
    """Closed OHLCV candles of one symbol, market and timeframe, sorted by open time.

    Attributes:
        symbol: ccxt unified symbol, e.g. "BTC/USDT" (spot) or "BTC/USDT:USDT" (USDT-M perpetual).
        market: "spot" or "futures".
        timeframe: e.g. "1h".
        ts: int64 open times, ms UTC, strictly increasing, shape (n,).
        open, high, low, close: float64 prices (quote currency), shape (n,).
        volume: float64 base-currency volume, shape (n,).
    """

    symbol: str
    market: str
    timeframe: str
    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def between(self, start_ms: int | None = None, end_ms: int | None = None) -> "Candles":
        """The candles with `start_ms <= ts < end_ms` (either bound may be None)."""
        lo = 0 if start_ms is None else int(np.searchsorted(self.ts, start_ms, "left"))
        hi = len(self) if end_ms is None else int(np.searchsorted(self.ts, end_ms, "left"))
        return Candles(
            self.symbol, self.market, self.timeframe,
            self.ts[lo:hi], self.open[lo:hi], self.high[lo:hi],
            self.low[lo:hi], self.close[lo:hi], self.volume[lo:hi],
        )

    @classmethod
    def from_rows(cls, symbol: str, market: str, timeframe: str, rows: np.ndarray) -> "Candles":
        """Build from an (n, 6) float64/object array of `[ts_ms, open, high, low, close, volume]` rows."""
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
        return cls(
            symbol, market, timeframe,
            rows[:, 0].astype(np.int64),
            np.ascontiguousarray(rows[:, 1]), np.ascontiguousarray(rows[:, 2]),
            np.ascontiguousarray(rows[:, 3]), np.ascontiguousarray(rows[:, 4]),
            np.ascontiguousarray(rows[:, 5]),
        )
