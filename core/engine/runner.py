"""StrategyRunner: one grid strategy on one (symbol, timeframe), the live twin of the event backtest.

Per closed candle, the same steps in the same order as `core.backtest.event_engine`:

1. the strategy quotes the candle from the candles before it (`on_candle_open(history)`;
   False = warm-up, no trading);
2. when quoting: the executor turns the quote into orders (`GridExecutor.sync_orders`) and
   the gateway walks the candle (`PaperGateway.match_candle`); fills are recorded;
3. the candle is appended to the history;
4. the equity at the close is recorded (and, with risk, the account equity goes to the
   RiskManager through `on_equity`, inside the same transaction); the candle's transaction
   commits with the cursor.

At the end of a replay (`finish`), an open cycle is closed at the last close, reason "end",
and the last equity point becomes the cash (spec rule 4).

Warm-up / resume (`restore`): the runner's stored state (cursor, paper account, orders,
cycles) is loaded and the strategy's history is rebuilt from the candles at or before the
cursor (`history_rows`), so the next candle is quoted exactly as in an uninterrupted run.
Candles at or before the cursor are skipped.
"""

from __future__ import annotations

import logging
import math
from typing import Iterable

from core.engine.runner_base import RunnerBase
from core.events.bus import EventBus
from core.executor.executor import GridExecutor
from core.executor.kill_switch import KillSwitch
from core.executor.state_store import StateStore
from core.model.account import Account
from core.strategies import registry
from core.strategies.base import GridStrategy
from core.venues.sim.grid_venue import PaperGateway

log = logging.getLogger(__name__)


class StrategyRunner(RunnerBase):
    """One (strategy, symbol, timeframe) in paper mode (see the module docstring).

    Args:
        strategy: registry name. params: its parameters (missing = defaults).
        symbol, timeframe: the series it trades.
        account: the paper account (capital, leverage, fees).
        store: the state store. kill_switch: the engine's kill switch. bus: the event bus (or None).
        mode: "paper" (the only mode so far). id_prefix: client order id prefix.
        publish_candles: publish a CandleEvent per processed candle.
        sizing_reserve: see `core.venues.sim.grid_venue.PaperGateway` (0 on replays: the backtest's sizing).
    """

    def __init__(self, strategy: str, params: dict, symbol: str, timeframe: str, account: Account,
                 store: StateStore, kill_switch: KillSwitch, bus: EventBus | None = None, *,
                 mode: str = "paper", id_prefix: str = "rd", publish_candles: bool = True,
                 risk=None, portfolio=None, on_equity=None, sizing_reserve: float = 0.0) -> None:
        strat = registry.create(strategy, params)
        if not isinstance(strat, GridStrategy):
            raise TypeError(f"{strategy}: only grid strategies can run in the engine so far")
        self._init_runner(strategy, strat, symbol, timeframe, account, store, kill_switch, bus, mode, id_prefix,
                          publish_candles, on_equity)
        self.gateway = PaperGateway(strat, symbol, account, self.ids, sizing_reserve)
        self.executor = GridExecutor(self.runner_id, strat, symbol, self.gateway, self.ids, store, bus, kill_switch,
                                     risk=risk, portfolio=portfolio)

    @property
    def book(self):
        """The runner's account: the paper matching engine (cash, qty, avg_entry, stop,
        levels_filled, unit, cycles, fills, ...), the same names as the live ledger."""
        return self.gateway.engine

    # ---------------------------------------------------------------- warm-up / resume
    def restore(self, history_rows: Iterable[tuple[int, float, float, float, float]] | None = None) -> bool:
        """Load the stored state; rebuild the history from `history_rows` (ts, o, h, l, c, oldest
        first; rows after the cursor are ignored). Returns True when there was state."""
        st = self.store.load_state(self.runner_id)
        if st is None:
            if history_rows is not None:           # live warm-up: history before the first candle
                for row in history_rows:
                    self.history.append(*row[:5])
            return False
        self.cursor = st["cursor_ts"]
        self.n_candles = st["n_candles"]
        self.last_close = st["last_close"]
        self.finished = st["finished"]
        self.executor.restore(st["grid"], self.store.load_cycles(self.runner_id),
                              self.store.open_orders(self.runner_id))
        self.equity_last = self.gateway.equity(self.last_close) if self.last_close is not None else self.gateway.engine.cash
        if history_rows is not None:
            for row in history_rows:
                if self.cursor is None or row[0] <= self.cursor:
                    self.history.append(*row[:5])
        log.info("%s %s: resumed after candle %s (%d candles, %d cycles, cash %.2f)", self.name, self.symbol,
                 self.cursor, self.n_candles, len(self.gateway.cycles), self.gateway.engine.cash)
        return True

    # ---------------------------------------------------------------- per candle
    def on_candle(self, ts: int, o: float, h: float, lo: float, c: float) -> None:
        """Process one closed candle (skipped when at or before the cursor)."""
        cur = self.cursor
        if cur is not None and ts <= cur:
            return
        store = self.store
        ex = self.executor
        gw = self.gateway
        hist = self.history
        store.begin()
        try:
            if self.strategy.on_candle_open(hist):
                ex.sync_orders(ts)
                fills = gw.match_candle(ts, o, h, lo, c)
                if fills:
                    ex.record_fills(fills)
            hist.append(ts, o, h, lo, c)
            eq = gw.equity(c)
            self.cursor = ts
            self.n_candles += 1
            self.last_close = c
            self.equity_last = eq
            store.add_equity(self.runner_id, ts, eq)
            if self.on_equity is not None:
                self.on_equity(ts)
            if ex.dirty or self.n_candles == 1:
                store.save_state(self.runner_id, ts, self.n_candles, c, ex.grid_state(), self.finished)
            else:
                store.save_cursor(self.runner_id, ts, self.n_candles, c)
            store.commit()
        except BaseException:
            store.rollback()
            raise
        self._after_candle(ts, o, h, lo, c, eq)

    def _save(self) -> None:
        self.store.save_state(self.runner_id, self.cursor, self.n_candles, self.last_close,
                              self.executor.grid_state(), finished=self.finished)

    def cancel_entries(self) -> int:
        if self.cursor is None:
            return 0
        with self.store.transaction():
            n = self.executor.cancel_entries(self.cursor)
            self._save()
        return n

    # ---------------------------------------------------------------- queries
    def position(self) -> dict:
        eng = self.gateway.engine
        flat = eng.levels_filled == 0
        return {"strategy": self.name, "symbol": self.symbol, "side": eng.side,
                "qty": 0.0 if flat else eng.qty, "avg_entry": None if flat else eng.avg_entry,
                "stop": None if flat else eng.stop, "levels_filled": eng.levels_filled,
                "unrealized": 0.0 if flat or self.last_close is None else self.equity_last - eng.cash}

    def grid_state(self) -> dict:
        eng = self.gateway.engine
        strat = self.strategy
        return {"strategy": self.name, "symbol": self.symbol, "timeframe": self.timeframe,
                "levels": [None if not math.isfinite(x) else x for x in strat.levels],
                "take_profit": strat.take_profit if math.isfinite(strat.take_profit) else None,
                "levels_filled": eng.levels_filled, "num_levels": strat.num_levels,
                "stop": eng.stop if eng.levels_filled else None, "cycles": len(eng.cycles),
                "cash": eng.cash, "equity": self.equity_last, "cursor_ts": self.cursor,
                "open_orders": [{"client_id": cid, "purpose": r[0], "level": r[1], "price": r[2]}
                                for cid, r in self.executor.orders.items()]}
