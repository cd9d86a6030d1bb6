"""SingleExecutor: the orders and records of one single-position runner
(`core.engine.single_runner.SingleStrategyRunner`), the single-position counterpart of
`core.executor.grid_executor.GridExecutor`. It drives its venue only through the async
`Gateway` contract (`core.executor.gateway`), plus one documented sim-only hook (below);
the simulated venue (`core.venues.sim.single_venue.SimSingleVenue`) is the only one it is
given so far: single-position strategies trade on paper (the engine does not enable them
live yet).

Entries (one per candle at most, gated by `entry_allowed`: the kill switch, an operator's
pause of the runner, the symbol being busy with another strategy's position, the pre-trade
risk check) are `place_order`s
of an `OrderRequest` (market or limit, the intent's stop as `preset_stop`); the position's
stop and take-profit are re-quoted by the strategy before each candle (`requote_exits`:
`amend_order`, or `place_order` of a take-profit that appears); market exits are
`close_position` (`flatten`). After the venue went through a candle, `poll` reads what
happened as GridExecutor does: the entry's order state (filled, or expired: "cancelled"),
the stop / take-profit the venue rested from the fill (their order states), and a position
the venue closed (`fetch_position` flat, then `fetch_closing_fill`: price, fee, reason).

The sim-only hook (`SIM_ENTRY_HOOK`, "stage_entry"): the simulated venue's matching engine
needs what an order cannot carry — the strategy's `EntryIntent` (size fraction, the exits
kept when `manage` gives none) and the maximum holding. When the venue has the hook, the
executor calls `stage_entry(client_id, intent, max_hold)` right before the entry's
`place_order`; nothing else outside the protocol is ever used.

The account is the executor's `SingleBook`, kept from the venue's reports with the matching
engine's own arithmetic (entry fee; exit `qty·(Y−X)` less the taker fee; trade pnl), so its
cash, equity and trades equal the backtest's to the last bit.

Each order, fill, position and closed trade is written write-ahead in the candle's
transaction (`core.executor.state_store.StateStore`) and published on the bus; with an
external venue the records are made durable (COMMIT) before each call.

Client ids (`ClientIds`, cycle = trades closed so far): entry `(cycle, attempt, "entry")`,
the position's `(cycle, -1, "stop")` and `(cycle, -1, "take_profit")`, and `(cycle, -1,
"exit")` for a market exit ("time", "end", "kill").

Refused entries publish a `RiskRejection`: "kill_switch" and "symbol_busy" once per episode
(the switch on, the symbol held by another runner), the risk check's own codes at each
refusal (published by the RiskManager). `risk_rejections` counts the "symbol_busy" episodes
and the risk check's refusals.

Times are ms UTC; money USDT; prices quote currency; quantities base units.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from core.events.bus import EventBus, FillEvent, IntentEvent, OrderEvent, PositionEvent, RiskRejection
from core.executor.client_ids import ClientIds
from core.executor.gateway import Gateway
from core.executor.kill_switch import KillSwitch
from core.executor.state_store import StateStore
from core.model.account import Account
from core.model.cycle import Cycle
from core.model.errors import GatewayError, OrderNotFound
from core.model.fills import SL, TP
from core.model.orders import GatewayFill, OrderRequest
from core.model.sides import LONG
from core.strategies.base import EntryIntent

log = logging.getLogger(__name__)

_NAN = math.nan
_isfinite = math.isfinite
_isnan = math.isnan

#: the one venue method outside the `Gateway` protocol the executor calls (sim-only: see the
#: module docstring and `core.venues.sim.single_venue.SimSingleVenue.stage_entry`)
SIM_ENTRY_HOOK = "stage_entry"


def _num(x: float | None) -> float | None:
    """A price for SQLite / JSON consumers: None for None or nan."""
    return None if x is None or math.isnan(x) else x


class SingleBook:
    """The account and the position of one single-position runner, as its executor recorded
    them from the venue's reports (the single-position counterpart of
    `core.model.position.PositionBook`). The arithmetic is the matching engine's
    (`core.venues.sim.single_matching`), operation for operation: the simulated venue and this
    book agree to the bit.

    Attributes:
        cash (USDT), leverage, maker_fee, taker_fee, sizing_reserve (fraction of the cash kept
        out of an entry's size); side ("long" | "short", None when flat), qty (base units, 0
        when flat), entry_price (nan when flat), entry_fee (USDT), open_ts (ms UTC), stop and
        take_profit (prices, nan = none); cycles (the closed trades, levels_filled = 1); fills
        (empty: the fills are the store's rows).

    Read-only views shared with the grid books (the engine's risk view, the console):
    `levels_filled` (1 in a position), `avg_entry`, `cost` and `unit` (the position's notional
    at entry, USDT, 0 when flat), `sizing_unit()` (the next entry's notional), `cycle`.
    """

    _FIELDS = ("cash", "side", "qty", "entry_price", "entry_fee", "open_ts", "stop", "take_profit")

    def __init__(self, account: Account, sizing_reserve: float = 0.0) -> None:
        self.cash = float(account.initial_capital)
        self.leverage = float(account.leverage)
        self.maker_fee = float(account.maker_fee)
        self.taker_fee = float(account.taker_fee)
        self.sizing_reserve = float(sizing_reserve)
        self.cycles: list[Cycle] = []
        self.fills: list = []
        self._reset()

    def _reset(self) -> None:
        self.side: str | None = None
        self.qty = 0.0
        self.entry_price = _NAN
        self.entry_fee = 0.0
        self.open_ts = -1
        self.stop = _NAN
        self.take_profit = _NAN

    # ---------------------------------------------------------------- views
    @property
    def cycle(self) -> int:
        """The index of the current trade (trades closed so far)."""
        return len(self.cycles)

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

    def equity(self, price: float) -> float:
        """Cash + unrealised P&L at `price` (no exit fee), USDT: the backtest's equity point."""
        if self.side is None:
            return self.cash
        if self.side == LONG:
            return self.cash + self.qty * (price - self.entry_price)
        return self.cash + self.qty * (self.entry_price - price)

    # ---------------------------------------------------------------- changes
    def open(self, side: str, price: float, qty: float, fee: float, ts: int, stop: float, take_profit: float) -> None:
        """The entry filled at `price` for `qty` (fee USDT); the exits set right after it."""
        self.cash -= fee
        self.side = side
        self.qty = qty
        self.entry_price = price
        self.entry_fee = fee
        self.open_ts = ts
        self.stop = stop
        self.take_profit = take_profit

    def close(self, ts: int, price: float, reason: str, fee: float) -> Cycle:
        """The whole position closed at `price` (exit fee USDT): the trade, recorded."""
        q = self.qty
        x = self.entry_price
        side = self.side
        real = q * (price - x) if side == LONG else q * (x - price)
        self.cash += real - fee
        pnl = real - self.entry_fee - fee
        trade = Cycle(open_time=self.open_ts, close_time=ts, side=side, levels_filled=1, avg_entry=x,
                      exit_price=price, exit_reason=reason, qty=q, pnl=pnl)
        self.cycles.append(trade)
        self._reset()
        return trade

    # ---------------------------------------------------------------- persistence
    def snapshot(self) -> dict:
        return {f: getattr(self, f) for f in self._FIELDS}

    def restore(self, state: dict, cycles: list[Cycle]) -> None:
        """Restore `snapshot()` output (or the simulated venue's account snapshot of older
        databases: the same field names) and the closed trades."""
        for f in self._FIELDS:
            setattr(self, f, state[f])
        self.cycles = list(cycles)


class SingleExecutor:
    """Orders and records of one single-position runner (module docstring): entries, the
    position's stop and take-profit, market exits, each recorded write-ahead in the candle's
    transaction, all through the runner's `Gateway`.

    Args:
        runner_id, name, symbol: the runner's. gateway: its venue (`Gateway`). ids: its
            client ids. store, bus, kill_switch: the engine's.
        risk, portfolio, symbol_busy: see the attributes.
        account: capital (USDT), leverage, fees of the runner's book.
        sizing_reserve: fraction of the cash kept out of an entry's size (the venue applies it
            to the fill; the risk check sees the reduced notional).

    Attributes:
        book: the SingleBook (cash, position, trades).
        orders: client_id -> [purpose, level, price] of the orders open at the gateway: the
            position's "stop" and "take_profit" while a trade is open; an entry (with its side
            as a 4th item) only between its placement and the `poll` after its candle, so
            none is open between candles.
        risk: core.risk.RiskManager or None. portfolio: () -> core.risk.PortfolioView, the
            whole account as risk sees it (set by the engine; default: this runner alone).
        symbol_busy: () -> bool or None: another runner holds a position on the symbol (grid
            and single-position trades are mutually exclusive per symbol); while it says
            True and this runner is flat, no entry is placed (set by the engine).
        risk_rejections: entries refused by the risk check so far, plus the "symbol_busy"
            episodes.
        paused: who paused the runner and why (an operator's pause: no new entry; an open trade
            keeps its stop and take-profit and is managed as usual), or None. Set by the runner.
    """

    def __init__(self, runner_id: int, name: str, symbol: str, gateway: Gateway, ids: ClientIds,
                 store: StateStore, bus: EventBus | None, kill_switch: KillSwitch, risk=None, portfolio=None,
                 symbol_busy: Callable[[], bool] | None = None, *, account: Account | None = None,
                 sizing_reserve: float = 0.0) -> None:
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
        self.book = SingleBook(account if account is not None else Account(), sizing_reserve)
        self.risk_rejections = 0
        self.orders: dict[str, list] = {}
        self.entry_seq = 0               # entry orders placed in the current cycle (the client id level)
        self._rejected_at: int | None = None
        self._busy_at: int | None = None
        self.paused: str | None = None
        self._paused_at: int | None = None

    # ---------------------------------------------------------------- entries
    def candle_done(self) -> None:
        """End of a candle's orders: a kill-switch episode ends when the switch is off, a
        symbol-busy episode when the symbol is free."""
        if not self.kill.active:
            self._rejected_at = None
        if self.paused is None:
            self._paused_at = None
        if self._busy_at is not None and (self.symbol_busy is None or not self.symbol_busy()):
            self._busy_at = None

    def entry_allowed(self, intent: EntryIntent, ts: int) -> bool:
        """The kill switch, then an operator's pause of this runner, then the symbol held by
        another runner (each a RiskRejection once per episode), then the pre-trade risk check."""
        if self.kill.active:
            if self._rejected_at is None:
                self._rejected_at = ts
                if self.bus is not None:
                    self.bus.publish(RiskRejection(self.name, self.symbol, ts, "kill_switch", "entries blocked"))
            return False
        self._rejected_at = None
        if self.paused is not None:
            if self._paused_at is None:
                self._paused_at = ts
                if self.bus is not None:
                    self.bus.publish(RiskRejection(self.name, self.symbol, ts, "paused", self.paused))
            return False
        self._paused_at = None
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

        book = self.book
        notional = self._notional(intent)
        if not (_isfinite(notional) and notional > 0):
            return True                     # nothing the venue would fill anyway
        check = EntryCheck(self.symbol, intent.side, float(notional), float(book.leverage), is_new_position=True,
                           level=0, strategy=self.name)
        pf = self.portfolio() if self.portfolio is not None else self._own_portfolio()
        if isinstance(self.risk.check_entry(check, pf, ts), Rejection):
            self.risk_rejections += 1
            return False
        return True

    def _notional(self, intent: EntryIntent) -> float:
        """USDT notional of `intent`'s entry: cash · leverage · size_fraction · (1 − reserve)."""
        book = self.book
        return book.cash * book.leverage * intent.size_fraction * (1.0 - book.sizing_reserve)

    def _own_portfolio(self):
        from core.risk import Exposure, PortfolioView

        book = self.book
        if book.side is None:
            return PortfolioView([], float(book.cash), ())
        return PortfolioView([Exposure(self.symbol, book.side, abs(book.qty * book.entry_price))],
                             float(book.cash - abs(book.qty * book.entry_price) / book.leverage), ())

    async def submit_entry(self, intent: EntryIntent, max_hold: int, ts: int, ref_price: float | None = None) -> str:
        """Record (intent, order pending), stage the intent (sim hook), place, mark open.
        `ref_price`: the last price, to size a market entry's qty (a limit entry is sized at
        its price; the simulated venue sizes by the cash at the fill and ignores the qty).
        Returns the client id."""
        store = self.store
        gw = self.gateway
        cyc = self.book.cycle
        level = self.entry_seq
        cid = self.ids(cyc, level, "entry")
        side = "buy" if intent.side == LONG else "sell"
        price = None if intent.price is None else gw.price_of(intent.price)
        ref = price if price is not None else ref_price
        notional = self._notional(intent)
        qty = gw.amount_of(notional / ref) if ref is not None and ref > 0 and _isfinite(notional) else None
        preset = gw.price_of(intent.stop) if intent.stop is not None and _isfinite(intent.stop) else None
        iid = store.add_intent(self.runner_id, ts, "place", cid, intent.price)
        store.add_order(cid, self.runner_id, cyc, level, "entry", side, intent.price, "pending", ts)
        if gw.external:
            store.flush()
        stage = getattr(gw, SIM_ENTRY_HOOK, None)
        if stage is not None:
            stage(cid, intent, max_hold)
        await gw.place_order(OrderRequest(cid, self.symbol, "entry", side, price, level=level, qty=qty or None,
                                          preset_stop=preset))
        store.set_order_status(cid, "open", ts)
        store.intent_done(iid)
        self.orders[cid] = ["entry", level, intent.price, side]
        self.entry_seq = level + 1
        if self.bus is not None:
            self.bus.publish(IntentEvent(self.name, self.symbol, ts, "place", cid, intent.price, qty))
            self.bus.publish(OrderEvent(self.name, self.symbol, ts, cid, "entry", side, intent.price, "open"))
        return cid

    async def cancel_entries(self, ts: int) -> int:
        """Cancel the entries open now (none between candles: an entry lives for one candle).
        Returns how many were cancelled."""
        n = 0
        for cid, rec in [(c, r) for c, r in self.orders.items() if r[0] == "entry"]:
            try:
                await self.gateway.cancel_order(cid)
            except OrderNotFound:
                pass                                # filled or expired meanwhile: `poll` tells
            else:
                del self.orders[cid]
                self._entry_gone(cid, rec, ts)
                n += 1
        return n

    def _entry_gone(self, cid: str, rec: list, ts: int) -> None:
        """An entry that did not fill (expired with its candle, or cancelled)."""
        self.store.set_order_status(cid, "cancelled", ts)
        if self.bus is not None:
            self.bus.publish(OrderEvent(self.name, self.symbol, ts, cid, "entry", rec[3], rec[2], "cancelled"))

    # ---------------------------------------------------------------- exits
    async def requote_exits(self, ts: int, stop: float, take_profit: float | None) -> None:
        """The strategy's re-quote of the position's exits: to the gateway and to the order
        rows when a price moved (a take-profit that appears is placed; one that goes away
        rests without a price)."""
        book = self.book
        if book.side is None:
            return
        gw = self.gateway
        cyc = book.cycle
        stop = float(stop)
        tp = _NAN if take_profit is None else float(take_profit)
        rows = None
        for purpose, price in (("stop", stop), ("take_profit", tp)):
            cid = self.ids(cyc, -1, purpose)
            rec = self.orders.get(cid)
            if rec is None:
                if not _isnan(price):                    # a take-profit that appears
                    if purpose == "stop":
                        await gw.amend_order(cid, price)
                    else:
                        await gw.place_order(OrderRequest(cid, self.symbol, purpose, self._exit_side(), price,
                                                          reduce_only=True, qty=book.qty))
                    self.store.add_order(cid, self.runner_id, cyc, -1, purpose, self._exit_side(), price, "open", ts)
                    self.orders[cid] = [purpose, -1, price]
                    if self.bus is not None:
                        self.bus.publish(OrderEvent(self.name, self.symbol, ts, cid, purpose, self._exit_side(), price,
                                                    "open"))
                continue
            old = rec[2]
            if old != price and not (_isnan(price) and old is not None and _isnan(old)):   # nan -> nan: no move
                await gw.amend_order(cid, price)
                rec[2] = price
                if self.bus is not None:
                    self.bus.publish(IntentEvent(self.name, self.symbol, ts, "amend", cid, _num(price)))
                if rows is None:
                    rows = []
                rows.append((_num(price), ts, cid))
        book.stop = stop
        book.take_profit = tp
        if rows:
            self.store.amend_orders(rows)

    async def flatten(self, ts: int, price: float, reason: str = "kill") -> GatewayFill | None:
        """Close the position at market (the simulated venue: at `price`), recorded write-ahead."""
        book = self.book
        if book.side is None:
            return None
        gw = self.gateway
        cyc = book.cycle
        cid = self.ids(cyc, -1, "exit")
        store = self.store
        iid = store.add_intent(self.runner_id, ts, "flatten", cid, price)
        store.add_order(cid, self.runner_id, cyc, -1, "exit", self._exit_side(), price, "pending", ts)
        if gw.external:
            store.flush()
        if self.bus is not None:
            self.bus.publish(IntentEvent(self.name, self.symbol, ts, "flatten", cid, price, abs(book.qty), reason))
        fill = await gw.close_position(cid, ts, price, reason)
        store.intent_done(iid)
        if fill is not None:
            self._record_exit(fill.client_id, fill.purpose, fill.price, fill.reason or reason, fill.fee, fill.ts)
        else:                                           # the venue was flat already: how it closed
            store.set_order_status(cid, "cancelled", ts)
            await self._closed_at_venue(ts)
        return fill

    def _exit_side(self) -> str:
        return "sell" if self.book.side == LONG else "buy"

    # ---------------------------------------------------------------- fills
    async def poll(self, ts: int) -> bool:
        """After the venue went through a candle: the entry's outcome (filled: the position
        with the exits the venue rested from the fill; expired: cancelled), then a position
        the venue closed (stop, take-profit, maximum holding). True when anything changed."""
        gw = self.gateway
        changed = False
        for cid, rec in [(c, r) for c, r in self.orders.items() if r[0] == "entry"]:
            try:
                st = await gw.fetch_order_state(cid)
            except OrderNotFound:
                st = None
            if st is not None and st.filled > 0:
                del self.orders[cid]
                await self._entry_filled(cid, rec, st, ts)
                changed = True
            elif st is None or st.status != "open":
                del self.orders[cid]
                self._entry_gone(cid, rec, ts)
                changed = True
        if self.book.side is not None and (await gw.fetch_position()).qty == 0:
            await self._closed_at_venue(ts)
            changed = True
        return changed

    async def _exit_price(self, client_id: str) -> float:
        """The price of the position's stop / take-profit `client_id` as the venue rests (or
        rested) it; nan when there is none."""
        try:
            st = await self.gateway.fetch_order_state(client_id)
        except OrderNotFound:
            return _NAN
        return _NAN if st.price is None else st.price

    async def _entry_filled(self, cid: str, rec: list, st, ts: int) -> None:
        book = self.book
        store = self.store
        rid = self.runner_id
        bus = self.bus
        cyc = book.cycle
        stop_cid = self.ids(cyc, -1, "stop")
        tp_cid = self.ids(cyc, -1, "take_profit")
        stop = await self._exit_price(stop_cid)
        tp = await self._exit_price(tp_cid)
        fside = rec[3]
        price = float(st.avg_price)
        qty = st.filled
        fee = st.fee if st.fee is not None else qty * price * (book.taker_fee if rec[2] is None else book.maker_fee)
        fts = st.ts if st.ts is not None else ts
        side = LONG if fside == "buy" else "short"
        exit_side = "sell" if fside == "buy" else "buy"
        book.open(side, price, qty, fee, fts, stop, tp)
        store.add_fill(rid, GatewayFill(cid, self.symbol, fts, "entry", fside, price, qty, fee, rec[1], None, qty,
                                        price, stop, 1))
        store.set_order_status(cid, "filled", fts)
        self.entry_seq = 0
        store.add_order(stop_cid, rid, cyc, -1, "stop", exit_side, _num(stop), "open", fts)
        self.orders[stop_cid] = ["stop", -1, stop]
        if not _isnan(tp):
            store.add_order(tp_cid, rid, cyc, -1, "take_profit", exit_side, tp, "open", fts)
            self.orders[tp_cid] = ["take_profit", -1, tp]
        store.add_position(rid, fts, qty, price, _num(stop), stop_cid, 1)
        if bus is not None:
            bus.publish(OrderEvent(self.name, self.symbol, fts, stop_cid, "stop", exit_side, _num(stop), "open"))
            if not _isnan(tp):
                bus.publish(OrderEvent(self.name, self.symbol, fts, tp_cid, "take_profit", exit_side, tp, "open"))
            bus.publish(PositionEvent(self.name, self.symbol, fts, side, qty, price, _num(stop), 1))
            bus.publish(FillEvent(self.name, self.symbol, fts, cid, "entry", None, rec[1], fside, price, qty, fee))

    async def _closed_at_venue(self, ts: int) -> None:
        """The venue holds no position though the book does: closed there (stop, take-profit,
        maximum holding). Recorded at the venue's closing fill when it reports one, else at the
        stop's price with the taker fee, reason "sl"."""
        book = self.book
        if book.side is None:
            return
        try:
            got = await self.gateway.fetch_closing_fill("buy" if book.side == LONG else "sell", book.qty)
        except GatewayError as e:
            log.warning("%s %s: the closing fill could not be read (%s): recorded at the stop", self.name,
                        self.symbol, e)
            got = None
        if got is not None:
            price, fee, reason = got.price, got.fee, got.reason or SL
            xts = got.ts if got.ts is not None else ts
        else:
            price = book.stop if _isfinite(book.stop) else book.entry_price
            fee, reason, xts = None, SL, ts
        cyc = book.cycle
        if reason == SL:
            cid, purpose = self.ids(cyc, -1, "stop"), "stop"
        elif reason == TP:
            cid, purpose = self.ids(cyc, -1, "take_profit"), "take_profit"
        else:                                    # "time" (the maximum holding)
            cid, purpose = self.ids(cyc, -1, "exit"), "exit"
        self._record_exit(cid, purpose, price, reason, fee, xts)

    def _record_exit(self, cid: str, purpose: str, price: float, reason: str, fee: float | None, ts: int) -> None:
        book = self.book
        store = self.store
        rid = self.runner_id
        bus = self.bus
        cyc = book.cycle
        side = self._exit_side()
        qty = book.qty
        if fee is None:
            fee = qty * price * book.taker_fee
        trade = book.close(ts, price, reason, fee)
        store.add_fill(rid, GatewayFill(cid, self.symbol, ts, purpose, side, price, qty, fee, -1, reason))
        store.add_order(cid, rid, cyc, -1, purpose, side, price, "filled", ts)
        for other in (self.ids(cyc, -1, "stop"), self.ids(cyc, -1, "take_profit")):
            if other != cid and self.orders.pop(other, None) is not None:
                store.set_order_status(other, "cancelled", ts)
        self.orders.pop(cid, None)
        store.add_position(rid, ts, 0.0, None, None, None, 0)
        store.add_cycle(rid, cyc, trade)
        if bus is not None:
            bus.publish(PositionEvent(self.name, self.symbol, ts, trade.side, 0.0, None, None, 0))
            bus.publish(FillEvent(self.name, self.symbol, ts, cid, "exit", reason, -1, side, price, qty, fee))

    # ---------------------------------------------------------------- restore
    def restore(self, open_orders: dict[str, list], entry_seq: int, book: dict | None = None,
                cycles: list[Cycle] | None = None) -> None:
        """The open stop / take-profit rows, the entry attempt counter and the book (its
        `SingleBook.snapshot()` and the closed trades)."""
        self.orders = {cid: list(rec) for cid, rec in open_orders.items() if rec[0] in ("stop", "take_profit")}
        self.entry_seq = int(entry_seq)
        if book is not None:
            self.book.restore(book, cycles or [])
