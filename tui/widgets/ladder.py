"""The grid ladder: the levels, TP (SMA), SL, average entry and the current price on a vertical price axis.

Pure layout first (`GridView` -> `ladder_rows(view, height)`), a thin widget after (`Ladder`).

* Every item is placed by price: the highest price on the top row, the lowest on the
  bottom row, rows in between linear in price; the axis spans the items' prices.
* When two items land on the same row both stay readable: rows are pushed apart (down,
  then back up at the bottom edge) so each item keeps its own line and the price order
  is never broken. With more items than rows the ladder simply lists them in order.
* Meaning never rides on colour alone: each row carries a text label ("▶ price", "TP",
  "SL", "AVG", "L0 filled", "L1 placed", "L2 pending") and a marker glyph; colour is extra.

Short grids mirror by construction: their levels and stop are above the price, the TP below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from rich.text import Text
from textual.widgets import Static

from core.api.views import CycleView
from tui.formats import fmt_price, fmt_qty

PENDING = "pending"
PLACED = "placed"
FILLED = "filled"

#: item kinds on the ladder
K_PRICE, K_TP, K_SL, K_AVG, K_LEVEL = "price", "tp", "sl", "avg", "level"


def fmt_pct(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "—"
    return f"{x:+.2f}%"


def fmt_money(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "—"
    return f"{x:+,.2f}"


def pct_from(price: float | None, ref: float | None) -> float | None:
    """(price − ref) / ref in percent, None when either is missing."""
    if price is None or ref is None or not ref or not math.isfinite(price) or not math.isfinite(ref):
        return None
    return (price - ref) / ref * 100.0


@dataclass
class LevelView:
    """One DCA level: index, state (pending/placed/filled), price (quote or fill), size."""

    index: int
    state: str
    price: float | None
    qty: float | None = None
    fill_price: float | None = None
    upnl: float | None = None


@dataclass
class GridView:
    """What the Grid screen shows for one (strategy, symbol): built by `tui.screens.grid.grid_view`."""

    symbol: str
    strategy: str
    timeframe: str
    side: str
    price: float | None
    levels: list[LevelView] = field(default_factory=list)
    take_profit: float | None = None
    stop: float | None = None
    avg_entry: float | None = None
    qty: float = 0.0
    upnl: float = 0.0
    exposure: float = 0.0
    exposure_limit: float | None = None
    cursor_ts: int | None = None
    cycles: list[CycleView] = field(default_factory=list)
    halted: str | None = None           # why the runner refuses entries ("halted: unprotected ..."), or None
    paused: bool = False                # the operator paused the runner: no new entries
    pending_params: dict | None = None  # parameters applied at the next flat moment

    def next_level(self) -> LevelView | None:
        return next((lv for lv in self.levels if lv.state != FILLED), None)


@dataclass(frozen=True)
class LadderRow:
    """One placed item: its row (0 = top), kind, level index (-1 unless a level), price and text."""

    row: int
    kind: str
    level: int
    price: float
    text: str


def _item_text(view: GridView, kind: str, lv: LevelView | None, price: float) -> tuple[str, str]:
    """(label, detail) of an item; the label carries the meaning in words."""
    dist = fmt_pct(pct_from(price, view.price))
    if kind == K_PRICE:
        return "▶ price", f"{fmt_price(price):>14}"
    if kind == K_TP:
        return "── TP (SMA)", f"{fmt_price(price):>14}  {dist:>8}"
    if kind == K_SL:
        return "✕─ SL", f"{fmt_price(price):>14}  {dist:>8}"
    if kind == K_AVG:
        return "◆─ AVG", f"{fmt_price(price):>14}  {dist:>8}"
    assert lv is not None
    glyph = {FILLED: "●", PLACED: "○", PENDING: "·"}.get(lv.state, "?")
    label = f"{glyph} L{lv.index} {lv.state}"
    # a filled level's price is its fill price (the label says "filled")
    detail = f"{fmt_price(price):>14}  {dist:>8}  qty {fmt_qty(lv.qty)}"
    if lv.state == FILLED:
        detail += f"  uPnL {fmt_money(lv.upnl)}"
    return label, detail


def ladder_items(view: GridView) -> list[tuple[str, int, float, LevelView | None]]:
    """(kind, level index, price, level) of every item with a price, highest price first.

    Ties keep a stable, meaningful order: price marker first among equals on a long grid
    (it reads "price at the level"), levels in index order.
    """
    items: list[tuple[str, int, float, LevelView | None]] = []
    for lv in view.levels:
        p = lv.fill_price if lv.state == FILLED and lv.fill_price is not None else lv.price
        if p is not None and math.isfinite(p):
            items.append((K_LEVEL, lv.index, p, lv))
    for kind, p in ((K_TP, view.take_profit), (K_SL, view.stop), (K_AVG, view.avg_entry), (K_PRICE, view.price)):
        if p is not None and math.isfinite(p):
            items.append((kind, -1, p, None))
    order = {K_TP: 0, K_PRICE: 1, K_AVG: 2, K_LEVEL: 3, K_SL: 4}
    items.sort(key=lambda it: (-it[2], order[it[0]], it[1] if view.side == "long" else -it[1]))
    return items


def place_rows(prices: list[float], height: int) -> list[int]:
    """Row (0 = top) of each price, prices sorted high to low; rows strictly increasing.

    Linear in price over [min, max] mapped to [0, height−1]; collisions pushed apart.
    With more prices than rows the result is simply 0 … n−1.
    """
    n = len(prices)
    if n == 0:
        return []
    if n >= height:
        return list(range(n))
    hi, lo = prices[0], prices[-1]
    span = hi - lo
    rows = [0 if span <= 0 else int(round((hi - p) / span * (height - 1))) for p in prices]
    for i in range(1, n):                       # push down on collisions
        if rows[i] <= rows[i - 1]:
            rows[i] = rows[i - 1] + 1
    for i in range(n - 1, -1, -1):              # and back up at the bottom edge
        cap = height - 1 - (n - 1 - i)
        if rows[i] > cap:
            rows[i] = cap
        if i + 1 < n and rows[i] >= rows[i + 1]:
            rows[i] = rows[i + 1] - 1
    return rows


def ladder_rows(view: GridView, height: int) -> list[LadderRow]:
    """The items of `view` placed on `height` rows (see the module docstring)."""
    items = ladder_items(view)
    rows = place_rows([p for _, _, p, _ in items], max(1, height))
    out = []
    for (kind, idx, price, lv), r in zip(items, rows):
        label, detail = _item_text(view, kind, lv, price)
        out.append(LadderRow(r, kind, idx, price, f"{label:<13}{detail}"))
    return out


_STYLE = {K_PRICE: "bold reverse", K_TP: "green", K_SL: "bold red", K_AVG: "yellow"}
_LEVEL_STYLE = {FILLED: "bold cyan", PLACED: "cyan", PENDING: "dim"}


def render_ladder(view: GridView | None, height: int, width: int = 80) -> Text:
    """The ladder as Rich text of exactly `height` lines (more when items outnumber rows)."""
    if view is None:
        return Text("no grid for this symbol")
    rows = ladder_rows(view, height)
    n_lines = max(height, (rows[-1].row + 1) if rows else 0)
    by_row = {r.row: r for r in rows}
    text = Text(no_wrap=True, overflow="ellipsis")
    for y in range(n_lines):
        r = by_row.get(y)
        if r is None:
            text.append("  │")
        else:
            style = _STYLE.get(r.kind) or _LEVEL_STYLE.get(
                next((lv.state for lv in view.levels if lv.index == r.level), ""), "")
            text.append(r.text[:max(1, width - 1)], style=style)
        if y < n_lines - 1:
            text.append("\n")
    return text


class Ladder(Static):
    """The ladder widget: `show(view)`; re-lays itself out when resized."""

    DEFAULT_CSS = """
    Ladder { height: 1fr; width: 1fr; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.view: GridView | None = None

    def show(self, view: GridView | None) -> None:
        self.view = view
        self._paint()

    def on_resize(self) -> None:
        self._paint()

    def _paint(self) -> None:
        h = max(3, self.content_size.height or self.size.height or 20)
        w = max(20, self.content_size.width or self.size.width or 80)
        # the ladder's size is its container's (1fr x 1fr), never its text's: no layout pass
        self.update(render_ladder(self.view, h, w), layout=False)

    def rows(self) -> list[LadderRow]:
        """The rows as currently laid out (for tests and tooling)."""
        if self.view is None:
            return []
        return ladder_rows(self.view, max(3, self.content_size.height or 20))
