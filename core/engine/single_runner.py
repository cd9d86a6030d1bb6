"""SingleStrategyRunner: one single-position strategy on one (symbol, timeframe), the live twin
of `core.backtest.single_driver.run_single_backtest`.

Per closed candle t, the same steps in the same order as the event backtest
(docs/single_position.md), with the history holding candles 0 … t−1:

1. in a position: the strategy re-quotes its exits (`manage(history, entry_price)`), the
   venue's position stop / take-profit are amended (recorded when they move), and the venue
   goes through candle t (`venue.on_candle`);
   flat: the strategy's `on_candle_open(history)` gives an EntryIntent or None; an intent
   becomes an entry order for candle t (none while the kill switch is on, while another
   runner holds a position on the symbol, or when the risk check refuses it) and the venue
   goes through candle t (fill, exits from the fill, the path);
2. the executor reads what happened (`poll`: the entry's order state, a position the venue
   closed) and records it (fill, order status, position row WITH its stop, and on an exit the
   trade as a cycle with levels_filled = 1), published on the bus;
3. candle t joins the history and the strategy's signal state;
4. the equity at the close (cash + unrealised P&L) is recorded (then `on_equity`, the risk
   hook, inside the same transaction); the cursor, the account and the strategy state are
   saved; the candle's transaction commits.

At the end of a replay (`finish`) an open trade closes at the last close, reason "end", and
the last equity point becomes the cash, as the backtest does.

Signals in O(1) per candle. The six strategies (`ArraySignalStrategy`) define their signals
as whole-array functions, which the backtest computes once over the series; recomputing
them over the history at every candle would cost O(n²) over a replay. The runner instead
keeps, per strategy, a signal stream (`core.indicators.signal_streams`, built on the
incremental indicators of `core.indicators.incremental`) that performs the SAME
floating-point operations in the same order as `core.indicators` (the numba loops,
finite-run restarts included), so the per-candle values are bit-identical to the arrays
`prepare` computes, and hands the strategy the values for candle t through its `_arrays`
hook. The strategy's own code still decides entries and exits. A single-position strategy
without a stream falls back to its own recomputation from the (bounded) history.

Write-ahead state, as `core.engine.grid_runner.GridRunner`, in the same tables (mode "paper"):
one SQLite transaction per candle holds the intents, orders (entry, stop, take_profit, exit;
deterministic client ids), fills, positions, cycles, the equity point, and trading_state
(cursor + a JSON account: the simulated venue's account and position, the executor's book,
the strategy's trade state and the signal stream). `restore` loads it, so a restart resumes after the last processed
candle with identical results; the history is rebuilt from `history_rows` (ts, o, h, l, c
[, v], oldest first). The signal stream's state is saved with every candle, so the restart
is exact however few history rows the engine loads (recursive indicators such as the EMA or
Wilder's ATR carry the whole series). Without stored state, `history_rows` warm the
strategy up (history and signal stream) before the first candle.

Orders and their records (entries, the position's stop / take-profit, market exits; client
ids) and the account (`SingleBook`) are the executor's:
`core.executor.single_executor.SingleExecutor`, which drives the venue through the async
`Gateway` contract (`core.executor.gateway`) like the grid family's executor; the venue is the
simulated one (`core.venues.sim.single_venue.SimSingleVenue`): single-position strategies
trade on paper only (the engine does not enable them live yet). `on_candle`, `finish`,
`flatten` and `cancel_entries` are coroutines, serialised by `lock`, as `GridRunner`'s.
`sizing_reserve`
keeps a fraction of the cash out of each entry's size (0 on replays, as the backtest; the
live fee reserve lets an all-in entry pass the risk margin rule).

`funding` needs the perpetual's funding-rate series: pass `funding=(ts, rate)` (ms UTC,
fraction per interval) or a callable `rate_at(ts_ms) -> float` (nan: none known); without
it the runner refuses the strategy (RadarError) rather than trading it without its signal.
`vwap_rsi` needs volume: pass `v` to `on_candle` (nan volume = no VWAP, no signal).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Iterable
from typing import Any

from core.engine.runner_base import MAX_HISTORY, RunnerBase
from core.errors import RadarError
from core.events.bus import EventBus
from core.executor.kill_switch import KillSwitch
from core.executor.single_executor import SingleExecutor, _num
from core.executor.state_store import StateStore
from core.indicators.signal_streams import STREAMS, FundingStream, LiquidationStream, SignalStream, funding_lookup
from core.model.account import Account
from core.model.fills import END
from core.strategies import registry
from core.strategies.array_signal import ArraySignalStrategy
from core.strategies.base import CandleHistory, SinglePositionStrategy
from core.venues.sim.single_venue import SimSingleVenue

log = logging.getLogger(__name__)

_NAN = math.nan


class SingleStrategyRunner(RunnerBase):
    """One single-position strategy on one (symbol, timeframe) in paper mode (module docstring).

    The same interface as `core.engine.grid_runner.GridRunner` (constructor, `restore`, async
    `on_candle`, `finish`, `flatten`, `cancel_entries`, `position`, `grid_state`; attributes
    runner_id, name, symbol, timeframe, key, live (False), cursor, n_candles, last_close,
    equity_last, day_start_equity, finished, strategy, book (the executor's `SingleBook`),
    cycles, venue / gateway, executor.orders, lock).

    Args:
        strategy: registry name of a single-position strategy. params: its parameters
            (missing = defaults).
        symbol, timeframe: the series it trades.
        account: the paper account (capital USDT, leverage, fees).
        store: the state store. kill_switch: the engine's kill switch. bus: the event bus (or None).
        mode: "paper" (the only mode). id_prefix: client order id prefix.
        publish_candles: publish a CandleEvent per processed candle.
        risk: core.risk.RiskManager (pre-trade check of entries) or None.
        portfolio: () -> core.risk.PortfolioView for the risk check (also settable later as
            `executor.portfolio`).
        on_equity: (ts) -> None, called after each equity point inside the candle's transaction.
        funding: the funding-rate series for `funding`: (ts, rate) arrays (ms UTC, fraction per
            interval), a live series (`core.data.funding_stream.FundingRecorder`: refreshed while
            running) or `rate_at(ts_ms) -> float`.
        sizing_reserve: fraction of the cash kept out of each entry's size (0 on replays: the
            backtest's sizing; see `core.venues.sim.single_venue.SimSingleVenue`).
        symbol_busy: () -> bool, True while ANOTHER runner on the same symbol holds a position
            (grid and single-position trades are mutually exclusive per symbol): no new entry
            then (a RiskRejection "symbol_busy" once per episode); None = never busy. Also
            settable later as `executor.symbol_busy`.

    Raises:
        UsageError / ParamError: unknown strategy or bad params (from the registry).
        TypeError: the strategy is not a single-position strategy.
        RadarError: `funding` without a funding series.
    """

    def __init__(self, strategy: str, params: dict, symbol: str, timeframe: str, account: Account,
                 store: StateStore, kill_switch: KillSwitch, bus: EventBus | None = None, *,
                 mode: str = "paper", id_prefix: str = "rd", publish_candles: bool = True,
                 risk=None, portfolio=None, on_equity=None, funding: Any = None,
                 sizing_reserve: float = 0.0, symbol_busy: Callable[[], bool] | None = None) -> None:
        strat = registry.create(strategy, params)
        if not isinstance(strat, SinglePositionStrategy):
            raise TypeError(f"{strategy}: not a single-position strategy (grid strategies run in StrategyRunner)")
        if getattr(strat, "NEEDS_FUNDING", False) and funding is None:
            raise RadarError(f"{strategy} {symbol} {timeframe}: the strategy trades on the perpetual's funding "
                             "rate, and no funding-rate series is fed to this runner (funding=(ts, rate) or a "
                             "FundingRecorder); refusing to run it without its signal")
        if getattr(strat, "NEEDS_OPEN_INTEREST", False) and funding is None:
            raise RadarError(f"{strategy} {symbol} {timeframe}: the strategy trades on the perpetual's open "
                             "interest, and no open-interest series is fed to this runner (funding=(ts, oi) or "
                             "a recorder's value_at); refusing to run it without its signal")
        self._init_runner(strategy, strat, symbol, timeframe, account, store, kill_switch, bus, mode, id_prefix,
                          publish_candles, on_equity)
        self.venue = SimSingleVenue(strat, self.history, symbol, account, self.ids, sizing_reserve)
        self.executor = SingleExecutor(self.runner_id, strategy, symbol, self.venue, self.ids, store, bus,
                                       kill_switch, risk=risk, portfolio=portfolio, symbol_busy=symbol_busy,
                                       account=account, sizing_reserve=sizing_reserve)
        self.lock = asyncio.Lock()
        self.max_hold = int(getattr(strat, "max_hold", 0) or 0)
        # the signal stream (O(1) per candle) behind the strategy's `_arrays` hook
        self.signals: SignalStream | None = None
        self._quote: tuple[list, list, list] = ([0], [_NAN], [_NAN])
        cls = STREAMS.get(strategy)
        if (isinstance(strat, ArraySignalStrategy) and cls is not None
                and type(strat) is registry.STRATEGIES.get(strategy)):
            if cls is FundingStream or cls is LiquidationStream:     # their side series: funding rates / OI
                self.signals = cls(strat.params, funding_lookup(funding, getattr(strat, "MAX_RATE_AGE_MS", None)))
            else:
                self.signals = cls(strat.params)
            strat._arrays = self._arrays        # instance attribute: the strategy reads our values
        self._array_strategy = isinstance(strat, ArraySignalStrategy)
        self.last_candle: list | None = None
        self._warned_volume = False

    @property
    def book(self):
        """The runner's account: the executor's `SingleBook` (cash, side, qty, entry_price /
        avg_entry, stop, take_profit, levels_filled, cycles, ...)."""
        return self.executor.book

    @property
    def gateway(self) -> SimSingleVenue:
        """The runner's venue (the name older code uses)."""
        return self.venue

    def _arrays(self, history: CandleHistory) -> tuple[int, tuple[list, list, list]]:
        """The strategy's `ArraySignalStrategy._arrays` hook: index 0 of one-candle arrays
        holding the stream's values for the candle being processed."""
        return 0, self._quote

    # ---------------------------------------------------------------- warm-up / resume
    def restore(self, history_rows: Iterable[tuple] | None = None) -> bool:
        """Load the stored state; rebuild the history from `history_rows` ((ts, o, h, l, c) or
        (ts, o, h, l, c, v), ms UTC / quote prices / base volume, oldest first; rows after the
        cursor are ignored). Without stored state the rows warm the strategy up (history and
        signals). Returns True when there was state."""
        st = self.store.load_state(self.runner_id)
        if st is None:
            if history_rows is not None:
                for row in history_rows:
                    ts, o, h, lo, c = row[:5]
                    v = row[5] if len(row) > 5 else _NAN
                    self.history.append(ts, o, h, lo, c, v)
                    if self.signals is not None:
                        self.signals.push(ts, o, h, lo, c, v)
                if len(self.history) > MAX_HISTORY:
                    self.history.trim(MAX_HISTORY // 2)
            return False
        g = st["grid"]
        if g.get("kind") != "single":
            raise RadarError(f"{self.name} {self.symbol} {self.timeframe}: the stored state in "
                             f"{self.store.db_path} is not a single-position runner's; use another --db")
        self.cursor = st["cursor_ts"]
        self.n_candles = st["n_candles"]
        self.last_close = st["last_close"]
        self.finished = st["finished"]
        cycles = self.store.load_cycles(self.runner_id)
        open_orders = self.store.open_orders(self.runner_id)
        self.venue.restore(g["account"], cycles, open_orders)
        self.executor.restore(open_orders, g.get("entry_seq", 0), g.get("book") or g["account"], cycles)
        strat = self.strategy
        if self._array_strategy and g.get("strategy") is not None:
            strat._side, strat._stop, strat._tp = g["strategy"]
        if self.signals is not None and g.get("signals") is not None:
            self.signals.load(g["signals"])
        self.last_candle = g.get("last_candle")
        book = self.book
        self.equity_last = book.equity(self.last_close) if self.last_close is not None else book.cash
        if history_rows is not None:
            for row in history_rows:
                ts = row[0]
                if self.cursor is None or ts <= self.cursor:
                    self.history.append(ts, row[1], row[2], row[3], row[4], row[5] if len(row) > 5 else _NAN)
            if len(self.history) > MAX_HISTORY:
                self.history.trim(MAX_HISTORY // 2)
        lc = self.last_candle
        if lc is not None and (not self.history.ts or self.history.ts[-1] < lc[0]):
            self.history.append(*lc)            # at least the last candle (the strategy reads its close)
        log.info("%s %s: resumed after candle %s (%d candles, %d trades, cash %.2f)", self.name, self.symbol,
                 self.cursor, self.n_candles, len(book.cycles), book.cash)
        return True

    # ---------------------------------------------------------------- per candle
    async def on_candle(self, ts: int, o: float, h: float, lo: float, c: float, v: float = _NAN) -> None:
        """Process one closed candle (open time ts ms UTC, prices quote currency, volume base
        units, nan = unknown); skipped when at or before the cursor."""
        cur = self.cursor
        if cur is not None and ts <= cur:
            return
        store = self.store
        ex = self.executor
        venue = self.venue
        book = ex.book
        strat = self.strategy
        hist = self.history
        sig = self.signals
        async with self.lock:
            store.begin()
            try:
                if sig is not None:
                    q = sig.quote(ts)
                    self._quote = ([q[0]], [q[1]], [q[2]])
                if book.side is not None:
                    exits = strat.manage(hist, book.entry_price)
                    if exits is not None:
                        await ex.requote_exits(ts, *exits)
                    await venue.on_candle(ts, o, h, lo, c)
                    await ex.poll(ts)
                elif hist.close or sig is None:         # (a streamed strategy needs one close for its estimates)
                    intent = strat.on_candle_open(hist)
                    if intent is not None and ex.entry_allowed(intent, ts):
                        await ex.submit_entry(intent, self.max_hold, ts, hist.close[-1] if hist.close else None)
                        await venue.on_candle(ts, o, h, lo, c)
                        await ex.poll(ts)
                ex.candle_done()
                hist.append(ts, o, h, lo, c, v)
                if sig is not None:
                    sig.push(ts, o, h, lo, c, v)
                eq = book.equity(c)
                self.cursor = ts
                self.n_candles += 1
                self.last_close = c
                self.last_candle = [ts, o, h, lo, c, v]
                self.equity_last = eq
                store.add_equity(self.runner_id, ts, eq)
                if self.on_equity is not None:
                    self.on_equity(ts)
                self._save()
                store.commit()
            except BaseException:
                store.rollback()
                raise
        if math.isnan(v) and not self._warned_volume and self.name == "vwap_rsi":
            self._warned_volume = True
            log.warning("%s %s: candles come without volume: the VWAP is undefined, no signal", self.name,
                        self.symbol)
        self._after_candle(ts, o, h, lo, c, eq)

    def _state(self) -> dict:
        """The JSON account of trading_state (`cash` first-level, as the report reads it)."""
        strat = self.strategy
        return {"kind": "single", "cash": self.book.cash, "account": self.venue.snapshot(),
                "book": self.book.snapshot(),
                "strategy": [strat._side, strat._stop, strat._tp] if self._array_strategy else None,
                "signals": self.signals.state() if self.signals is not None else None,
                "entry_seq": self.executor.entry_seq, "last_candle": self.last_candle}

    def _save(self) -> None:
        self.store.save_state(self.runner_id, self.cursor, self.n_candles, self.last_close, self._state(),
                              self.finished)

    # ---------------------------------------------------------------- commands
    async def finish(self) -> None:
        """End of the replayed data: close an open position at the last close ("end"), once."""
        if self.finished or self.cursor is None:
            return
        store = self.store
        async with self.lock:
            with store.transaction():
                if await self.executor.flatten(self.cursor, self.last_close, END) is not None:
                    self.equity_last = self.book.cash
                    store.add_equity(self.runner_id, self.cursor, self.equity_last)
                self.finished = True
                self._save()

    async def flatten(self, reason: str = "kill") -> None:
        """Cancel pending entries and close the position now at the last close (the simulated
        venue), recorded like any exit."""
        if self.cursor is None or self.last_close is None:
            return
        async with self.lock:
            with self.store.transaction():
                await self.executor.cancel_entries(self.cursor)
                if await self.executor.flatten(self.cursor, self.last_close, reason) is not None:
                    self.equity_last = self.book.cash
                self._save()

    async def cancel_entries(self) -> int:
        """Cancel pending entries (kill switch): none rest between candles; returns how many."""
        async with self.lock:
            with self.store.transaction():
                return await self.executor.cancel_entries(self.cursor if self.cursor is not None else 0)

    # ---------------------------------------------------------------- queries
    def position(self) -> dict:
        eng = self.book
        flat = eng.side is None
        return {"strategy": self.name, "symbol": self.symbol, "side": eng.side,
                "qty": 0.0 if flat else eng.qty, "avg_entry": None if flat else eng.entry_price,
                "stop": None if flat else _num(eng.stop), "levels_filled": 0 if flat else 1,
                "unrealized": 0.0 if flat or self.last_close is None else self.equity_last - eng.cash}

    def grid_state(self) -> dict:
        """The console's view, in the grid runner's shape: one "level" (the entry price of the
        open trade), the take-profit and the stop of the position."""
        eng = self.book
        flat = eng.side is None
        return {"strategy": self.name, "symbol": self.symbol, "timeframe": self.timeframe, "kind": "single",
                "side": eng.side, "levels": [None if flat else eng.entry_price],
                "take_profit": None if flat else _num(eng.take_profit),
                "levels_filled": 0 if flat else 1, "num_levels": 1,
                "stop": None if flat else _num(eng.stop), "cycles": len(eng.cycles),
                "cash": eng.cash, "equity": self.equity_last, "cursor_ts": self.cursor,
                "open_orders": [{"client_id": cid, "purpose": r[0], "level": r[1], "price": _num(r[2])}
                                for cid, r in self.executor.orders.items()]}
