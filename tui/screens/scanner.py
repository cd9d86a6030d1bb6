"""1 Scanner: every configured symbol at a glance.

Per (symbol, strategy): last price, change over the session (since the console started),
distance to the SMA (the envelope's moving average, which is also its take-profit) and to
the nearest pending entry level, strategy state (flat / k/n filled / single position), the
signal, ATR % (from the candles the console saw), funding rate (when the engine gives it)
and feed age. Direction is carried by signs and arrows, colour only adds to it.
"""

from __future__ import annotations

from typing import Any, Sequence

from tui.actions import Action
from core.api.views import RunnerView
from tui.screens.runner_controls import RUNNER_ACTIONS, RunnerControls
from tui.screens.base import FILTER, SORT, SORT_REV, SortValue, TableScreen, fmt_age, fmt_num, fmt_signed


def nearest_level(r: RunnerView, last: float | None) -> float | None:
    """Signed % from the last price to the nearest pending entry level (None: none pending)."""
    if not last:
        return None
    prices = [o.price for o in r.grid.entry_orders() if o.price]
    if not prices:
        prices = [p for p in r.grid.levels[r.grid.levels_filled:] if p]
    if not prices:
        return None
    p = min(prices, key=lambda x: abs(x - last))
    return (p - last) / last * 100.0


def strategy_state(r: RunnerView) -> SortValue:
    pos = r.position
    k = pos.levels_filled or r.grid.levels_filled
    n = r.grid.num_levels
    if not pos.is_open:
        return SortValue("flat", 0)
    side = pos.side or "long"
    if n <= 1:
        return SortValue(f"{side} single", 1, style="bold")
    return SortValue(f"{side} {k}/{n}", k / max(n, 1), style="bold")


def signal_of(r: RunnerView, kill: bool) -> SortValue:
    if r.signal:
        return SortValue(r.signal, r.signal)
    if kill:
        return SortValue("KILL", "kill", style="bold red")
    if r.halted:
        return SortValue("HALTED", "halted", style="bold red")
    if r.paused:
        return SortValue("paused", "paused", style="yellow")
    if not any(x is not None for x in r.grid.levels):
        return SortValue("warm-up", "warm-up", style="dim")
    if r.position.is_open:
        return SortValue("in cycle", "in cycle", style="yellow")
    if r.grid.entry_orders():
        return SortValue("armed ↓" if (r.position.side or "long") == "long" else "armed ↑", "armed")
    return SortValue("idle", "idle", style="dim")


class ScannerScreen(RunnerControls, TableScreen):
    SCREEN_NUMBER = 1
    SCREEN_TITLE = "Scanner"
    COLUMNS = (("symbol", "Symbol"), ("last", "Last"), ("chg", "Chg%"), ("sma", "ΔSMA%"), ("lvl", "ΔLvl%"),
               ("state", "State"), ("signal", "Signal"), ("atr", "ATR%"), ("fund", "Fund%"), ("age", "Age"),
               ("strategy", "Strategy"))
    ACTIONS = (
        FILTER, SORT, SORT_REV,
        Action("grid", "g", "Open the Grid screen on the selected symbol", "open_grid", readonly_ok=True),
        *RUNNER_ACTIONS,
    )

    def build_rows(self, api: Any) -> dict[str, Sequence[object]]:
        snap = api.snapshot()
        session = getattr(self.app, "session", None)
        kill = snap.kill_switch.active
        rows: dict[str, Sequence[object]] = {}
        for r in snap.runners:
            symbol, last = r.symbol, r.last_price
            first = session.first_price(symbol, last) if session is not None else None
            chg = (last / first - 1) * 100 if last and first else None
            sma = r.grid.take_profit
            dsma = (last - sma) / sma * 100 if last and sma else None
            atr = r.atr_pct
            if atr is None and session is not None:
                atr = session.atr_pct(symbol)
            fund = r.funding_rate
            age = session.feed_age(symbol) if session is not None else None
            rows[r.key] = (
                SortValue(symbol, symbol, style="bold"),
                fmt_num(last),
                fmt_signed(chg, 2, "%", arrow=True),
                fmt_signed(dsma, 2, "%"),
                fmt_signed(nearest_level(r, last), 2, "%"),
                strategy_state(r),
                signal_of(r, kill),
                fmt_num(atr, 2, "%"),
                fmt_signed(fund * 100 if fund is not None else None, 4, "%"),
                fmt_age(age),
                SortValue(r.strategy, r.strategy, style="dim"),
            )
        return rows

    def action_open_grid(self) -> None:
        key = self.selected_key()
        if key is None:
            return
        symbol, _, strategy = key.partition("|")
        opener = getattr(self.app, "open_grid", None)
        if opener is not None:
            opener(symbol, strategy or None)
