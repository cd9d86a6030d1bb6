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
from tui.screens.base import (FILTER, SORT, SORT_REV, SortValue, TableScreen, fmt_age, fmt_num, fmt_signed,
                              rows_of_symbols)


def nearest_level(entry: dict, last: float | None) -> float | None:
    """Signed % from the last price to the nearest pending entry level (None: none pending)."""
    if not last:
        return None
    grid = entry.get("grid") or {}
    prices = [o["price"] for o in grid.get("open_orders") or [] if o.get("purpose") == "entry" and o.get("price")]
    if not prices:
        levels = grid.get("levels") or []
        prices = [p for p in levels[int(grid.get("levels_filled") or 0):] if p]
    if not prices:
        return None
    p = min(prices, key=lambda x: abs(x - last))
    return (p - last) / last * 100.0


def strategy_state(entry: dict) -> SortValue:
    pos = entry.get("position") or {}
    grid = entry.get("grid") or {}
    k = int(pos.get("levels_filled") or grid.get("levels_filled") or 0)
    n = int(grid.get("num_levels") or 0)
    if not pos.get("qty"):
        return SortValue("flat", 0)
    side = pos.get("side") or "long"
    if n <= 1:
        return SortValue(f"{side} single", 1, style="bold")
    return SortValue(f"{side} {k}/{n}", k / max(n, 1), style="bold")


def signal_of(entry: dict, kill: bool) -> SortValue:
    if entry.get("signal"):
        return SortValue(str(entry["signal"]), str(entry["signal"]))
    grid = entry.get("grid") or {}
    pos = entry.get("position") or {}
    if kill:
        return SortValue("KILL", "kill", style="bold red")
    if not any(x is not None for x in (grid.get("levels") or [])):
        return SortValue("warm-up", "warm-up", style="dim")
    if pos.get("qty"):
        return SortValue("in cycle", "in cycle", style="yellow")
    if any(o.get("purpose") == "entry" for o in grid.get("open_orders") or []):
        return SortValue("armed ↓" if (pos.get("side") or "long") == "long" else "armed ↑", "armed")
    return SortValue("idle", "idle", style="dim")


class ScannerScreen(TableScreen):
    SCREEN_NUMBER = 1
    SCREEN_TITLE = "Scanner"
    COLUMNS = (("symbol", "Symbol"), ("last", "Last"), ("chg", "Chg%"), ("sma", "ΔSMA%"), ("lvl", "ΔLvl%"),
               ("state", "State"), ("signal", "Signal"), ("atr", "ATR%"), ("fund", "Fund%"), ("age", "Age"),
               ("strategy", "Strategy"))
    ACTIONS = (
        FILTER, SORT, SORT_REV,
        Action("grid", "g", "Open the Grid screen on the selected symbol", "open_grid", readonly_ok=True),
    )

    def build_rows(self, api: Any) -> dict[str, Sequence[object]]:
        snap = api.snapshot()
        session = getattr(self.app, "session", None)
        kill = bool((snap.get("kill_switch") or {}).get("active"))
        rows: dict[str, Sequence[object]] = {}
        for key, symbol, e in rows_of_symbols(snap):
            last = e.get("last_price")
            first = session.first_price(symbol, last) if session is not None else None
            chg = (last / first - 1) * 100 if last and first else None
            grid = e.get("grid") or {}
            sma = grid.get("take_profit")
            dsma = (last - sma) / sma * 100 if last and sma else None
            atr = e.get("atr_pct")
            if atr is None and session is not None:
                atr = session.atr_pct(symbol)
            fund = e.get("funding_rate")
            age = session.feed_age(symbol) if session is not None else None
            rows[key] = (
                SortValue(symbol, symbol, style="bold"),
                fmt_num(last),
                fmt_signed(chg, 2, "%", arrow=True),
                fmt_signed(dsma, 2, "%"),
                fmt_signed(nearest_level(e, last), 2, "%"),
                strategy_state(e),
                signal_of(e, kill),
                fmt_num(atr, 2, "%"),
                fmt_signed(fund * 100 if fund is not None else None, 4, "%"),
                fmt_age(age),
                SortValue(str(e.get("strategy", "")), str(e.get("strategy", "")), style="dim"),
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
