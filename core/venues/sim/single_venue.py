"""SimSingleVenue: the single-position matching engine (`core.venues.sim.single_matching`) behind
the `Gateway` contract (`core.executor.gateway`), matched candle by candle (`on_candle`).

One venue is one simulated account for one single-position strategy on one symbol: its own
cash (USDT), leverage and fees, exactly as `run_single_backtest`, so a paper run over the
same candles gives the backtest's trades and equity to the last bit (the matching code is
the backtester's own `SingleMatchingEngine`). The executor
(`core.executor.single_executor.SingleExecutor`) drives it as it would drive an exchange:
it places, amends and cancels orders by client id, reads their states, the position and how
the position was closed.

Orders (client ids from `core.executor.client_ids.ClientIds`, cycle = trades closed so far):

* the entry (`purpose="entry"`, level = the attempt number in the cycle) rests for ONE
  candle: a market entry (price None) fills at the candle's open, a limit entry that does
  not fill in its candle expires (its order state turns "cancelled"). The matching engine
  sizes it by the cash (`cash · leverage · size_fraction · (1 − sizing_reserve)`) and
  ignores the order's qty, as the backtest does;
* the stop and the take-profit are attached to the position (like an exchange's position
  TP/SL): the matching engine sets them right after the entry fill from the strategy's
  `manage` (inside the same candle, as docs/single_position.md requires), so they rest from
  the fill on under the cycle's `(cycle, -1, "stop")` / `(cycle, -1, "take_profit")` ids
  (a take-profit only when the strategy gives one). `amend_order` moves them (a take-profit
  amended to nan rests without a price: never touched); `place_order` of a take-profit
  attaches one to a position that has none; `cancel_order` of the take-profit removes it.
  The stop rests from the fill to the exit: it is amended, never placed nor cancelled;
* `close_position` is a market exit (taker fee) at the given price (paper: the last close);
  an exit of the strategy's maximum holding ("time") fills under the cycle's exit id.

Fills are reported as order states (`fetch_order_state` / `reconcile_order`: status, avg
price, filled qty, fee, ts, reason), exactly as `SimGridVenue` reports them, and a position
the venue closed by `fetch_position` (flat) and `fetch_closing_fill` (price, qty, fee, ts,
reason "sl" | "tp" | "time"); `fetch_recent_trades` lists the latest fills.

The one sim-only hook, `stage_entry(client_id, intent, max_hold)`: the matching engine needs
what an order cannot carry — the strategy's `EntryIntent` (its size fraction and the exits
kept when `manage` gives none) and the maximum holding. The executor stages the intent
right before it places the entry; `place_order` of that client id consumes it (without one,
the entry is taken from the order: its side and price, `preset_stop` as the stop, no
take-profit, the whole cash). The venue is built with the runner's strategy and history:
the matching engine asks the strategy for the exits at the fill (`on_fill`, `manage`) and
tells it about the exit (`on_exit`), inside the candle, as the backtest does.

`snapshot()` / `restore()` carry the account and the position through SQLite (JSON, floats
exact); the closed trades and the open orders are the executor's rows. Prices are quote
currency (USDT), quantities base units, times ms UTC.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

from core.executor.client_ids import ClientIds
from core.executor.gateway import ClosingFill
from core.model.account import Account
from core.model.cycle import Cycle
from core.model.errors import DuplicateClientId, OrderNotFound, OrderRejected
from core.model.fills import END, ENTRY, SL, TP, Fill
from core.model.orders import GatewayFill, OpenOrder, OrderRequest, OrderState, PositionInfo, VenueTrade
from core.model.sides import LONG, SHORT
from core.strategies.base import CandleHistory, EntryIntent, SinglePositionStrategy
from core.venues.sim.common import SimVenueCommon
from core.venues.sim.single_matching import SingleMatchingEngine

#: the SingleMatchingEngine fields `snapshot()` carries (the pending entry is always None
#: between candles: an entry lives for one candle only)
_STATE_FIELDS = ("cash", "side", "qty", "entry_price", "stop", "take_profit", "entry_fee", "open_ts", "held",
                 "max_hold", "stop_id", "tp_id", "_next_id")
#: order states kept for lookups after an order left the book (filled / cancelled)
_KEEP_STATES = 256


class SimSingleEngine(SingleMatchingEngine):
    """`SingleMatchingEngine` that also says when the exits of a new position are set.

    The engine reports an entry fill before the strategy has given its exits; the first
    `amend` after it (made by the engine itself, right after `manage`) calls
    `on_exits_set()`, so the venue can rest the position's stop and take-profit. Nothing
    else changes: same arithmetic, same order of operations.
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


class SimSingleVenue(SimVenueCommon):
    """A simulated venue for one single-position strategy on one symbol (module docstring).

    Args:
        strategy: the runner's SinglePositionStrategy (asked for the exits at the fill, told
            about fills and exits by the matching engine).
        history: the runner's CandleHistory (candles before the one being walked).
        symbol: ccxt unified symbol.
        account: capital (USDT), leverage, fees.
        ids: the runner's client ids (to name the position's stop, take-profit and exits).
        sizing_reserve: fraction of the cash kept out of an entry's size (0 = the spec's sizing,
            as the backtest; the live ledger's fee reserve on a live feed, so the entry passes
            the risk margin check). Applied by scaling the intent's `size_fraction`.

    Attributes:
        engine: the SimSingleEngine (cash, side, qty, entry_price, stop, take_profit, cycles):
            the simulation's internals, not part of the venue contract.
    """


    def __init__(self, strategy: SinglePositionStrategy, history: CandleHistory, symbol: str, account: Account,
                 ids: ClientIds, sizing_reserve: float = 0.0) -> None:
        self.symbol = symbol
        self.ids = ids
        self.engine = SimSingleEngine(strategy, history, account, self._on_engine_fill, self._on_exits_set,
                                      sizing_reserve)
        self._staged: tuple[str, EntryIntent, int] | None = None    # stage_entry(), for the next place_order
        self._entry: OpenOrder | None = None        # the entry resting for the next candle
        self._walking: OpenOrder | None = None      # the entry of the candle being walked
        self._entry_fill: Fill | None = None
        self._tp_rests = False                      # the position has a take-profit order
        self._open_state: dict[str, OrderState] = {}
        self._done: dict[str, OrderState] = {}      # filled / cancelled orders, most recent last
        self._closing: ClosingFill | None = None    # how the last position closed at the venue
        self._exit_cid: str | None = None
        self._last_exit: GatewayFill | None = None
        self._trades: deque[VenueTrade] = self.new_trade_list()          # the latest fills (not persisted)
        self._trade_seq = 0

    # ---------------------------------------------------------------- the sim-only hook
    def stage_entry(self, client_id: str, intent: EntryIntent, max_hold: int = 0) -> None:
        """Sim-only hook (not part of `Gateway`): the strategy's intent behind the entry order
        `client_id` about to be placed — its size fraction, the stop / take-profit kept when
        the strategy's `manage` gives none, and the maximum holding (candles, 0 = none). The
        next `place_order` of `client_id` consumes it."""
        self._staged = (client_id, intent, int(max_hold))

    # ---------------------------------------------------------------- life cycle
    async def on_candle(self, ts: int, o: float, h: float, lo: float, c: float) -> None:
        """Walk one closed candle (open time ts ms UTC, OHLC) against the entry resting for it
        or the open position (fills reported by order state; an entry that did not fill
        expires: "cancelled")."""
        eng = self.engine
        entry = self._entry
        if entry is None and eng.side is None:
            return
        self._entry = None
        self._walking = entry
        try:
            eng.process_candle(ts, o, h, lo, c)
        finally:
            self._walking = None
            self._entry_fill = None
        if entry is not None and entry.client_id in self._open_state:      # not filled: expired
            del self._open_state[entry.client_id]
            self._remember(OrderState(entry.client_id, None, "cancelled", entry.side, entry.price, entry.qty, 0.0,
                                      None, "entry", entry.level))
        if eng.fills:
            eng.fills.clear()           # reported through order states; keeps a long run's memory flat

    # ---------------------------------------------------------------- orders
    async def place_order(self, order: OrderRequest) -> OpenOrder:
        cid = order.client_id
        if cid in self._open_state or cid in self._done:
            raise DuplicateClientId(f"client order id {cid} was used already")
        purpose = order.purpose
        if purpose == "entry":
            return self._place_entry(order)
        eng = self.engine
        if eng.side is None:
            raise OrderRejected(f"{cid}: no position to attach a {purpose!r} order to")
        cyc = len(eng.cycles)
        if purpose == "stop":
            raise OrderRejected(f"{cid}: the position's stop {self.ids(cyc, -1, 'stop')} rests with the position "
                                "since its entry filled: amend it")
        if purpose == "take_profit":
            if self._tp_rests or cid != self.ids(cyc, -1, "take_profit"):
                raise OrderRejected(f"{cid}: the position has its take-profit already, or this is not its id")
            tp = math.nan if order.price is None else order.price
            eng.amend(eng.stop, tp)
            self._tp_rests = True
            oo = self._exit_order("take_profit", cid, tp)
            self._open_state[cid] = self._state_of(oo)
            return oo
        raise OrderRejected(f"{cid}: the simulated venue cannot rest a {purpose!r} order (close_position exits)")

    async def amend_order(self, client_id: str, price: float, qty: float | None = None,
                          new_client_id: str | None = None) -> OpenOrder:
        eng = self.engine
        if eng.side is not None:
            cyc = len(eng.cycles)
            if client_id == self.ids(cyc, -1, "stop"):
                return self._move_stop(client_id, price)
            if client_id == self.ids(cyc, -1, "take_profit") and self._tp_rests:
                eng.amend(eng.stop, price)
                oo = self._exit_order("take_profit", client_id, eng.take_profit)
                self._open_state[client_id] = self._state_of(oo)
                return oo
        raise OrderNotFound(f"no open order {client_id}")

    async def cancel_order(self, client_id: str) -> None:
        eng = self.engine
        entry = self._entry
        if entry is not None and entry.client_id == client_id:
            eng.cancel_entry()
            self._entry = None
            self._open_state.pop(client_id, None)
            self._remember(OrderState(client_id, None, "cancelled", entry.side, entry.price, entry.qty, 0.0, None,
                                      "entry", entry.level))
            return
        if eng.side is not None:
            cyc = len(eng.cycles)
            if client_id == self.ids(cyc, -1, "take_profit") and self._tp_rests:
                eng.amend(eng.stop, None)
                self._tp_rests = False
                st = self._open_state.pop(client_id)
                self._remember(OrderState(client_id, None, "cancelled", st.side, st.price, st.qty, 0.0, None,
                                          "take_profit"))
                return
            if client_id == self.ids(cyc, -1, "stop"):
                raise OrderRejected(f"{client_id}: the position's stop goes with the position (close it)")
        raise OrderNotFound(f"no open order {client_id}")

    async def close_position(self, client_id: str, ts: int, price: float | None, reason: str = END) -> GatewayFill | None:
        """Close the whole position at market (the simulated venue: at `price`, taker fee);
        None when flat."""
        eng = self.engine
        if eng.side is None:
            return None
        if price is None or not math.isfinite(price):
            raise OrderRejected("the simulated venue needs a price for a market exit (the last close)")
        self._exit_cid = client_id
        try:
            eng.close_position(ts, price, reason)
        finally:
            self._exit_cid = None
        eng.fills.clear()
        self._closing = None                     # closed by the caller: not a venue-side close
        return self._last_exit

    # ---------------------------------------------------------------- reads
    async def fetch_order_state(self, client_id: str) -> OrderState:
        st = self._open_state.get(client_id) or self._done.get(client_id)
        if st is None:
            raise OrderNotFound(f"no order {client_id}")
        return st

    async def reconcile_order(self, client_id: str) -> OrderState | None:
        return self._open_state.get(client_id) or self._done.get(client_id)

    async def fetch_all_open_orders(self) -> tuple[list[OpenOrder], list[dict]]:
        eng = self.engine
        out = [] if self._entry is None else [self._entry]
        if eng.side is not None:
            cyc = len(eng.cycles)
            out.append(self._exit_order("stop", self.ids(cyc, -1, "stop"), eng.stop))
            if self._tp_rests:
                out.append(self._exit_order("take_profit", self.ids(cyc, -1, "take_profit"), eng.take_profit))
        return out, []

    async def fetch_order_history(self, since_ms: int) -> list[OrderState]:
        return list(self._done.values())

    async def fetch_position(self) -> PositionInfo:
        eng = self.engine
        if eng.side is None:
            return PositionInfo(self.symbol, "flat", 0.0, None, None)
        return PositionInfo(self.symbol, eng.side, eng.qty, eng.entry_price, eng.stop)

    async def fetch_stop(self) -> OpenOrder | None:
        eng = self.engine
        if eng.side is None:
            return None
        return self._exit_order("stop", self.ids(len(eng.cycles), -1, "stop"), eng.stop)

    async def fetch_closing_fill(self, entry_side: str, qty: float) -> ClosingFill | None:
        cf = self._closing
        self._closing = None
        return cf

    # ---------------------------------------------------------------- persistence
    @property
    def cycles(self) -> list[Cycle]:
        """The trades the matching engine closed (the simulation's own record)."""
        return self.engine.cycles

    def snapshot(self) -> dict:
        """The account and the position as a JSON-able dict (the closed trades and the open
        orders are the executor's rows: trading_cycles, trading_orders)."""
        eng = self.engine
        return {f: getattr(eng, f) for f in _STATE_FIELDS}

    def restore(self, state: dict, cycles: list[Cycle], open_orders: dict[str, list] | None = None) -> None:
        """Restore `snapshot()` output, the closed trades and the position's resting exits
        (client id -> [purpose, level, price] of the store's open orders; None: a take-profit
        rests when the position has a finite one)."""
        eng = self.engine
        for f in _STATE_FIELDS:
            setattr(eng, f, state[f])
        eng.cycles = list(cycles)
        eng.cancel_entry()
        eng.entry_open = False
        self._staged = None
        self._entry = None
        self._entry_fill = None
        self._open_state.clear()
        self._closing = None
        self._tp_rests = False
        if eng.side is None:
            return
        cyc = len(eng.cycles)
        tp_cid = self.ids(cyc, -1, "take_profit")
        if open_orders is None:
            self._tp_rests = eng.take_profit == eng.take_profit
        else:
            self._tp_rests = tp_cid in open_orders
        stop = self._exit_order("stop", self.ids(cyc, -1, "stop"), eng.stop)
        self._open_state[stop.client_id] = self._state_of(stop)
        if self._tp_rests:
            tp = self._exit_order("take_profit", tp_cid, eng.take_profit)
            self._open_state[tp_cid] = self._state_of(tp)

    # ---------------------------------------------------------------- internals
    def _place_entry(self, order: OrderRequest) -> OpenOrder:
        eng = self.engine
        cid = order.client_id
        if eng.side is not None or eng.pending_entry is not None:
            raise OrderRejected(f"{cid}: an entry needs a flat account with no entry placed")
        staged = self._staged
        self._staged = None
        side = LONG if order.side == "buy" else SHORT
        if staged is not None and staged[0] == cid:          # the order's side and price, the intent's rest
            _, it, max_hold = staged
            stop, tp, fraction = it.stop, it.take_profit, it.size_fraction
        else:
            stop = math.nan if order.preset_stop is None else order.preset_stop
            tp, fraction, max_hold = None, 1.0, 0
        if eng.sizing_reserve:
            fraction = fraction * (1.0 - eng.sizing_reserve)
        eng.place_entry(EntryIntent(side, order.price, stop, tp, fraction), max_hold)
        oo = OpenOrder(cid, self.symbol, "entry", order.side, order.price, max(order.level, 0), order.qty)
        self._entry = oo
        self._open_state[cid] = self._state_of(oo)
        return oo

    def _move_stop(self, cid: str, price: float | None) -> OpenOrder:
        eng = self.engine
        eng.amend(math.nan if price is None else price, eng.take_profit)
        oo = self._exit_order("stop", cid, eng.stop)
        self._open_state[cid] = self._state_of(oo)
        return oo

    def _exit_order(self, purpose: str, client_id: str, price: float) -> OpenOrder:
        eng = self.engine
        return OpenOrder(client_id, self.symbol, purpose, "sell" if eng.side == LONG else "buy",
                         None if math.isnan(price) else price, -1, eng.qty)

    @staticmethod
    def _state_of(oo: OpenOrder) -> OrderState:
        return OrderState(oo.client_id, None, "open", oo.side, oo.price, oo.qty, 0.0, None, oo.purpose, oo.level)

    def _remember(self, st: OrderState) -> None:
        done = self._done
        done.pop(st.client_id, None)
        done[st.client_id] = st
        if len(done) > _KEEP_STATES:
            for k in list(done)[:_KEEP_STATES // 2]:
                del done[k]

    def _close_exit(self, cid: str, f: Fill | None, purpose: str) -> None:
        """The position's resting exit `cid` went with the position: filled (`f`) or cancelled."""
        st = self._open_state.pop(cid, None)
        if st is None:
            return
        if f is None:
            self._remember(OrderState(cid, None, "cancelled", st.side, st.price, st.qty, 0.0, None, purpose))
        else:
            self._remember(OrderState(cid, None, "filled", st.side, st.price, f.qty, f.qty, f.price, purpose, -1,
                                      f.fee, f.ts, f.reason))

    def _trade(self, cid: str, f: Fill) -> None:
        self._trade_seq += 1
        seq = self._trade_seq
        self._trades.append(VenueTrade(str(seq), seq, None, cid, f.side, f.price, f.qty, f.fee, f.ts, f.reason))

    def _on_engine_fill(self, f: Fill) -> None:
        eng = self.engine
        if f.kind == ENTRY:
            entry = self._walking
            if entry is None:          # pragma: no cover - the engine only fills the entry it was given
                raise RuntimeError("simulated entry fill without a resting entry order")
            self._trade(entry.client_id, f)
            self._entry_fill = f
            del self._open_state[entry.client_id]
            self._remember(OrderState(entry.client_id, None, "filled", entry.side, entry.price, f.qty, f.qty, f.price,
                                      "entry", entry.level, f.fee, f.ts))
            eng.entry_open = True           # its stop / take-profit rest once `manage` set them
            return
        cycle = len(eng.cycles) - 1          # the trade was recorded before the fill is reported
        stop_cid = self.ids(cycle, -1, "stop")
        tp_cid = self.ids(cycle, -1, "take_profit")
        reason = f.reason
        if reason == SL:
            cid, purpose = stop_cid, "stop"
        elif reason == TP:
            cid, purpose = tp_cid, "take_profit"
        else:                                # "time", or a market close ("end", "kill", ...)
            cid, purpose = self._exit_cid or self.ids(cycle, -1, "exit"), "exit"
        self._trade(cid, f)
        self._close_exit(stop_cid, f if cid == stop_cid else None, "stop")
        self._close_exit(tp_cid, f if cid == tp_cid else None, "take_profit")
        self._tp_rests = False
        if purpose == "exit":
            self._remember(OrderState(cid, None, "filled", f.side, None, f.qty, f.qty, f.price, "exit", -1, f.fee,
                                      f.ts, reason))
        self._closing = ClosingFill(f.price, f.qty, f.fee, f.ts, reason)
        self._last_exit = GatewayFill(cid, self.symbol, f.ts, purpose, f.side, f.price, f.qty, f.fee, -1, reason)

    def _on_exits_set(self) -> None:
        """Right after an entry fill the strategy set the position's exits: they rest now."""
        eng = self.engine
        cyc = len(eng.cycles)
        stop = self._exit_order("stop", self.ids(cyc, -1, "stop"), eng.stop)
        self._open_state[stop.client_id] = self._state_of(stop)
        self._tp_rests = eng.take_profit == eng.take_profit
        if self._tp_rests:
            tp = self._exit_order("take_profit", self.ids(cyc, -1, "take_profit"), eng.take_profit)
            self._open_state[tp.client_id] = self._state_of(tp)


__all__ = ["END", "SimSingleEngine", "SimSingleVenue"]
