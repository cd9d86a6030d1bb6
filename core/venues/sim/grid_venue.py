"""SimGridVenue: the backtest's grid matching engine (`core.venues.sim.matching`) behind the
`Gateway` contract (`core.executor.gateway`), matched candle by candle (`on_candle`).

One venue is one simulated account for one grid strategy on one symbol: its own cash (the
runner's capital), leverage and fees, exactly as a backtest, so a paper run over the same
candles gives the backtest's cycles to the cent (the matching code is the backtester's own).
The executor drives it exactly as it drives an exchange: it places, amends and cancels orders
by client id, reads their states, protects the position and reads how it was closed.

What it simulates, beyond an exchange's plain orders:

* entries (`purpose="entry"`, one per grid level) rest at their limit price; the matching
  engine sizes a fill by the cycle's notional (`strategy.cycle_notional` of the cash less the
  `sizing_reserve`, fixed at the cycle's first fill), as the spec says: an entry filled at the
  open of a gapping candle buys `notional / open`, whatever qty the order carried;
* the take-profit (`purpose="take_profit"`) rests and is matched on the candle's path
  (`rests_take_profit = True`);
* the stop is attached to the position, like an exchange's whole-position stop: the matching
  engine moves it after every entry fill to the strategy's `on_fill`, inside the same candle,
  as the spec requires. It shows in `fetch_stop` under the cycle's stop client id; the
  executor's `Protection` finds it at the price it wants and leaves it (placing or amending a
  stop moves it, as on an exchange);
* `close_position` is a market exit at the given price (the last close) with the taker fee.

`snapshot()` / `restore()` carry the account and the book through SQLite (JSON, floats exact).
Prices are quote currency, quantities base units, money USDT, times ms UTC.
"""

from __future__ import annotations

import math
from collections import deque

from core.executor.client_ids import ClientIds
from core.executor.gateway import ClosingFill
from core.model.account import Account
from core.model.cycle import Cycle
from core.model.errors import DuplicateClientId, OrderNotFound, OrderRejected
from core.model.fills import ENTRY, SL, TP, Fill
from core.model.orders import GatewayFill, OpenOrder, OrderRequest, OrderState, PositionInfo, VenueTrade
from core.model.sides import LONG
from core.strategies.base import GridStrategy
from core.venues.sim.common import SimVenueCommon
from core.venues.sim.matching import LongMatchingEngine, MatchingEngine, ShortMatchingEngine

_STATE_FIELDS = ("cash", "qty", "cost", "avg_entry", "stop", "levels_filled", "unit", "cycle_fees",
                 "open_ts", "_next_id", "level_ids", "stop_id", "tp_id")
#: order states kept for lookups after an order left the book (filled / cancelled)
_KEEP_STATES = 256


class _Quote(GridStrategy):
    """What the matching engine sees as its strategy: the resting orders' prices (set by the
    venue's orders) and the strategy's sizing and stop rule (the position-attached stop).
    The strategy's own state (`on_exit`) is the executor's: the venue never calls it."""

    def __init__(self, strategy: GridStrategy, sizing_reserve: float = 0.0) -> None:
        self.strategy = strategy
        self.sizing_reserve = sizing_reserve
        self.name = strategy.name
        self.side = strategy.side
        self.num_levels = strategy.num_levels
        self.params = strategy.params
        self.levels = [math.nan] * strategy.num_levels
        self.take_profit = math.nan

    def on_candle_open(self, history) -> bool:  # pragma: no cover - never called on the quote
        raise RuntimeError("the simulated venue is quoted through its orders")

    def cycle_notional(self, cash: float, leverage: float) -> float:
        if self.sizing_reserve:
            cash = cash * (1.0 - self.sizing_reserve)
        return self.strategy.cycle_notional(cash, leverage)

    def on_fill(self, level: int, price: float, qty: float, avg_entry: float) -> float:
        return self.strategy.on_fill(level, price, qty, avg_entry)

    def on_exit(self, reason: str, price: float) -> None:
        return None


class SimGridVenue(SimVenueCommon):
    """A simulated venue for one grid strategy on one symbol (see the module docstring).

    Args:
        strategy: the runner's GridStrategy (sizing and stop rule).
        symbol: ccxt unified symbol.
        account: capital (USDT), leverage and fees (fractions).
        ids: the runner's client ids (to name the position's stop).
        sizing_reserve: fraction of the cash kept out of each cycle's sizing (0: the spec's
            sizing, as the backtest).
    """


    def __init__(self, strategy: GridStrategy, symbol: str, account: Account, ids: ClientIds,
                 sizing_reserve: float = 0.0) -> None:
        self.symbol = symbol
        self.ids = ids
        self.prefix = ids.prefix
        self.quote = _Quote(strategy, sizing_reserve)
        cls = LongMatchingEngine if strategy.side == LONG else ShortMatchingEngine
        self.engine: MatchingEngine = cls(self.quote, account, self._on_fill)
        self._orders: dict[str, OpenOrder] = {}         # resting entries and take-profit
        self._level_cid: list[str | None] = [None] * strategy.num_levels
        self._tp_cid: str | None = None
        self._open_state: dict[str, OrderState] = {}
        self._done: dict[str, OrderState] = {}          # filled / cancelled orders, most recent last
        self._closing: ClosingFill | None = None        # how the last position closed at the venue
        self._exit_cid: str | None = None
        self._last_exit: GatewayFill | None = None
        self._trades: deque[VenueTrade] = self.new_trade_list()          # the latest fills (not persisted)
        self._trade_seq = 0

    # ---------------------------------------------------------------- life cycle
    async def on_candle(self, ts: int, o: float, h: float, lo: float, c: float) -> None:
        """Walk one closed candle against the resting orders (fills reported by order state)."""
        eng = self.engine
        if eng.levels_filled == 0 and not self._orders:
            return
        eng.process_candle(ts, o, h, lo, c)
        if eng.fills:
            eng.fills.clear()            # reported through order states; keeps a long run's memory flat

    def retune(self, strategy: GridStrategy) -> None:
        """The runner's strategy changed params while flat (`GridRunner.apply_params`): the
        matching engine sizes, levels and stops by `strategy` from the next cycle on (a sim-only
        hook: an exchange holds no strategy).

        Raises:
            OrderRejected: a position is open or an order rests (the runner cancels them first).
        """
        eng = self.engine
        if eng.levels_filled or eng.qty > 0 or self._orders:
            raise OrderRejected("the simulated venue changes its strategy only while flat with no resting order")
        self.quote = _Quote(strategy, self.quote.sizing_reserve)
        eng.strategy = self.quote
        eng.n_levels = strategy.num_levels
        eng.level_qty = [0.0] * eng.n_levels
        eng.level_ids = eng._new_level_ids()
        self._level_cid = [None] * eng.n_levels
        self._tp_cid = None

    # ---------------------------------------------------------------- orders
    async def place_order(self, order: OrderRequest) -> OpenOrder:
        cid = order.client_id
        if cid in self._orders or cid in self._done:
            raise DuplicateClientId(f"client order id {cid} was used already")
        if order.purpose == "stop":
            return self._move_stop(cid, order.price)
        oo = OpenOrder(cid, self.symbol, order.purpose, order.side, order.price, order.level, order.qty)
        self._rest(oo)
        return oo

    async def amend_order(self, client_id: str, price: float, qty: float | None = None,
                          new_client_id: str | None = None) -> OpenOrder:
        if client_id == self._stop_cid():
            return self._move_stop(client_id, price)
        old = self._orders.get(client_id)
        if old is None:
            raise OrderNotFound(f"no open order {client_id}")
        oo = OpenOrder(client_id, self.symbol, old.purpose, old.side, price, old.level, qty)
        self._rest(oo)
        return oo

    async def cancel_order(self, client_id: str) -> None:
        old = self._orders.pop(client_id, None)
        if old is None:
            raise OrderNotFound(f"no open order {client_id}")
        self._unrest(old)
        self._open_state.pop(client_id, None)
        self._remember(OrderState(client_id, None, "cancelled", old.side, old.price, old.qty, 0.0, None,
                                  old.purpose, old.level))

    async def close_position(self, client_id: str, ts: int, price: float | None, reason: str) -> GatewayFill | None:
        eng = self.engine
        if eng.levels_filled == 0:
            return None
        if price is None or not math.isfinite(price):
            raise OrderRejected("the simulated venue needs a price for a market exit (the last close)")
        self._exit_cid = client_id
        try:
            eng.close_position(ts, price, reason)
        finally:
            self._exit_cid = None
        fill = self._last_exit
        self._closing = None                     # closed by the caller: not a venue-side close
        return fill

    # ---------------------------------------------------------------- reads
    async def fetch_order_state(self, client_id: str) -> OrderState:
        st = self._open_state.get(client_id) or self._done.get(client_id)
        if st is None:
            raise OrderNotFound(f"no order {client_id}")
        return st

    async def reconcile_order(self, client_id: str) -> OrderState | None:
        return self._open_state.get(client_id) or self._done.get(client_id)

    async def fetch_all_open_orders(self) -> tuple[list[OpenOrder], list[dict]]:
        out = list(self._orders.values())
        stop = await self.fetch_stop()
        if stop is not None:
            out.append(stop)
        return out, []

    async def fetch_order_history(self, since_ms: int) -> list[OrderState]:
        return list(self._done.values())

    async def fetch_position(self) -> PositionInfo:
        eng = self.engine
        if eng.levels_filled == 0:
            return PositionInfo(self.symbol, "flat", 0.0, None, None)
        return PositionInfo(self.symbol, eng.side, eng.qty, eng.avg_entry, eng.stop)

    async def fetch_stop(self) -> OpenOrder | None:
        eng = self.engine
        if eng.levels_filled == 0:
            return None
        return OpenOrder(self._stop_cid(), self.symbol, "stop", eng._exit_side, eng.stop, -1, eng.qty)

    async def fetch_closing_fill(self, entry_side: str, qty: float) -> ClosingFill | None:
        cf = self._closing
        self._closing = None
        return cf

    # ---------------------------------------------------------------- persistence
    def snapshot(self) -> dict:
        """The account and the position as a JSON-able dict (the closed cycles and the resting
        orders are the executor's rows: trading_cycles, trading_orders)."""
        eng = self.engine
        d = {f: getattr(eng, f) for f in _STATE_FIELDS}
        d["level_ids"] = list(eng.level_ids)
        return d

    def restore(self, state: dict, cycles: list[Cycle], open_orders: dict[str, list]) -> None:
        """Restore `snapshot()` output, the closed cycles and the resting orders (client id ->
        [purpose, level, price] of the store's open orders, whose prices follow every amend)."""
        eng = self.engine
        for f in _STATE_FIELDS:
            setattr(eng, f, state[f])
        eng.level_ids = list(state["level_ids"])
        eng.cycles = list(cycles)
        eng.level_qty = [0.0] * eng.n_levels
        for i in range(eng.levels_filled):
            eng.level_qty[i] = math.nan                  # filled (the book's per-level qty is the executor's)
        self.quote.levels[:] = [math.nan] * self.quote.num_levels
        self.quote.take_profit = math.nan
        self._orders.clear()
        self._open_state.clear()
        self._level_cid = [None] * self.quote.num_levels
        self._tp_cid = None
        for cid, (purpose, level, price) in open_orders.items():
            if purpose in ("entry", "take_profit"):
                side = eng._entry_side if purpose == "entry" else eng._exit_side
                self._rest(OpenOrder(cid, self.symbol, purpose, side, price, level))

    # ---------------------------------------------------------------- internals
    def _stop_cid(self) -> str:
        return self.ids(len(self.engine.cycles), -1, "stop")

    def _move_stop(self, cid: str, price: float | None) -> OpenOrder:
        eng = self.engine
        if eng.levels_filled == 0:
            raise OrderRejected(f"{cid}: no position to protect")
        if price is None or not math.isfinite(price):
            raise OrderRejected(f"{cid}: a stop needs a trigger price")
        eng.stop = price
        return OpenOrder(cid, self.symbol, "stop", eng._exit_side, price, -1, eng.qty)

    def _rest(self, oo: OpenOrder) -> None:
        p = math.nan if oo.price is None else oo.price
        if oo.purpose == "entry":
            if not 0 <= oo.level < self.quote.num_levels:
                raise OrderRejected(f"{oo.client_id}: no grid level {oo.level}")
            if oo.level < self.engine.levels_filled:
                raise OrderRejected(f"{oo.client_id}: level {oo.level} is filled already")
            prev = self._level_cid[oo.level]
            if prev is not None and prev != oo.client_id:
                raise OrderRejected(f"{oo.client_id}: level {oo.level} already has order {prev}")
            self.quote.levels[oo.level] = p
            self._level_cid[oo.level] = oo.client_id
        elif oo.purpose == "take_profit":
            if self._tp_cid is not None and self._tp_cid != oo.client_id:
                raise OrderRejected(f"{oo.client_id}: take-profit {self._tp_cid} is already resting")
            self.quote.take_profit = p
            self._tp_cid = oo.client_id
        else:
            raise OrderRejected(f"{oo.client_id}: the simulated venue cannot rest a {oo.purpose!r} order")
        self._orders[oo.client_id] = oo
        self._open_state[oo.client_id] = OrderState(oo.client_id, None, "open", oo.side, oo.price, oo.qty, 0.0, None,
                                                    oo.purpose, oo.level)

    def _unrest(self, oo: OpenOrder) -> None:
        if oo.purpose == "entry":
            self.quote.levels[oo.level] = math.nan
            self._level_cid[oo.level] = None
        else:
            self.quote.take_profit = math.nan
            self._tp_cid = None

    def _remember(self, st: OrderState) -> None:
        done = self._done
        done[st.client_id] = st
        if len(done) > _KEEP_STATES:
            for k in list(done)[:_KEEP_STATES // 2]:
                del done[k]

    def _on_fill(self, f: Fill) -> None:
        eng = self.engine
        self._trade_seq += 1
        seq = self._trade_seq
        if f.kind == ENTRY:
            cid = self._level_cid[f.level]
            if cid is None:                     # pragma: no cover - the engine only fills quoted levels
                raise RuntimeError(f"simulated fill of level {f.level} without a resting order")
            self._trades.append(VenueTrade(str(seq), seq, None, cid, f.side, f.price, f.qty, f.fee, f.ts))
            oo = self._orders.pop(cid)
            self._unrest(oo)
            self._open_state.pop(cid, None)
            self._remember(OrderState(cid, None, "filled", f.side, oo.price, f.qty, f.qty, f.price, "entry", f.level,
                                      f.fee, f.ts))
            return
        reason = f.reason
        if reason == TP and self._tp_cid is not None:
            cid = self._tp_cid
            oo = self._orders.pop(cid)
            self._unrest(oo)
            self._open_state.pop(cid, None)
            self._remember(OrderState(cid, None, "filled", f.side, oo.price, f.qty, f.qty, f.price, "take_profit", -1,
                                      f.fee, f.ts, TP))
        elif reason == SL:
            cid = self.ids(len(eng.cycles) - 1, -1, "stop")
        else:
            cid = self._exit_cid or self.ids(len(eng.cycles) - 1, -1, "exit")
        self._closing = ClosingFill(f.price, f.qty, f.fee, f.ts, reason)
        self._trades.append(VenueTrade(str(seq), seq, None, cid, f.side, f.price, f.qty, f.fee, f.ts, reason))
        self._last_exit = GatewayFill(cid, self.symbol, f.ts, "exit", f.side, f.price, f.qty, f.fee, -1, reason)
