"""The strategy API: strategies see closed candles and emit intents; they never compute fills.

Fills are the matching engine's job (`core.venues.sim.matching`), which is shared by the
backtester and the paper executor. A strategy only says, before each candle opens, where
its orders rest, and reacts to the fills the matching engine reports.

Two families:

* `GridStrategy` — a cycle of up to `num_levels` resting limit entries (DCA levels), one
  stop for the whole position (moved after every fill) and a take-profit price that can
  change every candle (a touch closes the whole position). `envelope_dca` is one.
* `SinglePositionStrategy` — a signal gives one entry with its stop and take-profit
  (the interface only; concrete strategies and their driver come later).

Prices are quote-currency prices (USDT for */USDT), quantities base-currency units,
times ms UTC. Strategies keep their own state; one instance serves one symbol and one run.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from core.errors import RadarError
from core.model.sides import LONG, SHORT  # noqa: F401 - the sides strategies are written for


class ParamError(RadarError, ValueError):
    """A strategy parameter is unknown, missing its type, or out of range (exit code 2).

    The message names the parameter, the value and what was expected.
    """

    exit_code = 2


class CandleHistory:
    """The closed candles a strategy may look at: six parallel Python lists, oldest first.

    Attributes:
        ts: open times, int ms UTC.
        open, high, low, close: float prices (quote currency).
        volume: float base-currency volumes (nan = unknown), aligned with the other lists
            when the driver gives a volume with every candle (`append(..., v)`, as the
            single-position runner does); empty when it gives none (the backtest drivers
            and the grid runners: no strategy of theirs reads it).

    The driver (backtest or live feed) appends a candle only after it has closed and been
    processed, so while candle t is being traded the history holds exactly candles
    0 … t−1: look-ahead is impossible by construction. Plain lists (not numpy arrays)
    keep the per-candle arithmetic in Python floats, which is both fast and exact.
    """

    __slots__ = ("ts", "open", "high", "low", "close", "volume")

    def __init__(self) -> None:
        self.ts: list[int] = []
        self.open: list[float] = []
        self.high: list[float] = []
        self.low: list[float] = []
        self.close: list[float] = []
        self.volume: list[float] = []

    def __len__(self) -> int:
        return len(self.close)

    def append(self, ts: int, o: float, h: float, lo: float, c: float, v: float | None = None) -> None:
        """Add one closed candle (open time ms UTC, prices as floats; `v` the volume in base
        units, nan = unknown, None = the driver keeps no volumes)."""
        self.ts.append(ts)
        self.open.append(o)
        self.high.append(h)
        self.low.append(lo)
        self.close.append(c)
        if v is not None:
            self.volume.append(v)

    def trim(self, keep: int) -> None:
        """Keep only the newest `keep` candles (keep >= 1), in every list."""
        for name in CandleHistory.__slots__:
            del getattr(self, name)[:-keep]


class GridStrategy(ABC):
    """A grid (DCA) strategy: resting entry levels, a whole-position stop, a take-profit price.

    The driver calls, for every candle t, in this order:

    1. `on_candle_open(history)` with candles 0 … t−1. It returns False when the strategy
       does not trade on candle t (e.g. warm-up); otherwise it has written candle t's
       quote into `levels` (the price of every level 0 … num_levels−1; only the unfilled
       ones are used, filled levels keep their fill) and `take_profit` (a touch of this
       price closes the whole position).
    2. The matching engine walks the candle. When the cycle's first entry fills it asks
       `cycle_notional(cash, leverage)` for the USDT notional of each level; after every
       entry fill it calls `on_fill(...)`, which returns the new stop price, effective at
       once (inside the same candle). When the position is closed it calls `on_exit`.

    Attributes (set by subclasses):
        name: registry name, e.g. "envelope_dca".
        side: "long" or "short".
        num_levels: L >= 1, levels per cycle.
        params: the normalised parameter dict (as reported in results).
        levels: list of L floats, candle t's level prices (quote currency).
        take_profit: float, candle t's take-profit price (quote currency).
        allow_new_cycle: the new-cycle gate for candle t, set by `on_candle_open` (class
            default True: envelope_dca never closes it). While flat and False, no entry
            level rests (the matching engine walks nothing; the executor cancels / does not
            place entry orders); once a position is open it has no effect (levels, stop and
            take-profit work as usual). See docs/grid_family.md.
    """

    name: str = ""
    side: str = LONG
    num_levels: int = 1
    params: dict
    levels: list[float]
    take_profit: float
    allow_new_cycle: bool = True

    def bind_market(self, timeframe: str | None, funding=None) -> None:
        """The driver's context, given once before the first candle: the candles' timeframe
        (e.g. "1h") and the perpetual's funding series (ts int64 ms UTC, rate float64; None
        when there is none). Default: ignored (envelope_dca needs neither)."""

    @abstractmethod
    def on_candle_open(self, history: CandleHistory) -> bool:
        """Quote candle t = len(history) into `levels` and `take_profit`; False: no trading on t."""

    def cycle_notional(self, cash: float, leverage: float) -> float:
        """USDT notional of each level of a new cycle, given the cash before its first entry.

        Default: equal shares, `cash · leverage / num_levels`; a level filled at price X then
        buys `notional / X` units.
        """
        return cash * leverage / self.num_levels

    @abstractmethod
    def on_fill(self, level: int, price: float, qty: float, avg_entry: float) -> float:
        """An entry level filled (`level` 0-based, at `price`, `qty` units; position's new
        average entry `avg_entry`). Returns the new stop price of the whole position."""

    def on_exit(self, reason: str, price: float) -> None:
        """The whole position was closed at `price` ("tp", "sl", "end" or another reason)."""


class EntryIntent:
    """One entry of a single-position strategy.

    Attributes:
        side: "long" or "short".
        price: limit price of the entry (quote currency), or None for a market entry at the
            next price the feed shows (the candle's open in a backtest).
        stop: stop price (quote currency), below the entry for long, above for short.
        take_profit: take-profit price (quote currency), or None for none.
        size_fraction: fraction of the cash (× leverage) committed, in (0, 1].
    """

    __slots__ = ("side", "price", "stop", "take_profit", "size_fraction")

    def __init__(self, side: str, price: float | None, stop: float, take_profit: float | None,
                 size_fraction: float = 1.0) -> None:
        self.side = side
        self.price = price
        self.stop = stop
        self.take_profit = take_profit
        self.size_fraction = size_fraction

    def __repr__(self) -> str:
        return (f"EntryIntent({self.side}, price={self.price!r}, stop={self.stop!r}, "
                f"take_profit={self.take_profit!r}, size_fraction={self.size_fraction!r})")


class SinglePositionStrategy(ABC):
    """A strategy holding at most one position, opened by a signal with its stop and take-profit.

    Interface only (the concrete strategies and their driver come later). For every candle
    t, with candles 0 … t−1 in `history`:

    * while flat: `on_candle_open(history)` returns an `EntryIntent` or None;
    * while in a position: `manage(history, entry_price)` returns `(stop, take_profit)` to
      amend the resting exits for candle t, or None to keep them;
    * `on_fill(price, qty)` after the entry fills; `on_exit(reason, price)` after the exit.

    Attributes: `name`, `params` as for `GridStrategy`.
    """

    name: str = ""
    params: dict

    @abstractmethod
    def on_candle_open(self, history: CandleHistory) -> EntryIntent | None:
        """The entry to place for candle t = len(history), or None."""

    def manage(self, history: CandleHistory, entry_price: float) -> tuple[float, float | None] | None:
        """New (stop, take_profit) for candle t while in a position; None keeps the current ones."""
        return None

    def on_fill(self, price: float, qty: float) -> None:
        """The entry filled at `price` for `qty` units."""

    def on_exit(self, reason: str, price: float) -> None:
        """The position was closed at `price` for `reason` ("tp", "sl", "end", ...)."""
