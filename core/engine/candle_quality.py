"""Closed candles of the engine's feeds -> data-quality warnings on the event bus.

`CandleQualityListener` is an `Engine.feed_listeners` callable: it sees every data
event, keeps one `core.data.candle_guard.CandleQualityGuard` per (symbol, timeframe)
and, for each rule a closed candle breaks (open-gap spike, price spike, zero volume,
invalid OHLC: the per-candle rules of `radar data check`, see
`core.data.candle_guard`), publishes

    AlertEvent(severity="warning", source="data",
               title="<symbol> <timeframe> <YYYY-MM-DD HH:MM> UTC: <rule>",   # candle open time
               detail="<prices (quote currency) and the rule>; <source> candle")

`core.engine.alerting.EngineAlerts` records an AlertEvent under the dedup key
"<source>:<title>", so each (series, candle, rule) is one alert. The listener
publishes a (symbol, timeframe, open time, rule) once: the guard judges an open time
once (a re-delivered or out-of-order candle is skipped) and the listener remembers
the last `remember` published keys on top, so a replay never publishes the same rule
for the same candle twice. Data gaps are not this listener's: the engine publishes
them itself (`DataGap`).

Wiring (in `Engine.start`): `self.feed_listeners.append(CandleQualityListener(self.bus))`.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from core.data.candle_guard import CandleQualityGuard, QualityFinding, fmt_utc
from core.data.feed import ClosedCandle
from core.events.bus import AlertEvent

#: Severity of the published alerts (`core.alerts` severities: info | warning | error | critical).
SEVERITY = "warning"
#: Alert source (the engine's gap alerts use "data" too).
SOURCE = "data"
#: Published (symbol, timeframe, ts, kind) keys remembered for de-duplication.
REMEMBER = 4096


def alert_title(f: QualityFinding) -> str:
    """"<symbol> <timeframe> <YYYY-MM-DD HH:MM> UTC: <rule>" (the candle's open time)."""
    return f"{f.symbol} {f.timeframe} {fmt_utc(f.ts)}: {f.label}"


class CandleQualityListener:
    """A feed listener publishing a warning `AlertEvent` per data-quality finding (module docstring).

    Args:
        bus: the engine's `EventBus` (anything with `publish(event)`).
        guard_factory: builds the guard of a new (symbol, timeframe); default
            `CandleQualityGuard(symbol, timeframe)` with the thresholds of `core.data.quality`.
        remember: how many published keys to keep for de-duplication (>= 1).

    Attributes:
        guards: the guard of each (symbol, timeframe) seen.
        published: alerts published so far; by_kind: the same per finding kind.
    """

    def __init__(self, bus: Any, *, guard_factory: Callable[[str, str], CandleQualityGuard] | None = None,
                 remember: int = REMEMBER) -> None:
        if remember < 1:
            raise ValueError(f"remember must be >= 1, got {remember}")
        self.bus = bus
        self.guard_factory = guard_factory or CandleQualityGuard
        self.guards: dict[tuple[str, str], CandleQualityGuard] = {}
        self.published = 0
        self.by_kind: Counter[str] = Counter()
        self._seen: set[tuple[str, str, int, str]] = set()
        self._order: deque[tuple[str, str, int, str]] = deque()
        self._remember = remember

    def __call__(self, ev: Any) -> None:
        """Judge `ev` when it is a `ClosedCandle`; other events are ignored."""
        if type(ev) is not ClosedCandle:
            return
        key = (ev.symbol, ev.timeframe)
        guard = self.guards.get(key)
        if guard is None:
            guard = self.guards[key] = self.guard_factory(ev.symbol, ev.timeframe)
        findings = guard.check(ev.ts, ev.open, ev.high, ev.low, ev.close, ev.volume)
        if findings:
            self._publish(findings, ev)

    def _publish(self, findings: list[QualityFinding], ev: ClosedCandle) -> None:
        origin = f"{ev.source} candle" + ("" if ev.complete else ", incomplete aggregate")
        for f in findings:
            k = (f.symbol, f.timeframe, f.ts, f.kind)
            if k in self._seen:
                continue
            self._seen.add(k)
            self._order.append(k)
            if len(self._order) > self._remember:
                self._seen.discard(self._order.popleft())
            self.bus.publish(AlertEvent(SEVERITY, alert_title(f), f"{f.detail}; {origin}", SOURCE))
            self.published += 1
            self.by_kind[f.kind] += 1
