"""The simulated matching engine of one symbol: resting orders, the account, fills on an OHLC path.

Shared by the event-driven backtester and the paper executor (driven by a replayed or live
candle feed): given a `GridStrategy` that has quoted candle t (`levels`, `take_profit`), the
engine walks the candle's intrabar path and fills its resting orders exactly as
`../shared/specs/envelope_dca.md` ("Intrabar path", "Money") says:

Resting orders
    * entry levels: limit orders, one per unfilled level i, at the strategy's `levels[i]`,
      re-priced every candle; each is worth `notional = E·λ/L` USDT (from
      `strategy.cycle_notional`, E = cash just before the cycle's first entry) and fills
      `qty = notional / fill_price` units. Only the next unfilled level can fill (index order).
    * the stop: one order for the whole position at S, moved after every entry fill to the
      price `strategy.on_fill` returns — effective at once, inside the same candle.
    * the take-profit: closes the whole position when `take_profit` (the SMA m) is touched.

Path of a candle (spec "Intrabar path"): green or flat (C >= O): O → L → H → C; red: O → H → L → C.

1. At the open, a position carried from earlier candles exits at O by SL when O is at or
   beyond S (long O <= S, short O >= S), else by TP when O has reached m (long O >= m,
   short O <= m). Otherwise every unfilled level the open has crossed (long P_i >= O,
   short P_i <= O) fills at O in index order, stopping at the first level not crossed.
2. The three segments O → X1 → X2 → C (zero-length ones skipped). Against the position
   (down for long, up for short) the next unfilled level and S are met in price order
   from the segment's start; a level fills at its own price, S moves, the walk goes on;
   touching S closes the whole position at S; a level and S at exactly the same price:
   S first. With the position (up for long, down for short) touching m closes at m.
   Touch = the segment's far end reaches the price, equality included.
   (On an adverse segment the next level and S always lie at or beyond its start: crossed
   levels filled at the open, and a fill leaves S beyond the fill price; so the walk only
   orders them against each other and tests them against the segment's end.)
3. An exit (TP or SL) ends the candle: nothing else happens until the next candle.
New-cycle gate (docs/grid_family.md): while flat, a candle whose quote closed the strategy's
`allow_new_cycle` is not walked at all (no level rests); in a position the gate is ignored.

Money (spec "Money"): entry fill cash −= qty·price·f_m; whole exit at X: long
cash += Q·(X − A) − Q·X·f_t, short cash += Q·(A − X) − Q·X·f_t; cycle pnl = realised P&L
minus the cycle's maker fees and the exit's taker fee. Cash never includes the notional:
it is the margin account (initial capital + realised P&L − fees).

Every order has an integer id (unique within the engine); every fill is reported as a
`Fill` (order id, side, price, qty, fee, ts) to `fills` and to the optional listener,
so a paper gateway can forward them. Closed cycles are `core.backtest.result.Cycle`.

Candles must be valid OHLC (low <= min(open, close), max(open, close) <= high), as
the data loaders guarantee; the early exits of quiet candles rely on it.
"""

from __future__ import annotations

import math
from typing import Callable

from core.model.account import Account
from core.model.cycle import Cycle
from core.model.fills import END, ENTRY, EXIT, SL, STOP, TAKE_PROFIT, TP, Fill
from core.model.position import PositionBook
from core.model.sides import LONG
from core.strategies.base import GridStrategy


class Order:
    """A resting order (a snapshot; see `MatchingEngine.resting_orders`).

    Attributes:
        id: int, unique within the engine. kind: "entry" | "stop" | "take_profit".
        side: "buy" | "sell". price: limit/trigger price (quote currency).
        level: level index for entries, -1 otherwise. notional: USDT per entry level (None
            before the cycle's first fill fixes E), None for exits (they close the whole position).
    """

    __slots__ = ("id", "kind", "side", "price", "level", "notional")

    def __init__(self, id: int, kind: str, side: str, price: float, level: int = -1,
                 notional: float | None = None) -> None:
        self.id = id
        self.kind = kind
        self.side = side
        self.price = price
        self.level = level
        self.notional = notional

    def __repr__(self) -> str:
        return f"Order(#{self.id} {self.kind} {self.side} @ {self.price!r} level={self.level})"


class MatchingEngine(PositionBook):
    """Resting orders and the account of one symbol, for one `GridStrategy` (long or short).

    Use `create_matching_engine(strategy, account)`; it picks the side's subclass. The
    account is a `core.model.position.PositionBook` (the one position accounting of Radar):
    cash (USDT), qty (base units, 0 when flat), avg_entry (A, quote price; nan when flat),
    stop (S; nan when flat), levels_filled (0 … L), cycle_fees (USDT maker fees of the open
    cycle), open_ts (ms UTC of the cycle's first fill), cycles (list of Cycle); plus fills
    (list of Fill). All read-only for callers.
    """

    __slots__ = ("strategy", "level_ids", "stop_id", "tp_id", "_next_id", "listener", "_entry_side", "_exit_side")

    def __init__(self, strategy: GridStrategy, account: Account = Account(),
                 listener: Callable[[Fill], None] | None = None) -> None:
        PositionBook.__init__(self, strategy.side, strategy.num_levels, account)
        self.strategy = strategy
        self._next_id = 1
        self.level_ids = self._new_level_ids()
        self.stop_id = -1
        self.tp_id = -1
        self.listener = listener
        self._entry_side, self._exit_side = ("buy", "sell") if self.side == LONG else ("sell", "buy")

    # ------------------------------------------------------------------ queries

    def resting_orders(self) -> list[Order]:
        """The orders resting now: the unfilled entry levels at the strategy's latest quote,
        then the stop and the take-profit while a position is open."""
        levels = getattr(self.strategy, "levels", None) or [math.nan] * self.n_levels
        notional = self.unit if self.levels_filled else None
        out = [Order(self.level_ids[i], ENTRY, self._entry_side, levels[i], i, notional)
               for i in range(self.levels_filled, self.n_levels)]
        if self.levels_filled:
            out.append(Order(self.stop_id, STOP, self._exit_side, self.stop))
            out.append(Order(self.tp_id, TAKE_PROFIT, self._exit_side, self.strategy.take_profit))
        return out

    # ------------------------------------------------------------------ the candle walk

    def process_candle(self, ts: int, o: float, h: float, lo: float, c: float) -> str | None:
        """Walk candle (ts ms UTC, OHLC floats) against the resting orders.

        The strategy must have quoted this candle (`on_candle_open` returned True).
        Returns the exit reason ("tp" | "sl") when the position was closed, else None.
        """
        raise NotImplementedError

    # ------------------------------------------------------------------ orders and money

    def _new_id(self) -> int:
        i = self._next_id
        self._next_id = i + 1
        return i

    def _new_level_ids(self) -> list[int]:
        return [self._new_id() for _ in range(self.n_levels)]

    def _fill(self, ts: int, k: int, price: float) -> None:
        """Entry level k fills at `price`: size, maker fee, average entry, the new stop."""
        strat = self.strategy
        if k == 0:
            self.open_cycle(ts, strat.cycle_notional(self.cash, self.leverage))
            self.stop_id = self._new_id()
            self.tp_id = self._new_id()
        q = self.unit / price
        fee = q * price * self.maker_fee
        avg = self.add_entry(k, price, q, fee)
        self.stop = strat.on_fill(k, price, q, avg)
        f = Fill(self.level_ids[k], ENTRY, None, k, self._entry_side, ts, price, q, fee)
        self.fills.append(f)
        if self.listener is not None:
            self.listener(f)

    def _exit(self, ts: int, x: float, reason: str, order_id: int) -> str:
        """Close the whole position at `x` (taker fee), record the cycle, reset for the next."""
        q = self.qty
        xfee = q * x * self.taker_fee
        self.close_cycle(ts, x, reason, xfee)
        f = Fill(order_id, EXIT, reason, -1, self._exit_side, ts, x, q, xfee)
        self.fills.append(f)
        self.level_ids = self._new_level_ids()
        self.stop_id = self.tp_id = -1
        if self.listener is not None:
            self.listener(f)
        self.strategy.on_exit(reason, x)
        return reason

    def close_position(self, ts: int, price: float, reason: str = END) -> Cycle | None:
        """Close an open position at `price` by a market order (taker fee), e.g. the spec's
        end-of-data exit at the last close. Returns the closed Cycle, None when flat."""
        if self.levels_filled == 0:
            return None
        self._exit(ts, price, reason, self._new_id())
        return self.cycles[-1]


class LongMatchingEngine(MatchingEngine):
    """The matching engine for a long grid: levels below, stop below, take-profit above."""

    __slots__ = ()

    def process_candle(self, ts: int, o: float, h: float, lo: float, c: float) -> str | None:
        """See `MatchingEngine.process_candle` (long side of the spec's rules)."""
        strat = self.strategy
        P = strat.levels
        k = self.levels_filled
        L = self.n_levels
        m = strat.take_profit
        if k == 0:
            if lo > P[0] or not strat.allow_new_cycle:
                return None                     # flat, and level 0 untouched or the new-cycle gate closed
        else:
            S = self.stop
            if o <= S:                          # 1. at the open: SL, else TP
                return self._exit(ts, o, SL, self.stop_id)
            if o >= m:
                return self._exit(ts, o, TP, self.tp_id)
            floor = P[k] if k < L and P[k] > S else S
            if lo > floor and h < m:            # quiet: no threshold on the path
                return None
        while k < L and P[k] >= o:              # 1. levels the open has crossed fill at O
            self._fill(ts, k, o)
            k += 1
        if c >= o:                              # 2. green/flat O→L→H→C, red O→H→L→C
            x1 = lo
            x2 = h
        else:
            x1 = h
            x2 = lo
        a = o
        for b in (x1, x2, c):
            if b < a:                           # down: against the position
                while True:
                    if k:
                        S = self.stop
                        if k == L or S >= P[k]:  # S is met first (ties included)
                            if b <= S:
                                return self._exit(ts, S, SL, self.stop_id)
                            break
                    lvl = P[k]
                    if b <= lvl:
                        self._fill(ts, k, lvl)
                        k += 1
                        continue
                    break
            elif b > a and k and b >= m:        # up: with the position
                return self._exit(ts, m, TP, self.tp_id)
            a = b
        return None


class ShortMatchingEngine(MatchingEngine):
    """The matching engine for a short grid: levels above, stop above, take-profit below."""

    __slots__ = ()

    def process_candle(self, ts: int, o: float, h: float, lo: float, c: float) -> str | None:
        """See `MatchingEngine.process_candle` (short side of the spec's rules)."""
        strat = self.strategy
        P = strat.levels
        k = self.levels_filled
        L = self.n_levels
        m = strat.take_profit
        if k == 0:
            if h < P[0] or not strat.allow_new_cycle:
                return None                     # flat, and level 0 untouched or the new-cycle gate closed
        else:
            S = self.stop
            if o >= S:                          # 1. at the open: SL, else TP
                return self._exit(ts, o, SL, self.stop_id)
            if o <= m:
                return self._exit(ts, o, TP, self.tp_id)
            ceiling = P[k] if k < L and P[k] < S else S
            if h < ceiling and lo > m:          # quiet: no threshold on the path
                return None
        while k < L and P[k] <= o:              # 1. levels the open has crossed fill at O
            self._fill(ts, k, o)
            k += 1
        if c >= o:                              # 2. green/flat O→L→H→C, red O→H→L→C
            x1 = lo
            x2 = h
        else:
            x1 = h
            x2 = lo
        a = o
        for b in (x1, x2, c):
            if b > a:                           # up: against the position
                while True:
                    if k:
                        S = self.stop
                        if k == L or S <= P[k]:  # S is met first (ties included)
                            if b >= S:
                                return self._exit(ts, S, SL, self.stop_id)
                            break
                    lvl = P[k]
                    if b >= lvl:
                        self._fill(ts, k, lvl)
                        k += 1
                        continue
                    break
            elif b < a and k and b <= m:        # down: with the position
                return self._exit(ts, m, TP, self.tp_id)
            a = b
        return None


def create_matching_engine(strategy: GridStrategy, account: Account = Account(),
                           listener: Callable[[Fill], None] | None = None) -> MatchingEngine:
    """A matching engine for `strategy`'s side, with `account`'s capital, leverage and fees.

    `listener`, when given, is called with every Fill as it happens.

    Raises:
        TypeError: `strategy` is not a GridStrategy.
    """
    if not isinstance(strategy, GridStrategy):
        raise TypeError(f"the matching engine drives grid strategies, got {type(strategy).__name__}")
    cls = LongMatchingEngine if strategy.side == LONG else ShortMatchingEngine
    return cls(strategy, account, listener)
