"""Engine events -> the AlertEngine: the one place that decides which engine events become alerts.

    bridge = EngineAlerts(engine.bus, alerts, engine=engine)   # subscribe BEFORE engine.start()
    bridge.start()
    ...                                                        # the engine runs
    await bridge.close()                                       # after the engine stopped: drains

What becomes an alert (dedup key, severity):

* an entry level filled: "fill:<client id>", info (raised and resolved at once: an event, not a condition);
* a cycle closed: "cycle:<strategy>:<symbol>:<n>", info, with the cycle's P&L (raised and resolved);
* the stop moved (a position's stop changed): "stop:<strategy>:<symbol>", info (raised and resolved);
* a risk rejection: "risk:<symbol>:<code>", warning (dedup per symbol and code; the count rises);
* the kill switch tripped: "kill_switch", critical; cleared (`EngineAPI.resume`, console `:resume`,
  Telegram /resume publish `KillSwitchEvent(active=False)`): resolved, and with it every
  "risk:<symbol>:kill_switch" rejection ("entry refused (kill_switch)"), except for a symbol the
  engine's kill switch still blocks on its own;
* a feed stale or reconnecting: "feed.stale:<symbol>" / "feed.reconnect:<symbol>", warning;
  fresh again: both resolved;
* a data-quality gap: "data.gap:<symbol>:<timeframe>:<from ms>", warning, one alert per gap,
  the detail naming the missing open-time range (inclusive, as `core.data.quality.find_gaps`);
  when a replay reaches the end of its data (`ReplayFinished`), the gap alerts of the replayed
  series still unresolved (this run's and earlier runs' on the database) are resolved: the
  replay is over, nothing is missing from a live feed (they stay in the alert log, resolved);
* a reconciliation action or anything else published as an `AlertEvent` on the bus:
  "<source>:<title>", its severity;
* a research job that failed (`JobManager.subscribe(bridge.on_job_event)`): "job:<id>", warning.

Nothing is lost: the bus subscription is unbounded in practice (critical kinds are never
dropped; the bound is far above what a run publishes between two reads) and `close()`
drains what is queued before returning. An alert write that fails is logged and counted
(`failures`), never raised into the engine.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from core.data.feed import FeedFresh, FeedReconnect, FeedStale, iso_ms
from core.engine.engine import DataGap, ReplayFinished
from core.events.bus import AlertEvent, EventBus, FillEvent, KillSwitchEvent, PositionEvent, RiskRejection

log = logging.getLogger(__name__)

ACTOR = "engine"
KINDS = (FillEvent, PositionEvent, RiskRejection, KillSwitchEvent, DataGap, FeedStale, FeedFresh, FeedReconnect,
         AlertEvent, ReplayFinished)
#: Reason code of the risk rejection published while the kill switch blocks entries.
KILL_SWITCH_REJECTION = "kill_switch"


def gap_key_prefix(symbol: str, timeframe: str) -> str:
    """The dedup-key prefix of the gap alerts of one series: "data.gap:<symbol>:<timeframe>:"."""
    return f"data.gap:{symbol}:{timeframe}:"


def risk_key(symbol: str, code: str) -> str:
    """The dedup key of a risk rejection alert: "risk:<symbol>:<code>"."""
    return f"risk:{symbol}:{code}"


def gap_detail(gap: DataGap) -> str:
    """The detail text of a gap alert (the range is machine-readable too: from_ms..to_ms)."""
    return (f"{gap.symbol} {gap.timeframe}: no candles from {iso_ms(gap.from_ms)} to {iso_ms(gap.to_ms)} "
            f"(open times, inclusive; {gap.missing} missing; from_ms={gap.from_ms} to_ms={gap.to_ms}); "
            f"data resumed with the candle of {iso_ms(gap.next_ts)}")


class EngineAlerts:
    """Turns engine bus events into alerts (see the module docstring).

    Args:
        bus: the engine's event bus. alerts: an opened `AlertEngine`.
        engine: the Engine (to read a closed cycle's P&L), optional.
        fills: alert on level fills, cycle closes and stop moves (info); False keeps only the warnings.
    """

    def __init__(self, bus: EventBus, alerts: Any, *, engine: Any = None, fills: bool = True) -> None:
        self.bus = bus
        self.alerts = alerts
        self.engine = engine
        self.fills = fills
        self.sub = bus.subscribe(KINDS, maxsize=10_000_000)
        self.raised = 0
        self.failures = 0
        self._stops: dict[tuple[str, str], float | None] = {}
        self._task: asyncio.Task | None = None
        self._jobs: asyncio.Queue | None = None

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Start the bridge as a plain task whose death is logged at CRITICAL. Not under the
        engine's supervisor: it stops with the engine, and cancelling this task inside an
        `await self.handle(ev)` would lose the alert in flight; it ends by `close()` instead,
        after every queued event (each event's failure is caught and counted in `_run`)."""
        if self._task is None:
            from core.engine.supervisor import spawn_service

            self._task = spawn_service(None, "engine-alerts", self._run, subsystem="alerts", critical=True)

    async def close(self) -> None:
        """Stop after every queued event has become an alert (call once the engine stopped)."""
        self.sub.close()                       # iteration ends after the queued events
        task, self._task = self._task, None
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)
        for ev in self.sub.take_queued():
            try:
                await self.handle(ev)
            except Exception as exc:
                self.failures += 1
                log.error("alert for %s failed: %s", type(ev).__name__, exc)

    async def drain(self) -> None:
        """Wait until the events queued so far are handled (tests)."""
        while len(self.sub) and self._task is not None and not self._task.done():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0)

    async def _run(self) -> None:
        async for ev in self.sub:
            try:
                await self.handle(ev)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failures += 1
                log.error("alert for %s failed: %s", type(ev).__name__, exc)

    # ---------------------------------------------------------------- events
    async def _raise(self, key: str, severity: str, source: str, title: str, detail: str = "") -> None:
        await self.alerts.raise_alert(key, severity, source, title, detail)
        self.raised += 1

    async def _event(self, key: str, source: str, title: str, detail: str = "") -> None:
        """An info event: raised, then resolved (history, not an open condition)."""
        await self._raise(key, "info", source, title, detail)
        await self.alerts.resolve(key, ACTOR)

    async def handle(self, ev: Any) -> None:
        t = type(ev)
        if t is DataGap:
            await self._raise(f"{gap_key_prefix(ev.symbol, ev.timeframe)}{ev.from_ms}", "warning", "data",
                              f"{ev.symbol} {ev.timeframe}: gap of {ev.missing} candle(s) from {iso_ms(ev.from_ms)}",
                              gap_detail(ev))
        elif t is FillEvent:
            if not self.fills:
                return
            if ev.kind == "entry":
                await self._event(f"fill:{ev.client_id}", "executor",
                                  f"{ev.strategy} {ev.symbol}: level {ev.level} filled at {ev.price:.6g}",
                                  f"{ev.side} {ev.qty:.8g} at {ev.price:.8g}, fee {ev.fee:.4f} ({iso_ms(ev.ts)})")
            else:
                n = cycle_number(ev.client_id)
                cyc = closed_cycle(self.engine, ev.strategy, ev.symbol, ev.client_id)
                pnl = f", P&L {cyc.pnl:+.2f} USDT" if cyc is not None else ""
                await self._event(f"cycle:{ev.strategy}:{ev.symbol}:{ev.client_id if n is None else n}", "executor",
                                  f"{ev.strategy} {ev.symbol}: cycle closed ({ev.reason}){pnl}",
                                  f"exit {ev.side} {ev.qty:.8g} at {ev.price:.8g} ({iso_ms(ev.ts)}){pnl}")
        elif t is PositionEvent:
            key = (ev.strategy, ev.symbol)
            old = self._stops.get(key)
            self._stops[key] = ev.stop if ev.qty else None
            if self.fills and ev.qty and old is not None and ev.stop is not None and ev.stop != old:
                await self._event(f"stop:{ev.strategy}:{ev.symbol}", "executor",
                                  f"{ev.strategy} {ev.symbol}: stop moved {old:.6g} -> {ev.stop:.6g}",
                                  f"{ev.levels_filled} level(s) filled, avg entry {ev.avg_entry:.6g} ({iso_ms(ev.ts)})")
        elif t is RiskRejection:
            await self._raise(risk_key(ev.symbol, ev.reason), "warning", "risk",
                              f"{ev.symbol}: entry refused ({ev.reason})", ev.detail)
        elif t is KillSwitchEvent:
            if ev.active:
                await self._raise("kill_switch", "critical", "kill_switch",
                                  f"KILL SWITCH ON by {ev.actor}{' (flatten)' if ev.flatten else ''}", ev.reason)
            else:
                await self.alerts.resolve("kill_switch", ev.actor or ACTOR)
                await self._resolve_kill_rejections(ev.actor or ACTOR)
        elif t is ReplayFinished:
            await self._resolve_replay_gaps(ev)
        elif t is FeedStale:
            await self._raise(f"feed.stale:{ev.symbol}", "warning", "feed", f"{ev.symbol}: feed stale", str(ev))
        elif t is FeedReconnect:
            await self._raise(f"feed.reconnect:{ev.symbol}", "warning", "feed",
                              f"{ev.symbol}: feed reconnecting (attempt {ev.attempt})", ev.error)
        elif t is FeedFresh:
            await self.alerts.resolve(f"feed.stale:{ev.symbol}", ACTOR)
            await self.alerts.resolve(f"feed.reconnect:{ev.symbol}", ACTOR)
        elif t is AlertEvent:
            await self._raise(f"{ev.source}:{ev.title}"[:200], ev.severity, ev.source, ev.title, ev.detail)

    async def _resolve_open(self, keep: Any, actor: str) -> int:
        """Resolve every unresolved alert whose dedup key satisfies `keep(key)`; returns how many."""
        n = 0
        for alert in list(self.alerts.list()):
            if keep(alert.key) and await self.alerts.resolve(alert.key, actor) is not None:
                n += 1
        return n

    async def _resolve_kill_rejections(self, actor: str) -> None:
        """The kill switch was cleared: the "entry refused (kill_switch)" alerts are over, except
        for the symbols the engine's kill switch still blocks on their own."""
        ks = getattr(self.engine, "kill_switch", None)
        blocked = ks.blocks if ks is not None else (lambda symbol: False)
        suffix = f":{KILL_SWITCH_REJECTION}"

        def over(key: str) -> bool:
            if not (key.startswith("risk:") and key.endswith(suffix)):
                return False
            return not blocked(key[len("risk:"):-len(suffix)])

        n = await self._resolve_open(over, actor)
        if n:
            log.info("kill switch cleared by %s: %d 'entry refused (kill_switch)' alert(s) resolved", actor, n)

    async def _resolve_replay_gaps(self, ev: ReplayFinished) -> None:
        """The replay ended: the gap alerts of its series are resolved (kept in the log, resolved)."""
        prefixes = tuple(gap_key_prefix(symbol, tf) for symbol, tf in ev.series)
        n = await self._resolve_open(lambda key: key.startswith(prefixes), ACTOR)
        if n:
            log.info("replay finished: %d gap alert(s) of the replayed data resolved", n)

    def on_job_event(self, ev: Any) -> None:
        """`JobManager.subscribe` callback: a failed job becomes a warning alert."""
        if getattr(ev, "state", None) == "failed":
            self.bus.publish(AlertEvent("warning", f"job {ev.job_id} ({ev.kind}) failed",
                                        str(getattr(ev, "error", "") or ""), source="job"))

    # ---------------------------------------------------------------- engine lookups


def cycle_number(client_id: str) -> int | None:
    """The cycle number in a client order id `rd-<hash>-<cycle>-<purpose>` (None if it has none)."""
    try:
        return int(client_id.rsplit("-", 2)[1])
    except (IndexError, ValueError):
        return None


def closed_cycle(engine: Any, strategy: str, symbol: str, client_id: str):
    """The closed `core.backtest.result.Cycle` an exit fill (`client_id`) ended, or None when the
    engine or the cycle is not known."""
    n = cycle_number(client_id)
    for r in getattr(engine, "runners", ()) or ():
        if r.name == strategy and r.symbol == symbol:
            cycles = r.cycles
            return cycles[n] if n is not None and n < len(cycles) else None
    return None
