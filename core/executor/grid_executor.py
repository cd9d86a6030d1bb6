"""GridExecutor: one grid runner's orders at a venue, for paper and live alike, write-ahead.

The strategy quotes; this turns the quote into venue orders and the venue's reports into
fills, positions and cycles, kept in the runner's `PositionBook` (`core.model.position`).
The venue is any `core.executor.gateway.Gateway`: the simulated venue (paper, replays) or an
exchange (live). There is no other order path.

Every step is recorded in SQLite BEFORE the call that could change the venue and again
after its answer:

    record intent + order (pending) [COMMIT if the venue is external]  ->  call  ->  record the outcome

With an in-process venue (`external` False) the runner holds one transaction per candle and
saves the venue's state in it, so a crash loses the venue's change together with the
records. Outcomes:

* answered: the order is `open` (or `rejected`, with the reason logged and published);
* `OrderUnknown` (transport error: the order MAY exist): the order stays `pending` and its
  client id goes to `unknown`; the next `poll` looks it up by client id before anything is
  re-sent (found -> adopted, absent -> `cancelled`, never sent);
* `GatewayUnavailable` (not sent): `cancelled`, placed again on the next quote.

Orders (client ids from `ClientIds(cycle, level, purpose)`):

* entries: limit orders at the strategy's `levels`, sized `unit / price` (`sizing_unit()`),
  each carrying the stop the position would want if it filled (`preset_stop`: the venue
  holds a stop from the moment the entry fills); amended when the quote moves (a venue that
  `renames_on_amend` continues the order under `<id>a<n>`, recorded before it is sent);
  none while flat and the strategy's new-cycle gate (`allow_new_cycle`) is closed;
* the stop: the venue-side whole-position stop, placed or re-sized by
  `core.executor.protection.Protection` after every entry fill, at the strategy's `on_fill`;
* the take-profit: a resting order where the venue `rests_take_profit` (simulated), else
  client-side: `on_mark(price)` closes at market when the mark touches it.

`poll(ts)` applies the fills of the open entries (in order), protects the position, and
detects a position the venue closed (stop, or the simulated take-profit), recorded at the
venue's own closing fill. When the position cannot be protected (`UnprotectedPosition`) the
runner is HALTED: entries cancelled and refused until protection is back.

Times are ms UTC; money USDT; prices quote currency; quantities base units.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Callable

from core.events.bus import EventBus, FillEvent, IntentEvent, OrderEvent, PositionEvent, RiskRejection
from core.executor.client_ids import ClientIds, base_client_id
from core.executor.crashpoints import crashpoint
from core.executor.fill_order import Wanted, pick_unbooked
from core.executor.gateway import Gateway
from core.executor.kill_switch import KillSwitch
from core.executor.protection import Protection, UnprotectedPosition
from core.executor.state_store import StateStore
from core.model.account import Account
from core.model.errors import DuplicateClientId, GatewayError, OrderNotFound, OrderRejected, OrderUnknown
from core.model.fills import ENTRY, EXIT, Fill
from core.model.orders import GatewayFill, OrderRequest, OrderState, VenueTrade
from core.model.position import PositionBook
from core.model.sides import LONG, entry_side, exit_side
from core.strategies.base import GridStrategy

log = logging.getLogger(__name__)

#: relative qty difference below which a resting entry is not re-sized
QTY_TOLERANCE = 0.001
#: status of an order the venue never took (not sent, or looked up and absent): its id may be sent again
UNSENT = "unsent"
#: a venue position smaller than the book's by more than this fraction was partly closed at the venue
REDUCED_FRACTION = 1e-6
#: polls in a row that may defer fills whose order the venue's trade list does not show yet
ORDER_TRIES = 3
#: a market exit that closed more than the book holds by this fraction means entry fills not read yet
EXIT_QTY_SLACK = 0.01
#: an entry the venue rejected is not re-sent for this long (ms of the executor's clock)
REJECT_BACKOFF_MS = 3_600_000

#: reasons a runner is halted (no new entries, stop kept) until protection is back; a halt is
#: only replaced by a reason of equal or higher priority (an unprotected position outranks all)
UNPROTECTED = "unprotected: no stop at the venue"
STALE_STOP = "stop not re-sized yet"
_HALT_PRIORITY = {UNPROTECTED: 3, STALE_STOP: 2}


def halt_priority(reason: str | None) -> int:
    """0 for no halt, 3 unprotected, 2 a stop not re-sized, 1 any other reason."""
    return 0 if reason is None else _HALT_PRIORITY.get(reason, 1)

# fields of an order record in `GridExecutor.orders`
PURPOSE, LEVEL, PRICE, QTY, FILLED, VENUE_ID = range(6)


def wall_ms() -> int:
    """The wall clock, ms UTC."""
    return int(time.time() * 1000)


def fee_reserve(account: Account) -> float:
    """Fraction of the cash kept out of a cycle's sizing on a live feed: (maker + 2·taker)·
    leverage, the entry fee plus a taker round trip on the whole notional. With it every level
    of a grid passes `core.risk.limits.margin_required` (notional/leverage + 2·taker·notional)
    against the cash left after the earlier levels, for any number of levels."""
    return (float(account.maker_fee) + 2.0 * float(account.taker_fee)) * float(account.leverage)


def cycle_unit(strategy: GridStrategy, cash: float, leverage: float, reserve: float = 0.0) -> float:
    """USDT notional per level of a new cycle: `strategy.cycle_notional` of the cash less the
    sizing reserve (a fraction, `fee_reserve`), at `leverage`."""
    if reserve:
        cash = cash * (1.0 - reserve)
    return strategy.cycle_notional(cash, leverage)


class GridExecutor:
    """See the module docstring.

    Args:
        runner_id: trading_runners id. strategy: the GridStrategy. symbol: ccxt unified symbol.
        venue: the `Gateway` (started). ids: the runner's client ids. store: the state store.
        bus: event bus or None. kill_switch: the engine's. book: the runner's PositionBook.
        protection: the runner's Protection (same venue). risk_gate: a
            `core.executor.risk_gate.RiskGate` or None. clock_ms: the clock of the records
            (ms UTC). sizing_reserve: fraction of the cash kept out of a cycle's sizing (0: the
            spec's sizing, as the backtest; `fee_reserve(account)` on a live feed).

    Attributes:
        orders: logical client id -> [purpose, level, price, qty, filled_recorded, venue id]
            of the entries (and the simulated take-profit) resting at the venue; the venue id
            differs from the logical one after amends on a venue that renames.
        unknown: venue client ids whose outcome is unknown (looked up by `poll`).
        blocked: why this runner must not trade (external position, ...), or None.
        halted: why new entries are refused until protection is back ("unprotected"), or None.
        paused: who paused the runner and why (an operator's pause: no new entries, the position
            keeps its stop and take-profit and is managed as usual), or None. Set by the runner
            (`core.engine.runner_base.RunnerBase.pause`), persisted in runner_control.
        take_profit: the client-side take-profit price (nan: none).
        unprotected_since: `time.monotonic()` when the runner was halted UNPROTECTED (no stop at
            the venue), None while it is not; `unprotected_s()`, `unprotected_longest_s()`,
            `unprotected_total_s` and `unprotected_windows` describe those windows in this
            process (read by the metrics; every assignment of `halted` keeps them).
    """

    def __init__(self, runner_id: int, strategy: GridStrategy, symbol: str, venue: Gateway, ids: ClientIds,
                 store: StateStore, bus: EventBus | None, kill_switch: KillSwitch, book: PositionBook,
                 protection: Protection, risk_gate: Any = None, clock_ms: Callable[[], int] = wall_ms,
                 sizing_reserve: float = 0.0) -> None:
        self.runner_id = runner_id
        self.strategy = strategy
        self.name = strategy.name
        self.symbol = symbol
        self.venue = venue
        self.ids = ids
        self.store = store
        self.bus = bus
        self.kill = kill_switch
        self.book = book
        self.protection = protection
        self.risk_gate = risk_gate
        self.clock_ms = clock_ms
        self.sizing_reserve = float(sizing_reserve)
        self.orders: dict[str, list] = {}
        self.unknown: set[str] = set()
        self._order_tries = 0             # polls in a row that deferred fills of unclear order
        self._polls = 0                   # polls so far (deferrals count once per poll)
        self._deferred_at = -1            # the poll of the last deferral
        self.blocked: str | None = None
        self._halted: str | None = None
        self.unprotected_since: float | None = None
        self.unprotected_total_s = 0.0            # closed windows only (see unprotected_s)
        self.unprotected_max_s = 0.0              # the longest closed window
        self.unprotected_windows = 0
        self.paused: str | None = None
        self.stop_cid: str | None = None
        self.take_profit = math.nan
        self.symbol_busy: Callable[[], bool] | None = None
        self.cursor_of: Callable[[], tuple] | None = None    # set by the runner: () -> (cursor, n, last close)
        self.pending_exit: tuple[str, int, str] | None = None     # (exit cid, intent id, reason) of an unknown close
        self.dirty = True                                         # the book changed since the last full save
        self._entry_side = entry_side(strategy.side)
        self._exit_side = exit_side(strategy.side)
        self._noted: dict[str, bool] = {}
        self._too_small: set[int] = set()
        self._rejected: dict[str, int] = {}       # logical cid -> ms of the venue's rejection
        self.risk_rejections = 0

    # ---------------------------------------------------------------- halt state
    @property
    def halted(self) -> str | None:
        """Why new entries are refused until protection is back, or None (see the class)."""
        return self._halted

    @halted.setter
    def halted(self, why: str | None) -> None:
        was, now = self._halted == UNPROTECTED, why == UNPROTECTED
        if now and not was:
            self.unprotected_since = time.monotonic()
            self.unprotected_windows += 1
        elif was and not now and self.unprotected_since is not None:
            d = time.monotonic() - self.unprotected_since
            self.unprotected_total_s += d
            self.unprotected_max_s = max(self.unprotected_max_s, d)
            self.unprotected_since = None
        self._halted = why

    def unprotected_s(self) -> float:
        """Seconds the current UNPROTECTED window has lasted (0 when protected)."""
        since = self.unprotected_since
        return 0.0 if since is None else max(0.0, time.monotonic() - since)

    def unprotected_longest_s(self) -> float:
        """The longest UNPROTECTED window so far in this process, the current one included (s)."""
        return max(self.unprotected_max_s, self.unprotected_s())

    # ---------------------------------------------------------------- helpers
    def _tx(self):
        return self.store.transaction()

    def _durable(self) -> None:
        """Make the write-ahead records durable before a call that leaves the process."""
        if self.venue.external and self.store.in_tx:
            self.store.flush()

    def _publish(self, *events: Any) -> None:
        if self.bus is not None:
            for ev in events:
                self.bus.publish(ev)

    def _note_once(self, key: str, on: bool, event: Any) -> None:
        """Publish `event` once per episode of condition `key`."""
        if on and not self._noted.get(key):
            self._publish(event)
        self._noted[key] = on

    def sizing_unit(self) -> float:
        """USDT notional per level: the open cycle's unit, else what a new cycle would use
        (`strategy.cycle_notional` of the cash less the sizing reserve, at the leverage)."""
        book = self.book
        if book.qty > 0:
            return book.unit
        return cycle_unit(self.strategy, book.cash, book.leverage, self.sizing_reserve)

    def entry_notional(self) -> float:
        """USDT notional of the next entry level (the risk rules' view of one entry)."""
        return self.sizing_unit()

    def _cursor(self) -> tuple:
        if self.cursor_of is not None:
            return self.cursor_of()
        st = self.store.load_state(self.runner_id)
        return (None, 0, None) if st is None else (st["cursor_ts"], st["n_candles"], st["last_close"])

    def state(self) -> dict:
        """The executor's part of trading_state.grid (JSON-able)."""
        tp = self.take_profit
        return {"book": self.book.snapshot(), "take_profit": tp if math.isfinite(tp) else None,
                "halted": self.halted}

    def save_state(self) -> None:
        """Persist the book, the venue (in-process venues) and the cursor, in the caller's
        transaction or its own."""
        cursor, n, last = self._cursor()
        grid = self.state()
        snap = getattr(self.venue, "snapshot", None)
        if not self.venue.external and snap is not None:
            grid["venue"] = snap()
        with self._tx():
            self.store.save_state(self.runner_id, cursor, n, last, grid, False)
        self.dirty = False

    def entries_allowed(self) -> bool:
        """False while the runner must not add risk: blocked, halted, paused by an operator, the
        kill switch (global or for this symbol), or another runner holding a position on the symbol."""
        if self.blocked is not None or self.halted is not None or self.paused is not None:
            return False
        if self.kill.blocks(self.symbol):
            return False
        busy = self.symbol_busy
        return not (busy is not None and self.book.qty <= 0 and busy())

    # ---------------------------------------------------------------- 1. orders
    async def sync_orders(self, ts: int) -> None:
        """Make the venue's resting orders match the strategy's quote (module docstring). Not
        while fills of the last poll wait to be booked in the venue's order (`poll`): an amend
        would re-create a partly filled entry whose fills the book does not hold yet."""
        if self._order_tries:
            log.warning("%s %s: resting orders left as they are until the last fills are booked", self.name,
                        self.symbol)
            return
        book = self.book
        strat = self.strategy
        venue = self.venue
        self.take_profit = strat.take_profit
        cyc = book.cycle
        ids = self.ids
        want: dict[str, tuple] = {}
        allowed = self.entries_allowed()
        # the strategy's new-cycle gate (docs/grid_family.md): flat with the gate closed, no
        # entry rests (those resting are cancelled below); in a position it has no effect
        gated = book.levels_filled == 0 and book.qty <= 0 and not strat.allow_new_cycle
        if allowed and not gated:
            unit = self.sizing_unit()
            levels = strat.levels
            lq = book.level_qty
            for i in range(book.levels_filled, strat.num_levels):
                cid = ids(cyc, i, "entry")
                if lq[i] > 0:                       # partly filled: its order stays as it is
                    rec = self.orders.get(cid)
                    if rec is not None:
                        want[cid] = ("entry", i, rec[PRICE], rec[QTY])
                    continue
                p = levels[i]
                if not (p > 0 and unit > 0 and math.isfinite(p) and math.isfinite(unit)):
                    continue
                px = venue.price_of(p)
                q = venue.amount_of(unit / px)
                if q <= 0 or q < venue.min_amount():
                    if i not in self._too_small:
                        self._too_small.add(i)
                        log.warning("%s %s level %d: %.6g USDT at %.6g is below the market's minimum amount: "
                                    "not placed", self.name, self.symbol, i, unit, px)
                    continue
                want[cid] = ("entry", i, px, q)
        elif not allowed:
            self._note_refusal(ts)
        if venue.rests_take_profit:
            want[ids(cyc, -1, "take_profit")] = ("take_profit", -1, strat.take_profit, None)
        orders = self.orders
        if len(orders) != len(want) or any(cid not in want for cid in orders):
            for cid in [c for c in orders if c not in want]:
                await self._cancel(cid, ts)
            for cid, (purpose, level, px, q) in want.items():
                if cid in orders:
                    continue
                if purpose == "entry" and not self._may_place(cid, level, px, ts):
                    continue
                await self._place(cid, purpose, level, px, q, ts)
        amends = None
        for cid, (purpose, level, px, q) in want.items():
            rec = orders.get(cid)
            if rec is None or rec[FILLED] > 0 or len(rec) > 6 or rec[VENUE_ID] in self.unknown:
                continue                            # partly filled, or which id is live is not known yet
            if rec[PRICE] != px or (q is not None and abs(rec[QTY] - q) > QTY_TOLERANCE * q):
                if venue.renames_on_amend:
                    await self._amend_renaming(cid, rec, px, q, ts)
                else:
                    if venue.external:
                        with self._tx():
                            iid = self.store.add_intent(self.runner_id, ts, "amend", cid, px)
                        self._durable()
                    try:
                        await venue.amend_order(rec[VENUE_ID], px, q)
                    except OrderNotFound:
                        await self._refresh(cid, rec, ts)          # filled or cancelled meanwhile
                        continue
                    except GatewayError as e:
                        log.warning("%s: amend to %.6g failed (%s); kept at %.6g", cid, px, e, rec[PRICE])
                        continue
                    rec[PRICE] = px
                    if q is not None:
                        rec[QTY] = q
                    if self.bus is not None:
                        self.bus.publish(IntentEvent(self.name, self.symbol, ts, "amend", rec[VENUE_ID], px, q))
                    if amends is None:
                        amends = []
                    amends.append((px, ts, rec[VENUE_ID]))
                    if venue.external:
                        with self._tx():
                            self.store.intent_done(iid)
        if amends:
            with self._tx():
                self.store.amend_orders(amends)

    def _note_refusal(self, ts: int) -> None:
        if self.kill.blocks(self.symbol):
            self._note_once("kill", True, RiskRejection(self.name, self.symbol, ts, "kill_switch", "entries blocked"))
        else:
            self._noted["kill"] = False
        busy = self.symbol_busy is not None and self.book.qty <= 0 and self.symbol_busy()
        if busy and not self._noted.get("busy"):
            self.risk_rejections += 1
        self._note_once("busy", busy, RiskRejection(self.name, self.symbol, ts, "symbol_busy",
                                                    "another strategy holds a position on the symbol"))
        if self.halted is not None:
            self._note_once("halted", True, RiskRejection(self.name, self.symbol, ts, "halted", self.halted))
        else:
            self._noted["halted"] = False
        if self.paused is not None:
            self._note_once("paused", True, RiskRejection(self.name, self.symbol, ts, "paused", self.paused))
        else:
            self._noted["paused"] = False

    def _may_place(self, cid: str, level: int, price: float, ts: int) -> bool:
        rej = self._rejected.get(cid)
        if rej is not None and ts - rej < REJECT_BACKOFF_MS:
            return False
        if any(base_client_id(u) == cid for u in self.unknown):
            return False                        # looked up by poll() first, never re-sent blindly
        gate = self.risk_gate
        if gate is None:
            return True
        ok = gate.check(self.book, cid, level, price, ts, self.entry_notional())
        self.risk_rejections = gate.rejections
        return ok

    def _preset_stop(self, level: int) -> float | None:
        """The stop an entry order carries (`OrderRequest.preset_stop`): the venue holds it from
        the moment the entry fills until the executor has re-sized the whole-position stop.

        It is the DEEPEST stop the cycle can come to (long: the lowest; short: the highest) if
        the remaining levels from this one on filled at their quoted prices: every entry of the
        quote carries about the same price, so the venue's per-entry stops trigger together and
        close the whole position, never a part of it before the rest. Between the fill and the
        executor's re-sizing (one poll) the stop is looser than the strategy's, never missing.
        Assumes `GridStrategy.on_fill` is a pure function of its arguments (as envelope_dca's)."""
        strat = self.strategy
        book = self.book
        unit = self.sizing_unit()
        q, cost = book.qty, book.cost
        deepest = None
        levels = strat.levels
        for j in range(book.levels_filled, strat.num_levels):
            p = levels[j]
            if not (p > 0 and math.isfinite(p) and unit > 0):
                break
            dq = unit / p
            q += dq
            cost += dq * p
            s = strat.on_fill(j, p, dq, cost / q)
            if j >= level and s > 0 and math.isfinite(s):
                if deepest is None or (s < deepest if book.side == LONG else s > deepest):
                    deepest = s
        return None if deepest is None else self.venue.price_of(deepest)

    async def _place(self, key: str, purpose: str, level: int, price: float, qty: float | None, ts: int) -> None:
        """Place the logical order `key`. A venue refuses a client id it saw before, so an
        order placed again after a cancel (kill switch, halt, risk) continues under the next
        `<key>a<n>` id that never reached the venue. An id recorded `unsent` (the venue never
        took it) is sent again as it is: should the first request arrive late after all, the
        venue's duplicate rule keeps it from becoming a second order."""
        store = self.store
        venue = self.venue
        cyc = self.book.cycle
        side = self._entry_side if purpose == "entry" else self._exit_side
        cid = key
        while (row := store.order(cid)) is not None and row["status"] != UNSENT:
            cid = self.ids.amended(cid)
        with self._tx():
            iid = store.add_intent(self.runner_id, ts, "place", cid, price)
            store.add_order(cid, self.runner_id, cyc, level, purpose, side, price, "pending", ts)
            if qty is not None:
                store.set_order_qty(cid, qty)
        self._durable()
        crashpoint("after_record_before_send")
        preset = self._preset_stop(level) if purpose == "entry" and venue.external else None
        req = OrderRequest(cid, self.symbol, purpose, side, price, level, reduce_only=purpose != "entry", qty=qty,
                           preset_stop=preset)
        try:
            await venue.place_order(req)
        except (OrderUnknown, DuplicateClientId) as e:
            log.warning("%s: outcome unknown (%s): looked up by client id before anything is re-sent", cid, e)
            self.unknown.add(cid)
            return
        except OrderRejected as e:
            self._rejected[key] = ts
            log.warning("%s %s: %s %s rejected by the venue: %s", self.name, self.symbol, purpose, cid, e)
            with self._tx():
                store.set_order_status(cid, "rejected", ts)
                store.intent_done(iid, "failed")
            self._publish(OrderEvent(self.name, self.symbol, ts, cid, purpose, side, price, "rejected"),
                          RiskRejection(self.name, self.symbol, ts, "exchange", str(e)[:200]))
            return
        except GatewayError as e:
            log.warning("%s: not sent (%s); placed again on the next quote", cid, e)
            with self._tx():
                store.set_order_status(cid, UNSENT, ts)
                store.intent_done(iid, "failed")
            return
        crashpoint("after_send_before_record")
        with self._tx():
            store.set_order_status(cid, "open", ts)
            store.intent_done(iid)
        self.orders[key] = [purpose, level, price, qty or 0.0, 0.0, cid]
        self._publish(IntentEvent(self.name, self.symbol, ts, "place", cid, price, qty),
                      OrderEvent(self.name, self.symbol, ts, cid, purpose, side, price, "open"))

    async def _amend_renaming(self, cid: str, rec: list, price: float, qty: float, ts: int) -> None:
        """Amend on a venue that re-creates the order: the new client id is recorded (pending)
        before the amend is sent; the old one is `replaced` once the venue answered."""
        store = self.store
        old = rec[VENUE_ID]
        new = self.ids.amended(old)
        with self._tx():
            iid = store.add_intent(self.runner_id, ts, "amend", new, price)
            store.add_order(new, self.runner_id, self.book.cycle, rec[LEVEL], rec[PURPOSE], self._entry_side, price,
                            "pending", ts)
            store.set_order_qty(new, qty)
        self._durable()
        crashpoint("after_record_before_send")
        try:
            await self.venue.amend_order(old, price, qty, new_client_id=new)
        except OrderUnknown as e:
            log.warning("%s -> %s: amend outcome unknown (%s): looked up before anything else", old, new, e)
            self.unknown.add(new)
            rec[VENUE_ID] = new                 # the lookup decides which of the two is live
            rec.append(old)
            return
        except OrderNotFound:
            with self._tx():
                store.set_order_status(new, "cancelled", ts)
                store.intent_done(iid, "failed")
            await self._refresh(cid, rec, ts)
            return
        except GatewayError as e:
            log.warning("%s: amend to %.6g failed (%s); kept at %.6g", old, price, e, rec[PRICE])
            with self._tx():
                store.set_order_status(new, "cancelled", ts)
                store.intent_done(iid, "failed")
            return
        crashpoint("after_send_before_record")
        with self._tx():
            store.set_order_status(old, "replaced", ts)
            store.set_order_status(new, "open", ts)
            store.intent_done(iid)
        rec[VENUE_ID], rec[PRICE], rec[QTY] = new, price, qty
        self._publish(IntentEvent(self.name, self.symbol, ts, "amend", new, price, qty))

    async def _cancel(self, cid: str, ts: int) -> bool:
        """Cancel one resting order; record fills that happened before. False when the venue
        could not be asked (retried on the next call)."""
        rec = self.orders.get(cid)
        if rec is None:
            return True
        vid = rec[VENUE_ID]
        external = self.venue.external
        if external:
            with self._tx():
                iid = self.store.add_intent(self.runner_id, ts, "cancel", vid, None)
            self._durable()
        try:
            await self.venue.cancel_order(vid)
        except OrderNotFound:
            pass
        except GatewayError as e:
            log.warning("%s: cancel failed (%s); retried later", vid, e)
            if external:
                with self._tx():
                    self.store.intent_done(iid, "failed")
            return False
        if external:
            with self._tx():
                self.store.intent_done(iid)
        if rec[PURPOSE] == "entry":
            await self._refresh(cid, rec, ts, cancelled=True)
        else:
            self.orders.pop(cid, None)
            with self._tx():
                self.store.set_order_status(vid, "cancelled", ts)
            self._publish(OrderEvent(self.name, self.symbol, ts, vid, rec[PURPOSE], self._exit_side, rec[PRICE],
                                     "cancelled"))
        return True

    async def cancel_entries(self, ts: int) -> int:
        """Cancel every resting entry now (kill switch, halt). Returns how many were cancelled."""
        n = 0
        for cid in [c for c, r in self.orders.items() if r[PURPOSE] == "entry"]:
            if await self._cancel(cid, ts):
                n += 1
        return n

    # ---------------------------------------------------------------- 2. fills
    async def poll(self, ts: int) -> bool:
        """Look up unknown orders, apply the fills of the resting entries, protect the position,
        and detect a position the venue closed. True when anything changed.

        When an entry filled more AND the venue's position shrank since the last poll, the fills
        are booked in the venue's own order, read from its trade list
        (`core.executor.fill_order`): a stop-out followed by an entry fill closes the old cycle
        and opens a new one. If the trade list cannot be read or does not add up, nothing is
        booked this time (the position is still protected) and the next poll tries again;
        after `ORDER_TRIES` such polls the fills are booked in the order-level way (entries
        first), with an error logged."""
        before = self._order_tries
        changed = await self._poll(ts)
        if self._order_tries == before:
            self._order_tries = 0                   # nothing was left for later this time
        return changed

    async def _poll(self, ts: int) -> bool:
        self._polls += 1
        changed = False
        for vid in list(self.unknown):
            changed |= await self._resolve_unknown(vid, ts)
        states = [(cid, rec, await self._read_state(rec)) for cid, rec in list(self.orders.items())
                  if rec[PURPOSE] == "entry"]
        book = self.book
        pos = None
        if book.qty > 0:
            pos = await self.venue.fetch_position()
            new = sum(st.filled - rec[FILLED] for _, rec, st in states
                      if st is not None and st.filled > rec[FILLED] + 1e-12)
            if new > 0 and pos.qty < (book.qty + new) * (1.0 - REDUCED_FRACTION):
                why = await self._book_in_venue_order(states, book.qty + new - pos.qty)
                if why is None:
                    self._order_tries = 0
                    crashpoint("after_fill_before_stop")
                    await self.protect(ts)
                    return True
                if self._defer_fills(f"an entry filled and the position shrank, but the trade list {why}"):
                    await self.protect(ts)          # the venue's position keeps a stop meanwhile
                    return changed
        if self.pending_exit is not None:
            if await self._resolve_exit(ts):
                return True
            if self.pending_exit is not None:     # executed, but the book misses fills: next poll
                await self.protect(ts)
                return changed
        filled = False
        for cid, rec, st in states:
            filled |= self._apply_state(cid, rec, st, ts)
        if book.qty > 0:
            if pos is None:
                pos = await self.venue.fetch_position()
            if pos.qty == 0:
                await self.exit_seen_flat(ts)
                return True
            if pos.qty < book.qty * (1.0 - REDUCED_FRACTION):
                await self._reduced(book.qty - pos.qty, ts)
                filled = True                       # the stop is re-sized to what is left
        if filled:
            crashpoint("after_fill_before_stop")
            await self.protect(ts)
            changed = True
        return changed

    async def _book_in_venue_order(self, states: list[tuple[str, list, OrderState | None]],
                                   closed: float) -> str | None:
        """Book this poll's entry fills and the venue's closes (`closed` base units) in the order
        of the venue's trade list, each at its own price, fee and time. None when booked, else
        why nothing was booked (the list cannot be read or does not add up)."""
        wanted = [Wanted(cid, st.order_id, rec[VENUE_ID], st.filled - rec[FILLED]) for cid, rec, st in states
                  if st is not None and st.filled > rec[FILLED] + 1e-12]
        side = self._exit_side
        try:
            trades = await self.venue.fetch_recent_trades(
                lambda newest: pick_unbooked(newest, wanted, side, closed)[1])
        except GatewayError as e:
            return f"could not be read ({e})"
        events, complete = pick_unbooked(trades[::-1], wanted, side, closed)
        if not complete:
            return "does not add up yet"
        exit_ids: set[str] = set()
        if self.pending_exit is not None:             # our market exit whose answer was lost
            try:
                est = await self.venue.reconcile_order(self.pending_exit[0])
            except GatewayError as e:
                return f"could not be read (the market exit: {e})"
            exit_ids = {self.pending_exit[0]} | ({est.order_id} if est is not None and est.order_id else set())
        log.warning("%s %s: an entry filled and the position was closed in the same poll: booked in the venue's "
                    "order (%d trades)", self.name, self.symbol, len(events))
        found = {cid: (rec, st) for cid, rec, st in states}
        last = {e.key: i for i, e in enumerate(events) if e.key is not None}
        closes: list[VenueTrade] = []
        for i, e in enumerate(events):
            t = e.trade
            if e.key is None:
                closes.append(t)
                continue
            if closes:
                self._book_close(closes, exit_ids)
                closes = []
            rec, st = found[e.key]
            final = last[e.key] == i
            self._entry_fill(e.key, rec, t.price, t.qty, t.fee, final and st.status == "filled", t.ts)
            rec[FILLED] = st.filled if final else rec[FILLED] + t.qty
            if final and st.status != "open":
                self._finished(e.key, rec, st, t.ts)
        if closes:
            self._book_close(closes, exit_ids)
        return None

    def _book_close(self, trades: list[VenueTrade], exit_ids: set[str] = frozenset()) -> None:
        """The venue closed (part of) the position by `trades` (a stop; the simulated venue's
        take-profit; our market exit whose answer was lost, when a trade belongs to `exit_ids`,
        its client / order ids): a full close records the cycle, a part is a partial close."""
        book = self.book
        q = sum(t.qty for t in trades)
        px = sum(t.price * t.qty for t in trades) / q
        fee = sum(t.fee for t in trades)
        tts = trades[-1].ts
        if book.qty <= 0:
            log.error("%s %s: the venue reports a close of %.6g at %.6g with no position in the book", self.name,
                      self.symbol, q, px)
            return
        if q < book.qty * (1.0 - REDUCED_FRACTION):
            self._book_reduction(q, px, fee, tts)
            return
        ours = self.pending_exit if exit_ids and any(t.client_id in exit_ids or t.order_id in exit_ids
                                                      for t in trades) else None
        if ours is not None:
            cid, iid, reason = ours
            self.pending_exit = None
            with self._tx():
                self.store.intent_done(iid)
            self._record_exit(cid, "exit", px, reason, fee, tts)
            return
        reason = trades[-1].reason or "sl"
        if reason == "tp":
            cid, purpose = self.ids(book.cycle, -1, "take_profit"), "take_profit"
        else:
            cid, purpose = self.stop_cid or self.ids(book.cycle, -1, "stop"), "stop"
        log.warning("%s %s: the venue closed the position (stop %.6g, filled at %.6g)", self.name, self.symbol,
                    book.stop, px)
        self._record_exit(cid, purpose, px, reason, fee, tts)

    async def _reduced(self, qty: float, ts: int) -> None:
        """The venue closed `qty` of the position (a stop an entry carried triggered for its part
        before the whole-position stop was re-sized): booked at the venue's closing fills when it
        reports them, else at the stop's price with the taker fee (reason "sl")."""
        book = self.book
        price = book.stop if math.isfinite(book.stop) and book.stop > 0 else book.avg_entry
        fee = None
        try:
            got = await self.venue.fetch_closing_fill(self._entry_side, qty)
            why = "do not add up yet"
        except GatewayError as e:
            got = None
            why = f"could not be read ({e})"
        if got is None and self._defer_fills(f"part of the position was closed at the venue, but its fills {why}"):
            return
        if got is not None:
            price, fee = got.price, got.fee
        self._book_reduction(qty, price, fee, ts)

    def _book_reduction(self, qty: float, price: float, fee: float | None, ts: int) -> None:
        """Book a partial close of `qty` at `price` (fee USDT; None = the taker fee), reason "sl"."""
        book = self.book
        f = qty * price * book.taker_fee if fee is None else abs(fee)
        book.reduce(qty, price, f)
        book.note_fill(Fill(len(book.fills), EXIT, "sl", -1, self._exit_side, ts, price, qty, f))
        self.dirty = True
        log.warning("%s %s: the venue closed %.6g of the position at %.6g (a stop an entry carried): %.6g left",
                    self.name, self.symbol, qty, price, book.qty)
        cid = self.stop_cid or self.ids(book.cycle, -1, "stop")
        store = self.store
        gf = GatewayFill(cid, self.symbol, ts, "stop", self._exit_side, price, qty, f, -1, "sl", book.qty,
                         book.avg_entry, book.stop, book.levels_filled)
        with self._tx():
            store.add_fill(self.runner_id, gf, store.fill_count(cid))
            store.add_position(self.runner_id, ts, book.qty, book.avg_entry, book.stop, cid, book.levels_filled)
            if self.venue.external:
                self.save_state()
        self._publish(FillEvent(self.name, self.symbol, ts, cid, "exit", "sl", -1, self._exit_side, price, qty, f),
                      PositionEvent(self.name, self.symbol, ts, book.side, book.qty, book.avg_entry, book.stop,
                                    book.levels_filled))

    def _logical(self, vid: str) -> tuple[str, list] | None:
        for cid, rec in self.orders.items():
            if rec[VENUE_ID] == vid or (len(rec) > 6 and rec[6] == vid):
                return cid, rec
        return None

    async def _resolve_unknown(self, vid: str, ts: int) -> bool:
        """An order whose placement (or renaming amend) had no answer: look it up by client id."""
        st = await self.venue.reconcile_order(vid)
        self.unknown.discard(vid)
        store = self.store
        pend = [i for i in store.pending_intents(self.runner_id) if i["client_id"] == vid]
        found = self._logical(vid)
        if st is None:
            log.info("%s was never placed: marked unsent", vid)
            with self._tx():
                store.set_order_status(vid, UNSENT, ts)
                for i in pend:
                    store.intent_done(i["id"], "failed")
            if found is not None and len(found[1]) > 6:        # a renaming amend that did not happen
                rec = found[1]
                rec[VENUE_ID] = rec.pop()
            return False
        row = store.order(vid)
        with self._tx():
            store.set_order_status(vid, "open", ts)
            for i in pend:
                store.intent_done(i["id"])
        if found is not None and len(found[1]) > 6:            # the amend went through: the old one is gone
            rec = found[1]
            old = rec.pop()
            with self._tx():
                store.set_order_status(old, "replaced", ts)
            if row is not None:
                rec[PRICE], rec[QTY] = row["price"], row["qty"] or rec[QTY]
            return await self._refresh(found[0], rec, ts)
        if row is None:                     # pragma: no cover - unknown ids are always recorded first
            return False
        base = base_client_id(vid)
        if base in self.orders:             # the level rests under another id: this one is tracked (and
            base = vid                      # cancelled by the next sync, its fills booked) on its own
        rec = [row["purpose"], row["level"], row["price"], row["qty"] or st.qty or 0.0, 0.0, vid]
        self.orders[base] = rec
        self._publish(OrderEvent(self.name, self.symbol, ts, vid, row["purpose"], row["side"], row["price"], "open"))
        return await self._refresh(base, rec, ts) if rec[PURPOSE] == "entry" else False

    async def _refresh(self, cid: str, rec: list, ts: int, cancelled: bool = False) -> bool:
        """Apply new fills of one entry order; drop it when done. True when it filled more."""
        return self._apply_state(cid, rec, await self._read_state(rec), ts, cancelled)

    def _finished(self, cid: str, rec: list, st: OrderState, ts: int, cancelled: bool = False) -> None:
        """An entry that filled (part of) its quantity is done at the venue: dropped; a partly
        filled one that was cancelled (not "filled") gets its final status in the store too."""
        self.orders.pop(cid, None)
        if st.status == "filled":
            return
        status = "cancelled" if cancelled or st.status in ("cancelled", "rejected", "open") else st.status
        vid = rec[VENUE_ID]
        with self._tx():
            self.store.set_order_status(vid, status, ts)
        self._publish(OrderEvent(self.name, self.symbol, ts, vid, "entry", self._entry_side, rec[PRICE], status))

    async def _read_state(self, rec: list) -> OrderState | None:
        """The venue's state of one of our orders, None when the venue does not know it."""
        try:
            return await self.venue.fetch_order_state(rec[VENUE_ID])
        except OrderNotFound:
            return None

    def _apply_state(self, cid: str, rec: list, st: OrderState | None, ts: int, cancelled: bool = False) -> bool:
        """Book what `st` says of one entry order beyond what was booked; drop the order when
        done. True when it filled more."""
        vid = rec[VENUE_ID]
        more = False
        if st is not None and st.filled > rec[FILLED] + 1e-12:
            inc = st.filled - rec[FILLED]
            price = float(st.avg_price or rec[PRICE])
            fee = None if st.fee is None else (st.fee if rec[FILLED] == 0 else st.fee * inc / st.filled)
            done = st.status != "open" or cancelled
            self._entry_fill(cid, rec, price, inc, fee, st.status == "filled", st.ts if st.ts is not None else ts)
            rec[FILLED] = st.filled
            more = True
            if done:
                self._finished(cid, rec, st, ts, cancelled)
        elif st is None or st.status != "open" or cancelled:
            self.orders.pop(cid, None)
            status = "cancelled" if st is None or st.status in ("cancelled", "rejected") or cancelled else st.status
            with self._tx():
                self.store.set_order_status(vid, status, ts)
            self._publish(OrderEvent(self.name, self.symbol, ts, vid, "entry", self._entry_side, rec[PRICE], status))
        return more

    def _entry_fill(self, cid: str, rec: list, price: float, qty: float, fee: float | None, complete: bool,
                    ts: int) -> None:
        book = self.book
        level = rec[LEVEL]
        if book.qty <= 0:
            book.open_cycle(ts, self.sizing_unit())
        f = qty * price * book.maker_fee if fee is None else abs(fee)
        avg = book.add_entry(level, price, qty, f, complete or book.level_complete(level, rec[QTY] or None))
        book.stop = self.strategy.on_fill(level, price, qty, avg)
        book.note_fill(Fill(len(book.fills), ENTRY, None, level, self._entry_side, ts, price, qty, f))
        self.dirty = True
        cyc = book.cycle
        stop_cid = self.stop_cid or self.ids(cyc, -1, "stop")
        store = self.store
        vid = rec[VENUE_ID]
        gf = GatewayFill(vid, self.symbol, ts, "entry", self._entry_side, price, qty, f, level, None,
                         book.qty, book.avg_entry, book.stop, book.levels_filled)
        with self._tx():
            store.add_fill(self.runner_id, gf, store.fill_count(vid) if self.venue.external else 0)
            if complete:
                store.set_order_status(vid, "filled", ts)
            store.add_order(stop_cid, self.runner_id, cyc, -1, "stop", self._exit_side, book.stop,
                            "open" if self.stop_cid else "pending", ts)
            store.add_position(self.runner_id, ts, book.qty, book.avg_entry, book.stop, stop_cid, book.levels_filled)
            if self.venue.external:
                self.save_state()
        self._publish(FillEvent(self.name, self.symbol, ts, vid, "entry", None, level, self._entry_side, price, qty,
                                f),
                      PositionEvent(self.name, self.symbol, ts, book.side, book.qty, book.avg_entry, book.stop,
                                    book.levels_filled))

    # ---------------------------------------------------------------- 3. protection
    async def protect(self, ts: int) -> str:
        """Make the venue hold the stop of the book's position; "protected", "flat" or "closed"
        (could not protect: closed at market). Raises UnprotectedPosition (the runner is then
        halted: entries cancelled and refused)."""
        book = self.book
        if book.qty <= 0:
            return "flat"
        cyc = book.cycle
        stop_cid = self.stop_cid or self.ids(cyc, -1, "stop")
        exit_cid = self.ids(cyc, -1, "exit")
        try:
            res = await self.protection.ensure_stop(stop_cid, self.venue.price_of(book.stop), exit_cid,
                                                    record=self._record_protection,
                                                    placed=self.stop_cid is not None and self.venue.external)
        except UnprotectedPosition:
            await self.halt(UNPROTECTED, ts)
            raise
        if res.outcome == "protected":
            if res.stop_client_id != self.stop_cid or self.halted is not None:
                self.stop_cid = res.stop_client_id
                with self._tx():
                    self.store.add_order(res.stop_client_id, self.runner_id, cyc, -1, "stop", self._exit_side,
                                         book.stop, "open", ts)
                self._publish(OrderEvent(self.name, self.symbol, ts, res.stop_client_id, "stop", self._exit_side,
                                         book.stop, "open"))
            self.unhalt(ts, (UNPROTECTED, STALE_STOP))
            if self.venue.external:
                await self._settle_unknown_exits(ts)
        elif res.outcome == "stale":
            await self.halt(STALE_STOP, ts)
        elif res.outcome == "closed":
            fill = res.fill
            price = fill.price if fill is not None and fill.price > 0 else book.stop
            self._record_exit(exit_cid, "exit", price, "unprotected", fill.fee if fill is not None else None, ts)
            self.unhalt(ts, (UNPROTECTED, STALE_STOP))
        else:
            await self.exit_seen_flat(ts)
        return res.outcome

    async def _settle_unknown_exits(self, ts: int) -> None:
        """Market closes of this runner whose outcome was never known (an emergency close that
        timed out) while the position is protected again: looked up by client id; never sent
        -> cancelled; executed -> left to the next poll (the venue's position tells)."""
        for row in self.store.orders_by_status(self.runner_id, ("pending",)):
            if row["purpose"] != "exit" or (self.pending_exit and self.pending_exit[0] == row["client_id"]):
                continue
            st = await self.venue.reconcile_order(row["client_id"])
            if st is None or st.status in ("cancelled", "rejected"):
                with self._tx():
                    self.store.set_order_status(row["client_id"], "cancelled", ts)
                    for it in self.store.pending_intents(self.runner_id):
                        if it["client_id"] == row["client_id"]:
                            self.store.intent_done(it["id"], "failed")

    def _record_protection(self, action: str, client_id: str, price: float | None) -> Callable[[str], None]:
        """Write-ahead record of a protection order (a stop placed / re-sized / re-created, an
        emergency close), called by `Protection` BEFORE it sends the order and made durable.
        Returns the function `Protection` calls with the outcome ("done" | "failed" | "unknown")."""
        ts = self.clock_ms()
        store = self.store
        purpose = "exit" if action == "flatten" else "stop"
        new_row = store.order(client_id) is None
        with self._tx():
            iid = store.add_intent(self.runner_id, ts, "flatten:unprotected" if action == "flatten" else action,
                                   client_id, price)
            if new_row:
                store.add_order(client_id, self.runner_id, self.book.cycle, -1, purpose, self._exit_side, price,
                                "pending", ts)
        self._durable()

        def settle(outcome: str) -> None:
            if outcome == "done" and purpose == "exit":
                return                  # pending until the exit is recorded (`_record_exit`): a crash
            with self._tx():            # in between is found by the restart's reconciliation
                store.intent_done(iid, outcome)
                if new_row and outcome == "failed":
                    store.set_order_status(client_id, "cancelled", self.clock_ms())
                elif outcome == "done" and purpose == "stop":
                    store.set_order_status(client_id, "open", self.clock_ms())
        return settle

    async def verify_stops(self, ts: int) -> str | None:
        """Periodic check that the position has its stop (re-created when missing)."""
        if self.book.qty <= 0:
            return None
        if self.protection.wanted is None or self.halted in (UNPROTECTED, STALE_STOP):
            return await self.protect(ts)
        try:
            res = await self.protection.verify_stops(record=self._record_protection)
        except UnprotectedPosition:
            await self.halt(UNPROTECTED, ts)
            raise
        if res is None:
            return "protected"
        if res.outcome == "closed":
            cyc = self.book.cycle
            price = res.fill.price if res.fill is not None and res.fill.price > 0 else self.book.stop
            self._record_exit(self.ids(cyc, -1, "exit"), "exit", price, "unprotected",
                              res.fill.fee if res.fill is not None else None, ts)
        elif res.outcome == "protected" and res.stop_client_id:
            self.stop_cid = res.stop_client_id
            with self._tx():
                self.store.add_order(res.stop_client_id, self.runner_id, self.book.cycle, -1, "stop",
                                     self._exit_side, self.book.stop, "open", ts)
        return res.outcome

    async def halt(self, why: str, ts: int) -> int:
        """Stop adding risk: cancel the resting entries and refuse new ones until `unhalt`
        (the stop, if any, stays). Persisted. Returns how many entries were cancelled."""
        first = self.halted is None
        if halt_priority(why) >= halt_priority(self.halted):
            self.halted = why
        with self._tx():
            self.save_state()
        if first:
            log.critical("%s %s HALTED (%s): entries cancelled and refused, stop kept", self.name, self.symbol, why)
        n = 0
        try:
            n = await self.cancel_entries(ts)
        except GatewayError as e:                 # retried by the next halt / poll
            log.error("%s %s: cancelling entries while halted failed: %s", self.name, self.symbol, e)
        return n

    def unhalt(self, ts: int, reasons: tuple[str, ...] | None = None) -> None:
        """The halt's cause is gone (only when the current reason is one of `reasons`, None: any):
        entries may be placed again from the next quote."""
        if self.halted is None or (reasons is not None and self.halted not in reasons):
            return
        log.warning("%s %s: no longer halted (%s)", self.name, self.symbol, self.halted)
        self.halted = None
        with self._tx():
            self.save_state()

    # ---------------------------------------------------------------- 4. exits
    async def on_mark(self, price: float, ts: int) -> bool:
        """The client-side take-profit: close at market when `price` touches it. True when closed."""
        book = self.book
        tp = self.take_profit
        if book.qty <= 0 or self.venue.rests_take_profit or not (math.isfinite(tp) and tp > 0):
            return False
        if not math.isfinite(price):
            return False
        touched = price >= tp if book.side == LONG else price <= tp
        if not touched:
            return False
        log.info("%s %s: take-profit %.6g touched (mark %.6g): closing at market", self.name, self.symbol, tp, price)
        return await self.flatten(ts, "tp", price) is not None

    async def flatten(self, ts: int, reason: str = "kill", price: float | None = None) -> float | None:
        """Close the position at market (reduce-only), recorded write-ahead. Returns the exit
        price, None when flat or when the outcome is unknown (looked up on the next poll)."""
        book = self.book
        if book.qty <= 0:
            return None
        cyc = book.cycle
        cid = self.ids(cyc, -1, "exit")
        store = self.store
        with self._tx():
            iid = store.add_intent(self.runner_id, ts, f"flatten:{reason}", cid, price)
            store.add_order(cid, self.runner_id, cyc, -1, "exit", self._exit_side, price, "pending", ts)
        self._durable()
        self._publish(IntentEvent(self.name, self.symbol, ts, "flatten", cid, price, book.qty, reason))
        crashpoint("during_tp_close" if reason == "tp" else "after_record_before_send")
        try:
            fill = await self.venue.close_position(cid, ts, price, reason)
        except OrderUnknown as e:
            log.warning("%s: close outcome unknown (%s): looked up by client id on the next poll", cid, e)
            self.pending_exit = (cid, iid, reason)
            return None
        except GatewayError:
            with self._tx():
                store.set_order_status(cid, "cancelled", ts)
                store.intent_done(iid, "failed")
            raise
        if fill is None:                          # flat already: nothing was executed under this id
            with self._tx():
                store.intent_done(iid)
            await self.exit_seen_flat(ts)
            return None
        x = fill.price if fill.price > 0 else (price or book.avg_entry)
        self._record_exit(cid, "exit", x, reason, fill.fee, fill.ts if not self.venue.external else ts)
        return x

    async def _resolve_exit(self, ts: int) -> bool:
        """A market exit whose outcome was unknown: filled -> recorded, absent -> void."""
        cid, iid, reason = self.pending_exit
        st = await self.venue.reconcile_order(cid)
        book = self.book
        if (st is not None and self.venue.external and st.filled > book.qty * (1.0 + EXIT_QTY_SLACK)
                and self._defer_fills(f"the market exit {cid} closed {st.filled:g}, more than the book's "
                                      f"{book.qty:g} (entry fills not read yet)")):
            return False
        self.pending_exit = None
        if st is not None and st.filled > 0 and self.book.qty > 0:
            with self._tx():
                self.store.intent_done(iid)
            self._record_exit(cid, "exit", float(st.avg_price or self.book.avg_entry), reason, st.fee, ts)
            return True
        with self._tx():
            self.store.set_order_status(cid, "cancelled" if st is None else st.status, ts)
            self.store.intent_done(iid, "failed" if st is None else "done")
        return False

    async def exit_seen_flat(self, ts: int, defer: bool = True) -> None:
        """The venue holds no position though the book does: it was closed at the venue (the
        stop; the simulated take-profit). Recorded at the venue's own closing fills, reason "sl"
        unless the venue says otherwise. When the venue's fills cannot be read or do not add up
        yet, nothing is booked (`defer`; the next poll tries again, resting orders are left
        alone meanwhile); after `ORDER_TRIES` polls, or with `defer` False (a restart's
        reconciliation), the exit is booked at the stop's trigger price with the taker fee and
        an error is logged."""
        book = self.book
        if book.qty <= 0:
            return
        cyc = book.cycle
        price = book.stop if math.isfinite(book.stop) and book.stop > 0 else book.avg_entry
        fee = None
        reason = "sl"
        xts = ts
        try:
            got = await self.venue.fetch_closing_fill(self._entry_side, book.qty)
            why = "do not add up yet"
        except GatewayError as e:
            got = None
            why = f"could not be read ({e})"
        if got is None and self._defer_fills(f"the position was closed at the venue, but its fills {why}", defer):
            return
        if got is not None:
            price, fee = got.price, got.fee
            reason = got.reason or "sl"
            if got.ts is not None and not self.venue.external:
                xts = got.ts
        if reason == "tp":
            cid, purpose = self.ids(cyc, -1, "take_profit"), "take_profit"
        else:
            cid, purpose = self.stop_cid or self.ids(cyc, -1, "stop"), "stop"
        if self.venue.external:
            log.warning("%s %s: the exchange closed the position (stop %.6g, filled at %.6g)", self.name,
                        self.symbol, book.stop, price)
        self._record_exit(cid, purpose, price, reason, fee, xts)

    def _defer_fills(self, why: str, defer: bool = True) -> bool:
        """Fills the venue made cannot be booked right now (`why`): True = leave them to the next
        poll (resting orders are left alone until then, `sync_orders`); False = book them the
        fallback way now (after `ORDER_TRIES` polls in a row, or `defer` False), logged as an
        error."""
        if self._deferred_at != self._polls:          # counted once per poll
            self._deferred_at = self._polls
            self._order_tries += 1
        if defer and self._order_tries < ORDER_TRIES:
            log.warning("%s %s: %s: booked at the next poll", self.name, self.symbol, why)
            return True
        log.error("%s %s: %s (%d tries): booked without the venue's fills (the stop's price, the taker fee)",
                  self.name, self.symbol, why, self._order_tries)
        self._order_tries = 0
        return False

    def _record_exit(self, cid: str, purpose: str, price: float, reason: str, fee: float | None, ts: int) -> None:
        book = self.book
        cyc_idx = book.cycle
        q = book.qty
        xfee = q * price * book.taker_fee if fee is None else abs(fee)
        cycle = book.close_cycle(ts, price, reason, xfee)
        book.note_fill(Fill(len(book.fills), EXIT, reason, -1, self._exit_side, ts, price, q, xfee))
        self.strategy.on_exit(reason, price)
        self.dirty = True
        store = self.store
        gf = GatewayFill(cid, self.symbol, ts, purpose, self._exit_side, price, q, xfee, -1, reason)
        stop_cid = self.stop_cid or self.ids(cyc_idx, -1, "stop")
        tp_cid = self.ids(cyc_idx, -1, "take_profit")
        with self._tx():
            store.add_fill(self.runner_id, gf, store.fill_count(cid) if self.venue.external else 0)
            store.add_order(cid, self.runner_id, cyc_idx, -1, purpose, self._exit_side, price, "filled", ts)
            if purpose != "stop":
                store.set_order_status(stop_cid, "cancelled", ts)
            store.add_position(self.runner_id, ts, 0.0, None, None, None, 0)
            store.add_cycle(self.runner_id, cyc_idx, cycle)
            store.intents_done(cid)                  # the market exit's write-ahead intent, if any
            if self.venue.external:                  # stops whose outcome was never known went with the position
                store.void_pending(self.runner_id, cyc_idx, ("stop",), ts)
            if self.venue.external:
                self.save_state()
        if purpose == "take_profit":            # the venue took it; any other exit: cancelled by the next sync
            self.orders.pop(tp_cid, None)
        self.stop_cid = None
        self.protection.wanted = None
        self._publish(FillEvent(self.name, self.symbol, ts, cid, "exit", reason, -1, self._exit_side, price, q, xfee),
                      PositionEvent(self.name, self.symbol, ts, book.side, 0.0, None, None, 0))

    # ---------------------------------------------------------------- restore
    def restore(self, grid: dict | None, cycles: list) -> dict | None:
        """Restore the book, the halt and the resting orders from the store (reconciliation
        then checks them against the venue). Returns the venue's saved state (in-process
        venues), or None."""
        venue_state = None
        if grid is not None:
            if "book" in grid:                                    # this version's layout
                self.book.restore(grid["book"], cycles)
                tp = grid.get("take_profit")
                self.take_profit = math.nan if tp is None else tp
                self.halted = grid.get("halted")
                venue_state = grid.get("venue")
            else:                                                 # earlier layouts: the book's fields at the top
                self.book.restore(grid, cycles)
                tp = grid.get("take_profit")
                self.take_profit = math.nan if tp is None else tp
                venue_state = grid if "level_ids" in grid else None
        self.orders = {}
        for row in self.store.orders_by_status(self.runner_id, ("open",)):
            vid = row["client_id"]
            if row["purpose"] in ("entry", "take_profit"):
                filled = self.store.conn.execute("SELECT COALESCE(SUM(qty), 0) FROM trading_fills WHERE client_id=?",
                                                 (vid,)).fetchone()[0]
                self.orders[base_client_id(vid)] = [row["purpose"], row["level"], row["price"], row["qty"] or 0.0,
                                                    float(filled), vid]
            elif row["purpose"] == "stop" and self.book.qty > 0:
                self.stop_cid = vid
        self.dirty = False
        return venue_state


__all__ = ["GridExecutor", "UnprotectedPosition", "cycle_unit", "fee_reserve", "wall_ms"]
