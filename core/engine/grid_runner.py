"""GridRunner: one grid strategy on one (symbol, timeframe), on any venue — the simulated one
(paper, replays) or an exchange (live). There is one runner and one executor for both; the
venue behind the `Gateway` contract is the only difference.

Per closed candle t (the same steps in the same order as `core.backtest.event_engine`, so a
replay on the simulated venue equals the backtest to the last bit):

1. the venue goes through candle t: the simulated venue matches the orders resting since the
   close of t−1 along the candle's path; an exchange already did (`venue.on_candle`);
2. the executor applies what happened (`poll`: entry fills, the stop placed or re-sized, a
   position the venue closed) and, where the take-profit is client-side, checks it against
   the close;
3. candle t joins the history; the strategy quotes candle t+1 (`on_candle_open`), and the
   executor makes the venue's orders match the quote (`sync_orders`);
4. the equity at the close (cash + unrealised P&L) is recorded (then `on_equity`, the risk
   hook), with the cursor. With an in-process venue the whole candle is one SQLite transaction
   that also holds the venue's state; with an exchange every step commits on its own before
   the call it announces (write-ahead).

Between candles (live: the engine's protection loop): `tick()` polls fills and the
take-profit against the mark price, `verify_stops()` checks that the venue still holds the
stop, `on_ticker(price)` checks the client-side take-profit at once.

Parameters at runtime (`apply_params`, an operator's command): when the runner is flat (no
position, no entry filled even in part, nothing of unknown outcome, and trading) the resting
orders are cancelled and the grid is rebuilt at once with the new params (quoted from the
history, placed for the next candle); otherwise the params are stored as pending
(runner_control) and applied in the candle where the runner is flat again (after the poll that
records the cycle's exit, before the next quote), so the cycle in progress keeps its params to
the end. The simulated venue follows through its `retune` hook (its matching engine sizes and
stops by the strategy); an exchange needs nothing.

Life cycle: `restore(history_rows)` (book, orders, cursor and the venue's state from the
store; the strategy's history from the stored candles), `connect()` (the venue's account
checks, then `core.executor.reconcile.reconcile`; until it completes the runner does NOT trade
and `state` says why), then candles. At the end of a replay (`finish`) an open cycle is closed
at the last close, reason "end".

All venue work of one runner is serialised by `lock`. Times ms UTC, money USDT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from typing import Any, Callable, Iterable

from core.engine.runner_base import RunnerBase
from core.events.bus import AlertEvent, EventBus, HealthEvent
from core.executor.grid_executor import FILLED, GridExecutor, halt_priority, wall_ms
from core.executor.kill_switch import KillSwitch
from core.executor.protection import Protection, UnprotectedPosition
from core.executor.reconcile import AccountInUse, reconcile
from core.executor.state_store import StateStore
from core.model.account import Account
from core.model.errors import AccountModeError, GatewayError
from core.model.fills import END
from core.model.position import PositionBook
from core.strategies import registry
from core.strategies.base import GridStrategy

log = logging.getLogger(__name__)

#: longest a live candle waits for its funding-rate refresh, s (grid_funding; the retries of a
#: failing exchange could otherwise hold the candle's order updates for a minute)
FUNDING_REFRESH_BUDGET_S = 5.0

#: runner states
CONNECTING, READY, RECONCILING, BLOCKED, HALTED = "connecting", "ready", "reconciling", "blocked", "halted"


class GridRunner(RunnerBase):
    """See the module docstring.

    Args:
        strategy: registry name of a grid strategy. params: its parameters (missing = defaults).
        symbol, timeframe: the series it trades (live: the exchange's unified swap symbol).
        account: the runner's capital (USDT; live: capped by the venue's balance at the first
            connect), leverage and fees.
        store, kill_switch, bus: the engine's.
        venue: the runner's `Gateway` (`core.venues.sim.grid_venue.SimGridVenue` or an
            exchange's), or a factory `(ids) -> Gateway` (the simulated venue names its stop
            with the runner's client ids).
        mode: "paper" | "live" (the runner's identity in the store; the venue decides the rest).
        alert: `(level, message)` callback for critical findings (may be async).
        id_prefix: client order id prefix (exchanges.yaml client_order_prefix).
        stop_retries: stop placement attempts before closing at market.
        risk_gate: optional `core.executor.risk_gate.RiskGate`.
        on_equity: `(ts) -> None` after each equity point (risk limits).
        clock_ms: wall clock, ms UTC (live records).
        sizing_reserve: fraction of the cash kept out of each cycle's sizing (0: the backtest's).
        funding: (ts int64 ms UTC, rate) funding-rate series of the perpetual, or a live series
            (`core.data.funding_stream.FundingRecorder`, refreshed while running), bound to the
            strategy (`GridStrategy.bind_market`; grid_funding's gate needs it).
    """

    def __init__(self, strategy: str, params: dict, symbol: str, timeframe: str, account: Account,
                 store: StateStore, kill_switch: KillSwitch, bus: EventBus | None = None, *,
                 venue: Any, mode: str = "paper", alert: Callable[[str, str], Any] | None = None,
                 id_prefix: str = "rd", stop_retries: int = 3, risk_gate: Any = None,
                 on_equity: Callable[[int], None] | None = None, clock_ms: Callable[[], int] = wall_ms,
                 publish_candles: bool = True, sizing_reserve: float = 0.0, adopt_history: bool = False,
                 funding: Any = None) -> None:
        strat = registry.create(strategy, params)
        if not isinstance(strat, GridStrategy):
            raise TypeError(f"{strategy}: not a grid strategy")
        self.funding = funding          # (ts, rate) of the perpetual, for grid_funding (None: its gate stays closed)
        strat.bind_market(timeframe, funding)
        self._init_runner(strategy, strat, symbol, timeframe, account, store, kill_switch, bus, mode, id_prefix,
                          publish_candles, on_equity)
        self.venue = venue(self.ids) if callable(venue) and not hasattr(venue, "place_order") else venue
        self.live = bool(self.venue.external)
        self.clock_ms = clock_ms
        self.book = PositionBook(strat.side, strat.num_levels, account)
        self._alert_cb = alert
        self.protection = Protection(self.venue, self._alert, attempts=stop_retries, clock_ms=clock_ms)
        self.executor = GridExecutor(self.runner_id, strat, symbol, self.venue, self.ids, store, bus, kill_switch,
                                     self.book, self.protection, risk_gate, clock_ms, sizing_reserve)
        self.executor.cursor_of = lambda: (self.cursor, self.n_candles, self.last_close)
        self.state = CONNECTING
        self.state_reason = "not connected yet"
        self.lock = asyncio.Lock()
        self.last_report = None
        self.unprotected_since: float | None = None     # loop time when the position lost its stop
        self.adopt_history = adopt_history
        self.busy_since: float | None = None

    @property
    def gateway(self) -> Any:
        """The runner's venue (the name the console and older code use)."""
        return self.venue

    def _alert(self, level: str, message: str) -> Any:
        if self.bus is not None:
            self.bus.publish(AlertEvent(level, f"{self.symbol}: {message[:120]}", message, "executor"))
        if self._alert_cb is not None:
            return self._alert_cb(level, message)
        return None

    def _health(self, state: str, detail: str) -> None:
        if self.bus is not None:
            self.bus.publish(HealthEvent("executor", state, f"{self.name} {self.symbol}: {detail}"))

    # ---------------------------------------------------------------- warm-up / resume
    def restore(self, history_rows: Iterable[tuple] | None = None) -> bool:
        """Load the stored book, orders, cursor and (in-process venues) the venue's state;
        rebuild the history from `history_rows` ((ts, o, h, l, c), oldest first; rows after the
        cursor are ignored). Returns True when there was state."""
        st = self.store.load_state(self.runner_id)
        cycles = self.store.load_cycles(self.runner_id) if st is not None else []
        venue_state = self.executor.restore(st["grid"] if st else None, cycles)
        if st is not None:
            self.cursor = st["cursor_ts"]
            self.n_candles = st["n_candles"]
            self.last_close = st["last_close"]
            self.finished = st["finished"]
            self.equity_last = self.book.equity(self.last_close if self.last_close is not None else math.nan)
            if not self.venue.external and venue_state is not None:
                self.venue.restore(venue_state, cycles, self.store.open_orders(self.runner_id))
        if history_rows is not None:
            for row in history_rows:
                ts, o, h, lo, c = row[:5]
                if self.cursor is None or ts <= self.cursor:
                    self.history.append(ts, o, h, lo, c)
        if st is not None and self.history.close and self.strategy.on_candle_open(self.history):
            self.executor.take_profit = self.strategy.take_profit
        if st is not None:
            log.info("%s %s: resumed after candle %s (%d candles, %d cycles, cash %.2f)", self.name, self.symbol,
                     self.cursor, self.n_candles, len(self.book.cycles), self.book.cash)
        return st is not None

    async def connect(self) -> bool:
        """Start the venue (account checks) and reconcile. True when ready to trade.

        Raises:
            AccountInUse, AccountModeError: refuse to trade (the engine stops).
        """
        async with self.lock:
            self.state = RECONCILING
            try:
                await self.venue.start()
                if self.venue.external and self.store.load_state(self.runner_id) is None:
                    bal = await self.venue.fetch_balance()
                    if bal < self.book.cash:
                        log.warning("%s %s: the account holds %.2f USDT, less than the configured capital %.2f: "
                                    "sizing on %.2f", self.name, self.symbol, bal, self.book.cash, bal)
                        self.book.cash = bal
                    self.equity_last = self.book.cash
                    self.executor.save_state()
                rep = await reconcile(self.executor, self.clock_ms(), alert=self._alert,
                                      adopt_history=self.adopt_history)
            except (AccountInUse, AccountModeError):
                self.state, self.state_reason = BLOCKED, "refused"
                raise
            except UnprotectedPosition as e:
                self.state, self.state_reason = HALTED, str(e)[:200]
                self._health("down", "UNPROTECTED POSITION")
                return False
            except GatewayError as e:
                self.state_reason = f"reconciliation failed: {e}; not trading, retrying"
                log.error("%s %s: %s", self.name, self.symbol, self.state_reason)
                self._health("degraded", self.state_reason)
                return False
            self.last_report = rep
            if rep.blocked:
                self.state, self.state_reason = BLOCKED, rep.blocked
                self._health("degraded", rep.blocked)
                return False
            self.state, self.state_reason = READY, f"reconciled ({len(rep.actions)} actions)"
            if self.venue.external:
                self._health("ok", self.state_reason)
            return True

    # ---------------------------------------------------------------- per candle
    async def on_candle(self, ts: int, o: float, h: float, lo: float, c: float) -> None:
        """Process one closed candle (skipped at or before the cursor); see the module docstring."""
        if self.cursor is not None and ts <= self.cursor:
            return
        refresh = getattr(self.funding, "on_candle_closed", None)
        if refresh is not None:     # a live funding series (FundingRecorder): the rates settled by this
            try:                    # close, before step 3 quotes t+1 on them (as the backtest reads them)
                await asyncio.wait_for(refresh(ts), FUNDING_REFRESH_BUDGET_S)
            except asyncio.TimeoutError:   # the candle's orders must not wait on it: the known rates decide
                log.error("%s %s: the funding-rate refresh took over %.0f s and was abandoned for this candle; "
                          "the gate reads the rates known (none over 16 h old)", self.name, self.symbol,
                          FUNDING_REFRESH_BUDGET_S)
            except Exception:       # e.g. storing the rates failed: the gate reads what is known (fail closed)
                log.exception("%s %s: refreshing the funding rates failed", self.name, self.symbol)
        ex = self.executor
        venue = self.venue
        store = self.store
        own_tx = not venue.external
        async with self.lock:
            if own_tx:
                store.begin()
            try:
                now = ts if own_tx else self.clock_ms()
                trading = self.state == READY
                if trading:
                    busy = ex.symbol_busy
                    if busy is not None and self.book.qty <= 0 and ex.orders and busy():
                        await self._guarded(ex.cancel_entries(now))   # another runner took the symbol meanwhile
                    await venue.on_candle(ts, o, h, lo, c)
                    await self._guarded(ex.poll(now))
                    if not venue.rests_take_profit:
                        await self._guarded(ex.on_mark(c, now))
                    if self.pending_params is not None and self.is_flat():
                        await self._apply_pending(now)
                self.history.append(ts, o, h, lo, c)
                self.last_close = c
                self.equity_last = self.book.equity(c)       # the account as the risk check sees it
                if self.strategy.on_candle_open(self.history) and trading:
                    await self._guarded(ex.sync_orders(now))
                eq = self.book.equity(c)
                self.cursor = ts
                self.n_candles += 1
                self.equity_last = eq
                with store.transaction():
                    store.add_equity(self.runner_id, ts, eq)
                    if self.on_equity is not None:
                        self.on_equity(ts)
                    if ex.dirty or self.n_candles == 1 or not own_tx:
                        self._save()
                    else:
                        store.save_cursor(self.runner_id, ts, self.n_candles, c)
                if own_tx:
                    store.commit()
            except BaseException:
                if own_tx:
                    store.rollback()
                raise
        self._after_candle(ts, o, h, lo, c, eq)

    def _save(self) -> None:
        grid = self.executor.state()
        if not self.venue.external:
            grid["venue"] = self.venue.snapshot()
        self.store.save_state(self.runner_id, self.cursor, self.n_candles, self.last_close, grid, self.finished)
        self.executor.dirty = False

    async def _guarded(self, coro) -> Any:
        """Run one venue step. On an exchange a venue failure is logged and retried on the
        next call (an unprotected position is already halted and alerted by the executor); on
        the simulated venue any failure is a bug and propagates."""
        if not self.venue.external:
            return await coro
        try:
            return await coro
        except UnprotectedPosition:
            self._health("down", "UNPROTECTED POSITION")
        except GatewayError as e:
            log.warning("%s %s: exchange step failed: %s (retried)", self.name, self.symbol, e)
            self._health("degraded", str(e)[:200])
        return None

    async def tick(self) -> None:
        """Between candles: fills, stop-outs and the take-profit against the mark price."""
        if self.state != READY or not self.venue.external:
            return
        async with self.lock, self._busy():
            now = self.clock_ms()
            await self._guarded(self.executor.poll(now))
            if self.book.qty > 0 and not self.venue.rests_take_profit:
                mark = await self._guarded(self.venue.fetch_mark_price())
                if mark is not None:
                    await self._guarded(self.executor.on_mark(mark, now))

    async def on_ticker(self, price: float) -> None:
        """A ticker push (last price): the client-side take-profit, checked without waiting for
        the poll. Cheap when flat or not touched (no venue call, no lock)."""
        book = self.book
        tp = self.executor.take_profit
        if self.state != READY or book.qty <= 0 or not (math.isfinite(tp) and math.isfinite(price)):
            return
        if (price >= tp) if book.side == "long" else (price <= tp):
            async with self.lock:
                await self._guarded(self.executor.on_mark(price, self.clock_ms()))

    async def verify_stops(self) -> None:
        """The periodic protection check (and a halted runner's next attempt to protect)."""
        if self.state not in (READY, HALTED) or not self.venue.external:
            return
        async with self.lock, self._busy():
            await self._guarded(self.executor.verify_stops(self.clock_ms()))

    @contextlib.asynccontextmanager
    async def _busy(self):
        """Marks a venue round in progress (`busy_since`, monotonic s): a protection loop waiting
        on the venue is slow, not dead."""
        self.busy_since = time.monotonic()
        try:
            yield
        finally:
            self.busy_since = None

    @property
    def halted(self) -> str | None:
        """Why the runner refuses new entries until protection is back, or None."""
        return self.executor.halted

    async def halt(self, why: str, timeout_s: float = 10.0) -> int:
        """Refuse new entries at once (persisted, no venue call needed), then cancel the resting
        entries under the runner's lock (given up after `timeout_s` when a venue call holds it;
        the next halt or poll retries). The stop stays. Returns how many entries were cancelled."""
        ex = self.executor
        if ex.halted is None or halt_priority(why) > halt_priority(ex.halted):
            ex.halted = why
            with self.store.transaction():
                ex.save_state()
            log.critical("%s %s HALTED (%s): entries refused and cancelled, stop kept", self.name, self.symbol, why)
            self._alert("critical", f"{self.name} halted: {why}; entries cancelled and refused, stop kept")
            self._health("down", f"halted: {why}")
        try:
            async with asyncio.timeout(timeout_s):
                async with self.lock:
                    return await ex.halt(ex.halted or why, self._now())
        except (TimeoutError, GatewayError) as e:
            log.error("%s %s: entries not cancelled yet while halted (%s): retried", self.name, self.symbol, e)
            return 0

    def unhalt(self, reasons: tuple[str, ...] | None = None) -> None:
        """Lift a halt whose cause is gone (only when its reason is one of `reasons`, None: any):
        entries are placed again from the next quote."""
        if self.executor.halted is not None and (reasons is None or self.executor.halted in reasons):
            self.executor.unhalt(self._now(), reasons)
            self._health("ok", "no longer halted")

    # ---------------------------------------------------------------- commands
    async def finish(self) -> None:
        """End of the replayed data: close an open position at the last close ("end"), once.
        A live venue has no end of data: positions keep their stops."""
        if self.finished or self.cursor is None or self.venue.external:
            return
        store = self.store
        async with self.lock:
            with store.transaction():
                if await self.executor.flatten(self.cursor, END, self.last_close) is not None:
                    self.equity_last = self.book.cash
                    store.add_equity(self.runner_id, self.cursor, self.equity_last)
                self.finished = True
                self._save()

    async def cancel_entries(self) -> int:
        async with self.lock:
            now = self._now()
            with self.store.transaction():
                n = await self._guarded(self.executor.cancel_entries(now)) or 0
                if not self.venue.external:
                    self._save()
            return n

    async def flatten(self, reason: str = "kill") -> None:
        """Cancel resting entries and close the position at market (the simulated venue: at the
        last close), recorded like any exit."""
        if self.last_close is None:
            return
        async with self.lock:
            now = self._now()
            with self.store.transaction():
                await self._guarded(self.executor.cancel_entries(now))
                await self._guarded(self.executor.flatten(now, reason, self.last_close))
                self.equity_last = self.book.equity(self.last_close)
                if not self.venue.external:
                    self._save()

    def _now(self) -> int:
        return self.clock_ms() if self.venue.external else (self.cursor or 0)

    # ---------------------------------------------------------------- parameters at runtime
    def is_flat(self) -> bool:
        """True when the params may change: no position, no resting entry filled even in part,
        no order or exit of unknown outcome, no fill waiting to be booked."""
        ex = self.executor
        return (self.book.qty <= 0 and not ex.unknown and ex.pending_exit is None and not ex._order_tries
                and all(rec[FILLED] <= 0 for rec in ex.orders.values()))

    async def apply_params(self, params: dict, actor: str) -> str:
        """Trade with `params` (the strategy's full, validated params): "applied" (flat: resting
        orders cancelled, the grid rebuilt with them at once), "pending" (stored, applied at the
        next flat moment; replaces earlier pending params) or "unchanged" (they are the ones
        traded; pending params are dropped). Persisted before it returns (module docstring)."""
        new = dict(params)
        async with self.lock:
            now = self._now()
            with self.store.transaction():
                if new == dict(self.strategy.params):
                    if self.pending_params is not None:
                        self.store.save_runner_control(*self._control_key(), pending_params=None, pending_by=None,
                                                       pending_ms=None)
                        self.pending_params = self.pending_by = None
                    return "unchanged"
                if self.state == READY and self.is_flat() and await self._apply_now(new, actor, now, quote=True):
                    state = "applied"
                else:
                    self.store.save_runner_control(*self._control_key(), pending_params=new, pending_by=actor,
                                                   pending_ms=wall_ms())
                    self.pending_params, self.pending_by = new, actor
                    state = "pending"
                if not self.venue.external:
                    self._save()
        if state == "applied":
            log.warning("%s %s: params %s applied by %s", self.name, self.symbol, new, actor)
            self._publish_control("params_applied", actor, "applied at once (flat)", new)
        else:
            log.warning("%s %s: params %s pending (by %s) until flat", self.name, self.symbol, new, actor)
            self._publish_control("params_pending", actor, "applied at the next flat moment", new)
        return state

    async def _apply_pending(self, now: int) -> None:
        """In a candle, flat again: apply the pending params (the quote follows in the candle)."""
        params, actor = self.pending_params, self.pending_by or "operator"
        if await self._apply_now(params, actor, now, quote=False):
            log.warning("%s %s: pending params %s applied (flat again)", self.name, self.symbol, params)
            self._publish_control("params_applied", actor, "applied when flat again", params)

    async def _apply_now(self, params: dict, actor: str, now: int, quote: bool) -> bool:
        """Cancel every resting order, swap the strategy for one with `params`, persist (the
        runner's params, runner_control), and with `quote` quote and place the new grid. False
        (nothing swapped) when an order could not be cancelled or a fill turned up meanwhile."""
        from core.strategies import registry

        ex = self.executor
        for cid in list(ex.orders):
            if await self._guarded(ex._cancel(cid, now)) is not True:
                return False
        if ex.orders or not self.is_flat():
            return False
        strat = registry.create(self.name, params)
        strat.bind_market(self.timeframe, self.funding)
        self.strategy = strat
        ex.strategy = strat
        ex.take_profit = math.nan
        ex._too_small.clear()
        ex._rejected.clear()
        if ex.risk_gate is not None:
            ex.risk_gate.strategy = strat
        book = self.book
        book.n_levels = strat.num_levels
        book.reset_position()
        retune = getattr(self.venue, "retune", None)
        if retune is not None:
            retune(strat)
        applied = dict(strat.params)
        with self.store.transaction():
            self.store.set_runner_params(self.runner_id, applied)
            self.store.save_runner_control(*self._control_key(), params=applied, config_params=self.config_params,
                                           applied_by=actor, applied_ms=wall_ms(), pending_params=None,
                                           pending_by=None, pending_ms=None)
            ex.dirty = True
            if self.venue.external:
                ex.save_state()
        self.pending_params = self.pending_by = None
        if quote and self.history.close and strat.on_candle_open(self.history) and self.state == READY:
            await self._guarded(ex.sync_orders(now))
        return True

    async def close(self) -> None:
        """Close the venue's connection (stops stay at the venue)."""
        try:
            await self.venue.close()
        except Exception as exc:  # noqa: BLE001 - best effort at shutdown
            log.warning("closing the %s venue failed: %s", self.symbol, exc)

    # ---------------------------------------------------------------- queries
    def position(self) -> dict:
        book = self.book
        flat = book.qty <= 0
        return {"strategy": self.name, "symbol": self.symbol, "side": book.side,
                "qty": 0.0 if flat else book.qty, "avg_entry": None if flat else book.avg_entry,
                "stop": None if flat else book.stop, "levels_filled": book.levels_filled,
                "unrealized": 0.0 if flat or self.last_close is None else book.equity(self.last_close) - book.cash}

    def grid_state(self) -> dict:
        book = self.book
        strat = self.strategy
        return {"strategy": self.name, "symbol": self.symbol, "timeframe": self.timeframe,
                "levels": [None if not math.isfinite(x) else x for x in strat.levels],
                "take_profit": strat.take_profit if math.isfinite(strat.take_profit) else None,
                "levels_filled": book.levels_filled, "num_levels": strat.num_levels,
                "stop": book.stop if book.qty > 0 else None, "cycles": len(book.cycles),
                "cash": book.cash, "equity": self.equity_last, "cursor_ts": self.cursor,
                "state": (f"{HALTED}: {self.executor.halted}" if self.executor.halted is not None
                          else "paused" if self.pause_info is not None else self.state),
                "state_reason": self.state_reason,
                "open_orders": [{"client_id": r[5], "purpose": r[0], "level": r[1], "price": r[2]}
                                for r in self.executor.orders.values()]}

