"""The price chart's data, its plotext figure, and building it in a helper process.

A plotext build of the Grid chart and its conversion to Rich text are ~30 ms of pure Python.
On the event loop that is a stall of the engine and the console; in a thread it is worse: the
thread holds the GIL for its switch interval every time the loop thread lets go of it, and the
engine lets go of it in each of its SQLite calls, so a candle's few dozen calls wait for the
thread again and again. `build_in_helper` runs the build in one helper process (spawned on
first use, kept for the session, stopped by `shutdown`); the loop only rebuilds the finished
`Text` from its plain text and spans (~1 ms).

This module imports neither Textual's app machinery nor the console, so the helper starts
small; `ChartData` lives here so the helper can unpickle it.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


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


def configure(plt: Any, d: ChartData | None) -> None:
    """Put the series of `d` on the plotext figure `plt` (nothing is built yet)."""
    plt.clear_data()
    plt.clear_figure()
    if d is None or not d.close:
        plt.title("no candles yet")
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


# ---------------------------------------------------------------------- in the helper process
_plot = None


def _helper_init() -> None:
    import signal

    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)      # Ctrl-C is the console's
        devnull = os.open(os.devnull, os.O_WRONLY)        # never write over the console's terminal
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.close(devnull)
    except OSError:
        pass


def build_text(data: ChartData | None, width: int, height: int, theme: str, theme_def: Any) -> tuple:
    """The chart as `PlotextPlot.render` builds it, in transport form (`text_of` makes the Rich
    `Text`): the plain text and the spans with their styles as style strings. (A pickled Rich
    `Style` carries its hash, and str hashes differ between processes.) Runs in the helper."""
    from plotext._dict import themes
    from rich.text import Text
    from textual_plotext.plot import Plot

    global _plot
    if theme_def is not None and theme not in themes:
        themes[theme] = theme_def                          # the console's "auto" theme
    if _plot is None:
        _plot = Plot()
    configure(_plot, data)
    _plot.plotsize(width, height)
    _plot._set_size(width, height)
    _plot.theme(theme)
    text = Text.from_ansi(_plot.build())
    return text.plain, [(span.start, span.end, str(span.style)) for span in text.spans]


def text_of(built: tuple) -> Any:
    """The Rich `Text` of a `build_text` result (in the console)."""
    from rich.style import Style
    from rich.text import Span, Text

    plain, spans = built
    parse = Style.parse
    return Text(plain, spans=[Span(start, end, parse(style)) for start, end, style in spans])


# ---------------------------------------------------------------------- in the console
_pool = None
_pool_lock = threading.Lock()
_broken = False


def available() -> bool:
    """False once the helper could not be started (the chart is then built on the loop)."""
    return not _broken


def build_in_helper(loop: Any, data: ChartData | None, width: int, height: int, theme: str) -> Any:
    """An asyncio future of `build_text(...)` run in the helper process (started if needed).
    Raises when the helper cannot be used (`available()` is then False)."""
    global _pool, _broken
    from plotext._dict import themes

    try:
        with _pool_lock:
            if _pool is None:
                import multiprocessing
                from concurrent.futures import ProcessPoolExecutor

                from core.jobs.manager import ensure_resource_tracker

                ensure_resource_tracker()                  # under Textual, sys.stderr is no real file
                _pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_helper_init)
            pool = _pool
        return loop.run_in_executor(pool, build_text, data, width, height, theme, themes.get(theme))
    except Exception:
        _broken = True
        raise


def broken(exc: BaseException) -> None:
    """A build failed in a way that is the helper's (it died): stop using it."""
    global _broken
    from concurrent.futures.process import BrokenProcessPool

    if isinstance(exc, BrokenProcessPool):
        _broken = True
        shutdown()


def shutdown() -> None:
    """Stop the helper process (when the console closes); a later build starts a new one."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)
