"""SingleExecutor: the orders and records of one single-position runner
(`core.engine.single_runner.SingleStrategyRunner`), the single-position counterpart of
`core.executor.grid_executor.GridExecutor`. It still drives the simulated single-position venue
(`core.venues.sim.single_venue`) synchronously: single-position strategies trade on paper only.

Entries (one per candle at most, gated by `entry_allowed`: the kill switch, the symbol
being busy with another strategy's position, the pre-trade risk check), the position's stop
and take-profit (re-quoted by the strategy before each candle, `amend_exits`), market exits
(`flatten`), and the records of the fills: each order, fill, position and closed trade is
written write-ahead in the candle's transaction (`core.executor.state_store.StateStore`)
and published on the bus.

Client ids (`ClientIds`, cycle = trades closed so far): entry `(cycle, attempt, "entry")`,
the position's `(cycle, -1, "stop")` and `(cycle, -1, "take_profit")`, and `(cycle, -1,
"exit")` for a market exit ("time", "end", "kill").

Refused entries publish a `RiskRejection`: "kill_switch" and "symbol_busy" once per episode
(the switch on, the symbol held by another runner), the risk check's own codes at each
refusal (published by the RiskManager). `risk_rejections` counts the "symbol_busy" episodes
and the risk check's refusals.
"""

from __future__ import annotations

import math
from typing import Callable

from core.events.bus import EventBus, FillEvent, IntentEvent, OrderEvent, PositionEvent, RiskRejection
from core.executor.client_ids import ClientIds
from core.executor.kill_switch import KillSwitch
from core.executor.state_store import StateStore
from core.model.orders import GatewayFill
from core.model.sides import LONG
from core.strategies.base import EntryIntent
from core.venues.sim.single_venue import SinglePaperGateway

_NAN = math.nan
_isfinite = math.isfinite


def _num(x: float | None) -> float | None:
    """A price for SQLite / JSON consumers: None for None or nan."""
    return None if x is None or x != x else x


class SingleExecutor:
    """Orders and records of one single-position runner (the single-position twin of
    `core.executor.grid_executor.GridExecutor`): entries, the position's stop and take-profit,
    market exits, each recorded write-ahead in the candle's transaction.

    Attributes:
        orders: client_id -> [purpose, level, price] of the orders open at the gateway: the
            position's "stop" and "take_profit" while a trade is open (an entry lives inside
            one candle only, so none is open between candles).
        risk: core.risk.RiskManager or None. portfolio: () -> core.risk.PortfolioView, the
            whole account as risk sees it (set by the engine; default: this runner alone).
        symbol_busy: () -> bool or None: another runner holds a position on the symbol (grid
            and single-position trades are mutually exclusive per symbol); while it says
            True and this runner is flat, no entry is placed (set by the engine).
        risk_rejections: entries refused by the risk check so far, plus the "symbol_busy"
            episodes.
    """

    def __init__(self, runner_id: int, name: str, symbol: str, gateway: SinglePaperGateway, ids: ClientIds,
                 store: StateStore, bus: EventBus | None, kill_switch: KillSwitch, risk=None, portfolio=None,
                 symbol_busy: Callable[[], bool] | None = None) -> None:
        self.runner_id = runner_id
        self.name = name
        self.symbol = symbol
        self.gateway = gateway
        self.ids = ids
        self.store = store
        self.bus = bus
        self.kill = kill_switch
        self.risk = risk
        self.portfolio = portfolio
        self.symbol_busy = symbol_busy
        self.risk_rejections = 0
        self.orders: dict[str, list] = {}
        self.entry_seq = 0               # entry orders placed in the current cycle (the client id level)
        self._rejected_at: int | None = None
        self._busy_at: int | None = None

    # ---------------------------------------------------------------- entries
    def candle_done(self) -> None:
        """End of a candle's orders: a kill-switch episode ends when the switch is off, a
        symbol-busy episode when the symbol is free."""
        if not self.kill.active:
            self._rejected_at = None
        if self._busy_at is not None and (self.symbol_busy is None or not self.symbol_busy()):
            self._busy_at = None

    def entry_allowed(self, intent: EntryIntent, ts: int) -> bool:
        """The kill switch, then the symbol held by another runner (each a RiskRejection once
        per episode), then the pre-trade risk check."""
        if self.kill.active:
            if self._rejected_at is None:
                self._rejected_at = ts
                if self.bus is not None:
                    self.bus.publish(RiskRejection(self.name, self.symbol, ts, "kill_switch", "entries blocked"))
            return False
        self._rejected_at = None
        if self.symbol_busy is not None and self.symbol_busy():
            if self._busy_at is None:
                self._busy_at = ts
                self.risk_rejections += 1
                if self.bus is not None:
                    self.bus.publish(RiskRejection(self.name, self.symbol, ts, "symbol_busy",
                                                   "another strategy holds a position on the symbol"))
            return False
        self._busy_at = None
        if self.risk is None:
            return True
        from core.risk import EntryCheck, Rejection

        eng = self.gateway.engine
        notional = eng.cash * eng.leverage * intent.size_fraction * (1.0 - eng.sizing_reserve)
        if not (_isfinite(notional) and notional > 0):
            return True                     # nothing the venue would fill anyway
        check = EntryCheck(self.symbol, intent.side, float(notional), float(eng.leverage), is_new_position=True,
                           level=0, strategy=self.name)
        pf = self.portfolio() if self.portfolio is not None else self._own_portfolio()
        if isinstance(self.risk.check_entry(check, pf, ts), Rejection):
            self.risk_rejections += 1
            return False
        return True

    def _own_portfolio(self):
        from core.risk import Exposure, PortfolioView

        eng = self.gateway.engine
        if eng.side is None:
            return PortfolioView([], float(eng.cash), ())
        return PortfolioView([Exposure(self.symbol, eng.side, abs(eng.qty * eng.entry_price))],
                             float(eng.cash - abs(eng.qty * eng.entry_price) / eng.leverage), ())

    def place_entry(self, intent: EntryIntent, max_hold: int, ts: int) -> str:
        """Record (intent, order pending), place, mark open. Returns the client id."""
        store = self.store
        gw = self.gateway
        cyc = len(gw.engine.cycles)
        level = self.entry_seq
        cid = self.ids(cyc, level, "entry")
        side = "buy" if intent.side == LONG else "sell"
        iid = store.add_intent(self.runner_id, ts, "place", cid, intent.price)
        store.add_order(cid, self.runner_id, cyc, level, "entry", side, intent.price, "pending", ts)
        if gw.external:
            store.flush()
        gw.place_entry(cid, intent, max_hold, level)
        store.set_order_status(cid, "open", ts)
        store.intent_done(iid)
        self.entry_seq = level + 1
        if self.bus is not None:
            self.bus.publish(IntentEvent(self.name, self.symbol, ts, "place", cid, intent.price))
            self.bus.publish(OrderEvent(self.name, self.symbol, ts, cid, "entry", side, intent.price, "open"))
        return cid

    def expire(self, cids: list[str], ts: int, intent: EntryIntent) -> None:
        """Entries that did not fill in their candle: cancelled (their one candle is over)."""
        side = "buy" if intent.side == LONG else "sell"
        for cid in cids:
            self.store.set_order_status(cid, "cancelled", ts)
            if self.bus is not None:
                self.bus.publish(OrderEvent(self.name, self.symbol, ts, cid, "entry", side, intent.price,
                                            "cancelled"))

    # ---------------------------------------------------------------- exits
    def amend_exits(self, ts: int, stop: float, take_profit: float | None) -> None:
        """The strategy's re-quote of the position's exits: to the gateway, and to the order
        rows when a price moved."""
        gw = self.gateway
        gw.amend_exits(stop, take_profit)
        eng = gw.engine
        cyc = len(eng.cycles)
        rows = None
        for purpose, price in (("stop", eng.stop), ("take_profit", eng.take_profit)):
            cid = self.ids(cyc, -1, purpose)
            rec = self.orders.get(cid)
            if rec is None:
                if price == price:                       # a take-profit that appears
                    self.store.add_order(cid, self.runner_id, cyc, -1, purpose, self._exit_side(), price, "open", ts)
                    self.orders[cid] = [purpose, -1, price]
                continue
            old = rec[2]
            if old != price and (old == old or price == price):
                rec[2] = price
                if rows is None:
                    rows = []
                rows.append((_num(price), ts, cid))
        if rows:
            self.store.amend_orders(rows)

    def flatten(self, ts: int, price: float, reason: str = "kill") -> GatewayFill | None:
        """Close the position at market (paper: at `price`), recorded write-ahead."""
        gw = self.gateway
        eng = gw.engine
        if eng.side is None:
            return None
        cyc = len(eng.cycles)
        cid = self.ids(cyc, -1, "exit")
        store = self.store
        iid = store.add_intent(self.runner_id, ts, "flatten", cid, price)
        store.add_order(cid, self.runner_id, cyc, -1, "exit", self._exit_side(), price, "pending", ts)
        if gw.external:
            store.flush()
        if self.bus is not None:
            self.bus.publish(IntentEvent(self.name, self.symbol, ts, "flatten", cid, price))
        fill = gw.close_position(cid, ts, price, reason)
        store.intent_done(iid)
        if fill is not None:
            self.record_fills([fill])
        return fill

    def _exit_side(self) -> str:
        return "sell" if self.gateway.engine.side == LONG else "buy"

    # ---------------------------------------------------------------- fills
    def record_fills(self, fills: list[GatewayFill]) -> None:
        store = self.store
        rid = self.runner_id
        bus = self.bus
        gw = self.gateway
        ids = self.ids
        for f in fills:
            store.add_fill(rid, f)
            ts = f.ts
            cyc = int(f.client_id.rsplit("-", 2)[1])
            stop_cid = ids(cyc, -1, "stop")
            tp_cid = ids(cyc, -1, "take_profit")
            if f.purpose == "entry":
                side = LONG if f.side == "buy" else "short"
                exit_side = "sell" if f.side == "buy" else "buy"
                store.set_order_status(f.client_id, "filled", ts)
                self.entry_seq = 0
                stop, tp = gw.entry_exits.pop(f.client_id, (f.pos_stop, _NAN))
                store.add_order(stop_cid, rid, cyc, -1, "stop", exit_side, _num(stop), "open", ts)
                self.orders[stop_cid] = ["stop", -1, stop]
                if tp == tp:
                    store.add_order(tp_cid, rid, cyc, -1, "take_profit", exit_side, tp, "open", ts)
                    self.orders[tp_cid] = ["take_profit", -1, tp]
                store.add_position(rid, ts, f.pos_qty, f.pos_avg_entry, _num(f.pos_stop), stop_cid, 1)
                if bus is not None:
                    bus.publish(OrderEvent(self.name, self.symbol, ts, stop_cid, "stop", exit_side, _num(stop), "open"))
                    if tp == tp:
                        bus.publish(OrderEvent(self.name, self.symbol, ts, tp_cid, "take_profit", exit_side, tp,
                                               "open"))
                    bus.publish(PositionEvent(self.name, self.symbol, ts, side, f.pos_qty, f.pos_avg_entry,
                                              _num(f.pos_stop), 1))
            else:
                trade = gw.engine.cycles[cyc]
                store.add_order(f.client_id, rid, cyc, -1, f.purpose, f.side, f.price, "filled", ts)
                for cid in (stop_cid, tp_cid):
                    if cid != f.client_id and self.orders.pop(cid, None) is not None:
                        store.set_order_status(cid, "cancelled", ts)
                self.orders.pop(f.client_id, None)
                store.add_position(rid, ts, 0.0, None, None, None, 0)
                store.add_cycle(rid, cyc, trade)
                if bus is not None:
                    bus.publish(PositionEvent(self.name, self.symbol, ts, trade.side, 0.0, None, None, 0))
            if bus is not None:
                bus.publish(FillEvent(self.name, self.symbol, ts, f.client_id,
                                      "entry" if f.purpose == "entry" else "exit", f.reason, f.level, f.side,
                                      f.price, f.qty, f.fee))

    def cancel_entries(self, ts: int) -> int:
        """Cancel the entries open now: none between candles (an entry lives for one candle)."""
        return 0

    def restore(self, open_orders: dict[str, list], entry_seq: int) -> None:
        self.orders = {cid: list(rec) for cid, rec in open_orders.items() if rec[0] in ("stop", "take_profit")}
        self.entry_seq = int(entry_seq)

