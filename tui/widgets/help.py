"""`?` help: the keys and commands of the visible screen and of the whole console, from the
action registry (so help never disagrees with the bindings). `esc`, `?` or `q` closes."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.actions import Action
from tui.widgets.palette import key_label


def help_table(title: str, actions: tuple[Action, ...] | list[Action], readonly: bool) -> Table:
    t = Table(title=title, title_justify="left", box=None, expand=False, pad_edge=False)
    t.add_column("key", style="bold cyan", no_wrap=True)
    t.add_column("command", no_wrap=True)
    t.add_column("what it does")
    for a in actions:
        off = readonly and not a.readonly_ok
        desc = Text(a.description, style="dim" if off else "")
        if a.destructive:
            desc.append("  (asks first)", "yellow")
        if off:
            desc.append("  (read-only: disabled)", "yellow")
        t.add_row(key_label(a.key) if a.key else "", f":{a.name}", desc)
    return t


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 90%; max-width: 110; height: 90%; border: round $accent;
                                  background: $surface; padding: 0 1; }
    """
    BINDINGS = [Binding("escape", "close", "Close"), Binding("question_mark", "close", "Close"),
                Binding("q", "close", "Close")]

    def __init__(self, screen_title: str, screen_actions: tuple[Action, ...],
                 app_actions: tuple[Action, ...], readonly: bool) -> None:
        super().__init__()
        self.screen_title = screen_title
        self.screen_actions = screen_actions
        self.app_actions = app_actions
        self.readonly = readonly

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            if self.screen_actions:
                yield Static(help_table(f"{self.screen_title} screen", self.screen_actions, self.readonly))
            yield Static(help_table("Everywhere", self.app_actions, self.readonly))
            yield Static(Text("`:` then a command name runs it; `/` filters tables; esc goes back. "
                              "Destructive commands ask first and name what they will do.", style="dim"))

    def action_close(self) -> None:
        self.dismiss(None)
