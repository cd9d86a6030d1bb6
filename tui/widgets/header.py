"""The one-line header shown on every screen.

    radar@host │ PAPER │ 2 Grid │ eq 10,234.56 │ day +12.30 │ kill off │ feed 3s │ alerts 2 │ replay finished

The mode is the word (LIVE in reverse red, so it reads without colour too); the day's P&L
carries its sign; the kill switch is the words "KILL ON" / "kill off"; the alert badge is a
number (0 reads as calm, `!` appended when some are unacknowledged). An engine that is not
running any more says so at the end ("replay finished", "ENGINE STOPPED: <error>"). On a
narrow terminal the least useful parts go first; the mode, the kill switch, the alerts and
the engine's state always stay.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Static


@dataclass
class HeaderState:
    """What the header shows (built by `RadarApp.header_state`).

    `stopped`: the engine is not running any more; `engine_status` then says how it ended
    ("replay finished", or "ENGINE STOPPED: <error>")."""

    host: str = ""
    mode: str = "paper"
    screen: str = ""
    equity: float | None = None
    day_pnl: float | None = None
    kill_active: bool = False
    feed_age_s: float | None = None
    alerts: int = 0
    readonly: bool = False
    stopped: bool = False
    engine_status: str = ""


#: the priority that keeps each part of the header when the width is short: the lowest is
#: dropped first; `KEPT` and above are never dropped (the end of the line is cut instead)
PART_PRIORITY = {"host": 1, "mode": 9, "screen": 0, "equity": 3, "day": 2, "kill": 9, "feed": 4, "alerts": 9,
                 "engine": 9}
KEPT = 9


def _parts(s: HeaderState, width: int) -> list[tuple[str, Text]]:
    parts: list[tuple[str, Text]] = []
    host = s.host if width >= 100 else s.host.split(".")[0][:14]
    parts.append(("host", Text(f"radar@{host}", "bold")))
    mode = Text(" LIVE ", "bold white on red") if s.mode.lower() == "live" else Text("PAPER", "bold cyan")
    if s.readonly:
        mode.append(" RO", "bold yellow")
    parts.append(("mode", mode))
    if s.screen:
        parts.append(("screen", Text(s.screen)))
    parts.append(("equity", Text("eq " + ("—" if s.equity is None else f"{s.equity:,.2f}"))))
    if s.day_pnl is None:
        parts.append(("day", Text("day —")))
    else:
        v = s.day_pnl
        sign = "+" if v > 0 else "−" if v < 0 else "±"
        parts.append(("day", Text(f"day {sign}{abs(v):,.2f}", "green" if v > 0 else "red" if v < 0 else "")))
    parts.append(("kill", Text("KILL ON", "bold white on red") if s.kill_active else Text("kill off")))
    if s.feed_age_s is None:
        parts.append(("feed", Text("feed —")))
    else:
        a = int(s.feed_age_s)
        txt = f"{a}s" if a < 120 else f"{a // 60}m" if a < 7200 else f"{a // 3600}h"
        stale = a >= 60 and not s.stopped          # a stopped engine gets no candles: not a feed fault
        parts.append(("feed", Text(f"feed {txt}{' STALE' if stale else ''}", "bold red" if stale else "")))
    parts.append(("alerts", Text(f"alerts {s.alerts}!", "bold black on yellow") if s.alerts else Text("alerts 0")))
    if s.stopped:
        status = s.engine_status or "ENGINE STOPPED"
        parts.append(("engine", Text(status, "bold" if status == "replay finished" else "bold red")))
    return parts


def render_header(s: HeaderState, width: int = 200) -> Text:
    """The header line for `width` cells: when everything does not fit, the parts of lowest
    priority (`PART_PRIORITY`) are dropped first, so the mode, the kill switch, the alerts and
    the engine's state always show (a long engine error is cut at the end)."""
    sep = (" │ ", "dim") if width >= 100 else ("│", "dim")
    parts = _parts(s, width)
    if width < 100:
        parts = [(k, t) for k, t in parts if k != "screen"]

    def length(ps: list[tuple[str, Text]]) -> int:
        return sum(t.cell_len for _, t in ps) + len(sep[0]) * (len(ps) - 1)

    while length(parts) > width:
        droppable = [(PART_PRIORITY[k], i) for i, (k, _) in enumerate(parts) if PART_PRIORITY[k] < KEPT]
        if not droppable:
            break
        parts.pop(min(droppable)[1])
    t = Text(no_wrap=True, overflow="ellipsis")
    for i, (_, part) in enumerate(parts):
        if i:
            t.append(*sep)
        t.append_text(part)
    return t


class RadarHeader(Static):
    """Docked at the top of every RadarScreen; the app calls `show(state)`."""

    DEFAULT_CSS = """
    RadarHeader { dock: top; height: 1; background: $panel; color: $text; padding: 0 1; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.state = HeaderState()
        self._last_plain = ""
        self._last_spans: list = []

    def show(self, state: HeaderState) -> None:
        self.state = state
        text = render_header(state, self.content_size.width or 200)
        if text.plain != self._last_plain or text.spans != self._last_spans:
            self._last_plain = text.plain
            self._last_spans = list(text.spans)
            # fixed height (1 line, docked): new text never changes the layout, so no reflow
            self.update(text, layout=False)
