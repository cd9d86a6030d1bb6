"""SessionState: what the console remembers over its session (first prices, equity samples,
ATR from the candles it saw, feed ages); `RadarApp.session`."""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Callable


class SessionState:
    """What the console remembers over its session: first prices, equity samples, ATR, feed ages."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, equity_points: int = 600,
                 atr_period: int = 14) -> None:
        self.clock = clock
        self.first: dict[str, float] = {}
        self.equity: deque[float] = deque(maxlen=equity_points)
        self.atr_period = atr_period
        self._tr: dict[str, deque[float]] = {}
        self._prev_close: dict[str, float] = {}
        self._last_close: dict[str, float] = {}
        self._seen: dict[str, float] = {}
        self._last_equity_at: float | None = None

    def first_price(self, symbol: str, last: float | None) -> float | None:
        if symbol not in self.first and last:
            self.first[symbol] = last
        return self.first.get(symbol)

    def on_candle(self, symbol: str, high: float, low: float, close: float) -> None:
        prev = self._prev_close.get(symbol)
        tr = high - low if prev is None else max(high - low, abs(high - prev), abs(low - prev))
        self._tr.setdefault(symbol, deque(maxlen=self.atr_period)).append(tr)
        self._prev_close[symbol] = close
        self._last_close[symbol] = close
        self._seen[symbol] = self.clock()

    def atr_pct(self, symbol: str) -> float | None:
        trs = self._tr.get(symbol)
        close = self._last_close.get(symbol)
        if not trs or len(trs) < self.atr_period or not close:
            return None
        return sum(trs) / len(trs) / close * 100.0

    def feed_age(self, symbol: str) -> float | None:
        t = self._seen.get(symbol)
        return None if t is None else max(0.0, self.clock() - t)

    def max_feed_age(self) -> float | None:
        ages = [self.clock() - t for t in self._seen.values()]
        return max(ages) if ages else None

    def sample_equity(self, equity: float | None, every_s: float = 1.0) -> None:
        now = self.clock()
        if equity is None or not math.isfinite(equity):
            return
        if self._last_equity_at is None or now - self._last_equity_at >= every_s:
            self._last_equity_at = now
            self.equity.append(float(equity))
