"""The `:` command palette (k9s grammar), built from the action registry.

The app hands it every command available now (`PaletteCommand`: screen names, the app's
actions, the visible screen's actions); typing filters by prefix, then by substring; `enter`
runs the highlighted command (or the exact word typed); `esc` closes. Commands disabled in
`--readonly` are listed, marked, and refused by the app when chosen.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList
from textual.widgets.option_list import Option


@dataclass(frozen=True)
class PaletteCommand:
    name: str
    description: str
    key: str = ""
    enabled: bool = True


def key_label(key: str) -> str:
    """How a Textual key name reads in help and palette: colon -> ':', ctrl+r -> ^r."""
    names = {"colon": ":", "slash": "/", "question_mark": "?", "escape": "esc", "enter": "enter"}
    if key in names:
        return names[key]
    return key.replace("ctrl+", "^")


def match(commands: list[PaletteCommand], typed: str) -> list[PaletteCommand]:
    t = typed.strip().lstrip(":").lower()
    if not t:
        return list(commands)
    first = [c for c in commands if c.name.lower().startswith(t)]
    rest = [c for c in commands if c not in first and (t in c.name.lower() or t in c.description.lower())]
    return first + rest


class PaletteScreen(ModalScreen[str | None]):
    DEFAULT_CSS = """
    PaletteScreen { align: center top; }
    PaletteScreen > Vertical { width: 76; max-width: 100%; height: auto; max-height: 80%;
                               margin-top: 2; border: round $accent; background: $surface; }
    PaletteScreen OptionList { height: auto; max-height: 16; }
    """
    BINDINGS = [Binding("escape", "close", "Close"),
                Binding("down", "move(1)", show=False), Binding("up", "move(-1)", show=False)]

    def __init__(self, commands: list[PaletteCommand]) -> None:
        super().__init__()
        self.commands = commands
        self.shown: list[PaletteCommand] = list(commands)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Input(placeholder=":command (esc closes)", id="palette-input")
            yield OptionList(id="palette-options")

    def on_mount(self) -> None:
        self._fill("")
        self.query_one(Input).focus()

    def _fill(self, typed: str) -> None:
        self.shown = match(self.commands, typed)
        ol = self.query_one(OptionList)
        ol.clear_options()
        for c in self.shown:
            t = Text()
            t.append(f":{c.name:<14}", "bold" if c.enabled else "dim")
            t.append(f" {key_label(c.key):<6}", "cyan")
            t.append(c.description, "" if c.enabled else "dim")
            if not c.enabled:
                t.append("  (read-only: disabled)", "yellow")
            ol.add_option(Option(t, id=c.name))
        if self.shown:
            ol.highlighted = 0

    def on_input_changed(self, event: Input.Changed) -> None:
        self._fill(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        typed = event.value.strip().lstrip(":")
        exact = next((c for c in self.commands if c.name == typed), None)
        if exact is not None:
            self.dismiss(exact.name)
            return
        ol = self.query_one(OptionList)
        if self.shown and ol.highlighted is not None:
            self.dismiss(self.shown[ol.highlighted].name)
        elif typed:
            self.app.notify(f"no command {typed!r}; esc closes", severity="warning")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_move(self, delta: int) -> None:
        ol = self.query_one(OptionList)
        if not self.shown:
            return
        cur = ol.highlighted or 0
        ol.highlighted = max(0, min(len(self.shown) - 1, cur + delta))

    def action_close(self) -> None:
        self.dismiss(None)
