"""Toast policy: what pops up over the console, and how much of it.

* Engine alerts: INFO ones (a fill, a stop moved, a cycle closed) go to the alert log (the
  Alerts screen) and the screens, never to a toast; WARNING and above are toasts
  (`alert_toasted`).
* Coalescing: a toast with the same title and message as one still on screen replaces it
  with a count ("… (×3)") and a fresh life instead of adding a toast.
* At most `MAX_TOASTS` toasts at once: the least severe (then the oldest) goes first.

`ToastCoalescer.admit` works on Textual's `Notifications` collection; the app calls it
from its `Notify` handler (`RadarApp._on_notify`), so every `notify()` of the console,
operator feedback included, follows the same cap and coalescing.
"""

from __future__ import annotations

from typing import Any

#: toasts on screen at most
MAX_TOASTS = 2
#: alert severities shown as toasts
TOASTED_SEVERITIES = frozenset({"warning", "error", "critical"})
_RANK = {"information": 0, "warning": 1, "error": 2}


def alert_toasted(severity: Any) -> bool:
    """True when an alert of `severity` ("info", "warning", "error", "critical") is a toast."""
    return str(getattr(severity, "value", severity)).lower() in TOASTED_SEVERITIES


def toast_severity(severity: Any) -> str:
    """Textual's notification severity for an alert severity."""
    sev = str(getattr(severity, "value", severity)).lower()
    return "error" if sev in ("critical", "error") else "warning" if sev == "warning" else "information"


class ToastCoalescer:
    """Coalesces and caps the console's toasts (see the module docstring)."""

    def __init__(self, limit: int = MAX_TOASTS) -> None:
        self.limit = limit
        #: notification identity -> (coalescing key, count) of the toasts admitted
        self._meta: dict[str, tuple[tuple[str, str], int]] = {}

    def count(self, notification: Any) -> int:
        """How many repeats `notification` stands for (1 for a toast seen once)."""
        return self._meta.get(notification.identity, (None, 1))[1]

    def admit(self, notifications: Any, new: Any) -> None:
        """Add notification `new` to `notifications` (Textual's `Notifications`): a repeat of
        a live toast replaces it with a count; then the collection is cut to `limit`."""
        key = (new.title, new.message)
        count = 1
        for old in list(notifications):
            meta = self._meta.get(old.identity)
            if meta is not None and meta[0] == key:
                count = meta[1] + 1
                del notifications[old]
        if count > 1:
            new.message = f"{new.message} (×{count})"
        notifications.add(new)
        self._meta[new.identity] = (key, count)
        live = list(notifications)
        while len(live) > self.limit:
            victim = min(live, key=lambda n: (_RANK.get(n.severity, 0), n.raised_at))
            del notifications[victim]
            live.remove(victim)
        alive = {n.identity for n in live}
        for ident in [i for i in self._meta if i not in alive]:
            del self._meta[ident]
