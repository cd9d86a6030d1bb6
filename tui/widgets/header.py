"""The one-line header shown on every screen.

    radar@host │ PAPER │ 2 Grid │ eq 10,234.56 │ day +12.30 │ kill off │ feed 3s │ alerts 2

The mode is the word (LIVE in reverse red, so it reads without colour too); the day's P&L
carries its sign; the kill switch is the words "KILL ON" / "kill off"; the alert badge is a
number (0 reads as calm, `!` appended when some are unacknowledged).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Static


@dataclass
class HeaderState:
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


def render_header(s: HeaderState, width: int = 200) -> Text:
    sep = (" │ ", "dim") if width >= 100 else ("│", "dim")
    t = Text(no_wrap=True, overflow="ellipsis")
    host = s.host if width >= 100 else s.host.split(".")[0][:14]
    t.append(f"radar@{host}", "bold")
    t.append(*sep)
    if s.mode.lower() == "live":
        t.append(" LIVE ", "bold white on red")
    else:
        t.append("PAPER", "bold cyan")
    if s.readonly:
        t.append(" RO", "bold yellow")
    if s.screen and width >= 100:
        t.append(*sep)
        t.append(s.screen)
    t.append(*sep)
    t.append("eq " + ("—" if s.equity is None else f"{s.equity:,.2f}"))
    t.append(*sep)
    if s.day_pnl is None:
        t.append("day —")
    else:
        v = s.day_pnl
        sign = "+" if v > 0 else "−" if v < 0 else "±"
        t.append(f"day {sign}{abs(v):,.2f}", "green" if v > 0 else "red" if v < 0 else "")
    t.append(*sep)
    if s.kill_active:
        t.append("KILL ON", "bold white on red")
    else:
        t.append("kill off")
    t.append(*sep)
    if s.feed_age_s is None:
        t.append("feed —")
    else:
        a = int(s.feed_age_s)
        txt = f"{a}s" if a < 120 else f"{a // 60}m" if a < 7200 else f"{a // 3600}h"
        stale = a >= 60
        t.append(f"feed {txt}{' STALE' if stale else ''}", "bold red" if stale else "")
    t.append(*sep)
    if s.alerts:
        t.append(f"alerts {s.alerts}!", "bold black on yellow")
    else:
        t.append("alerts 0")
    if s.stopped:
        t.append(*sep)
        t.append("ENGINE STOPPED", "bold red")
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
        text = render_header(state, self.size.width or 200)
        if text.plain != self._last_plain or text.spans != self._last_spans:
            self._last_plain = text.plain
            self._last_spans = list(text.spans)
            # fixed height (1 line, docked): new text never changes the layout, so no reflow
            self.update(text, layout=False)
