"""One action registry feeding the key bindings, the `:` command palette and each screen's `?` help.

Grammar (k9s): `:` opens the command palette, `/` filters, `?` shows help, `esc` goes back;
keys are letters, F-keys and ctrl combinations only. No destructive action sits on a single
key without a confirmation (`destructive=True` makes the app ask first, naming what it does).

Every screen declares its actions as a class attribute::

    class AlertsScreen(RadarScreen):
        ACTIONS = (
            Action("ack", "a", "Acknowledge the selected alert", "ack_selected"),
            Action("snooze", "s", "Snooze the selected alert", "snooze_selected"),
        )

and the app builds its Textual bindings, palette commands and help from those tuples.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Action:
    """One operator action.

    Attributes:
        name: palette command word, e.g. "ack" (typed as `:ack`).
        key: Textual key name, e.g. "a", "K", "f5", "ctrl+r"; "" = palette only.
        description: one line shown in help and in the palette.
        method: name of the screen's (or app's) method without the `action_` prefix;
            Textual calls `action_<method>()`.
        destructive: the app asks for a confirmation naming what will happen first.
        readonly_ok: still allowed in `radar run --readonly` (queries and navigation).
    """

    name: str
    key: str
    description: str
    method: str
    destructive: bool = False
    readonly_ok: bool = False


def bindings_of(actions: tuple[Action, ...]) -> list[tuple[str, str, str]]:
    """Textual BINDINGS triples (key, action, description) for the actions that have a key."""
    return [(a.key, a.method, a.description) for a in actions if a.key]
