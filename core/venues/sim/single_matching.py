"""The simulated matching engine of one single-position strategy: one entry, one stop, one take-profit.

Shared by the event-driven backtester (`core.backtest.single_driver`) and, later, the paper
executor. It follows `docs/single_position.md` exactly; in short, per candle:

* flat, with an entry placed for this candle (`place_entry`): a market entry fills at the
  open (taker fee); a limit entry long fills at O when O <= P, else at P on the first down
  segment reaching P (short mirrored; maker fee). Size `qty = cash·λ·size_fraction / X`.
  Right after the fill the strategy gives the exits (`on_fill`, then `manage(history, X)`;
  when `manage` returns None the intent's stop/take-profit are kept), and they are checked
  at the fill point: long SL if S >= X, else TP if T <= X (short mirrored).
* in a position (exits re-quoted by the driver with `amend` before the candle): at the open,
  long SL if O <= S, else TP if O >= T, else "time" when the maximum holding is reached.
* then the intrabar path (green/flat O→L→H→C, red O→H→L→C) from the fill point / the open:
  a segment against the position reaching S exits at S ("sl"), one with the position
  reaching T exits at T ("tp"); equality is a touch. An exit ends the candle.

Money: entry fee `qty·X·f`; exit at Y: long `cash += qty·(Y−X) − qty·Y·f_t`, short
`cash += qty·(X−Y) − qty·Y·f_t`; trade pnl = realised − both fees (a `Cycle` with
levels_filled = 1). Every order has an integer id; every fill is a
`core.venues.sim.matching.Fill` sent to `fills` and to the optional listener.
"""

from __future__ import annotations

import math
from typing import Callable

from core.model.account import Account
from core.model.cycle import Cycle
from core.model.fills import END, ENTRY, EXIT, SL, STOP, TAKE_PROFIT, TIME, TP, Fill
from core.model.sides import LONG
from core.strategies.base import CandleHistory, EntryIntent, SinglePositionStrategy
from core.venues.sim.matching import Order


class SingleMatchingEngine:
    """The resting orders and the account of one symbol for one `SinglePositionStrategy`.

    Args:
        strategy: told about fills (`on_fill`, `on_exit`) and asked for the exits of a new
            position (`manage(history, fill_price)`).
        history: the driver's CandleHistory (candles 0 … t−1 while candle t is processed).
        account: capital (USDT), leverage, maker/taker fees (fractions).
        listener: called with every Fill as it happens.

    State (read-only for callers): cash (USDT), side ("long"/"short", None when flat),
    qty (base units, 0 when flat), entry_price (nan when flat), stop, take_profit (prices,
    nan = none), entry_fee (USDT), open_ts (ms UTC), held (candles completed in the
    position), max_hold (0 = none), fills, cycles.
    """

    def __init__(self, strategy: SinglePositionStrategy, history: CandleHistory,
                 account: Account = Account(), listener: Callable[[Fill], None] | None = None) -> None:
        self.strategy = strategy
        self.history = history
        self.leverage = float(account.leverage)
        self.maker_fee = float(account.maker_fee)
        self.taker_fee = float(account.taker_fee)
        self.cash = float(account.initial_capital)
        self.listener = listener
        self.fills: list[Fill] = []
        self.cycles: list[Cycle] = []
        self._next_id = 1
        self._pending: EntryIntent | None = None
        self._pending_id = -1
        self._pending_hold = 0
        self._reset()

    def _reset(self) -> None:
        self.side: str | None = None
        self.qty = 0.0
        self.entry_price = math.nan
        self.stop = math.nan
        self.take_profit = math.nan
        self.entry_fee = 0.0
        self.open_ts = -1
        self.held = 0
        self.max_hold = 0
        self.stop_id = -1
        self.tp_id = -1

    def _new_id(self) -> int:
        i = self._next_id
        self._next_id = i + 1
        return i

    # ------------------------------------------------------------------ queries

    @property
    def in_position(self) -> bool:
        return self.side is not None

    def equity(self, price: float) -> float:
        """Cash + unrealised P&L at `price` (no exit fee), USDT."""
        if self.side is None:
            return self.cash
        if self.side == LONG:
            return self.cash + self.qty * (price - self.entry_price)
        return self.cash + self.qty * (self.entry_price - price)

    def resting_orders(self) -> list[Order]:
        """The pending entry (a market entry shows price nan), or the stop and take-profit."""
        if self.side is None:
            it = self._pending
            if it is None:
                return []
            side = "buy" if it.side == LONG else "sell"
            return [Order(self._pending_id, ENTRY, side, math.nan if it.price is None else it.price, 0)]
        side = "sell" if self.side == LONG else "buy"
        return [Order(self.stop_id, STOP, side, self.stop), Order(self.tp_id, TAKE_PROFIT, side, self.take_profit)]

    # ------------------------------------------------------------------ orders

    def place_entry(self, intent: EntryIntent, max_hold: int = 0) -> None:
        """Place the entry for the next candle only (flat only). max_hold: candles, 0 = none."""
        if self.side is not None:
            raise RuntimeError("place_entry while in a position")
        self._pending = intent
        self._pending_id = self._new_id()
        self._pending_hold = int(max_hold)

    def amend(self, stop: float, take_profit: float | None) -> None:
        """New stop and take-profit prices for the open position (None/nan: no take-profit)."""
        self.stop = float(stop)
        self.take_profit = math.nan if take_profit is None else float(take_profit)

    # ------------------------------------------------------------------ the candle walk

    def process_candle(self, ts: int, o: float, h: float, lo: float, c: float) -> str | None:
        """Walk candle (ts ms UTC, OHLC) against the pending entry or the open position.

        Returns the exit reason when the position was closed in this candle, else None.
        The pending entry (if any) is consumed: it lives for this candle only.
        """
        x1, x2 = (lo, h) if c >= o else (h, lo)
        if self.side is None:
            it = self._pending
            if it is None:
                return None
            self._pending = None
            long = it.side == LONG
            if it.price is None:                                   # market: at the open
                return self._enter_and_walk(ts, it, o, self.taker_fee, 0, o, x1, x2, c)
            p = it.price
            if (o <= p) if long else (o >= p):                      # gapped through: at O
                return self._enter_and_walk(ts, it, o, self.maker_fee, 0, o, x1, x2, c)
            a = o
            for k, b in enumerate((x1, x2, c)):
                if (b < a and b <= p) if long else (b > a and b >= p):
                    return self._enter_and_walk(ts, it, p, self.maker_fee, k, p, x1, x2, c)
                a = b
            return None
        # carried position: at the open
        S = self.stop
        T = self.take_profit
        if self.side == LONG:
            if o <= S:
                return self._exit(ts, o, SL, self.stop_id)
            if o >= T:
                return self._exit(ts, o, TP, self.tp_id)
        else:
            if o >= S:
                return self._exit(ts, o, SL, self.stop_id)
            if o <= T:
                return self._exit(ts, o, TP, self.tp_id)
        if self.max_hold and self.held >= self.max_hold:
            return self._exit(ts, o, TIME, self._new_id())
        r = self._walk(ts, 0, o, x1, x2, c)
        if r is None:
            self.held += 1
        return r

    def _enter_and_walk(self, ts: int, it: EntryIntent, x: float, fee_rate: float, seg: int,
                        start: float, x1: float, x2: float, c: float) -> str | None:
        """Fill the entry at x, set the exits, check them at the fill point, walk the rest."""
        side = it.side
        qty = self.cash * self.leverage * it.size_fraction / x
        fee = qty * x * fee_rate
        self.cash -= fee
        self.side = side
        self.qty = qty
        self.entry_price = x
        self.entry_fee = fee
        self.open_ts = ts
        self.held = 0
        self.max_hold = self._pending_hold
        self.stop_id = self._new_id()
        self.tp_id = self._new_id()
        f = Fill(self._pending_id, ENTRY, None, 0, "buy" if side == LONG else "sell", ts, x, qty, fee)
        self.fills.append(f)
        if self.listener is not None:
            self.listener(f)
        self.strategy.on_fill(x, qty)
        ex = self.strategy.manage(self.history, x)
        if ex is None:
            self.amend(it.stop, it.take_profit)
        else:
            self.amend(*ex)
        S = self.stop
        T = self.take_profit
        if side == LONG:
            if S >= x:
                return self._exit(ts, x, SL, self.stop_id)
            if T <= x:
                return self._exit(ts, x, TP, self.tp_id)
        else:
            if S <= x:
                return self._exit(ts, x, SL, self.stop_id)
            if T >= x:
                return self._exit(ts, x, TP, self.tp_id)
        r = self._walk(ts, seg, start, x1, x2, c)
        if r is None:
            self.held += 1
        return r

    def _walk(self, ts: int, seg: int, a: float, x1: float, x2: float, c: float) -> str | None:
        """Segments seg … 2 of the path (O→x1, x1→x2, x2→C), starting at price a."""
        S = self.stop
        T = self.take_profit
        pts = (x1, x2, c)
        if self.side == LONG:
            for k in range(seg, 3):
                b = pts[k]
                if b < a:
                    if b <= S:
                        return self._exit(ts, S, SL, self.stop_id)
                elif b > a and b >= T:
                    return self._exit(ts, T, TP, self.tp_id)
                a = b
        else:
            for k in range(seg, 3):
                b = pts[k]
                if b > a:
                    if b >= S:
                        return self._exit(ts, S, SL, self.stop_id)
                elif b < a and b <= T:
                    return self._exit(ts, T, TP, self.tp_id)
                a = b
        return None

    # ------------------------------------------------------------------ money

    def _exit(self, ts: int, y: float, reason: str, order_id: int) -> str:
        """Close the whole position at y (taker fee), record the trade, reset."""
        q = self.qty
        x = self.entry_price
        side = self.side
        real = q * (y - x) if side == LONG else q * (x - y)
        xfee = q * y * self.taker_fee
        self.cash += real - xfee
        pnl = real - self.entry_fee - xfee
        self.cycles.append(Cycle(open_time=self.open_ts, close_time=ts, side=side, levels_filled=1,
                                 avg_entry=x, exit_price=y, exit_reason=reason, qty=q, pnl=pnl))
        f = Fill(order_id, EXIT, reason, -1, "sell" if side == LONG else "buy", ts, y, q, xfee)
        self.fills.append(f)
        self._reset()
        if self.listener is not None:
            self.listener(f)
        self.strategy.on_exit(reason, y)
        return reason

    def close_position(self, ts: int, price: float, reason: str = END) -> Cycle | None:
        """Close an open position at `price` by a market order (taker fee), e.g. the end-of-data
        exit at the last close. Returns the closed Cycle, None when flat."""
        if self.side is None:
            return None
        self._exit(ts, price, reason, self._new_id())
        return self.cycles[-1]
