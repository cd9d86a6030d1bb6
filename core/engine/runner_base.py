"""RunnerBase: what the runners share (`GridRunner` on any venue, the paper single-position
`SingleStrategyRunner`): identity, client ids, the candle history and
cursor, the day's equity baseline, and the end-of-candle bookkeeping.

Subclasses set `book` (the account: a `core.model.position.PositionBook`, or the single-position
executor's `SingleBook`, with `cycles`, `cash`, `qty`, ...) and `executor` (with a `paused`
attribute its entry gate reads), and implement the async commands `on_candle`, `finish`,
`flatten`, `cancel_entries`, and `restore`, `position`, `grid_state`.

Operator control per runner (shared; persisted in runner_control, migration 10, keyed by the
runner's identity strategy/symbol/timeframe/mode, so it survives a restart):

* `pause(actor, reason)`: no NEW entry from now on (the executor's entry gate, the same place
  the kill switch blocks entries, for paper and live alike); resting entries are cancelled; an
  open position keeps its stop and take-profit and is managed as usual. `unpause` lifts it.
* `pending_params`: parameters an operator asked for while the runner was not flat
  (`GridRunner.apply_params`), applied at the next flat moment; `restore_control` reloads both
  after `restore`.

Each change is published as a `core.events.bus.RunnerControlEvent`.
Times are ms UTC, money USDT.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from core.errors import UsageError
from core.events.bus import CandleEvent, EventBus, RunnerControlEvent
from core.executor.client_ids import ClientIds
from core.executor.kill_switch import KillSwitch
from core.executor.state_store import StateStore
from core.model.account import Account
from core.strategies.base import CandleHistory

log = logging.getLogger(__name__)

#: keep at most this many candles of history in memory (trimmed to half when exceeded)
MAX_HISTORY = 20_000
DAY_MS = 86_400_000
#: longest a pause waits for the runner's lock to cancel the resting entries (s); the entries are
#: cancelled by the next candle's order sync otherwise (they are no longer wanted)
PAUSE_CANCEL_TIMEOUT_S = 10.0


def wall_ms() -> int:
    """The wall clock, ms UTC."""
    return int(time.time() * 1000)


class RunnerBase:
    """Shared state of a runner (see the module docstring).

    Attributes:
        name, symbol, timeframe, mode: the runner's identity ("paper" | "live").
        runner_id: its trading_runners row. ids: its client order ids.
        history: closed candles, oldest first. cursor: open time of the last processed candle.
        n_candles, last_close, finished, equity_last (USDT), day_start_equity (USDT at the
        first candle of the UTC day).
        config_params: the configured params (strategies.yaml), normalised; set by the engine.
        pause_info: {"by", "reason", "since_ms"} while an operator paused the runner, else None.
        pending_params / pending_by: full params waiting for the next flat moment (and who asked).
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
        self.config_params: dict = dict(strategy.params)
        self.pause_info: dict | None = None
        self.pending_params: dict | None = None
        self.pending_by: str | None = None

    # ---------------------------------------------------------------- operator control
    def _control_key(self) -> tuple[str, str, str, str]:
        return (self.name, self.symbol, self.timeframe, self.mode)

    def _publish_control(self, action: str, actor: str, detail: str = "", params: dict | None = None) -> None:
        if self.bus is not None:
            self.bus.publish(RunnerControlEvent(self.name, self.symbol, self.timeframe, action, actor, detail,
                                                None if params is None else dict(params), wall_ms()))

    def restore_control(self) -> None:
        """Reload the operator's pause and pending params of this runner (runner_control), after
        `restore`. Pending params equal to the ones traded are dropped (nothing left to apply)."""
        ctl = self.store.runner_control(*self._control_key())
        if ctl is None:
            return
        if ctl["paused"]:
            self.pause_info = {"by": ctl["paused_by"] or "", "reason": ctl["paused_reason"] or "",
                               "since_ms": ctl["paused_ms"]}
            self.executor.paused = self._pause_text()
            log.warning("%s %s %s is PAUSED (by %s: %s): no new entries until resumed", self.name, self.symbol,
                        self.timeframe, self.pause_info["by"], self.pause_info["reason"] or "no reason given")
        pending = ctl["pending_params"]
        if pending is not None and pending == dict(self.strategy.params):
            with self.store.transaction():
                self.store.save_runner_control(*self._control_key(), pending_params=None, pending_by=None,
                                               pending_ms=None)
            pending = None
        if pending is not None:
            self.pending_params, self.pending_by = dict(pending), ctl["pending_by"]
            log.warning("%s %s %s: params %s pending (by %s), applied at the next flat moment", self.name,
                        self.symbol, self.timeframe, pending, ctl["pending_by"])

    def _pause_text(self) -> str:
        p = self.pause_info or {}
        return f"paused by {p.get('by') or 'operator'}" + (f": {p['reason']}" if p.get("reason") else "")

    async def pause(self, actor: str, reason: str = "") -> int:
        """Pause the runner: persisted first, then no new entry is placed (the executor's entry
        gate), then the resting entries are cancelled (under the runner's lock, given up after
        `PAUSE_CANCEL_TIMEOUT_S`: the next candle's order sync cancels them then). An open
        position keeps its stop and take-profit. Returns how many entries were cancelled.

        Raises:
            UsageError: the runner is paused already (nothing changed).
        """
        if self.pause_info is not None:
            raise UsageError(f"{self.name} on {self.symbol} ({self.timeframe}) is paused already "
                             f"({self._pause_text()}); `resume_runner` lifts it")
        now = wall_ms()
        with self.store.transaction():
            self.store.save_runner_control(*self._control_key(), paused=True, paused_by=actor, paused_reason=reason,
                                           paused_ms=now)
        self.pause_info = {"by": actor, "reason": reason, "since_ms": now}
        self.executor.paused = self._pause_text()
        log.warning("%s %s %s PAUSED by %s (%s): no new entries, position and stops kept", self.name, self.symbol,
                    self.timeframe, actor, reason or "no reason given")
        n = 0
        try:
            async with asyncio.timeout(PAUSE_CANCEL_TIMEOUT_S):
                n = int(await self.cancel_entries() or 0)
        except TimeoutError:
            log.error("%s %s: entries not cancelled at the pause (the runner is busy): the next candle does it",
                      self.name, self.symbol)
        self._publish_control("paused", actor, reason)
        return n

    async def unpause(self, actor: str, reason: str = "") -> None:
        """Lift an operator's pause (persisted first): entries are placed again from the next
        candle (unless the kill switch, a halt or another block says otherwise).

        Raises:
            UsageError: the runner is not paused (nothing changed).
        """
        if self.pause_info is None:
            raise UsageError(f"{self.name} on {self.symbol} ({self.timeframe}) is not paused")
        with self.store.transaction():
            self.store.save_runner_control(*self._control_key(), paused=False, paused_by=actor, paused_reason=reason,
                                           paused_ms=wall_ms())
        self.pause_info = None
        self.executor.paused = None
        log.warning("%s %s %s resumed by %s: entries from the next candle", self.name, self.symbol, self.timeframe,
                    actor)
        self._publish_control("resumed", actor, reason)

    async def apply_params(self, params: dict, actor: str) -> str:
        """Change the strategy's params at runtime: only grid runners can (`GridRunner`).

        Raises:
            UsageError: always here.
        """
        raise UsageError(f"{self.name} on {self.symbol} is a single-position strategy: its params change only "
                         "at a start (strategies.yaml); runtime apply_params is for grid strategies")

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
