"""LiveGridExecutor: one grid runner's orders on an exchange (`CcxtGateway`), write-ahead.

The live twin of `core.executor.executor.GridExecutor`. The strategy quotes; this turns the
quote into exchange orders and the exchange's reports into fills, positions and cycles
(`core.executor.live_ledger.LiveLedger`), every step recorded in SQLite BEFORE the call that
could change the exchange and again after its answer:

    record intent + order (pending), COMMIT  ->  call the exchange  ->  record the outcome, COMMIT

No SQLite transaction is ever open across an `await` (the store is shared by the runners of
one loop). What each outcome means:

* answered: the order is `open` (or `rejected`, with the reason logged and published);
* `OrderUnknown` (timeout / transport error: the order MAY exist): the order stays `pending`
  and its client id goes to `unknown`; the next `poll` looks it up by client id
  (`reconcile_order`) before anything is re-sent: found -> adopted, absent -> `cancelled`
  (never sent);
* `GatewayUnavailable` (not sent: circuit open, exchange down): `cancelled`, retried on the
  next candle with the same client id.

Orders (client ids from `ClientIds(cycle, level, purpose)`):
* entries: limit orders at the strategy's `levels`, sized `ledger.unit / price` (amount
  precision of the market; a level below the market's minimum amount is skipped, logged);
  amended (price and size) when the quote moves by at least one tick;
* the stop: the exchange-side whole-position stop, placed/amended by
  `core.executor.protection.Protection.ensure_stop` after every entry fill, at the price the
  strategy's `on_fill` returns; re-checked by `verify_stops()`; if it cannot be placed or
  its price is already crossed the position is closed at market (reason "unprotected") and
  a critical alert raised (rule one: never an open position without a stop);
* the take-profit is CLIENT-SIDE at the moving SMA (`strategy.take_profit`): `on_mark(price)`
  closes the position at market when the mark price touches it (reason "tp").

`poll(ts)` asks the exchange for the state of every open entry (fills, partial fills
included, are applied to the ledger in order), then protects the position, then checks
that the exchange still holds it: a position gone flat that we did not close was stopped
out (reason "sl", at the stop's trigger price).

Times are ms UTC (the wall clock `clock_ms()`); money USDT; quantities base units.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Callable

from core.events.bus import EventBus, FillEvent, IntentEvent, OrderEvent, PositionEvent, RiskRejection
from core.executor.client_ids import ClientIds
from core.executor.kill_switch import KillSwitch
from core.executor.live_ledger import LiveLedger
from core.executor.protection import Protection, UnprotectedPosition
from core.executor.state_store import StateStore
from core.model.errors import (
    DuplicateClientId,
    GatewayError,
    GatewayUnavailable,
    OrderNotFound,
    OrderRejected,
    OrderUnknown,
)
from core.model.orders import GatewayFill, OrderRequest
from core.model.sides import LONG
from core.strategies.base import GridStrategy

log = logging.getLogger(__name__)

#: relative qty difference below which a resting entry is not re-sized
QTY_TOLERANCE = 0.001


def wall_ms() -> int:
    return int(time.time() * 1000)


class LiveGridExecutor:
    """See the module docstring.

    Args:
        runner_id: trading_runners id. strategy: the GridStrategy. symbol: ccxt unified symbol.
        gateway: a started `CcxtGateway` (or any AsyncGateway with fetch_order_state,
            fetch_stop, fetch_mark_price, amount_of, price_of, min_amount).
        ids: the runner's client ids. store: the state store. bus: event bus or None.
        kill_switch: the engine's. ledger: the runner's LiveLedger. protection: its Protection.
        risk_gate: a `core.executor.risk_gate.RiskGate`, or None (no pre-trade checks).
        clock_ms: wall clock, ms UTC.

    Attributes:
        orders: client_id -> [purpose, level, price, qty, filled_recorded] of the entries open
            at the exchange (take-profit and stop are not in it).
        unknown: client ids whose placement outcome is unknown (looked up by `poll`).
        blocked: why this runner must not trade (external position, ...), or None.
    """

    def __init__(self, runner_id: int, strategy: GridStrategy, symbol: str, gateway: Any, ids: ClientIds,
                 store: StateStore, bus: EventBus | None, kill_switch: KillSwitch, ledger: LiveLedger,
                 protection: Protection, risk_gate: Any = None,
                 clock_ms: Callable[[], int] = wall_ms) -> None:
        self.runner_id = runner_id
        self.strategy = strategy
        self.name = strategy.name
        self.symbol = symbol
        self.gateway = gateway
        self.ids = ids
        self.store = store
        self.bus = bus
        self.kill = kill_switch
        self.ledger = ledger
        self.protection = protection
        self.risk_gate = risk_gate
        self.clock_ms = clock_ms
        self.orders: dict[str, list] = {}
        self.unknown: set[str] = set()
        self.blocked: str | None = None
        self.stop_cid: str | None = None
        self.cursor_of: Callable[[], tuple] | None = None    # set by the runner: () -> (cursor, n, last close)
        self.pending_exit: tuple[str, int, str] | None = None     # (exit cid, intent id, reason) of an unknown close
        self._entry_side, self._exit_side = ("buy", "sell") if strategy.side == LONG else ("sell", "buy")
        self._kill_noted = False
        self._too_small: set[int] = set()
        self._rejected: dict[str, int] = {}       # cid -> ms UTC of the exchange's rejection

    # ---------------------------------------------------------------- store helpers
    def _tx(self):
        return self.store.transaction()

    def _publish(self, *events: Any) -> None:
        if self.bus is not None:
            for ev in events:
                self.bus.publish(ev)

    def save_state(self, cursor: int | None, n_candles: int, last_close: float | None, finished: bool = False) -> None:
        """Persist the ledger and cursor (inside the caller's transaction or its own)."""
        with self._tx():
            self.store.save_state(self.runner_id, cursor, n_candles, last_close, self.ledger.snapshot(), finished)

    # ---------------------------------------------------------------- 1. orders
    async def sync_orders(self, ts: int) -> None:
        """Make the exchange's entries match the strategy's quote (module docstring)."""
        led = self.ledger
        strat = self.strategy
        gw = self.gateway
        led.take_profit = strat.take_profit
        cyc = led.cycle
        want: dict[str, tuple] = {}
        if self.blocked is None and not self.kill.active:
            self._kill_noted = False
            unit = led.sizing_unit()
            levels = strat.levels
            for i in range(led.levels_filled, strat.num_levels):
                cid = self.ids(cyc, i, "entry")
                if led.level_qty[i] > 0:           # partly filled: its order stays as it is
                    rec = self.orders.get(cid)
                    if rec is not None:
                        want[cid] = ("entry", i, rec[2], rec[3])
                    continue
                p = levels[i]
                if not (math.isfinite(p) and p > 0 and math.isfinite(unit) and unit > 0):
                    continue
                px = gw.price_of(p)
                q = gw.amount_of(unit / px)
                if q <= 0 or q < gw.min_amount():
                    if i not in self._too_small:
                        self._too_small.add(i)
                        log.warning("%s %s level %d: %.6g USDT at %.6g is below the market's minimum amount: "
                                    "not placed", self.name, self.symbol, i, unit, px)
                    continue
                want[cid] = ("entry", i, px, q)
        elif self.kill.active and not self._kill_noted:
            self._kill_noted = True
            self._publish(RiskRejection(self.name, self.symbol, ts, "kill_switch", "entries blocked"))
        for cid in [c for c in self.orders if c not in want]:
            await self._cancel(cid, ts)
        for cid, (purpose, level, px, q) in want.items():
            rec = self.orders.get(cid)
            if rec is None:
                if cid in self.unknown:
                    continue                       # looked up by poll() first, never re-sent blindly
                rej = self._rejected.get(cid)
                if rej is not None and ts - rej < 3_600_000:
                    continue
                if self.risk_gate is not None and not self.risk_gate.check(led, cid, level, px, ts):
                    continue
                await self._place(cid, level, px, q, ts)
            elif rec[4] == 0 and (rec[2] != px or abs(rec[3] - q) > QTY_TOLERANCE * q):
                await self._amend(cid, rec, px, q, ts)

    async def _place(self, cid: str, level: int, price: float, qty: float, ts: int) -> None:
        store = self.store
        cyc = self.ledger.cycle
        with self._tx():
            iid = store.add_intent(self.runner_id, ts, "place", cid, price)
            store.add_order(cid, self.runner_id, cyc, level, "entry", self._entry_side, price, "pending", ts)
            store.set_order_qty(cid, qty)
        self._publish(IntentEvent(self.name, self.symbol, ts, "place", cid, price))
        req = OrderRequest(cid, self.symbol, "entry", self._entry_side, price, level)
        try:
            await self.gateway.place_order(req, qty=qty)
        except (OrderUnknown, DuplicateClientId) as e:
            log.warning("%s: outcome unknown (%s): looked up by client id before anything is re-sent", cid, e)
            self.unknown.add(cid)
            return
        except OrderRejected as e:
            self._rejected[cid] = ts
            log.warning("%s %s: entry %s rejected by the exchange: %s", self.name, self.symbol, cid, e)
            with self._tx():
                store.set_order_status(cid, "rejected", ts)
                store.intent_done(iid, "failed")
            self._publish(OrderEvent(self.name, self.symbol, ts, cid, "entry", self._entry_side, price, "rejected"),
                          RiskRejection(self.name, self.symbol, ts, "exchange", str(e)[:200]))
            return
        except GatewayError as e:
            log.warning("%s: not sent (%s); retried on the next candle", cid, e)
            with self._tx():
                store.set_order_status(cid, "cancelled", ts)
                store.intent_done(iid, "failed")
            return
        with self._tx():
            store.set_order_status(cid, "open", ts)
            store.intent_done(iid)
        self.orders[cid] = ["entry", level, price, qty, 0.0]
        self._publish(OrderEvent(self.name, self.symbol, ts, cid, "entry", self._entry_side, price, "open"))

    async def _amend(self, cid: str, rec: list, price: float, qty: float, ts: int) -> None:
        with self._tx():
            iid = self.store.add_intent(self.runner_id, ts, "amend", cid, price)
        try:
            await self.gateway.amend_order(cid, price, qty=qty)
        except OrderNotFound:
            with self._tx():
                self.store.intent_done(iid, "failed")
            await self._refresh(cid, rec, ts)        # filled or cancelled meanwhile
            return
        except GatewayError as e:
            log.warning("%s: amend to %.6g failed (%s); kept at %.6g", cid, price, e, rec[2])
            with self._tx():
                self.store.intent_done(iid, "failed")
            return
        rec[2], rec[3] = price, qty
        with self._tx():
            self.store.amend_orders([(price, ts, cid)])
            self.store.set_order_qty(cid, qty)
            self.store.intent_done(iid)

    async def _cancel(self, cid: str, ts: int) -> bool:
        """Cancel one open entry; record fills that happened before. False when the exchange
        could not be asked (retried on the next call)."""
        rec = self.orders.get(cid)
        if rec is None:
            return True
        with self._tx():
            iid = self.store.add_intent(self.runner_id, ts, "cancel", cid, None)
        try:
            await self.gateway.cancel_order(cid)
        except OrderNotFound:
            pass
        except GatewayError as e:
            log.warning("%s: cancel failed (%s); retried later", cid, e)
            with self._tx():
                self.store.intent_done(iid, "failed")
            return False
        with self._tx():
            self.store.intent_done(iid)
        await self._refresh(cid, rec, ts, cancelled=True)
        return True

    async def cancel_entries(self, ts: int) -> int:
        """Cancel every open entry now (kill switch). Returns how many were cancelled."""
        n = 0
        for cid in list(self.orders):
            if await self._cancel(cid, ts):
                n += 1
        return n

    # ---------------------------------------------------------------- 2. fills
    async def poll(self, ts: int) -> bool:
        """Look up unknown orders, apply the fills of open entries, protect the position, and
        detect a position the exchange closed (stop). True when anything changed."""
        changed = False
        if self.pending_exit is not None:
            changed |= await self._resolve_exit(ts)
        for cid in list(self.unknown):
            changed |= await self._resolve_unknown(cid, ts)
        filled = False
        for cid, rec in list(self.orders.items()):
            filled |= await self._refresh(cid, rec, ts)
        if filled:
            await self.protect(ts)
            changed = True
        elif self.ledger.qty > 0:
            pos = await self.gateway.fetch_position()
            if pos.qty == 0:
                await self.exit_seen_flat(ts)
                changed = True
        return changed

    async def _resolve_unknown(self, cid: str, ts: int) -> bool:
        st = await self.gateway.reconcile_order(cid)
        self.unknown.discard(cid)
        row = self.store.order(cid)
        pend = [i for i in self.store.pending_intents(self.runner_id) if i["client_id"] == cid]
        if st is None:
            log.info("%s was never placed: marked cancelled", cid)
            with self._tx():
                self.store.set_order_status(cid, "cancelled", ts)
                for i in pend:
                    self.store.intent_done(i["id"], "failed")
            return False
        if row is None:                     # pragma: no cover - unknown ids are always recorded first
            return False
        rec = ["entry", row["level"], row["price"], row["qty"] or st.qty or 0.0, 0.0]
        with self._tx():
            self.store.set_order_status(cid, "open", ts)
            for i in pend:
                self.store.intent_done(i["id"])
        self.orders[cid] = rec
        self._publish(OrderEvent(self.name, self.symbol, ts, cid, "entry", self._entry_side, row["price"], "open"))
        return await self._refresh(cid, rec, ts)

    async def _refresh(self, cid: str, rec: list, ts: int, cancelled: bool = False) -> bool:
        """Apply new fills of one entry order; drop it when done. True when it filled more."""
        try:
            st = await self.gateway.fetch_order_state(cid)
        except OrderNotFound:
            st = None
        more = False
        if st is not None and st.filled > rec[4] + 1e-12:
            inc = st.filled - rec[4]
            price = float(st.avg_price or rec[2])
            fee = None if st.fee is None or st.filled <= 0 else st.fee * inc / st.filled
            done = st.status != "open" or cancelled
            self._entry_fill(cid, rec, price, inc, fee, complete=st.status == "filled", ts=self.clock_ms())
            rec[4] = st.filled
            more = True
            if done:
                self.orders.pop(cid, None)
        elif st is None or st.status != "open" or cancelled:
            self.orders.pop(cid, None)
            status = "cancelled" if st is None or st.status in ("cancelled", "rejected") or cancelled else st.status
            with self._tx():
                self.store.set_order_status(cid, status, ts)
            self._publish(OrderEvent(self.name, self.symbol, ts, cid, "entry", self._entry_side, rec[2], status))
        return more

    def _entry_fill(self, cid: str, rec: list, price: float, qty: float, fee: float | None, complete: bool,
                    ts: int) -> None:
        led = self.ledger
        level = rec[1]
        unit = led.unit if led.qty > 0 else rec[2] * rec[3]
        f = led.apply_entry(ts, level, price, qty, fee, unit, complete)
        cyc = led.cycle
        stop_cid = self.stop_cid or self.ids(cyc, -1, "stop")
        store = self.store
        gf = GatewayFill(cid, self.symbol, ts, "entry", self._entry_side, price, qty, f.fee, level, None,
                         led.qty, led.avg_entry, led.stop, led.levels_filled)
        with self._tx():
            store.add_fill(self.runner_id, gf, store.fill_count(cid))
            if complete:
                store.set_order_status(cid, "filled", ts)
            store.add_order(stop_cid, self.runner_id, cyc, -1, "stop", self._exit_side, led.stop,
                            "open" if self.stop_cid else "pending", ts)
            store.add_position(self.runner_id, ts, led.qty, led.avg_entry, led.stop, stop_cid, led.levels_filled)
            store.save_state(self.runner_id, *self._cursor(), led.snapshot(), False)
        self._publish(FillEvent(self.name, self.symbol, ts, cid, "entry", None, level, self._entry_side, price, qty,
                                f.fee),
                      PositionEvent(self.name, self.symbol, ts, led.side, led.qty, led.avg_entry, led.stop,
                                    led.levels_filled))

    def _cursor(self) -> tuple:
        """(cursor_ts, n_candles, last_close) of the runner, saved with the ledger: from
        `cursor_of` (the runner's in-memory values, the ones it last stored), else the store."""
        if self.cursor_of is not None:
            return self.cursor_of()
        st = self.store.load_state(self.runner_id)
        if st is None:
            return (None, 0, None)
        return (st["cursor_ts"], st["n_candles"], st["last_close"])

    # ---------------------------------------------------------------- 3. protection
    async def protect(self, ts: int) -> str:
        """Make the exchange hold the stop of the ledger's position; "protected", "flat" or
        "closed" (could not protect: closed at market). Raises UnprotectedPosition."""
        led = self.ledger
        if led.qty <= 0:
            return "flat"
        cyc = led.cycle
        stop_cid = self.stop_cid or self.ids(cyc, -1, "stop")
        res = await self.protection.ensure_stop(stop_cid, self.gateway.price_of(led.stop), self.ids(cyc, -1, "exit"))
        if res.outcome == "protected":
            if res.stop_client_id != self.stop_cid:
                self.stop_cid = res.stop_client_id
            with self._tx():
                self.store.add_order(res.stop_client_id, self.runner_id, cyc, -1, "stop", self._exit_side, led.stop,
                                     "open", ts)
            self._publish(OrderEvent(self.name, self.symbol, ts, res.stop_client_id, "stop", self._exit_side,
                                     led.stop, "open"))
        elif res.outcome == "closed":
            fill = res.fill
            price = fill.price if fill is not None and fill.price > 0 else led.stop
            self._record_exit(self.ids(cyc, -1, "exit"), "exit", price, "unprotected", None, ts)
        else:
            await self.exit_seen_flat(ts)
        return res.outcome

    async def verify_stops(self, ts: int) -> str | None:
        """Periodic check that the position has its stop (re-created when missing)."""
        if self.ledger.qty <= 0:
            return None
        if self.protection.wanted is None:
            return await self.protect(ts)
        res = await self.protection.verify_stops()
        if res is None:
            return "protected"
        if res.outcome == "closed":
            cyc = self.ledger.cycle
            price = res.fill.price if res.fill is not None and res.fill.price > 0 else self.ledger.stop
            self._record_exit(self.ids(cyc, -1, "exit"), "exit", price, "unprotected", None, ts)
        elif res.outcome == "protected" and res.stop_client_id:
            self.stop_cid = res.stop_client_id
            with self._tx():
                self.store.add_order(res.stop_client_id, self.runner_id, self.ledger.cycle, -1, "stop",
                                     self._exit_side, self.ledger.stop, "open", ts)
        return res.outcome

    # ---------------------------------------------------------------- 4. exits
    async def on_mark(self, price: float, ts: int) -> bool:
        """The client-side take-profit: close at market when `price` touches it. True when closed."""
        led = self.ledger
        tp = led.take_profit
        if led.qty <= 0 or not (math.isfinite(tp) and tp > 0) or not math.isfinite(price):
            return False
        touched = price >= tp if led.side == LONG else price <= tp
        if not touched:
            return False
        log.info("%s %s: take-profit %.6g touched (mark %.6g): closing at market", self.name, self.symbol, tp, price)
        return await self.flatten(ts, "tp", price) is not None

    async def flatten(self, ts: int, reason: str = "kill", price: float | None = None) -> float | None:
        """Close the position at market (reduce-only), recorded write-ahead. Returns the exit
        price, None when flat or when the outcome is unknown (looked up on the next call)."""
        led = self.ledger
        if led.qty <= 0:
            return None
        cyc = led.cycle
        cid = self.ids(cyc, -1, "exit")
        store = self.store
        with self._tx():
            iid = store.add_intent(self.runner_id, ts, "flatten", cid, price)
            store.add_order(cid, self.runner_id, cyc, -1, "exit", self._exit_side, price, "pending", ts)
        self._publish(IntentEvent(self.name, self.symbol, ts, "flatten", cid, price))
        try:
            fill = await self.gateway.close_position(cid, ts, price, reason)
        except OrderUnknown as e:
            log.warning("%s: close outcome unknown (%s): looked up by client id on the next poll", cid, e)
            self.pending_exit = (cid, iid, reason)
            return None
        except GatewayError:
            with self._tx():
                store.set_order_status(cid, "cancelled", ts)
                store.intent_done(iid, "failed")
            raise
        with self._tx():
            store.intent_done(iid)
        if fill is None:
            await self.exit_seen_flat(ts)
            return None
        x = fill.price if fill.price > 0 else (price or led.avg_entry)
        self._record_exit(cid, "exit", x, reason, fill.fee or None, ts)
        return x

    async def _resolve_exit(self, ts: int) -> bool:
        """A market exit whose outcome was unknown: filled -> recorded, absent -> void."""
        cid, iid, reason = self.pending_exit
        st = await self.gateway.reconcile_order(cid)
        self.pending_exit = None
        if st is not None and st.filled > 0 and self.ledger.qty > 0:
            with self._tx():
                self.store.intent_done(iid)
            self._record_exit(cid, "exit", float(st.avg_price or self.ledger.avg_entry), reason, st.fee, ts)
            return True
        with self._tx():
            self.store.set_order_status(cid, "cancelled" if st is None else st.status, ts)
            self.store.intent_done(iid, "failed" if st is None else "done")
        return False

    async def exit_seen_flat(self, ts: int) -> None:
        """The exchange holds no position though the ledger does: the stop fired. Recorded at the
        exchange's own closing fills (price, fee) when it reports them, else at the stop's
        trigger price with the taker fee; reason "sl"."""
        led = self.ledger
        if led.qty <= 0:
            return
        stop_cid = self.stop_cid or self.ids(led.cycle, -1, "stop")
        price = led.stop if math.isfinite(led.stop) and led.stop > 0 else led.avg_entry
        fee = None
        reader = getattr(self.gateway, "fetch_closing_fill", None)
        if reader is not None:
            try:
                got = await reader(self._entry_side, led.qty)
            except GatewayError as e:
                log.warning("%s: the closing fills could not be read (%s): recorded at the trigger price", stop_cid, e)
                got = None
            if got is not None:
                price, _, fee = got
        log.warning("%s %s: the exchange closed the position (stop %.6g, filled at %.6g)", self.name, self.symbol,
                    led.stop, price)
        self._record_exit(stop_cid, "stop", price, "sl", fee, ts)

    def _record_exit(self, cid: str, purpose: str, price: float, reason: str, fee: float | None, ts: int) -> None:
        led = self.ledger
        cyc_idx = led.cycle
        f, cycle = led.apply_exit(ts, price, reason, fee)
        store = self.store
        gf = GatewayFill(cid, self.symbol, ts, purpose, self._exit_side, price, f.qty, f.fee, -1, reason)
        stop_cid = self.stop_cid or self.ids(cyc_idx, -1, "stop")
        with self._tx():
            store.add_fill(self.runner_id, gf, store.fill_count(cid))
            store.add_order(cid, self.runner_id, cyc_idx, -1, purpose, self._exit_side, price, "filled", ts)
            if purpose != "stop":
                store.set_order_status(stop_cid, "cancelled", ts)
            store.add_position(self.runner_id, ts, 0.0, None, None, None, 0)
            store.add_cycle(self.runner_id, cyc_idx, cycle)
            store.save_state(self.runner_id, *self._cursor(), led.snapshot(), False)
        self.stop_cid = None
        self.protection.wanted = None
        self._publish(FillEvent(self.name, self.symbol, ts, cid, "exit", reason, -1, self._exit_side, price, f.qty,
                                f.fee),
                      PositionEvent(self.name, self.symbol, ts, led.side, 0.0, None, None, 0))

    # ---------------------------------------------------------------- restore
    def restore(self, state: dict | None, cycles: list) -> None:
        """Restore the ledger and the open entries from the store (reconciliation then checks
        them against the exchange)."""
        if state is not None:
            self.ledger.restore(state, cycles)
        self.orders = {}
        for row in self.store.orders_by_status(self.runner_id, ("open",)):
            if row["purpose"] == "entry":
                filled = self.store.conn.execute("SELECT COALESCE(SUM(qty), 0) FROM trading_fills WHERE client_id=?",
                                                 (row["client_id"],)).fetchone()[0]
                self.orders[row["client_id"]] = ["entry", row["level"], row["price"], row["qty"] or 0.0,
                                                 float(filled)]
            elif row["purpose"] == "stop" and self.ledger.qty > 0:
                self.stop_cid = row["client_id"]


__all__ = ["LiveGridExecutor", "GatewayUnavailable", "UnprotectedPosition"]
