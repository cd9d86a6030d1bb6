"""3 Positions: open positions, totals, the session's equity sparkline; `enter` = per-level detail.

Columns: symbol, side, levels filled (k/n), qty, average entry, mark (last close), unrealised
P&L in USDT and in % of the cost, signed distance from the mark to the stop and to the
take-profit, notional (qty x mark) and leverage (notional / equity).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Sparkline, Static

from core.api.views import GridStateView, PositionView, RunnerView, SnapshotView
from tui.actions import Action
from tui.formats import fmt_price, fmt_qty
from tui.screens.runner_controls import RUNNER_ACTIONS, RunnerControls
from tui.screens.base import FILTER, SORT, SORT_REV, SortValue, TableScreen, fmt_num, fmt_signed


def position_rows(snap: SnapshotView) -> list[RunnerView]:
    """The runners of a snapshot with an open position."""
    return [r for r in snap.runners if r.position.is_open]


class PositionDetailScreen(ModalScreen[None]):
    """The grid of one position, level by level."""

    DEFAULT_CSS = """
    PositionDetailScreen { align: center middle; }
    PositionDetailScreen > VerticalScroll { width: 90%; max-width: 100; height: 90%; border: round $accent;
                                            background: $surface; padding: 0 1; }
    """
    BINDINGS = [Binding("escape", "close", "Back"), Binding("q", "close", "Back", show=False)]

    def __init__(self, symbol: str, strategy: str, grid: GridStateView, position: PositionView,
                 mark: float | None) -> None:
        super().__init__()
        self.symbol, self.strategy, self.grid, self.position, self.mark = symbol, strategy, grid, position, mark

    def compose(self) -> ComposeResult:
        g, p = self.grid, self.position
        with VerticalScroll():
            head = Text()
            head.append(f"{self.symbol}  {self.strategy}  {p.side or ''}\n", "bold")
            head.append(f"qty {fmt_qty(p.qty)}   avg entry {fmt_price(p.avg_entry)}   "
                        f"mark {fmt_price(self.mark)}   stop {fmt_price(p.stop)}   "
                        f"take-profit {fmt_price(g.take_profit)}\n")
            head.append(f"levels filled {g.levels_filled}/{g.num_levels}   "
                        f"cycles so far {g.cycles}   cash {g.cash or 0:,.2f}   "
                        f"equity {g.equity or 0:,.2f}\n")
            yield Static(head)
            t = Table(title="levels", title_justify="left", box=None)
            for c in ("level", "price", "Δ mark %", "status", "order"):
                t.add_column(c, justify="right" if c in ("price", "Δ mark %") else "left")
            orders = {o.level: o for o in g.entry_orders()}
            filled = g.levels_filled
            for i, price in enumerate(g.levels):
                status = "filled ✓" if i < filled else ("pending" if i in orders else "—")
                d = (price - self.mark) / self.mark * 100 if price and self.mark else None
                ds = "—" if d is None else f"{'+' if d > 0 else '−' if d < 0 else '±'}{abs(d):.2f}%"
                t.add_row(f"L{i}", fmt_price(price), ds, status,
                          orders[i].client_id if i in orders else "")
            yield Static(t)
            o = Table(title="open orders", title_justify="left", box=None)
            for c in ("client id", "purpose", "level", "price"):
                o.add_column(c)
            for od in g.open_orders:
                o.add_row(od.client_id, od.purpose, "—" if od.level is None else str(od.level), fmt_price(od.price))
            yield Static(o)
            yield Static(Text("esc: back", style="dim"))

    def action_close(self) -> None:
        self.dismiss(None)


class PositionsScreen(RunnerControls, TableScreen):
    SCREEN_NUMBER = 3
    SCREEN_TITLE = "Positions"
    COLUMNS = (("symbol", "Symbol"), ("side", "Side"), ("levels", "Lvls"), ("qty", "Qty"), ("avg", "Avg entry"),
               ("mark", "Mark"), ("upnl", "uPnL USDT"), ("upct", "uPnL%"), ("dstop", "→Stop%"), ("dtp", "→TP%"),
               ("notional", "Notional"), ("lev", "Lev"), ("strategy", "Strategy"))
    ACTIONS = (
        Action("detail", "enter", "Show the per-level detail of the selected position", "detail",
               readonly_ok=True),
        FILTER, SORT, SORT_REV, *RUNNER_ACTIONS,
    )
    DEFAULT_CSS = """
    PositionsScreen #totals { height: 1; padding: 0 1; }
    PositionsScreen #equity-spark { height: 3; margin: 0 1; }
    PositionsScreen #equity-label { height: 1; padding: 0 1; color: $text-muted; }
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._spark_len = -1
        self._totals_plain = ""
        self._snap = SnapshotView()

    def compose_bottom(self) -> ComposeResult:
        yield Static("", id="totals")
        yield Static("session equity", id="equity-label")
        yield Sparkline([], id="equity-spark")

    def build_rows(self, api: Any) -> dict[str, Sequence[object]]:
        snap = api.snapshot()
        self._snap = snap
        equity = snap.equity or 0.0
        rows: dict[str, Sequence[object]] = {}
        for r in position_rows(snap):
            p, symbol = r.position, r.symbol
            qty, avg, mark = p.qty, p.avg_entry, r.last_price
            upnl = p.unrealized
            cost = qty * avg if avg else None
            notional = qty * mark if mark else None
            stop, tp = p.stop, r.grid.take_profit
            side = p.side or "long"
            rows[r.key] = (
                SortValue(symbol, symbol, style="bold"),
                SortValue(("▲ " if side == "long" else "▼ ") + side, side),
                SortValue(f"{p.levels_filled}/{r.grid.num_levels or '?'}", p.levels_filled, justify="right"),
                SortValue(fmt_qty(qty), qty, justify="right"),
                fmt_num(avg),
                fmt_num(mark),
                fmt_signed(upnl, 2),
                fmt_signed(upnl / cost * 100 if upnl is not None and cost else None, 2, "%"),
                fmt_signed((stop - mark) / mark * 100 if stop and mark else None, 2, "%"),
                fmt_signed((tp - mark) / mark * 100 if tp and mark else None, 2, "%"),
                fmt_num(notional, 2),
                fmt_num(notional / equity if notional and equity else None, 2, "x"),
                SortValue(r.strategy, r.strategy, style="dim"),
            )
        return rows

    def after_refresh(self, rows: Mapping[str, Sequence[object]]) -> None:
        snap = self._snap
        opened = position_rows(snap)
        upnl = sum(r.position.unrealized for r in opened)
        notional = sum(r.position.qty * (r.last_price or 0.0) for r in opened)
        eq = snap.equity
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(f"{len(opened)} open", "bold")
        t.append(" │ uPnL ")
        sign = "+" if upnl > 0 else "−" if upnl < 0 else "±"
        t.append(f"{sign}{abs(upnl):,.2f} USDT", "green" if upnl > 0 else "red" if upnl < 0 else "")
        t.append(f" │ notional {notional:,.2f}")
        if eq:
            t.append(f" │ equity {eq:,.2f} │ lev {notional / eq:,.2f}x")
        if t.plain != self._totals_plain:
            self._totals_plain = t.plain
            self.query_one("#totals", Static).update(t, layout=False)   # one line, height 1: no layout pass
        session = getattr(self.app, "session", None)
        if session is not None and len(session.equity) != self._spark_len:
            self._spark_len = len(session.equity)
            self.query_one(Sparkline).data = list(session.equity)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.run_worker(self.action_radar("detail"), exclusive=True, group="detail")

    def action_detail(self) -> None:
        key = self.selected_key()
        api = getattr(self.app, "api", None)
        if key is None or api is None:
            return
        symbol, strategy = key.split("|", 1)
        r = api.snapshot().runner(symbol, strategy)
        if r is None:
            return
        self.app.push_screen(PositionDetailScreen(symbol, strategy, r.grid, r.position, r.last_price))
