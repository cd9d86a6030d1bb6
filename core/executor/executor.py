"""GridExecutor: a grid strategy's quote (intents) -> gateway orders, everything recorded write-ahead.

Per candle, for one (strategy, symbol), after the strategy has quoted the candle:

1. `sync_orders(ts)`: the wanted orders are the unfilled entry levels at the strategy's
   `levels` (none while the kill switch is active) and the cycle's take-profit at
   `take_profit`; the executor diffs them against the orders it has open: cancels first,
   then places, then amends. A place or cancel is first recorded as an intent
   (trading_intents, status pending) and the order row (status pending), then sent, then
   marked done/open; an amend updates the order row's price.
2. the runner walks the candle through the gateway; `record_fills(fills)` stores each fill,
   the order's new status, the position (history row, with its stop) and, on exits, the cycle.
3. `end_candle(...)` stores the equity point, the cursor and the paper account, and commits.

All of one candle is one SQLite transaction for an in-process venue (`gateway.external`
False): a crash before the commit loses the venue's change too, and the candle is replayed
from the stored state. With an external venue, `StateStore.flush()` commits before every
gateway call, so an intent is durable before the order can exist.

Client ids come from `ClientIds(cycle, level, purpose)`, cycle = closed cycles so far.

Pre-trade risk (`core.risk`, optional): before an ENTRY order that is not already resting is
placed, `risk.check_entry(EntryCheck(...), portfolio(), ts)` runs; on a `Rejection` the order
is left out (the RiskManager counts it and publishes a `RiskRejection`). A rejected order is
re-checked only when the account changed (its positions, resting entries or this runner's
cycle) or `RISK_RECHECK_MS` of market time passed, so a standing rejection is not re-counted
every candle. Exits, take-profits and stops are never checked.
"""

from __future__ import annotations

import math

from core.events.bus import EventBus, FillEvent, IntentEvent, OrderEvent, PositionEvent, RiskRejection
from core.executor.client_ids import ClientIds
from core.executor.kill_switch import KillSwitch
from core.executor.state_store import StateStore
from core.model.errors import OrderNotFound
from core.model.orders import GatewayFill, OrderRequest
from core.model.sides import LONG
from core.strategies.base import GridStrategy
from core.venues.sim.grid_venue import PaperGateway


class GridExecutor:
    """Orders of one grid runner (see the module docstring).

    Attributes:
        orders: client_id -> [purpose, level, price] of the orders open at the gateway.
    """

    def __init__(self, runner_id: int, strategy: GridStrategy, symbol: str, gateway: PaperGateway,
                 ids: ClientIds, store: StateStore, bus: EventBus | None, kill_switch: KillSwitch,
                 risk=None, portfolio=None) -> None:
        self.runner_id = runner_id
        self.strategy = strategy
        self.name = strategy.name
        self.symbol = symbol
        self.gateway = gateway
        self.ids = ids
        self.store = store
        self.bus = bus
        self.kill = kill_switch
        self.orders: dict[str, list] = {}
        self._entry_side, self._exit_side = ("buy", "sell") if strategy.side == LONG else ("sell", "buy")
        self._rejected_at: int | None = None
        self.risk = risk                # core.risk.RiskManager or None
        self.portfolio = portfolio      # () -> core.risk.PortfolioView (the whole account), with risk
        self._risk_side = "long" if strategy.side == LONG else "short"
        self._gate = None               # core.executor.risk_gate.RiskGate, built on first use
        self.symbol_busy = None         # () -> bool: another runner holds a position on the symbol
        self._busy_at: int | None = None
        self.risk_rejections = 0
        self.dirty = True          # the account/book changed beyond order prices since the last full save

    # ---------------------------------------------------------------- 1. orders
    def sync_orders(self, ts: int) -> None:
        gw = self.gateway
        eng = gw.engine
        strat = self.strategy
        ids = self.ids
        cyc = len(eng.cycles)
        k = eng.levels_filled
        want: dict[str, tuple] = {}
        busy = k == 0 and self.symbol_busy is not None and self.symbol_busy()
        if busy:
            if self._busy_at is None:
                self._busy_at = ts
                self.risk_rejections += 1
                if self.bus is not None:
                    self.bus.publish(RiskRejection(self.name, self.symbol, ts, "symbol_busy",
                                                   "another strategy holds a position on the symbol"))
        elif not self.kill.active:
            self._busy_at = None
            self._rejected_at = None
            lv = strat.levels
            for i in range(k, strat.num_levels):
                want[ids(cyc, i, "entry")] = ("entry", i, lv[i])
        elif k < strat.num_levels and self._rejected_at is None and self.kill.active:   # once per kill-switch episode
            self._rejected_at = ts
            if self.bus is not None:
                self.bus.publish(RiskRejection(self.name, self.symbol, ts, "kill_switch", "entries blocked"))
        want[ids(cyc, -1, "take_profit")] = ("take_profit", -1, strat.take_profit)
        orders = self.orders
        store = self.store
        external = gw.external
        if len(orders) != len(want) or any(cid not in want for cid in orders):
            for cid in [c for c in orders if c not in want]:
                self._cancel(cid, ts, external)
            risk = self.risk
            for cid, (purpose, level, price) in want.items():
                if cid not in orders:
                    if risk is not None and purpose == "entry" and not self._risk_ok(cid, level, price, ts):
                        continue
                    self._place(cid, purpose, level, price, cyc, ts, external)
        amends = None
        for cid, (purpose, level, price) in want.items():
            rec = orders.get(cid)
            if rec is None:                 # left out by the risk check
                continue
            if rec[2] != price:
                if external:
                    store.flush()
                gw.amend_order(cid, price)
                rec[2] = price
                if amends is None:
                    amends = []
                amends.append((price, ts, cid))
        if amends:
            store.amend_orders(amends)

    def _risk_ok(self, cid: str, level: int, price: float, ts: int) -> bool:
        """The pre-trade check of one entry not resting yet (`core.executor.risk_gate`, RISK_RECHECK_MS)."""
        gate = self._gate
        if gate is None:
            from core.executor.risk_gate import RiskGate

            gate = self._gate = RiskGate(self.risk, self.portfolio, self.name, self.symbol, self._risk_side,
                                         self.strategy)
        ok = gate.check(self.gateway.engine, cid, level, price, ts)
        self.risk_rejections = gate.rejections
        return ok

    def _place(self, cid: str, purpose: str, level: int, price: float, cyc: int, ts: int, external: bool) -> None:
        store = self.store
        side = self._entry_side if purpose == "entry" else self._exit_side
        iid = store.add_intent(self.runner_id, ts, "place", cid, price)
        store.add_order(cid, self.runner_id, cyc, level, purpose, side, price, "pending", ts)
        if external:
            store.flush()
        self.gateway.place_order(OrderRequest(cid, self.symbol, purpose, side, price, level,
                                              reduce_only=purpose != "entry"))
        store.set_order_status(cid, "open", ts)
        store.intent_done(iid)
        self.orders[cid] = [purpose, level, price]
        self.dirty = True
        if self.bus is not None:
            self.bus.publish(IntentEvent(self.name, self.symbol, ts, "place", cid, price))
            self.bus.publish(OrderEvent(self.name, self.symbol, ts, cid, purpose, side, price, "open"))

    def _cancel(self, cid: str, ts: int, external: bool) -> None:
        store = self.store
        purpose, _level, price = self.orders.pop(cid)
        iid = store.add_intent(self.runner_id, ts, "cancel", cid, None)
        if external:
            store.flush()
        try:
            self.gateway.cancel_order(cid)
        except OrderNotFound:
            pass
        store.set_order_status(cid, "cancelled", ts)
        store.intent_done(iid)
        self.dirty = True
        if self.bus is not None:
            side = self._entry_side if purpose == "entry" else self._exit_side
            self.bus.publish(OrderEvent(self.name, self.symbol, ts, cid, purpose, side, price, "cancelled"))

    def cancel_entries(self, ts: int) -> int:
        """Cancel every open entry order now (kill switch). Returns how many."""
        cids = [cid for cid, rec in self.orders.items() if rec[0] == "entry"]
        for cid in cids:
            self._cancel(cid, ts, self.gateway.external)
        return len(cids)

    # ---------------------------------------------------------------- 2. fills
    def record_fills(self, fills: list[GatewayFill]) -> None:
        store = self.store
        rid = self.runner_id
        eng = self.gateway.engine
        bus = self.bus
        self.dirty = True
        for f in fills:
            store.add_fill(rid, f)
            ts = f.ts
            if f.purpose == "entry":
                self.orders.pop(f.client_id, None)
                # the filled level's price must not stay in the paper book: with the kill switch
                # on or the level's next-cycle order refused by risk, a stale price would fill again
                book = getattr(self.gateway, "book", None)
                if book is not None and 0 <= f.level < len(book.levels):
                    book.levels[f.level] = math.nan
                store.set_order_status(f.client_id, "filled", ts)
                # replay the position as it was right after this fill (the walk may have gone on)
                pos = (f.pos_qty, f.pos_avg_entry, f.pos_stop, f.pos_levels)
                cyc = int(f.client_id.rsplit("-", 2)[1])
                stop_cid = self.ids(cyc, -1, "stop")
                store.add_order(stop_cid, rid, cyc, -1, "stop", self._exit_side, pos[2], "open", ts)
                store.add_position(rid, ts, pos[0], pos[1], pos[2], stop_cid, pos[3])
                if bus is not None:
                    bus.publish(OrderEvent(self.name, self.symbol, ts, stop_cid, "stop", self._exit_side,
                                           pos[2], "open"))
                    bus.publish(PositionEvent(self.name, self.symbol, ts, eng.side, pos[0], pos[1], pos[2], pos[3]))
            else:
                self.orders.pop(f.client_id, None)
                cyc = int(f.client_id.rsplit("-", 2)[1])
                store.add_order(f.client_id, rid, cyc, -1, f.purpose, f.side, f.price, "filled", ts)
                stop_cid = self.ids(cyc, -1, "stop")
                if f.purpose != "stop":
                    store.set_order_status(stop_cid, "cancelled", ts)
                store.add_position(rid, ts, 0.0, None, None, None, 0)
                store.add_cycle(rid, cyc, eng.cycles[cyc])
                if bus is not None:
                    bus.publish(PositionEvent(self.name, self.symbol, ts, eng.side, 0.0, None, None, 0))
            if bus is not None:
                bus.publish(FillEvent(self.name, self.symbol, f.ts, f.client_id,
                                      "entry" if f.purpose == "entry" else "exit", f.reason, f.level, f.side,
                                      f.price, f.qty, f.fee))

    # ---------------------------------------------------------------- 3. the candle's end
    def flatten(self, ts: int, price: float, reason: str = "kill") -> GatewayFill | None:
        """Close the position at market (paper: at `price`), recorded write-ahead."""
        eng = self.gateway.engine
        if eng.levels_filled == 0:
            return None
        cyc = len(eng.cycles)
        cid = self.ids(cyc, -1, "exit")
        iid = self.store.add_intent(self.runner_id, ts, "flatten", cid, price)
        self.store.add_order(cid, self.runner_id, cyc, -1, "exit", self._exit_side, price, "pending", ts)
        if self.gateway.external:
            self.store.flush()
        if self.bus is not None:
            self.bus.publish(IntentEvent(self.name, self.symbol, ts, "flatten", cid, price))
        fill = self.gateway.close_position(cid, ts, price, reason)
        self.store.intent_done(iid)
        if fill is not None:
            self.record_fills([fill])
        return fill

    def grid_state(self) -> dict:
        """The gateway's account and book (JSON-able). Saved in full only when `dirty`; the
        order prices, amended every candle, live in trading_orders."""
        self.dirty = False
        return self.gateway.snapshot()

    def restore(self, grid: dict, cycles: list, open_orders: dict[str, list]) -> None:
        """Restore the account from `grid`, the open orders (client_id -> [purpose, level, price],
        from trading_orders) into the executor and the gateway's book."""
        self.gateway.restore(grid, cycles, open_orders)
        self.orders = {cid: list(rec) for cid, rec in open_orders.items() if rec[0] != "stop"}
        self.dirty = False


def finite_or_none(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x
