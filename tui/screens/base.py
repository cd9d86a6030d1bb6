"""RadarScreen: the base of every numbered console screen.

Contract (other screens rely on it):

* `ACTIONS: tuple[Action, ...]` declares the screen's operator actions (`tui.actions`); the
  key bindings, the `:` palette and the `?` help are built from it. Each action's `method`
  names an `action_<method>` of the screen. Bindings go through `action_radar(name)`, so
  the app can refuse it in `--readonly` and ask a confirmation for destructive ones first.
* `refresh_data(api)` is called by the app at most 10 times a second, only while the
  screen is visible (`tui.refresh`); it must be cheap (in-memory queries, no I/O) and
  update widgets in place (`sync_table` for DataTables).
* `SCREEN_NUMBER` / `SCREEN_TITLE`: the number key and the name in the header and palette.
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping, Sequence

from rich.text import Text
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable

from tui.actions import Action
from tui.widgets.fast_table import ContentCellCache


class RadarScreen(Screen):
    """Base screen (see the module docstring)."""

    ACTIONS: ClassVar[tuple[Action, ...]] = ()
    SCREEN_NUMBER: ClassVar[int] = 0
    SCREEN_TITLE: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # BINDINGS must be set before Textual merges them at class creation (DOMNode.__init_subclass__)
        if "ACTIONS" in cls.__dict__ and not getattr(cls, "_radar_bindings_from", None) is cls:
            own = [b for b in cls.__dict__.get("BINDINGS", []) or []]
            cls.BINDINGS = own + [Binding(a.key, f"radar({a.name!r})", a.description, show=True)
                                  for a in cls.__dict__["ACTIONS"] if a.key]
            cls._radar_bindings_from = cls
        super().__init_subclass__(**kwargs)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: set when data changed while the screen was hidden: repainted when shown
        self.stale = True

    # ------------------------------------------------------------------ registry dispatch
    def find_action(self, name: str) -> Action | None:
        return next((a for a in self.ACTIONS if a.name == name), None)

    async def action_radar(self, name: str) -> None:
        """Run registered action `name` through the app (readonly guard, confirmations)."""
        run = getattr(self.app, "run_registered", None)
        if run is not None:
            await run(self, name)
        else:                                         # a bare App (tests of one screen)
            act = self.find_action(name)
            if act is not None:
                await self.run_action(act.method)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Every registered key runs: a read-only console refuses with a message (`run_registered`)."""
        return True

    # ------------------------------------------------------------------ data
    def refresh_data(self, api: Any) -> None:
        """Repaint from the engine API (override)."""

    def confirm_text(self, action: Action) -> str:
        """The confirmation naming what a destructive `action` will do (override for detail)."""
        return action.description

    def _on_mount(self) -> None:
        from tui.widgets.header import RadarHeader

        if not self.query(RadarHeader):
            header = RadarHeader(id="radar-header")
            if self.children:
                self.mount(header, before=0)
            else:
                self.mount(header)
        paint = getattr(self.app, "paint_header", None)
        if paint is not None:
            self.call_after_refresh(paint, self)

    def on_screen_resume(self) -> None:
        if self.stale:
            refresh = getattr(self.app, "refresh_screen", None)
            if refresh is not None:
                refresh(self)


# ---------------------------------------------------------------------- table helpers
def cell_plain(value: object) -> str:
    return value.plain if isinstance(value, Text) else str(value)


def sync_table(table: DataTable, rows: Mapping[str, Sequence[object]], column_keys: Sequence[str],
               cache: dict[str, tuple[str, ...]]) -> bool:
    """Bring `table` to `rows` ({row key: cells in column order}) in place: changed cells are
    updated, new rows added, vanished rows removed; never cleared, so the cursor and the scroll
    stay where the operator left them. `cache` holds the plain text of each row as last shown
    (owned by the caller). Returns True when rows were added or removed (order may need sorting)."""
    structural = False
    cursor_key = current_row_key(table)
    for key in [k for k in cache if k not in rows]:
        table.remove_row(key)
        del cache[key]
        structural = True
    for key, cells in rows.items():
        plain = tuple(cell_plain(c) for c in cells)
        old = cache.get(key)
        if old is None:
            table.add_row(*cells, key=key)
            structural = True
        elif old != plain:
            for col, new, was, value in zip(column_keys, plain, old, cells):
                if new != was:
                    table.update_cell(key, col, value)
        cache[key] = plain
    if structural and cursor_key is not None and cursor_key in cache:
        keep_cursor(table, cursor_key)
    return structural


class LiveTable(ContentCellCache, DataTable):
    """A DataTable whose `update_cell` re-renders only what changed.

    `DataTable.update_cell` bumps the table's update count, which is part of every render
    cache key, and repaints the whole widget: one changed cell re-renders every cell of every
    row (and every line of the widget, blank ones included) on the next frame. Here the cell's
    value is set, only the changed row's region is repainted, and the cached renders of the
    changed cells and rows are dropped in one pass over the caches just before the next render
    (Textual 8 internals; falls back to the stock method when they are not as expected).
    Cells re-rendered after a structural change (sort, new rows) come from `ContentCellCache`
    when they show what they showed before."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stale_cells: set[tuple[Any, Any]] = set()     # (RowKey, ColumnKey) changed since the last render
        self._stale_rows: set[Any] = set()                  # their RowKeys
        self._stale_indexes: set[int] = set()               # their row indexes

    def update_cell(self, row_key: Any, column_key: Any, value: Any, *, update_width: bool = False) -> None:
        if update_width or not self._update_keep_cache(row_key, column_key, value):
            super().update_cell(row_key, column_key, value, update_width=update_width)

    def _update_keep_cache(self, row_key: Any, column_key: Any, value: Any) -> bool:
        from textual.widgets._data_table import ColumnKey, RowKey

        try:
            rk = row_key if isinstance(row_key, RowKey) else RowKey(row_key)
            ck = column_key if isinstance(column_key, ColumnKey) else ColumnKey(column_key)
            idx = self._row_locations.get(rk)
            if idx is None or ck not in self._column_locations or rk not in self._data:
                return False
            (self._cell_render_cache, self._row_render_cache, self._row_renderable_cache,  # noqa: B018
             self._line_cache)
        except AttributeError:
            return False
        self._data[rk][ck] = value
        self._stale_cells.add((rk, ck))
        self._stale_rows.add(rk)
        if idx not in self._stale_indexes:
            self._stale_indexes.add(idx)
            self.refresh_row(idx)
        return True

    def _drop_stale_renders(self) -> None:
        cells, rows, idxs = self._stale_cells, self._stale_rows, self._stale_indexes
        self._stale_cells, self._stale_rows, self._stale_indexes = set(), set(), set()
        cell_cache, row_cache = self._cell_render_cache, self._row_render_cache
        renderables = self._row_renderable_cache
        for k in [k for k in cell_cache.keys() if (k[0], k[1]) in cells]:
            cell_cache.discard(k)
        for k in [k for k in row_cache.keys() if k[0] in rows]:
            row_cache.discard(k)
        for k in [k for k in renderables.keys() if k[1] in idxs]:
            renderables.discard(k)
        self._line_cache.clear()

    def _get_row_renderables(self, row_index: int) -> Any:
        if self._stale_cells:
            self._drop_stale_renders()
        return super()._get_row_renderables(row_index)

    def render_lines(self, crop: Any) -> Any:
        if self._stale_cells:
            self._drop_stale_renders()
        return super().render_lines(crop)


def current_row_key(table: DataTable) -> str | None:
    if table.row_count == 0:
        return None
    try:
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
    except Exception:
        return None


def keep_cursor(table: DataTable, key: str | None) -> None:
    """Put the cursor back on row `key` (after a sort or a removal above it)."""
    if key is None:
        return
    try:
        idx = table.get_row_index(key)
    except Exception:
        return
    if idx != table.cursor_row:
        table.move_cursor(row=idx, animate=False, scroll=False)


class SortValue(Text):
    """A Text cell carrying the raw value it was formatted from (for sorting)."""

    def __init__(self, text: str, sort_value: Any = None, style: str = "", justify: str | None = None) -> None:
        super().__init__(text, style=style, justify=justify)  # type: ignore[arg-type]
        self.sort_value = sort_value


def sort_key(value: object) -> tuple[int, Any]:
    v = getattr(value, "sort_value", None)
    if v is None:
        return (1, cell_plain(value))
    return (0, v) if isinstance(v, (int, float)) else (0, str(v))


# ---------------------------------------------------------------------- formatting (colour never alone)
def fmt_signed(v: float | None, digits: int = 2, suffix: str = "", arrow: bool = False) -> SortValue:
    """+1.23 / −1.23 with an arrow when asked; style green/red on top of the sign."""
    if v is None:
        return SortValue("—", None, style="dim", justify="right")
    sign = "+" if v > 0 else ("−" if v < 0 else "±")
    a = ("↑ " if v > 0 else "↓ " if v < 0 else "· ") if arrow else ""
    style = "green" if v > 0 else "red" if v < 0 else ""
    return SortValue(f"{a}{sign}{abs(v):,.{digits}f}{suffix}", v, style=style, justify="right")


def fmt_num(v: float | None, digits: int | None = None, suffix: str = "") -> SortValue:
    if v is None:
        return SortValue("—", None, style="dim", justify="right")
    if digits is None:
        digits = 2 if abs(v) >= 100 else 4 if abs(v) >= 1 else 6
    return SortValue(f"{v:,.{digits}f}{suffix}", v, justify="right")


def fmt_age(seconds: float | None) -> SortValue:
    if seconds is None:
        return SortValue("—", None, style="dim", justify="right")
    s = int(seconds)
    txt = f"{s}s" if s < 120 else f"{s // 60}m" if s < 7200 else f"{s // 3600}h"
    style = "" if s < 60 else "yellow" if s < 300 else "bold red"
    mark = "" if s < 60 else " !"
    return SortValue(txt + mark, seconds, style=style, justify="right")


# ---------------------------------------------------------------------- table screens
from textual.app import ComposeResult  # noqa: E402
from textual.widgets import Footer, Input  # noqa: E402

FILTER = Action("filter", "slash", "Filter the rows (esc clears)", "filter", readonly_ok=True)
SORT = Action("sort", "o", "Sort by the next column", "sort_next", readonly_ok=True)
SORT_REV = Action("sort-reverse", "O", "Reverse the sort order", "sort_reverse", readonly_ok=True)


class FilterInput(Input):
    """The `/` filter line of a TableScreen (hidden until `/`; `esc` in it clears the filter)."""

    DEFAULT_CSS = "FilterInput { height: 3; display: none; } FilterInput.-shown { display: block; }"
    BINDINGS = [Binding("escape", "clear_filter", "Clear filter", show=False)]

    def action_clear_filter(self) -> None:
        scr = self.screen
        if isinstance(scr, TableScreen):
            scr.clear_filter()
        else:
            self.value = ""
            self.remove_class("-shown")


#: a column shown: (key, label, width in cells or None for the content's width)
ColumnSpec = tuple[str, str, "int | None"]


class TableScreen(RadarScreen):
    """A RadarScreen around one live DataTable: rows by key, `/` filter, `o`/`O` sort.

    `esc` clears an active filter first; with no filter it goes back (the app's `esc`).
    `column_layout(width)` picks the columns shown at a terminal width (all of `COLUMNS` by
    default): a narrow terminal drops or narrows the least useful ones, and the table is
    rebuilt (rows kept, cursor kept) when a resize changes the layout."""

    COLUMNS: ClassVar[tuple[tuple[str, str], ...]] = ()   # (key, label)
    TABLE_ID: ClassVar[str] = "table"
    BINDINGS = [Binding("escape", "escape", "Clear the filter, else back", show=False)]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.filter_text = ""
        self.sort_column: str | None = None
        self.sort_reverse = False
        self._cache: dict[str, tuple[str, ...]] = {}
        self._last_rows: dict[str, Sequence[object]] = {}
        self._layout: tuple[ColumnSpec, ...] = ()
        self._shown: list[int] = []            # indexes in COLUMNS of the columns shown

    def column_layout(self, width: int) -> tuple[ColumnSpec, ...]:
        """The columns shown at a terminal `width` (override to fit narrow terminals)."""
        return tuple((key, label, None) for key, label in self.COLUMNS)

    def _set_layout(self, table: DataTable, layout: tuple[ColumnSpec, ...]) -> None:
        self._layout = layout
        index = {key: i for i, (key, _) in enumerate(self.COLUMNS)}
        self._shown = [index[key] for key, _, _ in layout]
        for key, label, width in layout:
            table.add_column(label, key=key, width=width)

    @property
    def shown_columns(self) -> list[str]:
        """The keys of the columns shown now."""
        return [key for key, _, _ in self._layout]

    def compose(self) -> ComposeResult:
        yield from self.compose_top()
        table = LiveTable(id=self.TABLE_ID, cursor_type="row", zebra_stripes=True)
        self._set_layout(table, self.column_layout(self.app.size.width))
        yield table
        yield from self.compose_bottom()
        yield FilterInput(placeholder="/filter (enter keeps it, esc clears)", id="filter")
        yield Footer()

    def compose_top(self) -> ComposeResult:
        return iter(())

    def compose_bottom(self) -> ComposeResult:
        return iter(())

    @property
    def table(self) -> DataTable:
        return self.query_one(f"#{self.TABLE_ID}", DataTable)

    def build_rows(self, api: Any) -> dict[str, Sequence[object]]:
        """{row key: cells in COLUMNS order} (override)."""
        return {}

    def filter_matches(self, key: str, cells: Sequence[object]) -> bool:
        t = self.filter_text.lower()
        return not t or any(t in cell_plain(c).lower() for c in cells) or t in key.lower()

    def refresh_data(self, api: Any) -> None:
        rows = self.build_rows(api)
        self._last_rows = rows
        self._apply_rows()

    def _apply_rows(self) -> None:
        rows = {k: v for k, v in self._last_rows.items() if self.filter_matches(k, v)}
        table = self.table
        shown = self._shown
        cells = rows if len(shown) == len(self.COLUMNS) else {k: [v[i] for i in shown] for k, v in rows.items()}
        structural = sync_table(table, cells, self.shown_columns, self._cache)
        if structural and self.sort_column is not None:
            self._sort()
        self.after_refresh(rows)

    def on_resize(self) -> None:
        layout = self.column_layout(self.size.width)
        if layout == self._layout or not self.is_mounted:
            return
        table = self.table
        key = current_row_key(table)
        table.clear(columns=True)
        self._cache.clear()
        self._set_layout(table, layout)
        if self.sort_column not in self.shown_columns:
            self.sort_column = None
        self._apply_rows()
        keep_cursor(table, key)

    def after_refresh(self, rows: Mapping[str, Sequence[object]]) -> None:
        """Hook after each refresh (totals, sparkline...)."""

    def selected_key(self) -> str | None:
        return current_row_key(self.table)

    # ------------------------------------------------------------------ filter / sort
    def action_filter(self) -> None:
        f = self.query_one(FilterInput)
        f.add_class("-shown")
        self.call_after_refresh(f.focus)

    def clear_filter(self) -> None:
        """Drop the text filter: every row again, the filter line hidden, the table focused."""
        f = self.query_one(FilterInput)
        self.filter_text = ""
        with f.prevent(Input.Changed):
            f.value = ""
        f.remove_class("-shown")
        self.table.focus()
        self._apply_rows()
        self.on_filter_cleared()

    def on_filter_cleared(self) -> None:
        """Hook after `clear_filter` (e.g. a filter summary line to repaint)."""

    async def action_escape(self) -> None:
        """`esc`: clear the filter when one is set (or its line is open), else go back."""
        if self.filter_text or self.query_one(FilterInput).has_class("-shown"):
            self.clear_filter()
            return
        if hasattr(self.app, "action_back"):
            await self.app.run_action("back")

    def on_input_changed(self, event: Input.Changed) -> None:
        if isinstance(event.input, FilterInput):
            self.filter_text = event.value
            self._apply_rows()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if isinstance(event.input, FilterInput):
            event.stop()
            if not event.value:
                event.input.remove_class("-shown")
            self.table.focus()

    def action_sort_next(self) -> None:
        keys = self.shown_columns
        if not keys:
            return
        i = keys.index(self.sort_column) + 1 if self.sort_column in keys else 0
        self.sort_column = keys[i % len(keys)]
        self._sort()
        self.notify(f"sorted by {dict(self.COLUMNS)[self.sort_column]}", timeout=1.5)

    def action_sort_reverse(self) -> None:
        self.sort_reverse = not self.sort_reverse
        if self.sort_column is None:
            self.sort_column = self.shown_columns[0]
        self._sort()

    def _sort(self) -> None:
        table = self.table
        if self.sort_column is None or table.row_count == 0:
            return
        key = current_row_key(table)
        table.sort(self.sort_column, key=sort_key, reverse=self.sort_reverse)
        keep_cursor(table, key)
