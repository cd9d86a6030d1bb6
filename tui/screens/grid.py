"""Grid screen: the ladder of the selected symbol's grid, a summary, a price chart and the last cycles.

Data: `refresh_data(api)` (called by the app at most 10×/s while visible) reads the engine
port (`snapshot()`, `grid(symbol, strategy)`: typed views, `core.api.views`) and builds the
ladder's `GridView` (`grid_view`). The grid's detail (the open cycle's fills, the last
cycles, leverage, the chart series) comes with `grid()` from the engine itself
(`core.engine.grid_detail`), in-process or over the socket alike; until an attached
console has read it, the fill columns show "—" and the chart is empty. Work is skipped when
nothing changed since the last paint (same candle, same fills, same orders).

Keys: `n` / `p` next / previous symbol (the grid of each runner on it in turn); the Scanner's
`g` opens this screen on its selected row (`show_symbol`).
Layout: at 120 columns and wider the chart and the cycles sit beside the ladder; narrower,
the chart collapses and the cycles go under the ladder.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from rich.cells import cell_len
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from core.api.views import ChartView, SnapshotView
from tui.actions import Action
from tui.widgets.cycles_table import CyclesTable
from tui.widgets.ladder import (FILLED, PENDING, PLACED, GridView, Ladder, LevelView, fmt_money, fmt_pct,
                                fmt_price, fmt_qty, pct_from)
from tui.widgets.price_chart import ChartData, PriceChart

from tui.screens.base import RadarScreen
from tui.screens.runner_controls import RUNNER_ACTIONS, RunnerControls

#: at this width and above the chart is shown beside the ladder
WIDE = 120


def grid_view(api: Any, symbol: str, strategy: str | None = None, snapshot: SnapshotView | None = None) -> GridView:
    """The ladder's `GridView` of `symbol` (and `strategy` when several run on it) from the port:
    the runner in the snapshot and its grid with detail (`api.grid`)."""
    snap = snapshot if snapshot is not None else api.snapshot()
    row = snap.runner(symbol, strategy)
    g = api.grid(symbol, strategy)
    strategy = g.strategy or strategy
    pos = row.position if row is not None else None
    side = (pos.side if pos is not None and pos.side else None) or g.side or "long"
    price = row.last_price if row is not None else None
    n_levels = g.num_levels or len(g.levels)
    n_filled = g.levels_filled
    resting = {o.level: o.price for o in g.entry_orders() if o.level is not None and o.price is not None}
    fills = {f.level: (f.price, f.qty) for f in g.fills}
    cash = g.cash or 0.0
    lev = g.leverage or 1.0
    levels = []
    for i in range(n_levels):
        if i < n_filled:
            fp, q = fills.get(i, (None, None))
            upnl = None
            if fp is not None and q is not None and price is not None:
                upnl = q * (price - fp) if side == "long" else q * (fp - price)
            levels.append(LevelView(i, FILLED, fp, q, fp, upnl))
        else:
            p = resting.get(i, g.levels[i] if i < len(g.levels) else None)
            state = PLACED if i in resting else PENDING
            notional = g.unit if g.unit is not None else (cash * lev / n_levels if n_levels else None)
            q = notional / p if notional is not None and p else None
            levels.append(LevelView(i, state, p, q))
    qty = pos.qty if pos is not None else 0.0
    state = row.state if row is not None else g.state
    return GridView(symbol=symbol, strategy=strategy or "", timeframe=g.timeframe, side=side,
                    price=price, levels=levels, take_profit=g.take_profit,
                    stop=g.stop, avg_entry=pos.avg_entry if pos is not None else None, qty=qty,
                    upnl=pos.unrealized if pos is not None else 0.0,
                    exposure=qty * price if price is not None else 0.0,
                    exposure_limit=cash * lev if cash else None, cursor_ts=g.cursor_ts,
                    cycles=list(g.recent_cycles),
                    halted=state if state.startswith("halted") else None,
                    paused=state == "paused",
                    pending_params=dict(row.pending_params) if row is not None and row.pending_params else None)


def chart_data(view: GridView, chart: ChartView | None) -> ChartData | None:
    """The chart of the grid's last candles (closes, SMA/TP, level envelopes, fills), or None."""
    if chart is None:
        return None
    return ChartData(close=list(chart.close), sma=list(chart.sma), envelopes=[list(e) for e in chart.envelopes],
                     fills=list(chart.fills),
                     title=f"{view.symbol} {view.timeframe} — close, SMA/TP, envelopes, fills", key=chart.key)


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
    elif v.paused:
        lines.append("PAUSED: no new entries; the position keeps its stop and take-profit")
    if v.pending_params:
        shown = ", ".join(f"{k}={val}" for k, val in sorted(v.pending_params.items()))
        lines.append(f"new parameters at the next flat moment: {shown}")
    return "\n".join(lines)


class GridScreen(RunnerControls, RadarScreen):
    """See the module docstring."""

    ACTIONS = (
        Action("next-symbol", "n", "Show the next symbol's grid", "next_symbol", readonly_ok=True),
        Action("prev-symbol", "p", "Show the previous symbol's grid", "prev_symbol", readonly_ok=True),
        *RUNNER_ACTIONS,
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
        self.entries = [(r.symbol, r.strategy) for r in snap.runners]
        if not self.entries:
            return
        if self.symbol is None or all(s != self.symbol for s, _ in self.entries):
            self.symbol = self.entries[0][0]
            self._strategy = self.entries[0][1]
        strategy = self._strategy
        if (self.symbol, strategy) not in self.entries:
            strategy = next(st for s, st in self.entries if s == self.symbol)
            self._strategy = strategy
        row = snap.runner(self.symbol, strategy)
        g = api.grid(self.symbol, strategy)
        sig = (self.symbol, strategy, g.cursor_ts, g.levels_filled, g.cycles, g.fills_count, g.has_detail,
               g.open_orders, row.last_price if row else None, row.state if row else None,
               row.pending_params if row else None)
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
            chart.request(g.chart.key if g.chart is not None else None, lambda: chart_data(view, g.chart))

    # ---------------------------------------------------------------- actions
    def selected_runner(self) -> tuple[str, str] | None:
        return (self.symbol, self._strategy) if self.symbol and self._strategy else None

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

