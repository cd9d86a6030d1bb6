"""The one in-process event stream of the engine: typed events, bounded per-subscriber queues.

Publishers (the engine, the executor, the alert engine) call `EventBus.publish(event)`,
which never blocks and never awaits: the event is put on each interested subscriber's own
bounded queue. Subscribers (the console, Telegram, the reporter) read with
`async for event in bus.subscribe(...)` or `get()`/`get_nowait()`.

Overflow policy (per subscriber, when its queue holds `maxsize` events):

* a LOW-priority event (candles, intents, health, status, alerts) arriving on a full
  queue makes room by dropping the OLDEST low-priority event queued (or is itself
  dropped when only critical events are queued); drops are counted per kind in
  `Subscription.dropped`;
* CRITICAL events (orders, fills, positions, risk rejections, kill switch, runner control) are never
  dropped: they are appended even beyond `maxsize` (the queue overflows by at most the
  critical events a stalled reader has not taken; `Subscription.overflow_peak` records it).

So a slow console loses stale candle/status updates but never an order or a fill.
Events of one publisher reach each subscriber in publish order (except dropped ones).
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Iterable

# ---------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class CandleEvent:
    """A closed candle processed by the engine (prices quote currency, ts open time ms UTC)."""

    symbol: str
    timeframe: str
    ts: int
    open: float
    high: float
    low: float
    close: float


@dataclass(frozen=True, slots=True)
class IntentEvent:
    """A runner's decision: place/amend/cancel an order, or flatten (qty base units when known;
    reason of a flatten: tp | kill | end | ...). An amend is published once the venue took it,
    `client_id` the id the order rests under afterwards."""

    strategy: str
    symbol: str
    ts: int
    action: str          # place | amend | cancel | flatten
    client_id: str
    price: float | None
    qty: float | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """An order changed state at the gateway (status: open | filled | cancelled | rejected)."""

    strategy: str
    symbol: str
    ts: int
    client_id: str
    purpose: str         # entry | stop | take_profit | exit
    side: str            # buy | sell
    price: float | None
    status: str


@dataclass(frozen=True, slots=True)
class FillEvent:
    """A fill (price quote currency, qty base units, fee USDT; reason for exits)."""

    strategy: str
    symbol: str
    ts: int
    client_id: str
    kind: str            # entry | exit
    reason: str | None   # tp | sl | end | kill for exits
    level: int
    side: str
    price: float
    qty: float
    fee: float


@dataclass(frozen=True, slots=True)
class PositionEvent:
    """The position of a runner after a change (qty 0 = flat)."""

    strategy: str
    symbol: str
    ts: int
    side: str
    qty: float
    avg_entry: float | None
    stop: float | None
    levels_filled: int


@dataclass(frozen=True, slots=True)
class RiskRejection:
    """An intent refused by risk checks or the kill switch."""

    strategy: str
    symbol: str
    ts: int
    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class KillSwitchEvent:
    """The kill switch was set (active=True) or cleared."""

    active: bool
    flatten: bool
    actor: str
    reason: str


@dataclass(frozen=True, slots=True)
class HealthEvent:
    """A health/status line: component (engine, feed, store, ...), state (ok | degraded | down), detail."""

    component: str
    state: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """An alert raised or changed (see core.alerts); severity info | warning | error | critical."""

    severity: str
    title: str
    detail: str = ""
    source: str = "engine"


@dataclass(frozen=True, slots=True)
class EngineStatus:
    """The periodic one-line status of the engine."""

    mode: str
    candles: int
    candles_per_s: float
    equity: float
    kill_switch: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ReconcileEvent:
    """One action of the start-up reconciliation of a live runner with the exchange.

    action: adopted | filled_while_down | closed_while_down | cancelled_orphan | never_sent |
    stop_replaced | qty_adjusted | external_order | external_position | done | failed.
    client_id: the order concerned (None for positions and summaries). ts: ms UTC (wall clock).
    """

    strategy: str
    symbol: str
    ts: int
    action: str
    client_id: str | None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class RunnerControlEvent:
    """An operator changed one runner (a strategy on a symbol and timeframe).

    action: paused | resumed (entries of that runner only; the kill switch is separate) |
    params_pending (stored, applied at the next flat moment) | params_applied (the grid is
    rebuilt with `params` from the next candle). actor: who, e.g. "cli:alice", "telegram:bob".
    params: the full parameters concerned (None for paused / resumed). ts_ms: wall clock, ms UTC.
    """

    strategy: str
    symbol: str
    timeframe: str
    action: str
    actor: str
    detail: str = ""
    params: dict | None = None
    ts_ms: int = 0


#: kinds never dropped on overflow
CRITICAL_KINDS: tuple[type, ...] = (OrderEvent, FillEvent, PositionEvent, RiskRejection, KillSwitchEvent,
                                    ReconcileEvent, RunnerControlEvent)
#: every event kind of the bus
EVENT_KINDS: tuple[type, ...] = (CandleEvent, IntentEvent, OrderEvent, FillEvent, PositionEvent,
                                 RiskRejection, KillSwitchEvent, HealthEvent, AlertEvent, EngineStatus,
                                 ReconcileEvent, RunnerControlEvent)

_END = object()


class Subscription:
    """One subscriber's bounded queue (see the module docstring for the overflow policy).

    Attributes:
        kinds: the event types wanted (None = all). maxsize: the bound for low-priority events.
        dropped: Counter of dropped events by kind name. overflow_peak: the largest queue
            length seen (> maxsize only through critical events).
    """

    def __init__(self, bus: "EventBus", kinds: Iterable[type] | None, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self.kinds = tuple(kinds) if kinds is not None else None
        self.maxsize = maxsize
        self.dropped: Counter[str] = Counter()
        self.overflow_peak = 0
        self.closed = False
        self._bus = bus
        self._items: deque[Any] = deque()
        self._waiter: asyncio.Future | None = None

    def __len__(self) -> int:
        return len(self._items)

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def wants(self, event: Any) -> bool:
        return self.kinds is None or isinstance(event, self.kinds)

    def _put(self, event: Any) -> None:
        items = self._items
        if len(items) >= self.maxsize and event is not _END:
            if isinstance(event, CRITICAL_KINDS):
                pass                                   # never dropped: overflow the bound
            else:
                victim_index = None
                for i, old in enumerate(items):        # the oldest low-priority event
                    if not isinstance(old, CRITICAL_KINDS):
                        victim_index = i
                        break
                if victim_index is None:
                    self.dropped[type(event).__name__] += 1
                    return
                victim = items[victim_index]
                del items[victim_index]
                self.dropped[type(victim).__name__] += 1
        items.append(event)
        if len(items) > self.overflow_peak:
            self.overflow_peak = len(items)
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def take_queued(self) -> list:
        """Every event queued now, removed from the subscription (oldest first): what a closed
        subscription's consumer left when its task was stopped."""
        out = []
        while self._items and self._items[0] is not _END:
            out.append(self._items.popleft())
        return out

    def get_nowait(self) -> Any:
        """The next event; raises asyncio.QueueEmpty when none is queued (or the stream ended)."""
        if not self._items or self._items[0] is _END:
            raise asyncio.QueueEmpty
        return self._items.popleft()

    async def get(self) -> Any:
        """Wait for the next event. Raises StopAsyncIteration once closed and drained."""
        while True:
            if self._items:
                item = self._items[0]
                if item is _END:
                    raise StopAsyncIteration
                return self._items.popleft()
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def __aiter__(self) -> "Subscription":
        return self

    async def __anext__(self) -> Any:
        return await self.get()

    def close(self) -> None:
        """Stop receiving; queued events are still handed over, then iteration ends."""
        if not self.closed:
            self.closed = True
            self._bus._subs.discard(self)
            self._put(_END)


class EventBus:
    """The engine's event stream. `publish` is synchronous and non-blocking.

    Attributes:
        published: Counter of published events by kind name.
    """

    def __init__(self, default_maxsize: int = 10_000) -> None:
        self.default_maxsize = default_maxsize
        self.published: Counter[str] = Counter()
        self._subs: set[Subscription] = set()

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def subscribe(self, kinds: Iterable[type] | None = None, maxsize: int | None = None) -> Subscription:
        """A new subscription to events of `kinds` (None = all) with a queue bound of `maxsize`."""
        sub = Subscription(self, kinds, self.default_maxsize if maxsize is None else maxsize)
        self._subs.add(sub)
        return sub

    def publish(self, event: Any) -> None:
        """Hand `event` to every interested subscriber (never blocks, never raises on overflow)."""
        self.published[type(event).__name__] += 1
        for sub in self._subs:
            if sub.kinds is None or isinstance(event, sub.kinds):
                sub._put(event)

    def close(self) -> None:
        """End every subscription (their iterators stop after the queued events)."""
        for sub in list(self._subs):
            sub.close()
