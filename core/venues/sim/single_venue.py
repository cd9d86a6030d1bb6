"""SinglePaperGateway: the single-position matching engine (`core.venues.sim.single_matching`)
behind a synchronous form of the venue contract, driven candle by candle by a `SingleStrategyRunner`
(paper only; the async `Gateway` of `core.executor.gateway` is the grid family's so far).

One SinglePaperGateway is one paper account for one single-position strategy on one symbol:
its own cash (USDT), leverage and fees, exactly as `run_single_backtest`, so a paper run over
the same candles gives the backtest's trades and equity to the last bit (the matching code
is the backtester's own `SingleMatchingEngine`).

Orders (client ids from `core.executor.client_ids.ClientIds`, cycle = trades closed so far):

* the entry (`purpose="entry"`, level = the attempt number in the cycle, 0 for the first) is
  placed for ONE candle (`place_entry`): a market entry fills at the candle's open, a limit
  entry that does not fill in its candle expires (`match_candle` reports it in `expired`);
* the stop and the take-profit are attached to the position (like an exchange's position
  TP/SL): the matching engine sets them right after the entry fill from the strategy's
  `manage` (inside the same candle, as docs/single_position.md requires) and the runner
  re-quotes them before each later candle (`amend_exits`); they show in
  `fetch_open_orders` with the cycle's stop / take-profit client ids;
* `close_position` is a market exit (taker fee) at the given price (paper: the last close);
  a "time" exit of the strategy's maximum holding is reported with the cycle's exit id.

`match_candle(ts, o, h, l, c)` walks one closed candle and returns the fills as
`GatewayFill`s, an entry fill carrying the stop set right after it (`pos_stop`) and its
take-profit in `entry_exits[client_id]`. `snapshot()` / `restore()` carry the account and
the position through SQLite (JSON, floats exact); the closed trades are stored as rows.
Prices are quote currency (USDT), quantities base units, times ms UTC.
"""

from __future__ import annotations

import math
from typing import Callable

from core.executor.client_ids import ClientIds
from core.model.account import Account
from core.model.cycle import Cycle
from core.model.errors import DuplicateClientId, OrderNotFound, OrderRejected
from core.model.fills import END, ENTRY, SL, TP, Fill
from core.model.orders import GatewayFill, OpenOrder, OrderRequest, PositionInfo
from core.model.sides import LONG, SHORT
from core.strategies.base import CandleHistory, EntryIntent, SinglePositionStrategy
from core.venues.sim.single_matching import SingleMatchingEngine

#: the SingleMatchingEngine fields `snapshot()` carries (the pending entry is always None
#: between candles: an entry lives for one candle only)
_STATE_FIELDS = ("cash", "side", "qty", "entry_price", "stop", "take_profit", "entry_fee", "open_ts", "held",
                 "max_hold", "stop_id", "tp_id", "_next_id")


class PaperSingleEngine(SingleMatchingEngine):
    """`SingleMatchingEngine` that also says when the exits of a new position are set.

    The engine reports an entry fill before the strategy has given its exits; the first
    `amend` after it (made by the engine itself, right after `manage`) calls
    `on_exits_set()`, so the gateway can report the entry with its stop. Nothing else
    changes: same arithmetic, same order of operations.

    Read-only views for code written for the grid engine's books: `levels_filled` (1 in a
    position, else 0), `avg_entry` (the entry price, nan when flat), `cost` and `unit` (the
    position's notional at entry, USDT, 0 when flat) and `sizing_unit()` (the notional of the
    next entry, USDT: cash · leverage · (1 − sizing_reserve)).
    """

    def __init__(self, strategy: SinglePositionStrategy, history: CandleHistory, account: Account,
                 listener: Callable[[Fill], None], on_exits_set: Callable[[], None],
                 sizing_reserve: float = 0.0) -> None:
        super().__init__(strategy, history, account, listener)
        self._on_exits_set = on_exits_set
        self.sizing_reserve = float(sizing_reserve)
        self.entry_open = False         # an entry filled and its exits are not set yet

    def amend(self, stop: float, take_profit: float | None) -> None:
        SingleMatchingEngine.amend(self, stop, take_profit)
        if self.entry_open:
            self.entry_open = False
            self._on_exits_set()

    def cancel_entry(self) -> bool:
        """Drop the entry placed for the next candle; False when there was none."""
        had = self._pending is not None
        self._pending = None
        return had

    @property
    def pending_entry(self) -> EntryIntent | None:
        return self._pending

    @property
    def levels_filled(self) -> int:
        return 0 if self.side is None else 1

    @property
    def avg_entry(self) -> float:
        return self.entry_price

    @property
    def cost(self) -> float:
        return 0.0 if self.side is None else self.qty * self.entry_price

    unit = cost

    def sizing_unit(self) -> float:
        return self.cash * self.leverage * (1.0 - self.sizing_reserve)


class SinglePaperGateway:
    """A simulated venue for one single-position strategy on one symbol (module docstring).

    Args:
        strategy: the runner's SinglePositionStrategy (told about fills, asked for the exits).
        history: the runner's CandleHistory (candles before the one being walked).
        symbol: ccxt unified symbol.
        account: capital (USDT), leverage, fees.
        ids: the runner's client ids.
        sizing_reserve: fraction of the cash kept out of an entry's size (0 = the spec's sizing,
            as the backtest; the live ledger's fee reserve on a live feed, so the entry passes
            the risk margin check). Applied by scaling the intent's `size_fraction`.

    Attributes:
        engine: the PaperSingleEngine (cash, side, qty, entry_price, stop, take_profit, cycles).
        entry_exits: client id of an entry fill -> (stop, take_profit) set right after it,
            filled by `match_candle`; the caller pops what it records.
        expired: client ids of entries that did not fill in their candle (last `match_candle`).
    """

    external = False

    def __init__(self, strategy: SinglePositionStrategy, history: CandleHistory, symbol: str, account: Account,
                 ids: ClientIds, sizing_reserve: float = 0.0) -> None:
        self.symbol = symbol
        self.ids = ids
        self.engine = PaperSingleEngine(strategy, history, account, self._on_engine_fill, self._on_exits_set,
                                        sizing_reserve)
        self.entry_exits: dict[str, tuple[float, float]] = {}
        self.expired: list[str] = []
        self._entry: OpenOrder | None = None        # the entry placed for the next candle
        self._walking: OpenOrder | None = None      # the entry of the candle being walked
        self._entry_fill: tuple[Fill, OpenOrder] | None = None
        self._entry_filled = False
        self._pending: list[GatewayFill] = []
        self._exit_client_id: str | None = None

    # ---------------------------------------------------------------- orders
    def place_entry(self, client_id: str, intent: EntryIntent, max_hold: int = 0, level: int = 0) -> OpenOrder:
        """Place the strategy's entry for the next candle walked (flat only).

        Raises:
            OrderRejected: a position is open or an entry is already placed.
        """
        eng = self.engine
        if eng.side is not None or eng.pending_entry is not None:
            raise OrderRejected(f"{client_id}: an entry needs a flat account with no entry placed")
        if eng.sizing_reserve:
            intent = EntryIntent(intent.side, intent.price, intent.stop, intent.take_profit,
                                 intent.size_fraction * (1.0 - eng.sizing_reserve))
        eng.place_entry(intent, max_hold)
        oo = OpenOrder(client_id, self.symbol, "entry", "buy" if intent.side == LONG else "sell", intent.price, level)
        self._entry = oo
        return oo

    def place_order(self, order: OrderRequest) -> OpenOrder:
        """Gateway protocol: only an entry can be placed (a market or limit order for the next
        candle, no exits: the strategy's `manage` sets them after the fill). The stop and the
        take-profit are attached to the position (`amend_order`)."""
        if order.purpose != "entry":
            raise OrderRejected(f"{order.client_id}: the paper venue attaches the stop and take-profit to the "
                                f"position; cannot place a {order.purpose!r} order")
        if self._entry is not None and self._entry.client_id == order.client_id:
            raise DuplicateClientId(f"client order id {order.client_id} is already open")
        side = LONG if order.side == "buy" else SHORT
        return self.place_entry(order.client_id, EntryIntent(side, order.price, math.nan, None), 0,
                                max(order.level, 0))

    def amend_exits(self, stop: float, take_profit: float | None) -> None:
        """New stop and take-profit of the open position (take-profit None/nan: none)."""
        self.engine.amend(stop, take_profit)

    def amend_order(self, client_id: str, price: float) -> OpenOrder:
        """Move the position's stop or take-profit (by its client id)."""
        eng = self.engine
        if eng.side is not None:
            cyc = len(eng.cycles)
            if client_id == self.ids(cyc, -1, "stop"):
                eng.amend(price, eng.take_profit)
                return self._exit_order("stop", client_id, price)
            if client_id == self.ids(cyc, -1, "take_profit"):
                eng.amend(eng.stop, price)
                return self._exit_order("take_profit", client_id, price)
        raise OrderNotFound(f"no open order {client_id}")

    def cancel_order(self, client_id: str) -> None:
        """Cancel the entry placed for the next candle (the exits go with the position)."""
        if self._entry is None or self._entry.client_id != client_id:
            raise OrderNotFound(f"no open order {client_id}")
        self.engine.cancel_entry()
        self._entry = None

    def close_position(self, client_id: str, ts: int, price: float | None, reason: str = END) -> GatewayFill | None:
        """Close the whole position at market (paper: at `price`, taker fee); None when flat."""
        eng = self.engine
        if eng.side is None:
            return None
        if price is None or not math.isfinite(price):
            raise OrderRejected("the paper venue needs a price for a market exit (the last close)")
        self._exit_client_id = client_id
        try:
            eng.close_position(ts, price, reason)
        finally:
            self._exit_client_id = None
        return self._take()[-1]

    # ---------------------------------------------------------------- queries
    def fetch_open_orders(self) -> list[OpenOrder]:
        eng = self.engine
        out = [] if self._entry is None else [self._entry]
        if eng.side is not None:
            cyc = len(eng.cycles)
            out.append(self._exit_order("stop", self.ids(cyc, -1, "stop"), eng.stop))
            if eng.take_profit == eng.take_profit:
                out.append(self._exit_order("take_profit", self.ids(cyc, -1, "take_profit"), eng.take_profit))
        return out

    def fetch_position(self) -> PositionInfo:
        eng = self.engine
        if eng.side is None:
            return PositionInfo(self.symbol, "flat", 0.0, None, None)
        return PositionInfo(self.symbol, eng.side, eng.qty, eng.entry_price, eng.stop)

    def fetch_balance(self) -> float:
        return self.engine.cash

    @property
    def cycles(self) -> list[Cycle]:
        return self.engine.cycles

    def equity(self, price: float) -> float:
        """Cash + unrealised P&L at `price` (USDT), as the backtest's equity point."""
        return self.engine.equity(price)

    # ---------------------------------------------------------------- simulation
    def match_candle(self, ts: int, o: float, h: float, lo: float, c: float) -> list[GatewayFill]:
        """Walk one closed candle (open time ts ms UTC, OHLC) against the entry placed for it or
        the open position; the fills, in order. An entry that did not fill is in `expired`."""
        entry = self._entry
        self._entry = None
        self._walking = entry
        self._entry_filled = False
        self.expired = []
        try:
            self.engine.process_candle(ts, o, h, lo, c)
        finally:
            self._walking = None
            self._entry_fill = None
        if entry is not None and not self._entry_filled:
            self.expired.append(entry.client_id)
        self.engine.fills.clear()           # recorded by the caller; keeps a long run's memory flat
        return self._take() if self._pending else []

    def snapshot(self) -> dict:
        """The account and the position as a JSON-able dict (closed trades excluded: stored as rows)."""
        eng = self.engine
        return {f: getattr(eng, f) for f in _STATE_FIELDS}

    def restore(self, state: dict, cycles: list[Cycle]) -> None:
        """Restore `snapshot()` output and the closed trades."""
        eng = self.engine
        for f in _STATE_FIELDS:
            setattr(eng, f, state[f])
        eng.cycles = list(cycles)
        eng.cancel_entry()
        eng.entry_open = False
        self._entry = None
        self._entry_fill = None
        self._pending = []

    # ---------------------------------------------------------------- internals
    def _exit_order(self, purpose: str, client_id: str, price: float) -> OpenOrder:
        eng = self.engine
        return OpenOrder(client_id, self.symbol, purpose, "sell" if eng.side == LONG else "buy", price, -1, eng.qty)

    def _take(self) -> list[GatewayFill]:
        out = self._pending
        self._pending = []
        return out

    def _on_engine_fill(self, f: Fill) -> None:
        eng = self.engine
        if f.kind == ENTRY:
            self._entry_fill = (f, self._walking)
            self._entry_filled = True
            eng.entry_open = True           # reported by _on_exits_set, with its stop
            return
        cycle = len(eng.cycles) - 1          # the trade was recorded before the fill is reported
        if f.reason == SL:
            cid, purpose = self.ids(cycle, -1, "stop"), "stop"
        elif f.reason == TP:
            cid, purpose = self.ids(cycle, -1, "take_profit"), "take_profit"
        else:                                # "time", or a market close ("end", "kill", ...)
            cid, purpose = self._exit_client_id or self.ids(cycle, -1, "exit"), "exit"
        self._pending.append(GatewayFill(cid, self.symbol, f.ts, purpose, f.side, f.price, f.qty, f.fee, -1,
                                         f.reason, 0.0, None, None, 0))

    def _on_exits_set(self) -> None:
        eng = self.engine
        f, entry = self._entry_fill
        cid = entry.client_id
        self.entry_exits[cid] = (eng.stop, eng.take_profit)
        self._pending.append(GatewayFill(cid, self.symbol, f.ts, "entry", f.side, f.price, f.qty, f.fee,
                                         entry.level, None, eng.qty, eng.entry_price, eng.stop, 1))


__all__ = ["PaperSingleEngine", "SinglePaperGateway", "END"]
