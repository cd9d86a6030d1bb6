"""Grid screen: the ladder of the selected symbol's grid, a summary, a price chart and the last cycles.

Data: `refresh_data(api)` (called by the app at most 10×/s while visible) reads the
EngineAPI (`snapshot()`, `grid_state(symbol)`) and builds a `GridView` (`grid_view`). Work
is skipped when nothing changed since the last paint (same candle, same fills, same orders).

What `grid_state()` does not carry yet (per-level fill prices and sizes of the open cycle,
the last cycles, the candle history for the chart, the leverage) is read from the engine's
runner behind the API when it is there (`api.engine.runners`), read-only; any of it missing
just leaves the matching column "—" or the chart empty.

Keys: `n` / `p` next / previous symbol (the grid of each runner on it in turn); the Scanner's
`g` opens this screen on its selected row (`show_symbol`).
Layout: at 120 columns and wider the chart and the cycles sit beside the ladder; narrower,
the chart collapses and the cycles go under the ladder.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from typing import Any

from rich.cells import cell_len
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from core.data.timeframes import timeframe_ms
from tui.actions import Action
from tui.widgets.cycles_table import CyclesTable
from tui.widgets.ladder import (FILLED, PENDING, PLACED, GridView, Ladder, LevelView, fmt_money, fmt_pct,
                                fmt_price, fmt_qty, pct_from)
from tui.widgets.price_chart import ChartData, PriceChart

from tui.screens.base import RadarScreen

#: candles shown on the chart
CHART_CANDLES = 120
#: at this width and above the chart is shown beside the ladder
WIDE = 120


def _finite(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None


def _runner(api: Any, symbol: str, strategy: str | None):
    for r in getattr(getattr(api, "engine", None), "runners", None) or []:
        if r.symbol == symbol and (strategy is None or r.name == strategy):
            return r
    return None


def _open_cycle_fills(gs: dict, runner) -> dict[int, tuple[float, float]]:
    """level -> (fill price, qty) of the open cycle's entries."""
    if "fills" in gs:                              # when grid_state() carries them
        return {int(f["level"]): (float(f["price"]), float(f["qty"])) for f in gs["fills"] or []}
    n = gs.get("levels_filled") or 0
    if not n or runner is None:
        return {}
    out: dict[int, tuple[float, float]] = {}
    for f in reversed(runner.book.fills):
        if f.kind != "entry":
            break
        if f.level < n and f.level not in out:
            out[f.level] = (f.price, f.qty)
        if len(out) == n:
            break
    return out


def _cycles(gs: dict, runner, limit: int = 20) -> list[dict]:
    if "recent_cycles" in gs:
        return list(gs["recent_cycles"] or [])[-limit:]
    if runner is None:
        return []
    return [dataclasses.asdict(c) for c in runner.cycles[-limit:]]


def grid_view(api: Any, symbol: str, strategy: str | None = None, snapshot: dict | None = None) -> GridView:
    """The `GridView` of `symbol` (and `strategy` when several run on it) from the EngineAPI."""
    snap = snapshot if snapshot is not None else api.snapshot()
    rows = snap["symbols"].get(symbol) or []
    row = next((r for r in rows if strategy is None or r["strategy"] == strategy), None)
    gs = row["grid"] if row is not None else api.grid_state(symbol, strategy)
    strategy = gs.get("strategy", strategy)
    pos = (row or {}).get("position") or {}
    runner = _runner(api, symbol, strategy)
    side = pos.get("side") or gs.get("side") or (runner.strategy.side if runner is not None else "long")
    price = _finite((row or {}).get("last_price"))
    n_levels = int(gs.get("num_levels") or len(gs.get("levels") or []))
    n_filled = int(gs.get("levels_filled") or 0)
    quotes = list(gs.get("levels") or [])
    resting = {int(o["level"]): float(o["price"]) for o in gs.get("open_orders") or []
               if o.get("purpose") == "entry" and o.get("level") is not None}
    fills = _open_cycle_fills(gs, runner)
    cash = _finite(gs.get("cash")) or 0.0
    lev = float(getattr(getattr(runner, "account", None), "leverage", 1.0) or 1.0)
    unit = _finite(getattr(runner.book, "unit", None)) if runner is not None else None
    levels = []
    for i in range(n_levels):
        if i < n_filled:
            fp, q = fills.get(i, (None, None))
            upnl = None
            if fp is not None and q is not None and price is not None:
                upnl = q * (price - fp) if side == "long" else q * (fp - price)
            levels.append(LevelView(i, FILLED, fp, q, fp, upnl))
        else:
            p = resting.get(i, _finite(quotes[i]) if i < len(quotes) else None)
            state = PLACED if i in resting else PENDING
            notional = unit if unit is not None else (cash * lev / n_levels if n_levels else None)
            q = notional / p if notional is not None and p else None
            levels.append(LevelView(i, state, p, q))
    qty = float(pos.get("qty") or 0.0)
    return GridView(symbol=symbol, strategy=strategy or "", timeframe=gs.get("timeframe", ""), side=side,
                    price=price, levels=levels, take_profit=_finite(gs.get("take_profit")),
                    stop=_finite(gs.get("stop")), avg_entry=_finite(pos.get("avg_entry")), qty=qty,
                    upnl=float(pos.get("unrealized") or 0.0),
                    exposure=qty * price if price is not None else 0.0,
                    exposure_limit=cash * lev if cash else None, cursor_ts=gs.get("cursor_ts"),
                    cycles=_cycles(gs, runner),
                    halted=gs["state"] if str(gs.get("state") or "").startswith("halted") else None)


def chart_data(api: Any, view: GridView, n: int = CHART_CANDLES) -> ChartData | None:
    """Closes, SMA and level envelopes of the last `n` candles, and the fills among them."""
    runner = _runner(api, view.symbol, view.strategy)
    if runner is None or not len(runner.history):
        return None
    h = runner.history
    closes = h.close
    start = max(0, len(closes) - n)
    params = getattr(runner.strategy, "params", {}) or {}
    ma = int(params.get("ma_period") or 0)
    factors = list(getattr(runner.strategy, "_factors", []) or [])
    sma: list[float | None] = []
    envs: list[list[float | None]] = [[] for _ in factors]
    for t in range(start, len(closes)):
        if ma and t >= ma:
            acc = 0.0
            for x in closes[t - ma:t]:
                acc += x
            m = acc / ma
        else:
            m = None
        sma.append(m)
        for e, f in zip(envs, factors):
            e.append(None if m is None else m * f)
    index = {ts: i for i, ts in enumerate(h.ts[start:])}
    tf = timeframe_ms(runner.timeframe)
    fills = []
    for f in runner.book.fills[-200:]:
        i = index.get(f.ts)
        if i is None:                  # a live fill: wall-clock time, inside its candle
            i = index.get(f.ts - f.ts % tf)
        if i is not None:
            fills.append((i, f.price, f.kind))
    return ChartData(close=list(closes[start:]), sma=sma, envelopes=envs, fills=fills,
                     title=f"{view.symbol} {view.timeframe} — close, SMA/TP, envelopes, fills",
                     key=(view.symbol, view.strategy, view.cursor_ts, len(runner.book.fills)))


def chart_key(api: Any, view: GridView) -> tuple | None:
    """The `ChartData.key` `chart_data(api, view)` would carry (cheap: no series built)."""
    runner = _runner(api, view.symbol, view.strategy)
    if runner is None or not len(runner.history):
        return None
    return (view.symbol, view.strategy, view.cursor_ts, len(runner.book.fills))


def _update_summary(widget: Static, text: str) -> None:
    """Show `text` in the auto-height summary; a layout pass only when its height may change
    (another number of lines, or a line that does not fit the width and wraps)."""
    width = widget.content_size.width
    lines = text.split("\n")
    shape = (len(lines), width > 0 and all(cell_len(line) <= width for line in lines))
    widget.update(text, layout=not (shape[1] and getattr(widget, "_radar_shape", None) == shape))
    widget._radar_shape = shape  # type: ignore[attr-defined]


def _utc(ms: int | None) -> str:
    if ms is None:
        return "—"
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def summary_text(v: GridView) -> str:
    """The summary lines above the ladder (plain text: every figure is labelled)."""
    filled = sum(1 for lv in v.levels if lv.state == FILLED)
    nxt = v.next_level()
    lines = [f"{v.symbol}  {v.strategy} {v.side.upper()} {v.timeframe}   price {fmt_price(v.price)}   "
             f"candle {_utc(v.cursor_ts)}"]
    nl = (f"next L{nxt.index} {nxt.state} {fmt_price(nxt.price)} ({fmt_pct(pct_from(nxt.price, v.price))})"
          if nxt is not None else "next: all levels filled")
    sl = f"stop {fmt_price(v.stop)} ({fmt_pct(pct_from(v.stop, v.price))})" if v.stop is not None else "stop: none (flat)"
    tp = f"TP {fmt_price(v.take_profit)} ({fmt_pct(pct_from(v.take_profit, v.price))})"
    lines.append(f"{nl}   {sl}   {tp}")
    if v.exposure_limit:
        ratio = v.exposure / v.exposure_limit * 100
        exp = f"exposure {v.exposure:,.2f} / {v.exposure_limit:,.2f} limit ({ratio:.0f}%)"
    else:
        exp = f"exposure {v.exposure:,.2f}"
    pos = (f"position {fmt_qty(v.qty)} @ {fmt_price(v.avg_entry)} uPnL {fmt_money(v.upnl)}" if v.qty
           else "position: flat")
    lines.append(f"{pos}   {exp}   levels {filled}/{len(v.levels)} filled")
    if v.halted:
        lines.append(f"{v.halted.upper()}: entries cancelled and refused, stop kept")
    return "\n".join(lines)


class GridScreen(RadarScreen):
    """See the module docstring."""

    ACTIONS = (
        Action("next-symbol", "n", "Show the next symbol's grid", "next_symbol", readonly_ok=True),
        Action("prev-symbol", "p", "Show the previous symbol's grid", "prev_symbol", readonly_ok=True),
    )
    SCREEN_NUMBER = 2
    SCREEN_TITLE = "Grid"

    DEFAULT_CSS = """
    GridScreen #grid-summary { height: auto; padding: 0 1; border-bottom: solid $primary; }
    GridScreen #grid-body { height: 1fr; }
    GridScreen #grid-left { width: 1fr; min-width: 60; }
    GridScreen #grid-right { width: 1fr; }
    GridScreen #ladder { padding: 0 1; }
    GridScreen.-narrow #grid-body { layout: vertical; }
    GridScreen.-narrow #grid-left { width: 1fr; height: 2fr; min-width: 0; }
    GridScreen.-narrow #grid-right { width: 1fr; height: 1fr; }
    GridScreen.-narrow #chart { display: none; }
    """

    def __init__(self, api: Any = None, symbol: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.api = api
        self.symbol = symbol
        self._strategy: str | None = None
        self.entries: list[tuple[str, str]] = []   # (symbol, strategy) in display order
        self.view: GridView | None = None
        self._sig: tuple | None = None

    def compose(self) -> ComposeResult:
        yield Static("no engine data yet", id="grid-summary")
        with Horizontal(id="grid-body"):
            with Vertical(id="grid-left"):
                yield Ladder(id="ladder")
            with Vertical(id="grid-right"):
                yield PriceChart(id="chart")
                yield CyclesTable(id="cycles")

    def on_resize(self) -> None:
        self.set_class(self.size.width < WIDE, "-narrow")

    def on_mount(self) -> None:
        self.set_class(self.app.size.width < WIDE, "-narrow")
        if self.api is not None:
            self.refresh_data(self.api)

    # ---------------------------------------------------------------- data
    def refresh_data(self, api: Any) -> None:
        self.api = api
        if api is None:
            return
        snap = api.snapshot()
        self.entries = [(sym, r["strategy"]) for sym in sorted(snap["symbols"]) for r in snap["symbols"][sym]]
        if not self.entries:
            return
        if self.symbol is None or all(s != self.symbol for s, _ in self.entries):
            self.symbol = self.entries[0][0]
            self._strategy = self.entries[0][1]
        strategy = self._strategy
        if (self.symbol, strategy) not in self.entries:
            strategy = next(st for s, st in self.entries if s == self.symbol)
            self._strategy = strategy
        row = next(r for r in snap["symbols"][self.symbol] if r["strategy"] == strategy)
        g = row["grid"]
        sig = (self.symbol, strategy, g.get("cursor_ts"), g.get("levels_filled"), g.get("cycles"),
               tuple((o["client_id"], o["price"]) for o in g.get("open_orders") or ()), row.get("last_price"))
        if sig == self._sig:
            return
        self._sig = sig
        view = grid_view(api, self.symbol, strategy, snapshot=snap)
        self.view = view
        _update_summary(self.query_one("#grid-summary", Static), summary_text(view))
        self.query_one(Ladder).show(view)
        self.query_one(CyclesTable).show(f"{view.symbol}:{view.strategy}", view.cycles)
        chart = self.query_one(PriceChart)
        if chart.display and not self.has_class("-narrow"):
            # throttled by the chart (at most ~1 redraw/s for new candles); built only when drawn
            chart.request(chart_key(api, view), lambda: chart_data(api, view))

    # ---------------------------------------------------------------- actions
    def show_symbol(self, symbol: str, strategy: str | None = None) -> None:
        """Show the grid of `symbol` (its runner of `strategy`, else its first one): what the
        Scanner's `g` calls. Painted now when the screen is mounted, else when it is shown."""
        self.symbol = symbol
        self._strategy = strategy
        self._sig = None
        self.stale = True
        if self.api is not None and self.is_mounted:
            self.refresh_data(self.api)

    def _step(self, d: int) -> None:
        if not self.entries:
            return
        cur = (self.symbol, self._strategy)
        i = self.entries.index(cur) if cur in self.entries else -1
        self.symbol, self._strategy = self.entries[(i + d) % len(self.entries)]
        self._sig = None
        if self.api is not None:
            self.refresh_data(self.api)

    def action_next_symbol(self) -> None:
        self._step(1)

    def action_prev_symbol(self) -> None:
        self._step(-1)

