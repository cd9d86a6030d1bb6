"""4 Alerts: the AlertEngine's alerts; `a` acknowledges, `s` snoozes (15m / 1h / 4h / 24h),
`enter` shows the detail (where `a` and `s` work too, on the alert shown), `t` cycles the
state filter, `v` the severity filter, `/` filters text.

Below 110 columns the Last seen and Source columns are left out (the detail view has them)
and the title is cut to the room left, so the State column (active / acknowledged /
snoozed) always shows.

Severity reads as a word with a marker (CRIT ‼, ERROR !, WARN, info), never by colour alone.
Acknowledge and snooze go through `AlertEngine.ack/snooze` (persisted before they return),
run as workers so the console never waits on the database.
"""

from __future__ import annotations

import time
from typing import Any, Awaitable, Callable, Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label, OptionList, Static
from textual.widgets.option_list import Option

from tui.actions import Action
from tui.screens.base import FILTER, SORT, SORT_REV, ColumnSpec, SortValue, TableScreen

SNOOZE_CHOICES = ("15m", "1h", "4h", "24h")
STATE_FILTERS = (None, "active", "acknowledged", "snoozed", "resolved")   # None = every unresolved
SEVERITY_FILTERS = (None, "critical", "error", "warning", "info")
SEV_LABEL = {"critical": ("CRIT ‼", "bold white on red", 4), "error": ("ERROR !", "bold red", 3),
             "warning": ("WARN", "yellow", 2), "info": ("info", "dim", 1)}
#: content width of each column but the title (the title gets the room left)
COLUMN_WIDTHS = {"id": 4, "sev": 8, "count": 5, "first": 14, "last": 14, "state": 12, "source": 10}
#: below this terminal width, Last seen and Source are left out
WIDE = 110
#: the narrowest title column
MIN_TITLE = 12


def fmt_ms(ms: int | None) -> str:
    if not ms:
        return "—"
    return time.strftime("%m-%d %H:%M:%S", time.gmtime(ms / 1000))


def _val(x: Any) -> str:
    return getattr(x, "value", x)


def _cut(cell: SortValue) -> SortValue:
    """The cell on one line, cut with an ellipsis to its column's width."""
    cell.no_wrap = True
    cell.overflow = "ellipsis"
    return cell


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
    """One alert in full; `a` acknowledges it, `s` snoozes it (through `owner`, the Alerts
    screen, with the same read-only rule), `esc` goes back."""

    DEFAULT_CSS = """
    AlertDetailScreen { align: center middle; }
    AlertDetailScreen > VerticalScroll { width: 90%; max-width: 100; height: 80%; border: round $accent;
                                         background: $surface; padding: 0 1; }
    """
    BINDINGS = [Binding("escape", "close", "Back"), Binding("q", "close", "Back", show=False),
                Binding("a", "ack", "Acknowledge"), Binding("s", "snooze", "Snooze")]

    def __init__(self, alert: Any, owner: AlertsScreen | None = None) -> None:
        super().__init__()
        self.alert = alert
        self.owner = owner

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
            yield Static(t, id="alert-detail")
            yield Static(Text("a: acknowledge   s: snooze   esc: back   (times UTC)", style="dim"))

    def action_close(self) -> None:
        self.dismiss(None)

    async def action_ack(self) -> None:
        if self.owner is None:
            self.notify("acknowledge from the Alerts screen", severity="warning")
            return
        await self.owner.ack_alert(self.alert)
        await self._reload()

    def action_snooze(self) -> None:
        if self.owner is None:
            self.notify("snooze from the Alerts screen", severity="warning")
            return
        self.owner.snooze_alert(self.alert, done=self._reload)

    async def _reload(self) -> None:
        """Show the alert as stored now (its state after an ack or a snooze)."""
        eng = getattr(self.owner, "alerts", None)
        fresh = eng.get(self.alert.id) if eng is not None else None
        if fresh is not None:
            self.alert = fresh
            await self.recompose()


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

    def column_layout(self, width: int) -> tuple[ColumnSpec, ...]:
        """Every column from `WIDE` columns up; narrower, without Last seen and Source. The
        title gets the width left (each column has one cell of padding a side, and two cells
        are kept for the scroll bar)."""
        keys = [k for k, _ in self.COLUMNS if width >= WIDE or k not in ("last", "source")]
        fixed = sum(COLUMN_WIDTHS[k] for k in keys if k != "title")
        title = max(MIN_TITLE, width - 2 - fixed - 2 * len(keys))
        labels = dict(self.COLUMNS)
        return tuple((k, labels[k], title if k == "title" else COLUMN_WIDTHS[k]) for k in keys)

    def on_filter_cleared(self) -> None:
        self._show_filters(self.alerts)

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
                _cut(SortValue(a.title, a.title)),
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
        if a is not None:
            await self.ack_alert(a)

    def action_snooze_selected(self) -> None:
        a = self._selected_alert()
        if a is not None:
            self.snooze_alert(a)

    def _refused(self, name: str) -> bool:
        """True (and said) when the read-only console refuses action `name`."""
        act = self.find_action(name)
        if act is not None and getattr(self.app, "readonly", False) and not act.readonly_ok:
            self.notify(f"read-only console: {name} is disabled", severity="warning")
            return True
        return False

    async def ack_alert(self, a: Any) -> None:
        """Acknowledge alert `a` (persisted), say the outcome, repaint."""
        if self._refused("ack") or self.alerts is None:
            return
        res = await self.alerts.ack(a.id, self.actor())
        self.notify(res.message, severity="information" if res.ok else "error")
        self._repaint()

    def snooze_alert(self, a: Any, done: Callable[[], Awaitable[None]] | None = None) -> None:
        """Ask for a duration, snooze alert `a` (persisted), say the outcome, repaint; then
        await `done()` (the detail view reloads itself)."""
        if self._refused("snooze") or self.alerts is None:
            return

        async def picked(duration: str | None) -> None:
            if duration is None:
                return
            res = await self.alerts.snooze(a.id, self.actor(), duration=duration)
            self.notify(res.message, severity="information" if res.ok else "error")
            self._repaint()
            if done is not None:
                await done()

        self.app.push_screen(SnoozePicker(a.title), picked)

    def action_detail(self) -> None:
        a = self._selected_alert()
        if a is not None:
            self.app.push_screen(AlertDetailScreen(a, owner=self))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.run_worker(self.action_radar("alert"), exclusive=True, group="detail")
