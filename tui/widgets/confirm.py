"""Confirmation dialogs.

* `ConfirmScreen`: a named-action confirmation ("Trip the kill switch: cancel the 3 pending
  entry orders, keep the stops, block new entries until resume"). `y` or the named button
  confirms; `n` / `esc` cancels; the cancel button has the focus, so `enter` alone never
  confirms.
* `TypedConfirmScreen`: for flatten-all / cancel-all: the operator types the word (or the
  symbol) shown; anything else keeps the dialog open. `esc` cancels.

Both dismiss with True (confirmed) or False. Given a `source` (a function returning the
message), `refresh_message()` re-reads it and repaints the message when it changed: the app
calls it while the dialog is open, so the counts it names follow the engine.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static


class _LiveMessage:
    """The `source` / `refresh_message` part shared by both dialogs."""

    message: str
    source: Callable[[], str] | None = None

    def refresh_message(self) -> None:
        """Re-read the message from `source`; repaint it when it changed."""
        if self.source is None:
            return
        try:
            text = self.source()
        except Exception:                       # the old text stays rather than a broken dialog
            return
        if text != self.message:
            self.message = text
            for widget in self.query("#message"):  # type: ignore[attr-defined]
                widget.update(Text(text))


class ConfirmScreen(_LiveMessage, ModalScreen[bool]):
    """A named-action confirmation (see the module docstring)."""

    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical { width: 70; max-width: 95%; height: auto; border: thick $error;
                               background: $surface; padding: 1 2; }
    ConfirmScreen #title { text-style: bold; margin-bottom: 1; }
    ConfirmScreen Horizontal { height: auto; margin-top: 1; }
    ConfirmScreen Button { margin-right: 2; }
    """
    BINDINGS = [Binding("y", "confirm", "Confirm"), Binding("n", "cancel", "Cancel"),
                Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, message: str, confirm_label: str,
                 source: Callable[[], str] | None = None) -> None:
        super().__init__()
        self.title_text = title
        self.message = message
        self.source = source
        self.confirm_label = confirm_label

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, id="title")
            yield Static(Text(self.message), id="message")
            yield Static(Text(f"[y] {self.confirm_label}    [n / esc] Cancel"), id="keys")
            with Horizontal():
                yield Button("Cancel", id="cancel", variant="primary")
                yield Button(self.confirm_label, id="confirm", variant="error")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm")

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)


class TypedConfirmScreen(_LiveMessage, ModalScreen[bool]):
    """A confirmation that needs `word` typed (see the module docstring)."""

    DEFAULT_CSS = """
    TypedConfirmScreen { align: center middle; }
    TypedConfirmScreen > Vertical { width: 70; max-width: 95%; height: auto; border: thick $error;
                                    background: $surface; padding: 1 2; }
    TypedConfirmScreen #title { text-style: bold; margin-bottom: 1; }
    TypedConfirmScreen #error { color: $error; height: auto; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, message: str, word: str, source: Callable[[], str] | None = None) -> None:
        super().__init__()
        self.title_text = title
        self.message = message
        self.source = source
        self.word = word

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, id="title")
            yield Static(Text(self.message), id="message")
            yield Static(Text(f"Type {self.word} and press enter to confirm; esc cancels."), id="keys")
            yield Input(placeholder=self.word, id="word")
            yield Static("", id="error")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value.strip() == self.word:
            self.dismiss(True)
        else:
            self.query_one("#error", Static).update(Text(f"“{event.value}” is not {self.word}: nothing done"))

    def action_cancel(self) -> None:
        self.dismiss(False)
