"""Price chart of the Grid screen: closes, the SMA (take-profit), the level envelopes and the fills.

Drawn with plotext through textual-plotext. Legends name every series (colour is not the
only channel): "close", "SMA/TP", "L0 env", …, "fills ▲ entry", "fills ▼ exit"; entries and
exits also use different plot markers. Redrawn only when `set_data` gets a new candle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from textual_plotext import PlotextPlot


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

    def set_data(self, data: ChartData | None) -> None:
        if data is not None and self.data is not None and data.key is not None and data.key == self.data.key:
            return
        self.data = data
        self._draw()

    def _draw(self) -> None:
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
