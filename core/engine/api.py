"""EngineAPI: what the console, Telegram and scripts may ask of and tell a running Engine.

Queries are synchronous and cheap (in-memory state); commands are coroutines (a live
gateway will await exchange calls) and are persisted before they return.

    api = EngineAPI(engine)
    api.snapshot()            # mode, equity, day P&L, kill switch, per symbol: price, position, grid
    api.positions()
    api.grid_state("BTC/USDT")
    await api.kill("telegram:alice", flatten=False)
    await api.resume("console")
    async for ev in api.events(): ...
"""

from __future__ import annotations

from typing import Iterable

from core.engine.engine import Engine, maybe_await
from core.errors import UsageError
from core.events.bus import KillSwitchEvent, Subscription


class EngineAPI:
    """Facade over one Engine (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ---------------------------------------------------------------- queries
    def snapshot(self) -> dict:
        """{mode, equity, day_pnl, kill_switch{...}, candles, candles_per_s, symbols: {symbol:
        [{strategy, timeframe, last_price, position{...}, grid{...}}]}}."""
        eng = self.engine
        symbols: dict[str, list] = {}
        equity = day_pnl = 0.0
        for r in eng.runners:
            equity += r.equity_last
            if r.day_start_equity is not None:
                day_pnl += r.equity_last - r.day_start_equity
            symbols.setdefault(r.symbol, []).append({
                "strategy": r.name, "timeframe": r.timeframe, "last_price": r.last_close,
                "last_ts": r.cursor, "position": r.position(), "grid": r.grid_state()})
        ks = eng.kill_switch.as_dict() if eng.kill_switch else {"active": False}
        return {"mode": eng.mode, "equity": equity, "day_pnl": day_pnl, "kill_switch": ks,
                "candles": eng.stats.candles, "candles_per_s": eng.stats.rate(), "symbols": symbols}

    def positions(self) -> list[dict]:
        """Open positions (qty > 0) of every runner."""
        return [p for p in (r.position() for r in self.engine.runners) if p["qty"]]

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
