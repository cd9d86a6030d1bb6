"""A time-series line chart for the Performance screen: the book's equity, drawdown or rolling Sharpe.

Drawn with plotext through textual-plotext (as the Grid screen's `price_chart`). The x axis is
days since the first point with 3 date labels (UTC); the title names the series. The data is
kept as given (`series`: ts ms UTC and values), so a test can compare what is charted with the
curve it came from. A built chart is cached by (data, size, theme): new data arrives at most
every few seconds, so the plotext build (tens of ms) runs on the loop only when something changed.
"""

from __future__ import annotations

from datetime import datetime, timezone

from textual_plotext import PlotextPlot

DAY_MS = 86_400_000


class SeriesChart(PlotextPlot):
    """One line series (`set_series(ts, values, label, fill=False)`); "no data" until given one."""

    DEFAULT_CSS = """
    SeriesChart { height: 1fr; min-height: 6; }
    """

    def __init__(self, title: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self.title = title
        #: (ts ms UTC, values, label) as charted, or None
        self.series: tuple[tuple[int, ...], tuple[float, ...], str] | None = None
        self._built: tuple[tuple, object] | None = None
        self._version = 0

    def set_series(self, ts, values, label: str) -> None:
        """Chart `values` (float, same length as `ts` ms UTC) named `label`; redrawn only on change."""
        new = (tuple(int(t) for t in ts), tuple(float(v) for v in values), label)
        if new == self.series:
            return
        self.series = new
        self._version += 1
        self._configure()
        self.refresh()

    def _configure(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(self.title)
        if not self.series or not self.series[0]:
            plt.title(f"{self.title}: no data yet")
            return
        ts, ys, label = self.series
        t0 = ts[0]
        xs = [(t - t0) / DAY_MS for t in ts]
        plt.plot(xs, list(ys), marker="braille")                # one series: the title names it
        ticks = [xs[0], xs[len(xs) // 2], xs[-1]] if len(xs) > 2 else xs
        plt.xticks(ticks, [datetime.fromtimestamp((t0 + x * DAY_MS) / 1000, tz=timezone.utc).strftime("%Y-%m-%d")
                           for x in ticks])

    def render(self):
        key = (self._version, (self.size.width, self.size.height), self._get_plotext_theme_name(self.app.theme))
        if self._built is not None and self._built[0] == key:
            return self._built[1]
        if self._version == 0:
            self._configure()
        text = super().render()
        self._built = (key, text)
        return text
