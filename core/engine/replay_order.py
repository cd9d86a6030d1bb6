"""ReplayTimeOrder: the candles of several replayed series handed on in open-time order.

At `--speed max` every replayed file streams on its own (`core.data.replay.ReplayFeed`, 256
candles per turn of the loop, after loading in a worker thread), so the engine sees BTC's
candles of one week next to ETH's of another. Each runner only reads its own series, so its
result does not depend on that; what spans runners does (the allocation's shared account
and its rebalance, `core.risk.allocation_runtime`). The engine therefore passes a replay's
candles through this buffer when an allocation is configured: a candle is released once every
series that has not ended has delivered a candle at or after its open time (the watermark),
in (open time, series order) order, so the runners see one clock, as on the live feed, and
the order is the same however the feeds interleave.

A series ends with its last candle (known in advance: `last_ts`); a series with nothing to
deliver (resumed after its last candle) is ended from the start. Other events pass at once.
Memory: the candles between the slowest and the fastest series (a few turns of 256).
"""

from __future__ import annotations

import heapq
from collections.abc import AsyncIterator
from typing import Any

from core.data.feed import ClosedCandle

Key = tuple[str, str]


class ReplayTimeOrder:
    """Args:
        last_ts: (symbol, timeframe) -> open time (ms UTC) of the series' last candle to be
            replayed (None: it delivers nothing), in series order (ties of open time go in it).
        start_after: (symbol, timeframe) -> the cursor a series resumes after (ms UTC), if any.
    """

    def __init__(self, last_ts: dict[Key, int | None], start_after: dict[Key, int] | None = None) -> None:
        start_after = start_after or {}
        self.end = dict(last_ts)
        self.rank = {k: i for i, k in enumerate(last_ts)}
        self.last: dict[Key, int | None] = {k: None for k in last_ts}
        self.done: set[Key] = {k for k, e in last_ts.items()
                               if e is None or (start_after.get(k) is not None and start_after[k] >= e)}
        self._heap: list[tuple[int, int, int, Any]] = []
        self._seq = 0

    def push(self, ev: Any) -> list:
        """Take one event; returns the events that may be handed on now, in order."""
        if type(ev) is not ClosedCandle:
            return [ev]
        key = (ev.symbol, ev.timeframe)
        if key not in self.end:
            return [ev]
        heapq.heappush(self._heap, (ev.ts, self.rank[key], self._seq, ev))
        self._seq += 1
        self.last[key] = ev.ts
        end = self.end[key]
        if end is not None and ev.ts >= end:
            self.done.add(key)
        return self._release()

    def _release(self) -> list:
        waiting = [self.last[k] for k in self.end if k not in self.done]
        if any(t is None for t in waiting):
            return []
        mark = min(waiting) if waiting else None
        out = []
        heap = self._heap
        while heap and (mark is None or heap[0][0] <= mark):
            out.append(heapq.heappop(heap)[3])
        return out

    def flush(self) -> list:
        """Every buffered candle, in order (the streams ended)."""
        out = [heapq.heappop(self._heap)[3] for _ in range(len(self._heap))]
        return out

    async def wrap(self, stream: AsyncIterator) -> AsyncIterator:
        """`stream` with its candles in time order (see the module docstring)."""
        async for ev in stream:
            for e in self.push(ev):
                yield e
        for e in self.flush():
            yield e
