"""The interface shared by live and replay market data: event types and the `CandleFeed` protocol.

A feed (`core.data.live_feed.LiveFeed`, `core.data.live_feed.TickerFeed`,
`core.data.replay.ReplayFeed`) is an async iterator of `FeedEvent`s for one
symbol (and one timeframe for candle feeds); `core.data.engine.DataEngine` runs
feeds, guards ordering, stores candles and hands events to subscribers, so
strategies see the same `ClosedCandle` stream in live trading and in replay.

All times are ms UTC (open times of candles), durations are seconds.

Closed-candle rule (live): ccxt's `watch_ohlcv` repeats the forming candle; a
candle is CLOSED when a candle with a later open time arrives on the stream (it
is then delivered with the last values pushed for it), or when it is read by
REST back-fill with a later candle after it (REST values are final). A forming
candle is never delivered; replay only plays stored (closed) candles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import AsyncIterator, Literal, Protocol, Sequence, Union, runtime_checkable

from core.data.timeframes import timeframe_ms
from core.errors import DataError

#: Where a closed candle came from.
Source = Literal["live", "backfill", "replay"]
SOURCES: tuple[str, ...] = ("live", "backfill", "replay")

#: One candle row `(ts_ms, open, high, low, close, volume)` as plain Python numbers.
Row = tuple[int, float, float, float, float, float]


def iso_ms(ts: int | None) -> str:
    """`ts` (ms UTC) as an ISO-8601 string for messages ("?" when unknown)."""
    if ts is None:
        return "?"
    try:
        return datetime.fromtimestamp(ts / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"{ts} ms"


@dataclass(frozen=True, slots=True)
class ClosedCandle:
    """A closed OHLCV candle of one symbol and timeframe.

    Attributes:
        symbol: ccxt unified symbol, e.g. "BTC/USDT:USDT".
        timeframe: e.g. "1m", "5m", "1h".
        ts: open time, ms UTC, on the timeframe's grid.
        open, high, low, close: prices (quote currency).
        volume: base-currency volume.
        source: "live" (websocket), "backfill" (REST, after a reconnect or gap) or "replay".
        complete: False only for an aggregated candle built from fewer base candles
            than its period holds (see `core.data.aggregate`).
    """

    symbol: str
    timeframe: str
    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    source: Source
    complete: bool = True

    @property
    def close_ts(self) -> int:
        """End of the candle's period (exclusive), ms UTC: `ts + timeframe_ms(timeframe)`."""
        return self.ts + timeframe_ms(self.timeframe)

    @property
    def row(self) -> Row:
        """`(ts, open, high, low, close, volume)`."""
        return (self.ts, self.open, self.high, self.low, self.close, self.volume)


@dataclass(frozen=True, slots=True)
class TickerUpdate:
    """A ticker push: `ts` ms UTC (exchange time), `last`/`bid`/`ask` prices (bid/ask may be None)."""

    symbol: str
    ts: int
    last: float
    bid: float | None
    ask: float | None


@dataclass(frozen=True, slots=True)
class FeedStale:
    """No message for `symbol` for `age_s` seconds (>= the engine's `stale_after_s`); sent once per outage."""

    symbol: str
    age_s: float


@dataclass(frozen=True, slots=True)
class FeedFresh:
    """Messages for `symbol` arrive again after a `FeedStale`; `silent_s` is the gap between the
    last message before the outage and the first one after it."""

    symbol: str
    silent_s: float


@dataclass(frozen=True, slots=True)
class FeedReconnect:
    """A live feed lost its stream (or failed to back-fill) and will retry after `delay_s`.

    Attributes:
        symbol, timeframe: the feed (timeframe None for a ticker feed).
        attempt: consecutive failures so far (1 on the first; reset by a good message).
        reconnects: total failures of this feed since it started.
        delay_s: back-off before the retry, seconds.
        error: what went wrong, e.g. "NetworkError: Connection closed by remote server ...".
    """

    symbol: str
    timeframe: str | None
    attempt: int
    reconnects: int
    delay_s: float
    error: str


@dataclass(frozen=True, slots=True)
class MessageRejected:
    """An exchange message (or REST row) was refused and not passed on.

    `ts` is the candle/ticker time the message claimed (ms UTC, None when unreadable).
    """

    symbol: str
    timeframe: str | None
    ts: int | None
    reason: str


FeedEvent = Union[ClosedCandle, TickerUpdate, FeedStale, FeedFresh, FeedReconnect, MessageRejected]
EVENT_TYPES: tuple[type, ...] = (ClosedCandle, TickerUpdate, FeedStale, FeedFresh, FeedReconnect, MessageRejected)


@runtime_checkable
class CandleFeed(Protocol):
    """A source of events for one symbol: candles of one timeframe, or tickers (`timeframe` None).

    Attributes:
        symbol: ccxt unified symbol.
        timeframe: candle timeframe, or None for a ticker-only feed.
        live: True for exchange streams (their symbol is watched for staleness).
        last_message_at: clock time (seconds, the feed's clock, `time.monotonic` by
            default) of the last good message received, None before the first; replay: None.
    """

    symbol: str
    timeframe: str | None
    live: bool
    last_message_at: float | None

    def stream(self, after_ts: int | None = None) -> AsyncIterator[FeedEvent]:
        """Events in order. Candle feeds yield `ClosedCandle`s with strictly increasing `ts`,
        starting after `after_ts` (ms UTC open time of the last candle already delivered;
        None = from wherever the source starts). Live feeds run until cancelled; a replay
        ends after its last candle."""
        ...


def check_row(symbol: str, timeframe: str, raw: Sequence[object]) -> Row:
    """Validate one exchange candle row `[ts, open, high, low, close, volume, ...]` (numbers
    or numeric strings; extra columns ignored) and return it as a `Row`.

    Checks, as `core.data.validation` does for files: finite numbers, an integer ts
    in [0, 2**53] on the timeframe's grid, prices > 0, volume >= 0, high >= low and
    open/close within [low, high].

    Raises:
        DataError: naming symbol, timeframe, the candle time (when readable) and the problem.
    """
    ts: int | None = None
    try:
        if isinstance(raw, (str, bytes)) or len(raw) < 6:
            raise ValueError(f"expected a row of >= 6 values, got {str(raw)[:60]!r}")
        ts_val = float(raw[0])  # type: ignore[arg-type]
        if not (math.isfinite(ts_val) and ts_val == int(ts_val) and 0 <= ts_val <= 2**53):
            raise ValueError(f"bad open time {raw[0]!r}")
        ts = int(ts_val)
        o, h, low, c, v = (float(x) for x in raw[1:6])  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError) as exc:
        raise DataError(f"{symbol} {timeframe} candle {iso_ms(ts)}: unreadable row: {exc}") from None
    problem = _row_problem(ts, o, h, low, c, v, timeframe)
    if problem:
        raise DataError(f"{symbol} {timeframe} candle {iso_ms(ts)}: {problem}")
    return (ts, o, h, low, c, v)


def _row_problem(ts: int, o: float, h: float, low: float, c: float, v: float, timeframe: str) -> str:
    if not all(math.isfinite(x) for x in (o, h, low, c, v)):
        return "NaN/inf value"
    if min(o, h, low, c) <= 0:
        return "non-positive price"
    if v < 0:
        return "negative volume"
    if h < low:
        return f"high {h} < low {low}"
    if not (low <= o <= h and low <= c <= h):
        return f"open {o}/close {c} outside [low {low}, high {h}]"
    if floor_ts(ts, timeframe) != ts:
        return f"open time {ts} is off the {timeframe} grid"
    return ""


#: Weekly candles open on Monday 00:00 UTC; the Unix epoch was a Thursday.
_WEEK_OFFSET_MS = 4 * 86_400_000


def floor_ts(ts: int, timeframe: str) -> int:
    """Open time (ms UTC) of the `timeframe` candle containing `ts`.

    Grids are aligned to the Unix epoch, except weeks, which open on Monday 00:00 UTC
    (as exchanges do). Raises DataError for an unknown timeframe.
    """
    step = timeframe_ms(timeframe)
    offset = _WEEK_OFFSET_MS if timeframe.endswith("w") else 0
    return (ts - offset) // step * step + offset


def candle_from_row(symbol: str, timeframe: str, row: Row, source: Source, complete: bool = True) -> ClosedCandle:
    """A `ClosedCandle` from an already-checked `Row`."""
    ts, o, h, low, c, v = row
    return ClosedCandle(symbol, timeframe, int(ts), o, h, low, c, v, source, complete)
