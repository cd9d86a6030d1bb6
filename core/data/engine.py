"""DataEngine: runs candle/ticker feeds, guards order, aggregates, stores and fans events out.

Per configured feed (one (symbol, timeframe) candle source, live or replay, or a
ticker source) the engine runs the feed's `stream()` in a task and, for every
event, in arrival order:

1. ClosedCandle: the ORDER GUARD drops any candle whose open time is not after
   the last one delivered for its (symbol, timeframe) - counted in
   `stats[key].duplicates_dropped` (same ts) or `.out_of_order_dropped` (older) -
   so no subscriber ever sees a duplicate or an out-of-order candle; a jump over
   missing candles is delivered and counted in `.gaps` (live feeds back-fill
   before, so a gap means the exchange has no such candle);
2. publishes it to subscribers, queues it for the store (upsert in a worker
   thread, off the loop) and feeds the configured aggregators, whose closed
   buckets go through the same steps as candles of the higher timeframe;
3. other events (TickerUpdate, FeedReconnect, MessageRejected) are published as
   they come; FeedStale/FeedFresh come from a timer watching the live feeds'
   `last_message_at` per symbol (`core.data.staleness`).

Subscribers: `subscribe(callback, kinds)` (async or plain callable, run in its own
task so a slow or failing subscriber delays nobody else) or `events(kinds)` (an
async iterator). Each receives its events in order through an unbounded queue.

Resume: each candle feed starts after `start_after[(symbol, timeframe)]` or,
with a store and `resume_from_store`, after the newest stored candle; the
aggregators are primed with the stored base candles of the current bucket.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable, Mapping

import numpy as np

from core.data.aggregate import Aggregator
from core.data.feed import EVENT_TYPES, CandleFeed, ClosedCandle, FeedEvent, candle_from_row, floor_ts, iso_ms
from core.data.staleness import StalenessMonitor
from core.data.timeframes import timeframe_ms
from core.model.candles import Candles

log = logging.getLogger(__name__)

_END = object()
Callback = Callable[[FeedEvent], Awaitable[None] | None]


def market_of_symbol(symbol: str) -> str:
    """The store's market of a ccxt symbol: "futures" for `BASE/QUOTE:SETTLE`, else "spot"."""
    return "futures" if ":" in symbol else "spot"


@dataclass
class SeriesStats:
    """Counters of one (symbol, timeframe) series in the engine.

    Attributes:
        delivered: candles handed to subscribers.
        duplicates_dropped: candles dropped because one with the same open time was delivered.
        out_of_order_dropped: candles dropped because a later one was already delivered.
        gaps: deliveries that skipped at least one open time.
        last_ts: open time (ms UTC) of the last delivered candle (or the resume point).
    """

    delivered: int = 0
    duplicates_dropped: int = 0
    out_of_order_dropped: int = 0
    gaps: int = 0
    last_ts: int | None = None


class Subscription:
    """One subscriber's ordered, unbounded event queue. `close()` stops delivery (idempotent).

    `kinds`: the event types wanted (e.g. `(ClosedCandle,)`); None = every event.
    """

    def __init__(self, engine: "DataEngine", kinds: Iterable[type] | None) -> None:
        self.kinds = tuple(kinds) if kinds is not None else None
        if self.kinds is not None and not all(k in EVENT_TYPES for k in self.kinds):
            raise ValueError(f"unknown event kinds {self.kinds}: choose from {[k.__name__ for k in EVENT_TYPES]}")
        self.closed = False
        self._engine = engine
        self._queue: asyncio.Queue[Any] = asyncio.Queue()

    @property
    def pending(self) -> int:
        """Events queued and not yet taken."""
        return self._queue.qsize()

    def wants(self, event: FeedEvent) -> bool:
        return not self.closed and (self.kinds is None or isinstance(event, self.kinds))

    def _put(self, item: Any) -> None:
        self._queue.put_nowait(item)

    def close(self) -> None:
        """Stop receiving; events already queued are still handed over, then the stream ends."""
        if not self.closed:
            self.closed = True
            self._engine._subscriptions.discard(self)
            self._queue.put_nowait(_END)


class EventStream(Subscription):
    """`async for event in engine.events(): ...` - ends when the engine stops or on `close()`."""

    def __aiter__(self) -> "EventStream":
        return self

    async def __anext__(self) -> FeedEvent:
        item = await self._queue.get()
        if item is _END:
            self.closed = True
            self._queue.put_nowait(_END)  # stay ended
            raise StopAsyncIteration
        return item

    async def __aenter__(self) -> "EventStream":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class CallbackSubscription(Subscription):
    """Runs `callback(event)` for each event, in order, in its own task; exceptions are logged
    (counted in `errors`) and do not stop delivery."""

    def __init__(self, engine: "DataEngine", callback: Callback, kinds: Iterable[type] | None) -> None:
        super().__init__(engine, kinds)
        self.callback = callback
        self.errors = 0
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            if item is _END:
                return
            try:
                result = self.callback(item)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                self.errors += 1
                log.exception("subscriber %r failed on %r", self.callback, item)


class _CandleWriter:
    """Upserts closed candles into the store from a worker thread, in batches, in order."""

    def __init__(self, db_path: str | Path, market_of: Callable[[str], str]) -> None:
        self.db_path = db_path
        self.market_of = market_of
        self.written = 0
        self.errors = 0
        self._conn: Any = None
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._task: asyncio.Task | None = None

    async def open(self) -> None:
        from core.storage.db import open_sync

        self._conn = await asyncio.to_thread(open_sync, self.db_path)
        self._task = asyncio.get_running_loop().create_task(self._run())

    def put(self, candle: ClosedCandle) -> None:
        self._queue.put_nowait(candle)

    async def last_ts(self, symbol: str, timeframe: str) -> int | None:
        from core.storage.candle_store import last_candle_ts

        return await asyncio.to_thread(last_candle_ts, self._conn, symbol, self.market_of(symbol), timeframe)

    async def load(self, symbol: str, timeframe: str, start_ms: int, end_ms: int) -> Candles | None:
        from core.errors import DataError
        from core.storage.candle_store import load_candles

        try:
            return await asyncio.to_thread(load_candles, self._conn, symbol, self.market_of(symbol),
                                           timeframe, start_ms, end_ms)
        except DataError:
            return None

    async def close(self) -> None:
        if self._task is not None:
            self._queue.put_nowait(_END)
            await self._task
            self._task = None
        if self._conn is not None:
            await asyncio.to_thread(self._conn.close)
            self._conn = None

    async def _run(self) -> None:
        done = False
        while not done:
            batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            done = _END in batch
            candles = [c for c in batch if c is not _END]
            if candles:
                try:
                    await asyncio.to_thread(self._write, candles)
                    self.written += len(candles)
                except Exception:
                    self.errors += 1
                    log.exception("storing %d closed candle(s) failed (first %s %s %s)", len(candles),
                                  candles[0].symbol, candles[0].timeframe, iso_ms(candles[0].ts))

    def _write(self, candles: list[ClosedCandle]) -> None:
        from core.storage.candle_store import upsert_candles

        groups: dict[tuple[str, str], list[tuple]] = defaultdict(list)
        for c in candles:
            groups[(c.symbol, c.timeframe)].append(c.row)
        self._conn.execute("BEGIN")
        try:
            for (symbol, timeframe), rows in groups.items():
                upsert_candles(self._conn, Candles.from_rows(symbol, self.market_of(symbol), timeframe,
                                                             np.array(rows, dtype=np.float64)))
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise


class DataEngine:
    """Runs feeds and hands their events to subscribers (see the module docstring).

    Args:
        feeds: `CandleFeed`s; at most one candle feed per (symbol, timeframe) and one ticker feed per symbol.
        aggregates: `{(symbol, base_timeframe): [target timeframes]}`, e.g.
            `{("BTC/USDT:USDT", "1m"): ["5m", "1h"]}`; the base must be a feed.
        db_path: candle store to upsert closed candles into (None = do not store).
        market_of: symbol -> store market ("spot"/"futures").
        start_after: `{(symbol, timeframe): ts}` resume points (ms UTC open time of the last
            candle already processed), for feeds and aggregate targets.
        resume_from_store: without an explicit resume point, start after the newest stored candle.
        stale_after_s: silence (seconds) after which a live symbol is reported stale.
        stale_check_s: how often staleness is checked, seconds.
        clock: seconds, monotonic (the live feeds' clock).

    Raises:
        ValueError: duplicate feeds, an aggregate without its base feed, a target that is
            not a multiple of its base, or a target that is also a feed.
    """

    def __init__(
        self,
        feeds: Iterable[CandleFeed],
        *,
        aggregates: Mapping[tuple[str, str], Iterable[str]] | None = None,
        db_path: str | Path | None = None,
        market_of: Callable[[str], str] = market_of_symbol,
        start_after: Mapping[tuple[str, str], int] | None = None,
        resume_from_store: bool = True,
        stale_after_s: float = 30.0,
        stale_check_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        spawn: Callable[..., asyncio.Task] | None = None,
    ) -> None:
        self.feeds = list(feeds)
        self._spawn = spawn
        keys = [(f.symbol, f.timeframe) for f in self.feeds]
        dupes = sorted({k for k in keys if keys.count(k) > 1}, key=str)
        if dupes:
            raise ValueError(f"more than one feed for {dupes}")
        self._aggs: dict[tuple[str, str], list[Aggregator]] = defaultdict(list)
        for (symbol, base), targets in (aggregates or {}).items():
            if (symbol, base) not in keys:
                raise ValueError(f"aggregate {symbol} {base} -> {list(targets)}: no {symbol} {base} feed")
            for target in targets:
                if (symbol, target) in keys:
                    raise ValueError(f"{symbol} {target} is both a feed and an aggregate of {base}")
                self._aggs[(symbol, base)].append(Aggregator(symbol, base, target))
        self.stats: dict[tuple[str, str], SeriesStats] = {}
        self.errors: list[BaseException] = []
        self._start_after = dict(start_after or {})
        self._resume = resume_from_store
        self._writer = _CandleWriter(db_path, market_of) if db_path is not None else None
        self._monitor = StalenessMonitor(stale_after_s, clock)
        self._stale_check_s = stale_check_s
        self._subscriptions: set[Subscription] = set()
        self._callback_subs: list[CallbackSubscription] = []
        self._feed_tasks: list[asyncio.Task] = []
        self._stale_task: asyncio.Task | None = None
        self._started = False
        self._finished = False

    # ---- subscribers -----------------------------------------------------------------
    def subscribe(self, callback: Callback, kinds: Iterable[type] | None = None) -> CallbackSubscription:
        """Call `callback(event)` for every event of `kinds` (None = all), in order, in a task of
        its own. Must be called on the running loop. Returns the subscription (`.close()`)."""
        sub = CallbackSubscription(self, callback, kinds)
        self._subscriptions.add(sub)
        self._callback_subs.append(sub)
        return sub

    def events(self, kinds: Iterable[type] | None = None) -> EventStream:
        """An async iterator of the events of `kinds` (None = all) from now on; it ends when
        the engine stops or finishes. Subscribe before `start()` to miss nothing."""
        stream = EventStream(self, kinds)
        self._subscriptions.add(stream)
        return stream

    @property
    def stored(self) -> int:
        """Closed candles written to the store so far."""
        return self._writer.written if self._writer else 0

    # ---- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        """Open the store, work out resume points, prime aggregators and start the feeds."""
        if self._started:
            raise RuntimeError("DataEngine already started")
        self._started = True
        if self._writer is not None:
            await self._writer.open()
        loop = asyncio.get_running_loop()
        for feed in self.feeds:
            after = None
            if feed.timeframe is not None:
                after = await self._resume_point(feed.symbol, feed.timeframe)
                self.stats[(feed.symbol, feed.timeframe)] = SeriesStats(last_ts=after)
                for agg in self._aggs.get((feed.symbol, feed.timeframe), []):
                    target_after = await self._resume_point(feed.symbol, agg.target)
                    self.stats[(feed.symbol, agg.target)] = SeriesStats(last_ts=target_after)
                    await self._prime(agg, after)
            if feed.live:
                self._monitor.watch(feed.symbol)
            if self._spawn is None:
                self._feed_tasks.append(loop.create_task(self._run_feed(feed, after)))
            else:                  # supervised: a live feed that fails is restarted after its last candle
                self._feed_tasks.append(self._spawn(
                    f"feed:{feed.symbol}:{feed.timeframe or 'ticker'}",
                    lambda feed=feed, first=after: self._run_feed(feed, self._resume_after(feed, first),
                                                                  reraise=feed.live),
                    live=feed.live))
        if any(f.live for f in self.feeds):
            if self._spawn is None:
                self._stale_task = loop.create_task(self._watch_staleness())
            else:
                self._stale_task = self._spawn("feed-staleness", self._watch_staleness, live=True)

    async def join(self) -> None:
        """Wait until every feed has ended (replay) and every event is handed over, then finish.

        Raises:
            the first error a feed failed with (after finishing).
        """
        await asyncio.gather(*self._feed_tasks, return_exceptions=True)
        await self._finish()
        if self.errors:
            raise self.errors[0]

    async def stop(self) -> None:
        """Cancel the feeds, hand over what is queued, flush the store and end all subscriptions."""
        for task in self._feed_tasks:
            task.cancel()
        await asyncio.gather(*self._feed_tasks, return_exceptions=True)
        await self._finish()

    async def __aenter__(self) -> "DataEngine":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- internals -------------------------------------------------------------------
    async def _resume_point(self, symbol: str, timeframe: str) -> int | None:
        if (symbol, timeframe) in self._start_after:
            return self._start_after[(symbol, timeframe)]
        if self._resume and self._writer is not None:
            return await self._writer.last_ts(symbol, timeframe)
        return None

    async def _prime(self, agg: Aggregator, after: int | None) -> None:
        """Feed the aggregator the stored base candles of the bucket `after` falls in."""
        if after is None or self._writer is None:
            return
        start = floor_ts(after, agg.target)
        candles = await self._writer.load(agg.symbol, agg.base, start, after + 1)
        if candles is None:
            return
        for row in zip(candles.ts.tolist(), candles.open.tolist(), candles.high.tolist(),
                       candles.low.tolist(), candles.close.tolist(), candles.volume.tolist()):
            for out in agg.push(candle_from_row(agg.symbol, agg.base, row, "backfill")):
                self._on_candle(out)

    def _resume_after(self, feed: CandleFeed, first: int | None) -> int | None:
        """Where a (re)started feed resumes: after the last candle delivered, else `first`."""
        if feed.timeframe is None:
            return None
        st = self.stats.get((feed.symbol, feed.timeframe))
        return st.last_ts if st is not None and st.last_ts is not None else first

    async def _run_feed(self, feed: CandleFeed, after: int | None, reraise: bool = False) -> None:
        """Hand one feed's events over. A failure is logged; with `reraise` (a supervised live
        feed) it propagates so the supervisor restarts the feed, else it is kept in `errors`
        (`join` raises it: the engine stops rather than trade blind)."""
        try:
            async for event in feed.stream(after):
                if isinstance(event, ClosedCandle):
                    self._on_candle(event)
                else:
                    self._publish(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("feed %s %s failed: %s", feed.symbol, feed.timeframe or "ticker", exc)
            if reraise:
                raise
            self.errors.append(exc)

    def _on_candle(self, candle: ClosedCandle) -> None:
        key = (candle.symbol, candle.timeframe)
        st = self.stats.setdefault(key, SeriesStats())
        last = st.last_ts
        if last is not None and candle.ts <= last:
            if candle.ts == last:
                st.duplicates_dropped += 1
            else:
                st.out_of_order_dropped += 1
            log.info("%s %s: dropped %s candle %s (last delivered %s)", candle.symbol, candle.timeframe,
                     "duplicate" if candle.ts == last else "out-of-order", iso_ms(candle.ts), iso_ms(last))
            return
        if last is not None and candle.ts > last + timeframe_ms(candle.timeframe):
            st.gaps += 1
            log.warning("%s %s: gap, no candles from %s to %s", candle.symbol, candle.timeframe,
                        iso_ms(last + timeframe_ms(candle.timeframe)), iso_ms(candle.ts))
        st.last_ts = candle.ts
        st.delivered += 1
        self._publish(candle)
        if self._writer is not None:
            self._writer.put(candle)
        for agg in self._aggs.get(key, ()):
            for out in agg.push(candle):
                self._on_candle(out)

    def _publish(self, event: FeedEvent) -> None:
        for sub in list(self._subscriptions):
            if sub.wants(event):
                sub._put(event)

    async def _watch_staleness(self) -> None:
        live = defaultdict(list)
        for feed in self.feeds:
            if feed.live:
                live[feed.symbol].append(feed)
        while True:
            await asyncio.sleep(self._stale_check_s)
            for symbol, feeds in live.items():
                for feed in feeds:
                    if feed.last_message_at is not None:
                        self._monitor.seen(symbol, feed.last_message_at)
            for event in self._monitor.check():
                log.warning("%s", event)
                self._publish(event)

    async def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self._stale_task is not None:
            self._stale_task.cancel()
            await asyncio.gather(self._stale_task, return_exceptions=True)
        for sub in list(self._subscriptions):
            sub.close()
        await asyncio.gather(*(s.task for s in self._callback_subs), return_exceptions=True)
        if self._writer is not None:
            await self._writer.close()
