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
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from rich.text import Text
from textual_plotext import PlotextPlot

#: at most one redraw per this many seconds for new candles of the same series
MIN_REDRAW_S = 1.0


@dataclass
class ChartData:
    """Series on a common x axis (candle index, oldest first).

    Attributes:
        close: closes. sma: the SMA (take-profit) per candle, None before warm-up.
        envelopes: one series per level (None before warm-up). fills: (x, price, "entry"|"exit").
        title: chart title.
    """

    close: list[float] = field(default_factory=list)
    sma: list[float | None] = field(default_factory=list)
    envelopes: list[list[float | None]] = field(default_factory=list)
    fills: list[tuple[int, float, str]] = field(default_factory=list)
    title: str = ""
    key: object = None


def _xy(series: list[float | None]) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for i, v in enumerate(series):
        if v is not None and math.isfinite(v):
            xs.append(i)
            ys.append(v)
    return xs, ys


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

    @staticmethod
    def _series(key: object) -> object:
        """The part of a key whose change forces a redraw now: all but the candle time."""
        if isinstance(key, tuple) and len(key) == 4:
            return (key[0], key[1], key[3])
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
            self._draw_now(data)
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
        self._draw_now(data)

    def _visible(self) -> bool:
        try:
            return self.is_mounted and self.screen.is_current and self.display
        except Exception:
            return False

    def _draw_now(self, data: object) -> None:
        self._pending = None
        if self._flush_timer is not None:
            self._flush_timer.stop()
            self._flush_timer = None
        if callable(data):
            data = data()
        self.data = data  # type: ignore[assignment]
        self._drawn_at = time.monotonic()
        self._draw()

    def render(self):
        size = (self.size.width, self.size.height)
        theme = self._get_plotext_theme_name(self.app.theme)
        key = (self._version, size, theme)
        if self._built is not None and self._built[0] == key:
            return self._built[1]
        text = super().render()
        self._built = (key, text)  # type: ignore[assignment]
        return text

    def _draw(self) -> None:
        self._version += 1
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        d = self.data
        if d is None or not d.close:
            plt.title("no candles yet")
            self.refresh()
            return
        plt.title(d.title)
        xs = list(range(len(d.close)))
        plt.plot(xs, d.close, label="close", marker="braille")
        x, y = _xy(d.sma)
        if x:
            plt.plot(x, y, label="SMA/TP", marker="dot")
        for i, env in enumerate(d.envelopes):
            x, y = _xy(env)
            if x:
                plt.plot(x, y, label=f"L{i} env", marker="dot")
        entries = [(x, p) for x, p, k in d.fills if k == "entry"]
        exits = [(x, p) for x, p, k in d.fills if k != "entry"]
        if entries:
            plt.scatter([e[0] for e in entries], [e[1] for e in entries], label="fills ▲ entry", marker="▲")
        if exits:
            plt.scatter([e[0] for e in exits], [e[1] for e in exits], label="fills ▼ exit", marker="▼")
        self.refresh()
