"""DataTable cell renders cached by what the cell shows, not by where it is.

Textual's `DataTable` caches each rendered cell under (row key, column key, styles, the
table's update count, ...). Anything that bumps the update count (adding, removing or
sorting rows, the stock `update_cell`) or moves the cursor/focus makes every visible cell
miss, and a cell render goes through Rich's whole pipeline (Padding, wrap, crop: ~0.15 ms):
a 20-row table is re-rendered from scratch in ~25 ms, on the event loop, every time a row
is added on top.

`ContentCellCache` (a mixin placed before `DataTable`) keeps a second cache keyed by the cell's
content (its text, style, spans, justify/overflow), the width, the row height and the exact
styles the cell is rendered with. A cell whose position, row key or the table's update count
changed but that shows the same thing in the same styles is re-used, and only the per-cell
mouse metadata ({"row": r, "column": c}, which Textual puts in every segment's style) is
applied again. The result is the same segments as the stock render; cells this does not
cover exactly (other renderables, auto-height rows, styles carrying metadata, unstyled
cells) are rendered by the stock method, and so is every cell on a Textual other than 8
(this mirrors Textual 8's `DataTable._render_cell`).
"""

from __future__ import annotations

from typing import Any

from rich.padding import Padding
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.cache import LRUCache
from textual.renderables.styled import Styled

#: most cell renders kept by content (per table)
CONTENT_CACHE_SIZE = 2000

_UNSET = object()


_supported: bool | None = None


def supported(table: Any) -> bool:
    """True when `table` (a DataTable) has the Textual 8 internals this module mirrors; else the
    stock render is used throughout."""
    global _supported
    if _supported is None:
        try:
            from importlib.metadata import version

            major = int(version("textual").split(".")[0])
        except Exception:
            major = 0
        names = ("_header_row_key", "_row_locations", "_column_locations", "_cell_render_cache",
                 "_row_render_cache", "_row_renderable_cache", "_line_cache", "_update_count",
                 "_pseudo_class_state", "_show_hover_cursor", "_data", "_get_styles_to_render_cell",
                 "_get_row_renderables", "cell_padding", "rows")
        _supported = major == 8 and all(hasattr(table, n) for n in names)
    return _supported


def content_key(cell: Any) -> tuple | None:
    """A hashable key of what `cell` renders to, or None when it cannot be keyed cheaply."""
    if type(cell) is str:
        return (str, cell)
    if isinstance(cell, Text):
        try:
            return (Text, cell.plain, cell.style, tuple(cell.spans), cell.justify, cell.overflow,
                    cell.no_wrap, cell.end, cell.tab_size)
        except TypeError:                      # an unhashable style somewhere
            return None
    return None


class _FrameStyles:
    """A component's styles for the length of one render: `rich_style` (a walk up the DOM on
    every access) computed once; anything else read from the styles themselves."""

    __slots__ = ("_styles", "rich_style")

    def __init__(self, styles: Any) -> None:
        self._styles = styles
        self.rich_style = styles.rich_style

    def __getattr__(self, name: str) -> Any:
        return getattr(self._styles, name)


class ContentCellCache:
    """Mixin for `DataTable` subclasses (list it before DataTable); see the module docstring.

    Also, while the table renders (`render_lines`), the styles the stock code looks up again for
    every line and row (the widget's `rich_style` and `background_colors`, the component styles
    of the header and rows: each a walk up the DOM) are computed once per render."""

    _content_cells: LRUCache
    _frame_styles: dict | None = None

    def render_lines(self, crop: Any) -> Any:
        self._frame_styles = {}
        try:
            return super().render_lines(crop)  # type: ignore[misc]
        finally:
            self._frame_styles = None

    @property
    def rich_style(self) -> Style:
        frame = self._frame_styles
        if frame is None:
            return super().rich_style  # type: ignore[misc]
        style = frame.get("rich_style")
        if style is None:
            style = frame["rich_style"] = super().rich_style  # type: ignore[misc]
        return style

    @property
    def background_colors(self) -> Any:
        frame = self._frame_styles
        if frame is None:
            return super().background_colors  # type: ignore[misc]
        colors = frame.get("background_colors")
        if colors is None:
            colors = frame["background_colors"] = super().background_colors  # type: ignore[misc]
        return colors

    def get_component_styles(self, *names: str) -> Any:
        frame = self._frame_styles
        if frame is None:
            return super().get_component_styles(*names)  # type: ignore[misc]
        styles = frame.get(names)
        if styles is None:
            styles = frame[names] = _FrameStyles(super().get_component_styles(*names))  # type: ignore[misc]
        return styles

    _cache_generation = -1

    def _drop_dead_renders(self) -> None:
        """The stock caches key every entry with the update count: once it moved on, those
        entries can never be used again, yet they stay (up to 10,000 cells and 1,000 rows and
        lines, tens of thousands of objects the cyclic GC walks at every full collection). They
        are dropped here; what they showed is in the content cache."""
        table: Any = self
        self._cache_generation = table._update_count
        for cache in (table._cell_render_cache, table._row_render_cache, table._row_renderable_cache,
                      table._line_cache):
            cache.clear()

    def _cell_renderable(self, row_index: int, column_index: int) -> Any:
        """The cell's renderable as the stock `_render_cell` takes it."""
        row_label, row_cells = self._get_row_renderables(row_index)  # type: ignore[attr-defined]
        if column_index == -1:
            return row_label if row_label is not None else ""
        return row_cells[column_index]

    def _render_cell(self, row_index: int, column_index: int, base_style: Style, width: int,
                     cursor: bool = False, hover: bool = False) -> Any:
        table: Any = self
        if not supported(table):
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)  # type: ignore[misc]
        try:
            content_cells = self._content_cells
        except AttributeError:
            content_cells = self._content_cells = LRUCache(CONTENT_CACHE_SIZE)
        if table._update_count != self._cache_generation:
            self._drop_dead_renders()
        is_header_cell = row_index == -1
        is_row_label_cell = column_index == -1
        row_key = table._header_row_key if is_header_cell else table._row_locations.get_key(row_index)
        column_key = table._column_locations.get_key(column_index)
        stock_key = (row_key, column_key, base_style, cursor, hover, table._show_hover_cursor,
                     table._update_count, table._pseudo_class_state)
        cached = table._cell_render_cache.get(stock_key)
        if cached is not None:
            return cached

        stock = super()._render_cell  # type: ignore[misc]
        if is_header_cell:
            row_height = table.header_height
        else:
            row = table.rows[row_key]
            if row.auto_height and row.height == 0:
                return stock(row_index, column_index, base_style, width, cursor, hover)
            row_height = row.height
        cell: Any = _UNSET
        if is_header_cell or is_row_label_cell:
            cell = self._cell_renderable(row_index, column_index)
            ckey = content_key(cell)
        else:
            # the stored value: what the cell shows is a function of it and the row height
            # (`default_cell_formatter`), so it keys the render without formatting it first
            try:
                datum = table._data[row_key].get(column_key)
            except KeyError:
                datum = _UNSET
            ckey = ("empty",) if datum is None else None if datum is _UNSET else content_key(datum)
        if ckey is None:
            return stock(row_index, column_index, base_style, width, cursor, hover)
        is_fixed_style_cell = (not is_header_cell and not is_row_label_cell
                               and (row_index < table.fixed_rows or column_index < table.fixed_columns))
        component_style, post_style = table._get_styles_to_render_cell(
            is_header_cell, is_row_label_cell, is_fixed_style_cell, hover, cursor, table.show_cursor,
            table._show_hover_cursor, table.cursor_foreground_priority == "css",
            table.cursor_background_priority == "css")
        pre_style = base_style + component_style
        key = (ckey, pre_style, post_style, width, row_height, table.cell_padding)
        plain = content_cells.get(key)
        if plain is None:
            if not pre_style or pre_style._meta or post_style._meta:
                content_cells[key] = False     # not covered exactly: always the stock render
                return stock(row_index, column_index, base_style, width, cursor, hover)
            if cell is _UNSET:
                cell = self._cell_renderable(row_index, column_index)
            options = table.app.console_options.update_dimensions(width, row_height)
            if row_height == 1:
                options = options.update(no_wrap=True)
            plain = table.app.console.render_lines(
                Styled(Padding(cell, (0, table.cell_padding)), pre_style=pre_style, post_style=post_style),
                options)
            if any(seg.style is not None and seg.style._meta for line in plain for seg in line):
                plain = False
            content_cells[key] = plain
        if plain is False:
            return stock(row_index, column_index, base_style, width, cursor, hover)
        meta = Style.from_meta({"row": row_index, "column": column_index})
        lines = [[Segment(text, style + meta if style is not None and not control else style, control)
                  for text, style, control in line] for line in plain]
        table._cell_render_cache[stock_key] = lines
        return lines
