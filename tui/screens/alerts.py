"""4 Alerts: the AlertEngine's alerts; `a` acknowledges, `s` snoozes (15m / 1h / 4h / 24h),
`enter` shows the detail, `t` cycles the state filter, `v` the severity filter, `/` filters text.

Severity reads as a word with a marker (CRIT ‼, ERROR !, WARN, info), never by colour alone.
Acknowledge and snooze go through `AlertEngine.ack/snooze` (persisted before they return),
run as workers so the console never waits on the database.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label, OptionList, Static
from textual.widgets.option_list import Option

from tui.actions import Action
from tui.screens.base import FILTER, SORT, SORT_REV, SortValue, TableScreen

SNOOZE_CHOICES = ("15m", "1h", "4h", "24h")
STATE_FILTERS = (None, "active", "acknowledged", "snoozed", "resolved")   # None = every unresolved
SEVERITY_FILTERS = (None, "critical", "error", "warning", "info")
SEV_LABEL = {"critical": ("CRIT ‼", "bold white on red", 4), "error": ("ERROR !", "bold red", 3),
             "warning": ("WARN", "yellow", 2), "info": ("info", "dim", 1)}


def fmt_ms(ms: int | None) -> str:
    if not ms:
        return "—"
    return time.strftime("%m-%d %H:%M:%S", time.gmtime(ms / 1000))


def _val(x: Any) -> str:
    return getattr(x, "value", x)


class SnoozePicker(ModalScreen[str | None]):
    """Pick a snooze duration: arrows + enter, or 1-4; esc cancels."""

    DEFAULT_CSS = """
    SnoozePicker { align: center middle; }
    SnoozePicker > Vertical { width: 44; height: auto; border: round $warning; background: $surface; padding: 0 1; }
    SnoozePicker OptionList { height: auto; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")] + [
        Binding(str(i + 1), f"pick({i})", d, show=False) for i, d in enumerate(SNOOZE_CHOICES)]

    def __init__(self, title: str) -> None:
        super().__init__()
        self.title_text = title

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Snooze: {self.title_text}")
            yield OptionList(*[Option(f"{i + 1}  {d}", id=d) for i, d in enumerate(SNOOZE_CHOICES)])
            yield Static("enter or 1-4 picks · esc cancels", classes="dim")

    def on_mount(self) -> None:
        ol = self.query_one(OptionList)
        ol.highlighted = 0
        ol.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_pick(self, i: int) -> None:
        self.dismiss(SNOOZE_CHOICES[i])

    def action_cancel(self) -> None:
        self.dismiss(None)


class AlertDetailScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    AlertDetailScreen { align: center middle; }
    AlertDetailScreen > VerticalScroll { width: 90%; max-width: 100; height: 80%; border: round $accent;
                                         background: $surface; padding: 0 1; }
    """
    BINDINGS = [Binding("escape", "close", "Back"), Binding("q", "close", "Back", show=False)]

    def __init__(self, alert: Any) -> None:
        super().__init__()
        self.alert = alert

    def compose(self) -> ComposeResult:
        a = self.alert
        label, style, _ = SEV_LABEL.get(_val(a.severity), (str(_val(a.severity)), "", 0))
        t = Text()
        t.append(f"#{a.id} ", "bold")
        t.append(label, style)
        t.append(f"  {a.title}\n\n", "bold")
        for name, value in (("state", _val(a.state)), ("source", a.source), ("key", a.key), ("count", a.count),
                            ("first seen", fmt_ms(a.first_seen_ms)), ("last seen", fmt_ms(a.last_seen_ms)),
                            ("snoozed until", fmt_ms(a.snoozed_until_ms)),
                            ("changed by", f"{a.changed_by} at {fmt_ms(a.changed_ms)}"),
                            ("notified", f"{a.notified_count} time(s), last {fmt_ms(a.last_notified_ms)}")):
            t.append(f"{name:>14}: ", "dim")
            t.append(f"{value}\n")
        t.append("\n")
        t.append(a.detail or "(no detail)")
        with VerticalScroll():
            yield Static(t)
            yield Static(Text("esc: back   (times UTC)", style="dim"))

    def action_close(self) -> None:
        self.dismiss(None)


class AlertsScreen(TableScreen):
    SCREEN_NUMBER = 4
    SCREEN_TITLE = "Alerts"
    COLUMNS = (("id", "#"), ("sev", "Severity"), ("title", "Title"), ("count", "Count"), ("first", "First seen"),
               ("last", "Last seen"), ("state", "State"), ("source", "Source"))
    ACTIONS = (
        Action("ack", "a", "Acknowledge the selected alert", "ack_selected"),
        Action("snooze", "s", "Snooze the selected alert (15m, 1h, 4h, 24h)", "snooze_selected"),
        Action("alert", "enter", "Show the selected alert's detail", "detail", readonly_ok=True),
        Action("state", "t", "Cycle the state filter (open, active, acked, snoozed, resolved)", "cycle_state",
               readonly_ok=True),
        Action("severity", "v", "Cycle the severity filter", "cycle_severity", readonly_ok=True),
        FILTER, SORT, SORT_REV,
    )
    DEFAULT_CSS = "AlertsScreen #alert-filters { height: 1; padding: 0 1; color: $text-muted; }"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.state_filter: str | None = None
        self.severity_filter: str | None = None

    def compose_top(self) -> ComposeResult:
        yield Static("", id="alert-filters")

    @property
    def alerts(self) -> Any:
        return getattr(self.app, "alerts", None)

    def build_rows(self, api: Any) -> dict[str, Sequence[object]]:
        eng = self.alerts
        self._show_filters(eng)
        if eng is None:
            return {}
        rows: dict[str, Sequence[object]] = {}
        for a in eng.list(state=self.state_filter, severity=self.severity_filter):
            sev = _val(a.severity)
            label, style, rank = SEV_LABEL.get(sev, (sev, "", 0))
            state = _val(a.state)
            rows[str(a.id)] = (
                SortValue(str(a.id), a.id, justify="right"),
                SortValue(label, rank, style=style),
                SortValue(a.title, a.title),
                SortValue(str(a.count), a.count, justify="right"),
                SortValue(fmt_ms(a.first_seen_ms), a.first_seen_ms),
                SortValue(fmt_ms(a.last_seen_ms), a.last_seen_ms),
                SortValue(state + (" ⏸" if state == "snoozed" else " ●" if state == "active" else ""), state,
                          style="bold" if state == "active" else "dim"),
                SortValue(a.source, a.source, style="dim"),
            )
        return rows

    def _show_filters(self, eng: Any) -> None:
        t = Text(no_wrap=True)
        t.append(f"state: {self.state_filter or 'open'}  ·  severity: {self.severity_filter or 'all'}")
        if self.filter_text:
            t.append(f"  ·  /{self.filter_text}")
        if eng is None:
            t.append("  ·  no alert engine attached", "yellow")
        self.query_one("#alert-filters", Static).update(t)

    def _selected_alert(self) -> Any:
        key = self.selected_key()
        eng = self.alerts
        if key is None or eng is None:
            self.notify("no alert selected", severity="warning")
            return None
        return eng.get(int(key))

    def _repaint(self) -> None:
        api = getattr(self.app, "api", None)
        self.refresh_data(api)

    def action_cycle_state(self) -> None:
        i = STATE_FILTERS.index(self.state_filter)
        self.state_filter = STATE_FILTERS[(i + 1) % len(STATE_FILTERS)]
        self._repaint()

    def action_cycle_severity(self) -> None:
        i = SEVERITY_FILTERS.index(self.severity_filter)
        self.severity_filter = SEVERITY_FILTERS[(i + 1) % len(SEVERITY_FILTERS)]
        self._repaint()

    def actor(self) -> str:
        return getattr(self.app, "actor", "console")

    async def action_ack_selected(self) -> None:
        a = self._selected_alert()
        if a is None:
            return
        res = await self.alerts.ack(a.id, self.actor())
        self.notify(res.message, severity="information" if res.ok else "error")
        self._repaint()

    def action_snooze_selected(self) -> None:
        a = self._selected_alert()
        if a is None:
            return

        async def picked(duration: str | None) -> None:
            if duration is None:
                return
            res = await self.alerts.snooze(a.id, self.actor(), duration=duration)
            self.notify(res.message, severity="information" if res.ok else "error")
            self._repaint()

        self.app.push_screen(SnoozePicker(a.title), picked)

    def action_detail(self) -> None:
        a = self._selected_alert()
        if a is not None:
            self.app.push_screen(AlertDetailScreen(a))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.run_worker(self.action_radar("alert"), exclusive=True, group="detail")
