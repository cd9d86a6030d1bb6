"""Feed health per symbol: how long since the last market-data message, and whether the feed is reconnecting.

`FeedHealth` follows a `core.data.engine.DataEngine`'s events
(`engine.subscribe(feed_health.on_event)`): a candle or ticker push counts as a
message; `FeedReconnect` is remembered until the next message (shown in the
reason). Alternatively call `seen(symbol, at)` with a feed's `last_message_at`.
Silence is counted from `watch(symbol)` until the first message.

Verdict for a symbol with `age` seconds of silence:

* down: age >= `down_after_s`;
* degraded: age >= `stale_after_s` (the same threshold as the DataEngine's FeedStale);
* ok otherwise.

Register one watchdog subsystem per symbol with `register(watchdog)`: names
are "feed:<symbol>", e.g. "feed:BTC/USDT:USDT" (alert key
"health:feed:BTC/USDT:USDT").

Candles (read by the metrics, `candle_stats()`): per symbol the time the last closed candle
was taken (the clock), how many were, and the feed latency of the last one taken from a live
feed or a backfill: wall-clock seconds from the candle's close (`ClosedCandle.close_ts`) to the
moment the engine takes it (its feed listeners run just before the runners process it); a
replayed candle has no latency (its close is in the past by design).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable

from core.data.feed import ClosedCandle, FeedEvent, FeedReconnect, TickerUpdate
from core.health.status import Check, format_seconds

if TYPE_CHECKING:
    from core.health.watchdog import Watchdog

#: Subsystem name prefix of feed checks.
FEED_PREFIX = "feed:"


def feed_subsystem(symbol: str) -> str:
    """The watchdog subsystem name of `symbol`'s feed, e.g. "feed:BTC/USDT:USDT"."""
    return FEED_PREFIX + symbol


@dataclass
class _Symbol:
    last: float  # clock time of the last message, or of watch() before the first
    messages: int = 0
    reconnect_attempt: int = 0
    reconnect_error: str | None = None
    candles: int = 0                     # closed candles taken
    last_candle: float | None = None     # clock time the last one was taken
    latency_s: float | None = None       # close -> taken, wall seconds, of the last live / backfill candle


@dataclass(frozen=True)
class CandleStats:
    """One symbol's closed candles (see the module docstring): `age_s` seconds since the last was
    taken (None before the first), `candles` taken, `latency_s` of the last live/backfill one."""

    symbol: str
    candles: int
    age_s: float | None
    latency_s: float | None


class FeedHealth:
    """Tracks market-data messages per symbol and turns silence into a health `Check`.

    Args:
        stale_after_s: silence (seconds) that makes a symbol degraded (> 0); use the DataEngine's.
        down_after_s: silence (seconds) that makes it down (>= stale_after_s; default 10 x stale_after_s).
        clock: seconds, monotonic (default `time.monotonic`, the feeds' clock).

    Raises:
        ValueError: stale_after_s <= 0 or down_after_s < stale_after_s.
    """

    def __init__(self, *, stale_after_s: float = 30.0, down_after_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not stale_after_s > 0:
            raise ValueError(f"stale_after_s must be > 0 seconds, got {stale_after_s!r}")
        down = 10 * stale_after_s if down_after_s is None else down_after_s
        if not down >= stale_after_s:
            raise ValueError(f"down_after_s ({down}) must be >= stale_after_s ({stale_after_s})")
        self.stale_after_s = float(stale_after_s)
        self.down_after_s = float(down)
        self._clock = clock
        self._symbols: dict[str, _Symbol] = {}

    @property
    def symbols(self) -> list[str]:
        """The symbols tracked, sorted."""
        return sorted(self._symbols)

    def watch(self, symbol: str) -> None:
        """Track `symbol`; its silence counts from now until its first message (idempotent)."""
        if symbol not in self._symbols:
            self._symbols[symbol] = _Symbol(self._clock())

    def seen(self, symbol: str, at: float | None = None) -> None:
        """Record a message for `symbol` at clock time `at` (default now); older times are ignored."""
        at = self._clock() if at is None else at
        st = self._symbols.get(symbol)
        if st is None:
            st = self._symbols[symbol] = _Symbol(at)
        else:
            st.last = max(st.last, at)
        st.messages += 1
        st.reconnect_attempt = 0
        st.reconnect_error = None

    def on_event(self, event: FeedEvent) -> None:
        """Take one DataEngine event (pass this to `DataEngine.subscribe`); other event kinds are ignored."""
        if type(event) is ClosedCandle:
            now = self._clock()
            self.seen(event.symbol, now)
            st = self._symbols[event.symbol]
            st.candles += 1
            st.last_candle = now
            if event.source != "replay":
                st.latency_s = time.time() - event.close_ts / 1000.0
        elif isinstance(event, (ClosedCandle, TickerUpdate)):
            self.seen(event.symbol)
        elif isinstance(event, FeedReconnect):
            self.watch(event.symbol)
            st = self._symbols[event.symbol]
            st.reconnect_attempt = event.attempt
            st.reconnect_error = event.error

    def candle_stats(self) -> list[CandleStats]:
        """Every tracked symbol's closed-candle figures, by symbol (see the module docstring)."""
        now = self._clock()
        return [CandleStats(sym, st.candles, None if st.last_candle is None else max(0.0, now - st.last_candle),
                            st.latency_s) for sym, st in sorted(self._symbols.items())]

    def check(self, symbol: str) -> Check:
        """The verdict for `symbol` (see the module docstring); down for a symbol never watched."""
        st = self._symbols.get(symbol)
        if st is None:
            return Check.down(f"{symbol} is not watched")
        age = max(0.0, self._clock() - st.last)
        metrics = {"age_s": round(age, 3), "stale_after_s": self.stale_after_s,
                   "reconnect_attempt": st.reconnect_attempt}
        what = f"no message for {format_seconds(age)}" if st.messages else f"no message yet after {format_seconds(age)}"
        if st.reconnect_attempt:
            what += f"; reconnecting (attempt {st.reconnect_attempt}): {st.reconnect_error}"
        if age >= self.down_after_s:
            return Check.down(f"{what} (down after {format_seconds(self.down_after_s)})", **metrics)
        if age >= self.stale_after_s:
            return Check.degraded(f"{what} (stale after {format_seconds(self.stale_after_s)})", **metrics)
        return Check.ok(**metrics)

    def check_fn(self, symbol: str) -> Callable[[], Check]:
        """A watchdog check for `symbol` (watches it from now)."""
        self.watch(symbol)
        return lambda: self.check(symbol)

    def register(self, watchdog: "Watchdog", symbols: Iterable[str] | None = None) -> list[str]:
        """Register "feed:<symbol>" checks on `watchdog` for `symbols` (default: every tracked one).

        Returns:
            the subsystem names registered.

        Raises:
            ValueError: a subsystem of that name is already registered.
        """
        names = []
        for symbol in (self.symbols if symbols is None else list(symbols)):
            name = feed_subsystem(symbol)
            watchdog.register(name, self.check_fn(symbol))
            names.append(name)
        return names
