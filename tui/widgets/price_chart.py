"""Price chart of the Grid screen: closes, the SMA (take-profit), the level envelopes and the fills.

Drawn with plotext through textual-plotext. Legends name every series (colour is not the
only channel): "close", "SMA/TP", "L0 env", …, "fills ▲ entry", "fills ▼ exit"; entries and
exits also use different plot markers.

Cost: a plotext build of this chart is tens of milliseconds, so it is paid as rarely as
possible. `render()` caches the built text (keyed by the data drawn, the size and the
theme): a repaint of the screen around the chart reuses it. New data (`set_data` /
`request`) is drawn at once when the series changes (other symbol or strategy, a new fill,
the first data), otherwise at most once every `MIN_REDRAW_S` (a pending update is flushed
by a timer); nothing is built while the chart is not on the visible screen.

Redraws of the symbol and strategy already shown (new candles, a new fill) are built off the
event loop, in a helper process (`tui.widgets.chart_build`; not a thread: see there), while
`render()` keeps showing the chart built before; the new text replaces it when it is ready.
A first draw, another symbol or strategy, a resize or a theme change are built in `render()`
as before (and every draw is, should the helper be unavailable). Textual's conversion of the
text into lines is kept while text, size and style stay the same (`_render_content`).
"""

from __future__ import annotations

import asyncio
import logging
import time

from rich.text import Text
try:
    from textual.widget import _RenderCache
except ImportError:                                 # another Textual: no kept lines (see _render_content)
    _RenderCache = None
from textual_plotext import PlotextPlot

from tui.widgets import chart_build
from tui.widgets.chart_build import ChartData  # noqa: F401  (ChartData is this module's API)

log = logging.getLogger(__name__)

#: at most one redraw per this many seconds for new candles of the same series
MIN_REDRAW_S = 1.0


class PriceChart(PlotextPlot):
    """The chart widget (`set_data(ChartData)`)."""

    DEFAULT_CSS = """
    PriceChart { height: 1fr; min-height: 8; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.data: ChartData | None = None
        self._drawn_at: float | None = None        # monotonic time of the last _draw
        self._pending: tuple[object, object] | None = None   # (key, ChartData or factory)
        self._flush_timer = None
        self._version = 0                           # bumped by every _draw
        self._built: tuple[tuple, Text] | None = None
        self._building: tuple | None = None         # key (version, size, theme) awaited from the helper
        self._helper_busy = False                   # a build of this chart runs in the helper
        self._strips: tuple | None = None           # (text, size, visual style, lines) last rendered

    @staticmethod
    def _series(key: object) -> object:
        """The part of a key whose change forces a redraw now: all but the candle time."""
        if isinstance(key, tuple) and len(key) == 4:
            return (key[0], key[1], key[3])
        return key

    @staticmethod
    def _chart_of(key: object) -> object:
        """The part of a key naming what is charted (symbol, strategy)."""
        if isinstance(key, tuple) and len(key) == 4:
            return key[:2]
        return key

    def set_data(self, data: ChartData | None) -> None:
        """Show `data` (throttled: see the module docstring)."""
        self.request(data.key if data is not None else None, data)

    def request(self, key: object, data: object) -> None:
        """Show the chart data of `key`; `data` is a ChartData, None, or a zero-argument
        callable building it (called only when it is drawn)."""
        cur = self.data.key if self.data is not None else None
        if key is not None and self.data is not None and key == cur:
            self._pending = None
            return
        now = time.monotonic()
        urgent = (self.data is None or key is None or self._drawn_at is None
                  or self._series(key) != self._series(cur))
        if urgent or now - self._drawn_at >= MIN_REDRAW_S:
            # the same symbol and strategy as shown (new candles, a new fill): built off the loop
            self._draw_now(data, background=cur is not None and key is not None
                           and self._chart_of(key) == self._chart_of(cur))
            return
        self._pending = (key, data)
        if self._flush_timer is None:
            self._flush_timer = self.set_timer(max(0.0, MIN_REDRAW_S - (now - self._drawn_at)), self._flush,
                                               name="chart-flush")

    def _flush(self) -> None:
        self._flush_timer = None
        if self._pending is None:
            return
        if not self._visible():                    # drawn when next requested while visible
            return
        _, data = self._pending
        self._draw_now(data, background=True)

    def _visible(self) -> bool:
        try:
            return self.is_mounted and self.screen.is_current and self.display
        except Exception:
            return False

    def _draw_now(self, data: object, background: bool = False) -> None:
        self._pending = None
        if self._flush_timer is not None:
            self._flush_timer.stop()
            self._flush_timer = None
        if callable(data):
            data = data()
        self.data = data  # type: ignore[assignment]
        self._drawn_at = time.monotonic()
        self._draw(background)

    def _render_key(self) -> tuple:
        return (self._version, (self.size.width, self.size.height), self._get_plotext_theme_name(self.app.theme))

    def render(self):
        key = self._render_key()
        built = self._built
        if built is not None and built[0] == key:
            return built[1]
        building = self._building
        if building is not None and built is not None and building[1:] == key[1:] == built[0][1:]:
            return built[1]                         # the new data is being built in a thread: the last chart
        text = super().render()
        self._built = (key, text)  # type: ignore[assignment]
        return text

    def _render_content(self) -> None:
        """Textual's conversion of the chart text into lines (~10 ms for a full chart) is kept
        while the text, the size and the style are the same (a screen shown again, a repaint)."""
        if _RenderCache is None:
            super()._render_content()
            return
        text = self.render()
        size, style = self.size, self.visual_style
        kept = self._strips
        if kept is not None and kept[0] is text and kept[1] == size and kept[2] == style \
                and self.text_selection is None:
            self._render_cache = _RenderCache(size, kept[3])
            self._dirty_regions.clear()
            return
        super()._render_content()
        self._strips = (text, size, style, self._render_cache.lines)

    def _draw(self, background: bool = False) -> None:
        self._version += 1
        self._configure(self.plt, self.data)
        if (background and chart_build.available() and self._built is not None
                and self._built[0][1:] == self._render_key()[1:]):
            self._build_in_helper()
        else:
            self._building = None                   # built in render() now; a build in the helper is dropped
            self.refresh()

    def _build_in_helper(self) -> None:
        """Build the current data in the helper process (one build at a time); see the module
        docstring. A build is kept only when the chart was not redrawn meanwhile."""
        key = self._render_key()
        self._building = key
        if self._helper_busy:
            return                                  # the newest data is built when that build is done
        (w, h), theme = key[1], key[2]
        try:
            fut = chart_build.build_in_helper(asyncio.get_running_loop(), self.data, w, h, theme)
        except Exception as exc:
            log.warning("price chart: no helper process (%s): charts are built on the event loop", exc)
            self._building = None
            self.refresh()
            return
        self._helper_busy = True
        fut.add_done_callback(lambda f: self._built_in_helper(key, f))

    def _built_in_helper(self, key: tuple, fut: "asyncio.Future[tuple]") -> None:
        self._helper_busy = False
        wanted = self._building
        if not fut.cancelled() and fut.exception() is not None:
            log.warning("price chart: build in the helper process failed: %s", fut.exception())
            chart_build.broken(fut.exception())
        if wanted is None or not self.is_mounted:
            return                                  # drawn in render() meanwhile (or gone)
        if fut.cancelled() or fut.exception() is not None:
            self._building = None
            self.refresh()                          # built in render() instead
            return
        now = self._render_key()
        if key == wanted == now:
            self._building = None
            self._built = (key, chart_build.text_of(fut.result()))
            self.refresh()
        elif wanted == now and chart_build.available():
            self._build_in_helper()                 # redrawn meanwhile: build the newest data
        else:
            self._building = None                   # resized / theme changed: built in render()
            self.refresh()

    @staticmethod
    def _configure(plt, d: ChartData | None) -> None:
        """Put the series of `d` on the plotext figure `plt` (nothing is built yet)."""
        chart_build.configure(plt, d)
