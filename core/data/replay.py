"""Replay of stored candles (the candle store or a freqtrade-layout file) as a `CandleFeed`.

`ReplayFeed` yields the same `ClosedCandle` events a live feed does (source
"replay"), so everything downstream of the `DataEngine` behaves identically.

Pacing: `speed` is market seconds per wall second (3600 = one market hour per
second): candle i is handed on at `t0 + (ts_i - ts_first) / 1000 / speed` on the
injected clock, where t0 is when the first one was. `speed="max"` plays as fast
as possible, yielding to the event loop every `yield_every` candles so other
tasks keep running. `start_after_ts` (ms UTC open time) resumes strictly after
the last processed candle.
"""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Literal

import numpy as np

from core.data.feed import ClosedCandle, FeedEvent
from core.data.freqtrade import parse_file_name, read_data_file
from core.errors import DataError
from core.model.candles import Candles

Speed = float | Literal["max"]


def _check_speed(speed: Speed) -> Speed:
    if speed == "max":
        return speed
    if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not math.isfinite(speed) or speed <= 0:
        raise ValueError(f"replay speed must be a positive number of market seconds per second or 'max', got {speed!r}")
    return float(speed)


class ReplayFeed:
    """Plays closed candles of one (symbol, timeframe) in time order.

    Args:
        symbol, timeframe: the series (checked against what is loaded).
        load: `load(after_ts) -> Candles`, run in a worker thread when the stream
            starts; may return candles at or before `after_ts` (they are skipped).
        speed: market seconds per wall second, or "max".
        start_after_ts: deliver only candles with `ts > start_after_ts` (ms UTC).
        clock: seconds (monotonic); sleep: awaitable sleep - injectable for tests.
        yield_every: at "max" speed (or when behind schedule), yield to the loop
            after this many candles.

    Raises:
        ValueError: bad speed or yield_every.
    """

    live = False
    last_message_at: float | None = None

    def __init__(
        self,
        symbol: str,
        timeframe: str,
        load: Callable[[int | None], Candles],
        *,
        speed: Speed = "max",
        start_after_ts: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        yield_every: int = 256,
    ) -> None:
        if yield_every < 1:
            raise ValueError(f"yield_every must be >= 1, got {yield_every}")
        self.symbol = symbol
        self.timeframe = timeframe
        self.speed = _check_speed(speed)
        self.start_after_ts = start_after_ts
        self.delivered = 0
        self._load = load
        self._clock = clock
        self._sleep = sleep
        self._yield_every = yield_every

    @classmethod
    def from_candles(cls, candles: Candles, **kwargs: Any) -> "ReplayFeed":
        """Replay an in-memory `Candles` series."""
        return cls(candles.symbol, candles.timeframe, lambda _after: candles, **kwargs)

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> "ReplayFeed":
        """Replay a freqtrade-layout candle file (read and validated when the stream starts).

        Raises:
            DataError: the file name does not tell symbol/timeframe, or (on streaming)
                the file is unreadable, invalid or holds funding rates.
        """
        spec = parse_file_name(path)

        def load(_after: int | None) -> Candles:
            _, data = read_data_file(path)
            if not isinstance(data, Candles):
                raise DataError(f"{path}: holds funding rates, not candles; cannot replay it")
            return data

        return cls(spec.symbol, spec.timeframe, load, **kwargs)

    @classmethod
    def from_store(cls, db_path: str | Path, symbol: str, market: str, timeframe: str,
                   end_ms: int | None = None, **kwargs: Any) -> "ReplayFeed":
        """Replay a series of the candle store at `db_path` (`ts < end_ms` when given).

        Raises (on streaming):
            DataError: the series is not stored.
        """
        from core.storage.candle_store import load_candles
        from core.storage.db import open_sync

        def load(after: int | None) -> Candles:
            conn = open_sync(db_path)
            try:
                return load_candles(conn, symbol, market, timeframe, None if after is None else after + 1, end_ms)
            finally:
                conn.close()

        return cls(symbol, timeframe, load, **kwargs)

    async def stream(self, after_ts: int | None = None) -> AsyncIterator[FeedEvent]:
        """The candles after `max(after_ts, start_after_ts)`, paced by `speed`; ends after the last.

        Raises:
            DataError: loading failed, or the loaded series is another symbol/timeframe.
        """
        bounds = [t for t in (after_ts, self.start_after_ts) if t is not None]
        after = max(bounds) if bounds else None
        candles = await asyncio.to_thread(self._load, after)
        if candles.symbol != self.symbol or candles.timeframe != self.timeframe:
            raise DataError(f"replay of {self.symbol} {self.timeframe} loaded {candles.symbol} {candles.timeframe}")
        lo = 0 if after is None else int(np.searchsorted(candles.ts, after, "right"))
        columns = [a[lo:].tolist() for a in (candles.ts, candles.open, candles.high, candles.low,
                                             candles.close, candles.volume)]
        symbol, timeframe, speed, every = self.symbol, self.timeframe, self.speed, self._yield_every
        t0 = self._clock()
        first_ts = columns[0][0] if columns[0] else 0
        for n, (ts, o, h, low, c, v) in enumerate(zip(*columns), start=1):
            waited = False
            if speed != "max":
                delay = t0 + (ts - first_ts) / 1000.0 / speed - self._clock()
                if delay > 0:
                    await self._sleep(delay)
                    waited = True
            if not waited and n % every == 0:
                await asyncio.sleep(0)
            self.delivered += 1
            yield ClosedCandle(symbol, timeframe, ts, o, h, low, c, v, "replay")
