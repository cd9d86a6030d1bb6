"""The last closed cycles of a grid, newest on top, updated by row key (never cleared and refilled)."""

from __future__ import annotations

import datetime as dt

from textual.widgets import DataTable

from core.api.views import CycleView

from tui.widgets.fast_table import ContentCellCache
from tui.widgets.ladder import fmt_money, fmt_price

COLUMNS = (("closed", "closed (UTC)"), ("side", "side"), ("lv", "lv"), ("avg", "avg entry"),
           ("exit", "exit"), ("why", "reason"), ("pnl", "P&L"), ("res", "result"))


def _ts(ms: int | None) -> str:
    if ms is None:
        return "—"
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%m-%d %H:%M")


def cycle_cells(c: CycleView) -> tuple[str, ...]:
    pnl = c.pnl
    result = "WIN" if pnl and pnl > 0 else ("LOSS" if pnl and pnl < 0 else "FLAT")
    return (_ts(c.close_time), c.side, str(c.levels_filled), fmt_price(c.avg_entry), fmt_price(c.exit_price),
            c.exit_reason.upper(), fmt_money(pnl), result)


def cycle_key(c: CycleView) -> str:
    return c.key


class CyclesTable(ContentCellCache, DataTable):
    """`show(cycles)` with the last cycles (`core.api.views.CycleView`), newest first.

    A new cycle adds a row on top (and drops the oldest): every row moves, but the cells keep
    their content, so `ContentCellCache` re-uses their renders instead of re-rendering the table."""

    DEFAULT_CSS = """
    CyclesTable { height: 1fr; }
    """

    def __init__(self, limit: int = 20, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self.limit = limit
        self._owner: str | None = None

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def show(self, owner: str, cycles: list[CycleView]) -> None:
        """Rows of `owner` (e.g. the symbol): a different owner replaces the rows once."""
        if owner != self._owner:
            self.clear()
            self._owner = owner
        want = list(reversed(cycles[-self.limit:]))
        keys = [cycle_key(c) for c in want]
        have = {rk.value for rk in self.rows}
        for k in list(have - set(keys)):
            self.remove_row(k)
        for k, c in zip(keys, want):
            cells = cycle_cells(c)
            if k in have:
                for (col, _), v in zip(COLUMNS, cells):
                    if self.get_cell(k, col) != v:
                        self.update_cell(k, col, v)
            else:
                self.add_row(*cells, key=k)
        # keep newest first: sort on close time (a stable operation that keeps the cursor's row)
        if any(k not in have for k in keys) and len(keys) > 1:
            self.sort("closed", reverse=True)
