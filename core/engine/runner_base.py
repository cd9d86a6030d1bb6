"""RunnerBase: what the runners share (`GridRunner` on any venue, the paper single-position
`SingleStrategyRunner`): identity, client ids, the candle history and
cursor, the day's equity baseline, and the end-of-candle bookkeeping.

Subclasses set `book` (the account: a `core.model.position.PositionBook`, or the single-position
executor's `SingleBook`, with `cycles`, `cash`, `qty`, ...) and implement the async commands
`on_candle`, `finish`, `flatten`, `cancel_entries`, and `restore`, `position`, `grid_state`.
Times are ms UTC, money USDT.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.events.bus import CandleEvent, EventBus
from core.executor.client_ids import ClientIds
from core.executor.kill_switch import KillSwitch
from core.executor.state_store import StateStore
from core.model.account import Account
from core.strategies.base import CandleHistory

#: keep at most this many candles of history in memory (trimmed to half when exceeded)
MAX_HISTORY = 20_000
DAY_MS = 86_400_000


class RunnerBase:
    """Shared state of a runner (see the module docstring).

    Attributes:
        name, symbol, timeframe, mode: the runner's identity ("paper" | "live").
        runner_id: its trading_runners row. ids: its client order ids.
        history: closed candles, oldest first. cursor: open time of the last processed candle.
        n_candles, last_close, finished, equity_last (USDT), day_start_equity (USDT at the
        first candle of the UTC day).
    """

    live = False

    def _init_runner(self, name: str, strategy: Any, symbol: str, timeframe: str, account: Account,
                     store: StateStore, kill_switch: KillSwitch, bus: EventBus | None, mode: str, id_prefix: str,
                     publish_candles: bool, on_equity: Callable[[int], None] | None) -> None:
        self.strategy = strategy
        self.name = name
        self.symbol = symbol
        self.timeframe = timeframe
        self.account = account
        self.mode = mode
        self.store = store
        self.bus = bus
        self.kill = kill_switch
        self.publish_candles = publish_candles
        self.on_equity = on_equity          # (ts) -> None, after each equity point (risk limits)
        self.runner_id = store.runner_id(name, symbol, timeframe, mode, dict(strategy.params))
        self.ids = ClientIds(id_prefix, name, symbol, store.epoch())
        self.history = CandleHistory()
        self.cursor: int | None = None
        self.n_candles = 0
        self.last_close: float | None = None
        self.finished = False
        self.equity_last = float(account.initial_capital)
        self.day_start_equity: float | None = None
        self._day: int | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.symbol, self.timeframe)

    @property
    def cycles(self) -> list:
        """The closed cycles (trades) of the runner."""
        return self.book.cycles

    def _after_candle(self, ts: int, o: float, h: float, lo: float, c: float, eq: float) -> None:
        """After a candle's transaction: trim the history, roll the day's baseline, publish it."""
        if len(self.history) > MAX_HISTORY:
            self.history.trim(MAX_HISTORY // 2)
        day = ts // DAY_MS
        if day != self._day:
            self._day = day
            self.day_start_equity = eq
        if self.bus is not None and self.publish_candles:
            self.bus.publish(CandleEvent(self.symbol, self.timeframe, ts, o, h, lo, c))
