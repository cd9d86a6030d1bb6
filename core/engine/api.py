"""EngineAPI: what the console, Telegram and scripts may ask of and tell a running Engine.

Queries are synchronous and cheap (in-memory state); commands are coroutines (a live
gateway will await exchange calls) and are persisted before they return.

    api = EngineAPI(engine)
    api.snapshot()            # mode, equity, day P&L, kill switch, per symbol: price, position, grid
    api.positions()
    api.grid_state("BTC/USDT")
    await api.kill("telegram:alice", flatten=False)
    await api.resume("console")
    await api.flatten("cli:alice", symbol="BTC/USDT")     # one symbol, or every position
    await api.cancel_entries("console")
    async for ev in api.events(): ...

With the run's services (`EngineAPI(engine, alerts=..., jobs=..., watchdog=..., lag=...)`, as
the API server builds it) it also answers `alerts()`, `jobs()`, `health()` and acknowledges or
snoozes alerts. Money is USDT, times ms UTC. `core.api` serves this facade over a Unix socket.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Iterable

from core.engine.engine import Engine, maybe_await
from core.errors import UsageError
from core.events.bus import KillSwitchEvent, Subscription

log = logging.getLogger(__name__)


class EngineAPI:
    """Facade over one Engine (see the module docstring)."""

    def __init__(self, engine: Engine, *, alerts: Any = None, jobs: Any = None, watchdog: Any = None,
                 lag: Any = None) -> None:
        self.engine = engine
        self.alerts = alerts          # core.alerts.engine.AlertEngine, or None
        self.jobs = jobs              # core.jobs.manager.JobManager, or None
        self.watchdog = watchdog      # core.health.watchdog.Watchdog, or None
        self.lag = lag                # core.health.loop_lag.LoopLagSampler, or None

    # ---------------------------------------------------------------- queries
    def snapshot(self) -> dict:
        """{mode, equity, day_pnl, kill_switch{...}, candles, candles_per_s, symbols: {symbol:
        [{strategy, timeframe, last_price, last_ts, state, position{...}, grid{...}}]}}
        (equity and day P&L in USDT, last_ts ms UTC; state: see `runner_state`)."""
        eng = self.engine
        symbols: dict[str, list] = {}
        equity = day_pnl = 0.0
        for r in eng.runners:
            equity += r.equity_last
            if r.day_start_equity is not None:
                day_pnl += r.equity_last - r.day_start_equity
            symbols.setdefault(r.symbol, []).append({
                "strategy": r.name, "timeframe": r.timeframe, "last_price": r.last_close,
                "last_ts": r.cursor, "state": runner_state(r), "position": r.position(),
                "grid": r.grid_state()})
        ks = eng.kill_switch.as_dict() if eng.kill_switch else {"active": False}
        return {"mode": eng.mode, "equity": equity, "day_pnl": day_pnl, "kill_switch": ks,
                "candles": eng.stats.candles, "candles_per_s": eng.stats.rate(), "symbols": symbols}

    def positions(self) -> list[dict]:
        """Open positions (qty > 0) of every runner."""
        return [p for p in (r.position() for r in self.engine.runners) if p["qty"]]

    def symbols(self) -> list[str]:
        """The symbols the runners trade, sorted."""
        return sorted({r.symbol for r in self.engine.runners})

    def grid_state(self, symbol: str, strategy: str | None = None) -> dict:
        """The grid of `symbol` (and `strategy` when several run on it).

        Raises:
            UsageError: no runner trades it.
        """
        for r in self.engine.runners:
            if r.symbol == symbol and (strategy is None or r.name == strategy):
                return r.grid_state()
        raise UsageError(f"no strategy runs on {symbol!r}; running: "
                         f"{', '.join(sorted({r.symbol for r in self.engine.runners})) or 'none'}")

    # ---------------------------------------------------------------- commands
    async def kill(self, actor: str, flatten: bool = False, reason: str = "command") -> dict:
        """Trip the kill switch (persisted first): cancel pending entries, keep the stops, block
        new entries until `resume`; with `flatten`, close every position at market."""
        eng = self.engine
        if eng.kill_switch is None:
            raise UsageError("the engine is not started")
        eng.kill_switch.trip(actor, flatten, reason)
        cancelled = flattened = 0
        for r in eng.runners:
            cancelled += await maybe_await(r.cancel_entries())
            if flatten and r.position()["qty"]:
                await maybe_await(r.flatten("kill"))
                flattened += 1
        eng.bus.publish(KillSwitchEvent(True, flatten, actor, reason))
        return {"active": True, "cancelled_entries": cancelled, "flattened": flattened}

    async def resume(self, actor: str, reason: str = "resume") -> dict:
        """Clear the kill switch (persisted); entries are placed again from the next candle."""
        eng = self.engine
        if eng.kill_switch is None:
            raise UsageError("the engine is not started")
        eng.kill_switch.clear(actor, reason)
        eng.bus.publish(KillSwitchEvent(False, False, actor, reason))
        return {"active": False}

    def events(self, kinds: Iterable[type] | None = None, maxsize: int | None = None) -> Subscription:
        """A bounded subscription to the engine's event bus (see `core.events.bus`)."""
        return self.engine.bus.subscribe(kinds, maxsize)

    # ---------------------------------------------------------------- services (alerts, jobs, health)
    def alerts_list(self, state: str | None = None, severity: str | None = None) -> list[dict]:
        """Alerts in display order (`AlertEngine.list`; default: every unresolved one) as dicts
        (`Alert.to_dict`, times ms UTC).

        Raises:
            UsageError: no alert engine in this run. AlertInputError: unknown state or severity.
        """
        if self.alerts is None:
            raise UsageError("no alert engine in this run")
        return [a.to_dict() for a in self.alerts.list(state=state, severity=severity)]

    async def jobs_list(self, limit: int = 50) -> list[dict]:
        """The newest research jobs first (`JobRecord` fields; progress 0-100, times ms UTC),
        read from the database in a thread.

        Raises:
            UsageError: no job manager in this run.
        """
        if self.jobs is None:
            raise UsageError("no job manager in this run")
        from dataclasses import asdict

        rows = await asyncio.to_thread(self.jobs.jobs, limit)
        return [asdict(j) for j in rows]

    def health(self) -> dict:
        """{overall: ok | degraded | down | unknown, subsystems: [SubsystemHealth.to_dict()],
        loop_lag: {samples, p50_s, p99_s, max_s, window_s} or None}."""
        subs = [] if self.watchdog is None else [h.to_dict() for h in self.watchdog.snapshot().values()]
        overall = "unknown" if self.watchdog is None else self.watchdog.overall().value
        lag = None
        if self.lag is not None:
            from dataclasses import asdict

            lag = asdict(self.lag.stats())
        return {"overall": overall, "subsystems": subs, "loop_lag": lag}

    # ---------------------------------------------------------------- more commands
    def _require_running(self) -> None:
        if self.engine.kill_switch is None or self.engine.store is None:
            raise UsageError("the engine is not running (not started yet, or stopped)")

    def _runners_of(self, symbol: str | None) -> list:
        if symbol is None:
            return list(self.engine.runners)
        runners = [r for r in self.engine.runners if r.symbol == symbol]
        if not runners:
            raise UsageError(f"no strategy runs on {symbol!r}; running: {', '.join(self.symbols()) or 'none'}")
        return runners

    async def flatten(self, actor: str, symbol: str | None = None) -> dict:
        """Cancel the resting entries and close at market the position of `symbol` (None: every
        symbol), recorded like any exit (reason "kill"). The kill switch is not touched: entries
        are placed again from the next candle unless it is active. Returns {flattened: positions
        closed, symbols: [the symbols concerned]}.

        Raises:
            UsageError: no runner trades `symbol`, or the engine is not running.
        """
        self._require_running()
        runners = self._runners_of(symbol)
        log.warning("flatten %s by %s", symbol or "every position", actor)
        flattened = 0
        for r in runners:
            if r.position()["qty"]:
                await maybe_await(r.flatten("kill"))
                flattened += 1
        return {"flattened": flattened, "symbols": sorted({r.symbol for r in runners})}

    async def cancel_entries(self, actor: str, symbol: str | None = None) -> dict:
        """Cancel the resting entry orders of `symbol` (None: every symbol); stops and take-profits
        stay, and entries are placed again from the next candle unless the kill switch is active.
        Returns {cancelled_entries: n, symbols: [...]}.

        Raises:
            UsageError: no runner trades `symbol`, or the engine is not running.
        """
        self._require_running()
        runners = self._runners_of(symbol)
        log.warning("cancel entries of %s by %s", symbol or "every symbol", actor)
        n = 0
        for r in runners:
            n += await maybe_await(r.cancel_entries()) or 0
        return {"cancelled_entries": n, "symbols": sorted({r.symbol for r in runners})}

    async def ack_alert(self, alert_id: int, actor: str) -> Any:
        """Acknowledge alert `alert_id`: the `core.alerts.model.CommandResult` (never raises on a
        bad or unknown id: `ok` False, `error` says which).

        Raises:
            UsageError: no alert engine in this run.
        """
        if self.alerts is None:
            raise UsageError("no alert engine in this run")
        return await self.alerts.ack(alert_id, actor)

    async def snooze_alert(self, alert_id: int, actor: str, minutes: int) -> Any:
        """Snooze alert `alert_id` for `minutes`: the `CommandResult` (see `ack_alert`).

        Raises:
            UsageError: no alert engine in this run.
        """
        if self.alerts is None:
            raise UsageError("no alert engine in this run")
        return await self.alerts.snooze(alert_id, actor, duration=f"{int(minutes)}m")


def runner_state(r: Any) -> str:
    """A runner's state: "halted: <why>" while its executor refuses entries, else the live
    runner's state (connecting | reconciling | ready | blocked | halted), "ready" on paper."""
    halted = getattr(getattr(r, "executor", None), "halted", None)
    if halted:
        return f"halted: {halted}"
    return str(getattr(r, "state", "ready"))
