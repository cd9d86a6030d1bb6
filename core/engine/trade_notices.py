"""Trade notices for Telegram: a grid level opened, a cycle closed with its P&L, the daily and
the weekly report.

Subscribes to the engine's bus (fills and candles) and queues messages on the bot's outbox
(`core.telegram.bot.TelegramBot`), which never blocks the engine. The day is the UTC day of
the candles the engine processes (ms UTC open times), so a replay reports its market days
and a live run its calendar days; the report for day D is sent when the first candle of a
later day arrives, with: account equity (USDT) at the end of D and its change over D, the
cycles closed in D with their summed P&L, and the open positions. The weekly report (ISO weeks,
UTC, `core.performance.weekly`) is sent likewise at the first candle of a later week, to a bot
that has `send_weekly_report`: equity and its change over the week, the max drawdown within it,
its cycles per asset, the open positions.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from core.engine.alerting import closed_cycle
from core.events.bus import CandleEvent, EventBus, FillEvent

log = logging.getLogger("core.engine.notices")

DAY_MS = 86_400_000


def quote_of(symbol: str) -> str:
    """Quote currency of a ccxt symbol: "BTC/USDT:USDT" -> "USDT"."""
    return symbol.split("/", 1)[-1].split(":", 1)[0]


class TradeNotices:
    """Bus -> bot bridge for trade messages (see the module docstring).

    Args:
        bus: the engine's event bus. bot: a `TelegramBot` (or anything with the same
            `send_grid_level_opened`, `send_cycle_closed`, `send_daily_report`).
        engine: the Engine, to read closed cycles, equity and positions (optional: without
            it cycle P&L and equity are left out).
    """

    def __init__(self, bus: EventBus, bot: Any, *, engine: Any = None) -> None:
        self.bot = bot
        self.engine = engine
        self.sub = bus.subscribe((FillEvent, CandleEvent), maxsize=1_000_000)
        self.sent = 0
        self.failures = 0
        self._task: asyncio.Task | None = None
        self._day: int | None = None
        self._day_start_equity: float | None = None
        self._cycles = 0
        self._pnl = 0.0
        self._week: int | None = None
        self._week_start_equity: float | None = None
        self._week_peak: float | None = None
        self._week_max_dd = 0.0
        self._week_cycles: list[tuple[str, Any]] = []

    def start(self) -> None:
        """Start the bridge (under the engine's supervisor when it has one: `spawn_service`)."""
        if self._task is None:
            from core.engine.supervisor import spawn_service

            self._task = spawn_service(self.engine, "trade-notices", self._run, subsystem="telegram")

    async def close(self) -> None:
        """Stop after the queued events are handled (call once the engine stopped; what a task
        stopped with the engine's supervisor left is handled here)."""
        self.sub.close()
        task, self._task = self._task, None
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)
        for ev in self.sub.take_queued():
            try:
                self.handle(ev)
            except Exception as exc:
                self.failures += 1
                log.error("trade notice for %s failed: %s", type(ev).__name__, exc)

    async def _run(self) -> None:
        async for ev in self.sub:
            try:
                self.handle(ev)
            except Exception as exc:  # a bad message never stops the bridge
                self.failures += 1
                log.error("trade notice for %s failed: %s", type(ev).__name__, exc)

    # ---------------------------------------------------------------- events
    def handle(self, ev: Any) -> None:
        """Turn one bus event into the messages it calls for."""
        if isinstance(ev, FillEvent):
            self._on_fill(ev)
        elif isinstance(ev, CandleEvent):
            self._on_candle(ev)

    def _on_fill(self, ev: FillEvent) -> None:
        if ev.kind == "entry":
            self.bot.send_grid_level_opened(ev.symbol, ev.level, ev.side, ev.price, ev.qty * ev.price, ev.ts)
            self.sent += 1
            return
        cyc = closed_cycle(self.engine, ev.strategy, ev.symbol, ev.client_id)
        if cyc is None:
            return
        cost = cyc.avg_entry * cyc.qty
        self.bot.send_cycle_closed(ev.symbol, cyc.pnl, quote_of(ev.symbol), ev.ts,
                                   pnl_pct=cyc.pnl / cost * 100.0 if cost else None,
                                   duration_ms=cyc.close_time - cyc.open_time, levels=cyc.levels_filled)
        self.sent += 1
        self._cycles += 1
        self._pnl += cyc.pnl
        self._week_cycles.append((ev.symbol, cyc))

    def _on_candle(self, ev: CandleEvent) -> None:
        self._on_week(ev.ts)
        day = ev.ts // DAY_MS
        if self._day is None:
            self._day, self._day_start_equity = day, self._equity()
            return
        if day <= self._day:
            return
        # the first candle of a later day: report the finished day (equity as of its last close)
        self._report(self._day)
        self._day, self._day_start_equity = day, self._equity()
        self._cycles, self._pnl = 0, 0.0

    def _on_week(self, ts: int) -> None:
        """Weekly report bookkeeping: report a finished week at the first candle of a later one
        (before this candle's equity counts, as the daily report), then follow the drawdown."""
        from core.performance.weekly import week_of

        week = week_of(ts)
        if self._week is None or week > self._week:
            if self._week is not None:
                self._report_week(self._week)
            self._week, self._week_start_equity = week, self._equity()
            self._week_peak, self._week_max_dd, self._week_cycles = self._week_start_equity, 0.0, []
        eq = self._equity()
        if eq is not None:
            self._week_peak = eq if self._week_peak is None else max(self._week_peak, eq)
            if self._week_peak > 0:
                self._week_max_dd = max(self._week_max_dd, (self._week_peak - eq) / self._week_peak)

    def _report_week(self, week: int) -> None:
        send = getattr(self.bot, "send_weekly_report", None)
        if send is None:
            return
        from core.performance.weekly import week_start_ms, weekly_sections

        sections = weekly_sections(self._week_start_equity, self._equity(), self._week_max_dd, self._week_cycles,
                                   self._open_lines())
        send(week_start_ms(week), sections)
        self.sent += 1

    def _open_lines(self) -> list[str]:
        open_pos = [r.position() for r in getattr(self.engine, "runners", ()) or ()]
        return [f"{p['symbol']} {p['side']} {p['qty']:.6g} @ {p['avg_entry']:.6g}" for p in open_pos if p.get("qty")]

    def _equity(self) -> float | None:
        runners = getattr(self.engine, "runners", None)
        if not runners:
            return None
        return float(sum(r.equity_last for r in runners))

    def _report(self, day: int) -> None:
        sections: list[tuple[str, str]] = []
        equity = self._equity()
        if equity is not None:
            change = "" if self._day_start_equity is None else f" ({equity - self._day_start_equity:+,.2f} USDT)"
            sections.append(("Equity", f"{equity:,.2f} USDT{change}"))
        sections.append(("Cycles", f"{self._cycles} closed, P&L {self._pnl:+,.2f} USDT"))
        open_pos = [r.position() for r in getattr(self.engine, "runners", ()) or ()]
        lines = [f"{p['symbol']} {p['side']} {p['qty']:.6g} @ {p['avg_entry']:.6g}" for p in open_pos if p.get("qty")]
        sections.append(("Open positions", "\n".join(lines) if lines else "none"))
        self.bot.send_daily_report(day * DAY_MS, sections)
        self.sent += 1
