"""LiveRunner: one grid strategy on one (symbol, timeframe) trading on the exchange.

The live twin of `core.engine.runner.StrategyRunner`, with the same queries (position,
grid_state, equity, cycles) so the engine API, console, alerts and Telegram read both alike.
Its orders go through a `CcxtGateway` via `core.executor.live_executor.LiveGridExecutor`.

Life cycle:
* `restore(history_rows)`: the ledger, open entries and cursor from the store; the strategy's
  history from the stored candles (warm-up before it acts);
* `connect()`: the gateway's start-up checks (margin mode, one-way mode, leverage), then
  `core.executor.reconcile.reconcile`; until it completes the runner does NOT trade
  (`state` says why) and the engine retries it;
* per closed candle (`on_candle`, awaited): apply the fills the exchange reports (`poll`),
  check the client-side take-profit against the close, append the candle, let the strategy
  quote the next candle, sync the entries, record the equity point and the cursor;
* `tick()` between candles (the engine's poll loop): fills, stop-outs, the take-profit
  against the mark price; `verify_stops()` on `stops.recheck_interval_s`;
* `on_ticker(price)`: a ticker push checks the client-side take-profit at once.

All exchange work of one runner is serialised by `lock`. Times ms UTC, money USDT.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any, Callable, Iterable

from core.engine.runner_base import RunnerBase
from core.events.bus import EventBus, HealthEvent
from core.executor.kill_switch import KillSwitch
from core.executor.live_executor import LiveGridExecutor, wall_ms
from core.executor.live_ledger import LiveLedger
from core.executor.protection import Protection, UnprotectedPosition
from core.executor.reconcile import AccountInUse, reconcile
from core.executor.state_store import StateStore
from core.model.account import Account
from core.model.errors import GatewayError
from core.strategies import registry
from core.strategies.base import GridStrategy

log = logging.getLogger(__name__)

#: runner states
CONNECTING, READY, RECONCILING, BLOCKED = "connecting", "ready", "reconciling", "blocked"


class LiveRunner(RunnerBase):
    """See the module docstring.

    Args:
        strategy, params, symbol, timeframe: as StrategyRunner (symbol: the exchange's
            unified swap symbol, e.g. "BTC/USDT:USDT").
        account: the runner's capital (USDT, capped by the exchange balance at connect),
            leverage and fees.
        store, kill_switch, bus: the engine's.
        gateway: a `CcxtGateway` for this symbol (not started yet).
        alert: `(level, message)` callback for critical findings (may be async).
        id_prefix: client order id prefix (exchanges.yaml client_order_prefix).
        stop_retries: stop placement attempts before closing at market.
        risk_gate: optional `core.executor.risk_gate.RiskGate`.
        on_equity: `(ts) -> None` after each equity point (risk limits).
        clock_ms: wall clock, ms UTC.
    """

    live = True

    def __init__(self, strategy: str, params: dict, symbol: str, timeframe: str, account: Account,
                 store: StateStore, kill_switch: KillSwitch, bus: EventBus | None, *, gateway: Any,
                 alert: Callable[[str, str], Any] | None = None, id_prefix: str = "rd", stop_retries: int = 3,
                 risk_gate: Any = None, on_equity: Callable[[int], None] | None = None,
                 clock_ms: Callable[[], int] = wall_ms, publish_candles: bool = True) -> None:
        strat = registry.create(strategy, params)
        if not isinstance(strat, GridStrategy):
            raise TypeError(f"{strategy}: only grid strategies can trade live so far")
        self._init_runner(strategy, strat, symbol, timeframe, account, store, kill_switch, bus, "live", id_prefix,
                          publish_candles, on_equity)
        self.gateway = gateway
        self.clock_ms = clock_ms
        self.ledger = LiveLedger(strat, account)
        self._alert_cb = alert
        self.protection = Protection(gateway, self._alert, attempts=stop_retries, clock_ms=clock_ms)
        self.executor = LiveGridExecutor(self.runner_id, strat, symbol, gateway, self.ids, store, bus, kill_switch,
                                         self.ledger, self.protection, risk_gate, clock_ms)
        self.executor.cursor_of = lambda: (self.cursor, self.n_candles, self.last_close)
        self.state = CONNECTING
        self.state_reason = "not connected yet"
        self.lock = asyncio.Lock()
        self.last_report = None

    # ---------------------------------------------------------------- shared queries
    @property
    def book(self) -> LiveLedger:
        """The runner's account (same attribute names as the paper matching engine)."""
        return self.ledger

    def _alert(self, level: str, message: str) -> Any:
        if self.bus is not None:
            from core.events.bus import AlertEvent
            self.bus.publish(AlertEvent(level, f"{self.symbol}: {message[:120]}", message, "executor"))
        if self._alert_cb is not None:
            return self._alert_cb(level, message)
        return None

    # ---------------------------------------------------------------- warm-up / resume
    def restore(self, history_rows: Iterable[tuple] | None = None) -> bool:
        """Load the stored ledger, open entries and cursor; rebuild the history (rows ts, o, h,
        l, c oldest first, at or before the cursor). True when there was state."""
        st = self.store.load_state(self.runner_id)
        self.executor.restore(st["grid"] if st else None, self.store.load_cycles(self.runner_id))
        if st is not None:
            self.cursor = st["cursor_ts"]
            self.n_candles = st["n_candles"]
            self.last_close = st["last_close"]
            self.equity_last = self.ledger.equity(self.last_close if self.last_close is not None else math.nan)
        if history_rows is not None:
            for row in history_rows:
                ts, o, h, lo, c = row[:5]
                if self.cursor is None or ts <= self.cursor:
                    self.history.append(ts, o, h, lo, c)
        if self.history.close and self.strategy.on_candle_open(self.history):
            self.ledger.take_profit = self.strategy.take_profit
        return st is not None

    async def connect(self) -> bool:
        """Start the gateway (account checks) and reconcile. True when ready to trade.

        Raises:
            AccountInUse, AccountModeError: refuse to trade (the engine stops).
        """
        from core.model.errors import AccountModeError

        async with self.lock:
            self.state = RECONCILING
            try:
                if not getattr(self.gateway, "started", True):
                    await self.gateway.start()
                if self.store.load_state(self.runner_id) is None:
                    bal = await self.gateway.fetch_balance()
                    if bal < self.ledger.cash:
                        log.warning("%s %s: the account holds %.2f USDT, less than the configured capital %.2f: "
                                    "sizing on %.2f", self.name, self.symbol, bal, self.ledger.cash, bal)
                        self.ledger.cash = bal
                    self.equity_last = self.ledger.cash
                    self.executor.save_state(None, 0, None)
                rep = await reconcile(self.executor, self.clock_ms(), alert=self._alert)
            except (AccountInUse, AccountModeError):
                self.state, self.state_reason = BLOCKED, "refused"
                raise
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
            self._health("ok", self.state_reason)
            return True

    def _health(self, state: str, detail: str) -> None:
        if self.bus is not None:
            self.bus.publish(HealthEvent("executor", state, f"{self.name} {self.symbol}: {detail}"))

    # ---------------------------------------------------------------- per candle
    async def on_candle(self, ts: int, o: float, h: float, lo: float, c: float) -> None:
        """Process one closed candle (skipped at or before the cursor); see the module docstring."""
        if self.cursor is not None and ts <= self.cursor:
            return
        ex = self.executor
        async with self.lock:
            now = self.clock_ms()
            if self.state == READY:
                await self._guarded(ex.poll(now))
                await self._guarded(ex.on_mark(c, now))
            self.history.append(ts, o, h, lo, c)
            quoting = self.strategy.on_candle_open(self.history)
            if self.state == READY and quoting:
                await self._guarded(ex.sync_orders(now))
            eq = self.ledger.equity(c)
            self.cursor = ts
            self.n_candles += 1
            self.last_close = c
            self.equity_last = eq
            with ex._tx():
                self.store.add_equity(self.runner_id, ts, eq)
                if self.on_equity is not None:
                    self.on_equity(ts)
                self.store.save_state(self.runner_id, ts, self.n_candles, c, self.ledger.snapshot(), False)
        self._after_candle(ts, o, h, lo, c, eq)

    async def _guarded(self, coro) -> Any:
        """Run one exchange step; a gateway failure is logged and retried on the next call
        (an unprotected position is already alerted critical by Protection)."""
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
        if self.state != READY:
            return
        async with self.lock:
            now = self.clock_ms()
            await self._guarded(self.executor.poll(now))
            if self.ledger.qty > 0:
                mark = await self._guarded(self.gateway.fetch_mark_price())
                if mark is not None:
                    await self._guarded(self.executor.on_mark(mark, now))

    async def on_ticker(self, price: float) -> None:
        """A ticker push (last price): the client-side take-profit, checked without waiting for
        the poll. Cheap when flat or not touched (no exchange call, no lock)."""
        led = self.ledger
        tp = led.take_profit
        if self.state != READY or led.qty <= 0 or not (math.isfinite(tp) and math.isfinite(price)):
            return
        if (price >= tp) if led.side == "long" else (price <= tp):
            async with self.lock:
                await self._guarded(self.executor.on_mark(price, self.clock_ms()))

    async def verify_stops(self) -> None:
        if self.state != READY:
            return
        async with self.lock:
            await self._guarded(self.executor.verify_stops(self.clock_ms()))

    # ---------------------------------------------------------------- commands
    def finish(self) -> None:
        """Live runs have no end of data: nothing to close (positions keep their stops)."""

    async def cancel_entries(self) -> int:
        async with self.lock:
            return await self._guarded(self.executor.cancel_entries(self.clock_ms())) or 0

    async def flatten(self, reason: str = "kill") -> None:
        async with self.lock:
            now = self.clock_ms()
            await self._guarded(self.executor.cancel_entries(now))
            await self._guarded(self.executor.flatten(now, reason, self.last_close))
            self.equity_last = self.ledger.equity(self.last_close or math.nan)

    async def close(self) -> None:
        """Close the exchange client (stops stay on the exchange)."""
        try:
            await self.gateway.close()
        except Exception as exc:  # noqa: BLE001 - best effort at shutdown
            log.warning("closing the %s gateway failed: %s", self.symbol, exc)

    # ---------------------------------------------------------------- queries
    def position(self) -> dict:
        led = self.ledger
        flat = led.qty <= 0
        return {"strategy": self.name, "symbol": self.symbol, "side": led.side,
                "qty": 0.0 if flat else led.qty, "avg_entry": None if flat else led.avg_entry,
                "stop": None if flat else led.stop, "levels_filled": led.levels_filled,
                "unrealized": 0.0 if flat or self.last_close is None else led.equity(self.last_close) - led.cash}

    def grid_state(self) -> dict:
        led = self.ledger
        strat = self.strategy
        return {"strategy": self.name, "symbol": self.symbol, "timeframe": self.timeframe,
                "levels": [None if not math.isfinite(x) else x for x in strat.levels],
                "take_profit": strat.take_profit if math.isfinite(strat.take_profit) else None,
                "levels_filled": led.levels_filled, "num_levels": strat.num_levels,
                "stop": led.stop if led.qty > 0 else None, "cycles": len(led.cycles),
                "cash": led.cash, "equity": self.equity_last, "cursor_ts": self.cursor,
                "state": self.state, "state_reason": self.state_reason,
                "open_orders": [{"client_id": cid, "purpose": r[0], "level": r[1], "price": r[2]}
                                for cid, r in self.executor.orders.items()]}
