"""Live candles and tickers from a ccxt.pro exchange (Bitget USDT-M perpetuals first).

`LiveFeed` turns ccxt's `watch_ohlcv` (which repeats the forming candle) into
a stream of CLOSED candles, exactly once and in order:

* a candle closes when a candle with a later open time arrives on the stream;
* on every (re)connect, before anything newer is handed on, the candles since
  the last delivered one are back-filled by REST (`core.data.backfill`), up to
  the candle the stream shows forming (so the subscriber never sees a gap the
  exchange can fill); a gap inside a running stream is back-filled the same way;
* a lost stream (ccxt NetworkError, a failed back-fill, or optionally a silence
  longer than `silence_reconnect_s`) is retried after a bounded, jittered
  exponential back-off (`Backoff`), announced by a `FeedReconnect` event.

`MessageGuard` sits in front of ccxt's message handler: malformed candle and
ticker pushes are refused (logged with symbol and time, reported as
`MessageRejected`) and never reach ccxt's caches, and an exception raised
while ccxt handles a message cannot kill the connection's receive loop.

`TickerFeed` streams `TickerUpdate`s with the same reconnect policy.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable

import ccxt

from core.data.backfill import Backfiller, Fill
from core.data.feed import (
    FeedEvent,
    FeedReconnect,
    MessageRejected,
    Row,
    TickerUpdate,
    candle_from_row,
    check_row,
    iso_ms,
)
from core.data.timeframes import timeframe_ms
from core.errors import DataError

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[Any]]


@dataclass(frozen=True)
class Backoff:
    """Bounded, jittered exponential back-off between reconnect attempts.

    Delay of attempt n (1-based): `min(max_s, initial_s * factor**(n-1))`, then
    multiplied by a uniform factor in `[1 - jitter, 1 + jitter]` and capped at `max_s`.
    All in seconds. Raises ValueError for a negative delay, factor < 1 or jitter outside [0, 1].
    """

    initial_s: float = 0.5
    factor: float = 2.0
    max_s: float = 30.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.initial_s < 0 or self.max_s < 0 or self.factor < 1 or not 0 <= self.jitter <= 1:
            raise ValueError(f"invalid back-off {self!r}: need delays >= 0, factor >= 1, 0 <= jitter <= 1")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number `attempt` (>= 1)."""
        base = min(self.max_s, self.initial_s * self.factor ** min(max(attempt - 1, 0), 64))
        spread = (rng or random).uniform(-self.jitter, self.jitter) if self.jitter else 0.0
        return max(0.0, min(self.max_s, base * (1.0 + spread)))


class MessageGuard:
    """Refuses malformed Bitget candle/ticker pushes before ccxt sees them.

    Installed once per exchange object (`MessageGuard.install(exchange)`, before its
    first websocket connects); wraps `exchange.handle_message`. Feeds `listen()` for
    the refusals of their own (symbol, timeframe). `rejected` counts refusals.
    """

    def __init__(self, exchange: Any) -> None:
        self._ex = exchange
        self._inner = exchange.handle_message
        self._listeners: dict[tuple[str, str | None], list[Callable[[MessageRejected], None]]] = {}
        self.rejected = 0

    @classmethod
    def install(cls, exchange: Any) -> "MessageGuard":
        """The guard of `exchange`, installing it on first use."""
        guard = getattr(exchange, "_radar_message_guard", None)
        if guard is None:
            guard = cls(exchange)
            exchange._radar_message_guard = guard
            exchange.handle_message = guard.handle_message
        return guard

    def listen(self, symbol: str, timeframe: str | None, callback: Callable[[MessageRejected], None]) -> Callable[[], None]:
        """Call `callback` for each refused message of (symbol, timeframe); returns the un-listen function."""
        listeners = self._listeners.setdefault((symbol, timeframe), [])
        listeners.append(callback)

        def unlisten() -> None:
            if callback in listeners:
                listeners.remove(callback)

        return unlisten

    def handle_message(self, client: Any, message: Any) -> None:
        """ccxt's message hook: check, then pass on to the exchange's own handler."""
        try:
            refusal = self.check(message)
        except Exception as exc:  # a checker bug must not take the connection down either
            refusal = MessageRejected("?", None, None, f"unreadable message: {type(exc).__name__}: {exc}")
        if refusal is not None:
            self._refuse(refusal)
            return
        try:
            self._inner(client, message)
        except Exception as exc:
            try:
                symbol, timeframe, _ = self._route(message["arg"])
            except Exception:
                symbol, timeframe = "?", None
            self._refuse(MessageRejected(symbol, timeframe, None,
                                         f"ccxt failed to handle it: {type(exc).__name__}: {exc}"))

    def check(self, message: Any) -> MessageRejected | None:
        """Why a push is refused (None = pass it on). Only candle and ticker pushes are checked."""
        if not isinstance(message, dict) or "data" not in message:
            return None
        arg = message.get("arg")
        if not isinstance(arg, dict):
            return MessageRejected("?", None, None, "push without an 'arg' object")
        symbol, timeframe, kind = self._route(arg)
        if kind == "candle" and timeframe is not None:  # (ccxt ignores unknown candle channels itself)
            return self._check_candles(symbol, timeframe, message["data"])
        if kind == "ticker":
            return self._check_ticker(symbol, message["data"])
        return None

    def _route(self, arg: dict) -> tuple[str, str | None, str]:
        """(unified symbol, timeframe or None, "candle" | "ticker" | "other") of a push's `arg`."""
        market_id = arg.get("instId") or arg.get("symbol")
        market_type = "spot" if str(arg.get("instType", "")).lower() == "spot" else "contract"
        try:
            symbol = str(self._ex.safe_market(market_id, None, None, market_type)["symbol"] or market_id)
        except Exception:
            symbol = str(market_id)
        channel = str(arg.get("channel") or arg.get("topic") or "")
        if channel.startswith("candle") or channel == "kline":
            interval = arg.get("interval") or channel.replace("candle", "")
            timeframes = self._ex.safe_dict(self._ex.options, "timeframes")
            return symbol, self._ex.find_timeframe(interval, timeframes), "candle"
        return symbol, None, "ticker" if channel == "ticker" else "other"

    @staticmethod
    def _check_candles(symbol: str, timeframe: str, data: Any) -> MessageRejected | None:
        if not isinstance(data, list) or not data:
            return MessageRejected(symbol, timeframe, None, f"candle push without rows: {str(data)[:80]!r}")
        for raw in data:
            if isinstance(raw, dict):
                raw = [raw.get(k) for k in ("start", "open", "high", "low", "close", "volume")]
            try:
                check_row(symbol, timeframe, raw)
            except DataError as exc:
                ts = _int_or_none(raw[0] if isinstance(raw, (list, tuple)) and raw else None)
                return MessageRejected(symbol, timeframe, ts, str(exc))
        return None

    @staticmethod
    def _check_ticker(symbol: str, data: Any) -> MessageRejected | None:
        item = data[0] if isinstance(data, list) and data else None
        if not isinstance(item, dict):
            return MessageRejected(symbol, None, None, f"ticker push without data: {str(data)[:80]!r}")
        ts = _int_or_none(item.get("ts"))
        last = _float_or_none(item.get("lastPr", item.get("lastPrice")))
        if last is None or last <= 0:
            return MessageRejected(symbol, None, ts, f"ticker at {iso_ms(ts)}: bad last price {item.get('lastPr')!r}")
        for key in ("bidPr", "askPr", "bid1Price", "ask1Price"):
            if item.get(key) not in (None, ""):
                value = _float_or_none(item[key])
                if value is None or value < 0:
                    return MessageRejected(symbol, None, ts, f"ticker at {iso_ms(ts)}: bad {key} {item[key]!r}")
        return None

    def _refuse(self, refusal: MessageRejected) -> None:
        self.rejected += 1
        where = refusal.symbol + (f" {refusal.timeframe}" if refusal.timeframe else "")
        log.warning("%s: refused a %s push at %s: %s", self._ex.id, where, iso_ms(refusal.ts), refusal.reason)
        for callback in list(self._listeners.get((refusal.symbol, refusal.timeframe), [])):
            callback(refusal)


def _float_or_none(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _int_or_none(value: Any) -> int | None:
    f = _float_or_none(value)
    return int(f) if f is not None and f == int(f) else None


_DATA = "data"
_FATAL = "fatal"


class _FeedBase:
    """The watch pump and reconnect bookkeeping shared by the candle and ticker feeds.

    A pump task keeps one ccxt watch call pending at all times and queues what it
    returns (so pushes arriving while the consumer is busy, e.g. back-filling, are
    not left waiting for the next push), together with refusals from the
    `MessageGuard` and `FeedReconnect` events, in arrival order.
    """

    live = True

    def __init__(self, exchange: Any, symbol: str, timeframe: str | None, backoff: Backoff,
                 silence_reconnect_s: float | None, clock: Callable[[], float], sleep: Sleep,
                 rng: random.Random | None) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.timeframe = timeframe
        self.backoff = backoff
        self.silence_reconnect_s = silence_reconnect_s
        self.last_message_at: float | None = None
        self.reconnects = 0
        self._clock = clock
        self._sleep = sleep
        self._rng = rng
        MessageGuard.install(exchange)  # before any websocket of this exchange exists

    def _watch(self) -> Awaitable[Any]:
        raise NotImplementedError

    def _copy(self, payload: Any) -> Any:
        return payload

    def _start_pump(self) -> tuple[asyncio.Queue, Callable[[], None]]:
        """Start the pump; returns its queue and the function that stops it."""
        queue: asyncio.Queue = asyncio.Queue()
        unlisten = MessageGuard.install(self.exchange).listen(self.symbol, self.timeframe, queue.put_nowait)
        task = asyncio.get_running_loop().create_task(self._pump(queue))

        def stop() -> None:
            unlisten()
            task.cancel()

        return queue, stop

    async def _pump(self, queue: asyncio.Queue) -> None:
        failures = 0
        while True:
            try:
                payload = self._copy(await self._watch())  # copy at once: ccxt mutates its cached rows
            except asyncio.CancelledError:
                raise
            except ccxt.BadSymbol as exc:
                queue.put_nowait((_FATAL, exc))
                return
            except Exception as exc:
                failures += 1
                event = self._failure(failures, exc)
                queue.put_nowait(event)
                await self._sleep(event.delay_s)
                continue
            failures = 0
            self.last_message_at = self._clock()
            queue.put_nowait((_DATA, payload))

    async def _next(self, queue: asyncio.Queue) -> Any:
        """The next queued item; after `silence_reconnect_s` without one, force a reconnect."""
        while True:
            if self.silence_reconnect_s is None:
                item = await queue.get()
            else:
                try:
                    item = await asyncio.wait_for(queue.get(), self.silence_reconnect_s)
                except asyncio.TimeoutError:
                    what = f"{self.timeframe} push" if self.timeframe else "ticker push"
                    _force_reconnect(self.exchange, f"no {self.symbol} {what} for {self.silence_reconnect_s}s")
                    continue
            if isinstance(item, tuple) and item[0] == _FATAL:
                raise DataError(f"{self.exchange.id}: cannot stream {self.symbol}: {item[1]}") from item[1]
            return item

    def _failure(self, attempt: int, exc: BaseException, what: str = "stream lost") -> FeedReconnect:
        self.reconnects += 1
        delay = self.backoff.delay(attempt, self._rng)
        error = f"{type(exc).__name__}: {exc}"
        name = self.symbol + (f" {self.timeframe}" if self.timeframe else " ticker")
        log.warning("%s %s %s (attempt %d, %d in total): %s; retrying in %.2fs",
                    self.exchange.id, name, what, attempt, self.reconnects, error, delay)
        return FeedReconnect(self.symbol, self.timeframe, attempt, self.reconnects, round(delay, 3), error)


class LiveFeed(_FeedBase):
    """Closed candles of one (symbol, timeframe) from `exchange.watch_ohlcv`, with REST back-fill.

    Args:
        exchange: a ccxt.pro exchange (e.g. `ccxt.pro.bitget`), shared by the feeds of an engine.
        symbol: ccxt unified symbol, e.g. "BTC/USDT:USDT".
        timeframe: e.g. "1m".
        backoff: reconnect (and failed back-fill) delays.
        backfiller: REST back-fill settings (default `Backfiller()`).
        max_backfill: at most this many candles are back-filled at once; older ones
            are skipped with a warning (use `radar data download` for history).
        silence_reconnect_s: when nothing arrives for this long, force the websocket
            to reconnect (and so back-fill); None = never.
        clock: seconds, monotonic, for `last_message_at`.
        sleep, rng: injectable for tests.

    `stream(after_ts)` yields `ClosedCandle` (source "live" or "backfill"),
    `FeedReconnect` and `MessageRejected` events and runs until cancelled.
    Raises DataError when the exchange has no such market.
    """

    def __init__(
        self,
        exchange: Any,
        symbol: str,
        timeframe: str,
        *,
        backoff: Backoff = Backoff(),
        backfiller: Backfiller | None = None,
        max_backfill: int = 1000,
        silence_reconnect_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(exchange, symbol, timeframe, backoff, silence_reconnect_s, clock, sleep, rng)
        self._step = timeframe_ms(timeframe)
        self.backfiller = backfiller or Backfiller()
        self.max_backfill = max_backfill

    def _watch(self) -> Awaitable[Any]:
        return self.exchange.watch_ohlcv(self.symbol, self.timeframe)

    def _copy(self, payload: Any) -> Any:
        return [list(row) if isinstance(row, (list, tuple)) else row for row in payload or []]

    async def stream(self, after_ts: int | None = None) -> AsyncIterator[FeedEvent]:
        """Closed candles after `after_ts` (ms UTC; None = from the first candle closing live)."""
        queue, stop = self._start_pump()
        step = self._step
        cursor = None if after_ts is None else after_ts + step  # open time of the next candle to deliver
        forming: Row | None = None
        synced = False
        fill_failures = 0
        try:
            while True:
                item = await self._next(queue)
                if isinstance(item, FeedReconnect):
                    forming, synced = None, False
                    yield item
                    continue
                if isinstance(item, MessageRejected):
                    yield item
                    continue
                batch, refused = self._checked(item[1])
                for event in refused:
                    yield event
                if not batch:
                    continue
                try:
                    if not synced:
                        newest = batch[-1]
                        cursor = self._bounded(newest[0] if cursor is None else cursor, newest[0])
                        if cursor < newest[0]:
                            fill = await self._fill(cursor, newest[0], {r[0]: r for r in batch[:-1]})
                            for event in _fill_events(fill):
                                yield event
                            cursor = newest[0]
                        forming = newest if newest[0] >= cursor else None
                        synced = True
                        continue
                    for row in batch:
                        ts = row[0]
                        if ts < cursor or (forming is not None and ts < forming[0]):
                            continue  # late update of a candle already closed
                        if forming is not None and ts == forming[0]:
                            forming = row
                            continue
                        if forming is not None:
                            yield candle_from_row(self.symbol, self.timeframe, forming, "live")
                            cursor, forming = forming[0] + step, None
                        if ts > cursor:  # the stream skipped candles: fetch them before going on
                            fill = await self._fill(cursor, ts, {})
                            for event in _fill_events(fill):
                                yield event
                            cursor = ts
                        forming = row
                    fill_failures = 0
                except Exception as exc:  # REST back-fill failed: back off, then re-sync
                    fill_failures += 1
                    event = self._failure(fill_failures, exc, "back-fill failed")
                    forming, synced = None, False
                    yield event
                    await self._sleep(event.delay_s)
        finally:
            stop()

    def _checked(self, rows: list) -> tuple[list[Row], list[MessageRejected]]:
        """Checked rows, unique by ts (last wins), sorted; and refusals of bad ones."""
        out: dict[int, Row] = {}
        refused: list[MessageRejected] = []
        for raw in rows:
            try:
                row = check_row(self.symbol, self.timeframe, raw)
            except DataError as exc:
                log.warning("refused a parsed candle: %s", exc)
                ts = raw[0] if isinstance(raw, list) and raw and isinstance(raw[0], int) else None
                refused.append(MessageRejected(self.symbol, self.timeframe, ts, str(exc)))
                continue
            out[row[0]] = row
        return [out[ts] for ts in sorted(out)], refused

    def _bounded(self, cursor: int, newest: int) -> int:
        oldest = newest - self.max_backfill * self._step
        if cursor < oldest:
            log.warning("%s %s: %d candle(s) from %s to %s are too far back to back-fill live (max %d); "
                        "download them with `radar data download`", self.symbol, self.timeframe,
                        (oldest - cursor) // self._step, iso_ms(cursor), iso_ms(oldest - self._step), self.max_backfill)
            return oldest
        return cursor

    async def _fill(self, start: int, end: int, fallback: dict[int, Row]) -> Fill:
        log.info("%s %s: back-filling %d candle(s) from %s by REST", self.symbol, self.timeframe,
                 (end - start) // self._step, iso_ms(start))
        return await self.backfiller.fill(self.exchange, self.symbol, self.timeframe, start, end, fallback)


def _fill_events(fill: Fill) -> list[FeedEvent]:
    """Rejections first, then the candles in order."""
    events: list[FeedEvent] = list(fill.rejected)
    events.extend(fill.candles)
    return events


def _force_reconnect(exchange: Any, reason: str) -> None:
    """Make ccxt drop the public websocket(s) of `exchange` so that the pending watch fails and reconnects."""
    urls = exchange.urls.get("api", {}).get("ws") if isinstance(exchange.urls, dict) else None
    url = urls.get("public") if isinstance(urls, dict) else None
    clients = getattr(exchange, "clients", None) or {}
    targets = [clients[url]] if url in clients else list(clients.values())
    log.warning("%s: %s; reconnecting", exchange.id, reason)
    for client in targets:
        client.on_error(ccxt.RequestTimeout(reason))


class TickerFeed(_FeedBase):
    """Ticker updates of one symbol from `exchange.watch_ticker` (timeframe None).

    Args as `LiveFeed` (no back-fill: tickers are not replayed). `stream()` yields
    `TickerUpdate`, `FeedReconnect` and `MessageRejected` events until cancelled.
    """

    def __init__(
        self,
        exchange: Any,
        symbol: str,
        *,
        backoff: Backoff = Backoff(),
        silence_reconnect_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(exchange, symbol, None, backoff, silence_reconnect_s, clock, sleep, rng)

    def _watch(self) -> Awaitable[Any]:
        return self.exchange.watch_ticker(self.symbol)

    def _copy(self, payload: Any) -> Any:
        return dict(payload) if isinstance(payload, dict) else payload

    async def stream(self, after_ts: int | None = None) -> AsyncIterator[FeedEvent]:
        """Ticker updates as they arrive (`after_ts` is ignored)."""
        queue, stop = self._start_pump()
        try:
            while True:
                item = await self._next(queue)
                yield self._event(item[1]) if isinstance(item, tuple) else item
        finally:
            stop()

    def _event(self, t: Any) -> TickerUpdate | MessageRejected:
        t = t if isinstance(t, dict) else {}
        ts = _int_or_none(t.get("timestamp"))
        last = _float_or_none(t.get("last"))
        if last is None or last <= 0 or ts is None:
            reason = f"ticker at {iso_ms(ts)}: bad last price {t.get('last')!r} or time {t.get('timestamp')!r}"
            log.warning("%s: refused %s", self.symbol, reason)
            return MessageRejected(self.symbol, None, ts, reason)
        return TickerUpdate(self.symbol, ts, last, _float_or_none(t.get("bid")), _float_or_none(t.get("ask")))
