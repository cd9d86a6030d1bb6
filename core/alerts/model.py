"""What an alert is: severity, state, the Alert record and the result of an operator command.

All timestamps are int ms UTC. An `Alert` is an immutable snapshot of one
stored row; every change produces a new snapshot.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from core.errors import RadarError


class AlertError(RadarError):
    """Base of the alert engine's errors."""


class AlertInputError(AlertError, ValueError):
    """A programming-side argument is invalid (bad severity, empty key, ...); exit code 2."""

    exit_code = 2


class AlertStoreError(AlertError):
    """The alerts could not be read from / written to the database; nothing was changed."""


class Severity(StrEnum):
    """How bad it is, lowest to highest."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 (info) .. 3 (critical)."""
        return _SEVERITY_ORDER.index(self)

    @classmethod
    def parse(cls, value: "Severity | str") -> "Severity":
        """`value` as a Severity.

        Raises:
            AlertInputError: not one of info, warning, error, critical.
        """
        try:
            return cls(value)
        except ValueError:
            raise AlertInputError(
                f"invalid severity {value!r}: expected one of {', '.join(s.value for s in cls)}") from None


_SEVERITY_ORDER = (Severity.INFO, Severity.WARNING, Severity.ERROR, Severity.CRITICAL)


class AlertState(StrEnum):
    """Where an alert is in its life.

    * active: firing and not yet handled by an operator (notified, escalated).
    * acknowledged: an operator has seen it; visible until resolved, no re-notification.
    * snoozed: hidden and muted until `snoozed_until_ms`, then active again if not resolved.
    * resolved: the condition cleared (final; firing again opens a new alert).
    """

    ACTIVE = "active"
    ACKNOWLEDGED = "acknowledged"
    SNOOZED = "snoozed"
    RESOLVED = "resolved"

    @classmethod
    def parse(cls, value: "AlertState | str") -> "AlertState":
        """`value` as an AlertState.

        Raises:
            AlertInputError: not one of active, acknowledged, snoozed, resolved.
        """
        try:
            return cls(value)
        except ValueError:
            raise AlertInputError(
                f"invalid alert state {value!r}: expected one of {', '.join(s.value for s in cls)}") from None


#: The states of an alert that is still firing (not resolved).
OPEN_STATES = frozenset({AlertState.ACTIVE, AlertState.ACKNOWLEDGED, AlertState.SNOOZED})


@dataclass(frozen=True)
class Alert:
    """One alert as stored (times ms UTC).

    Attributes:
        id: database id; a resolved alert that fires again gets a new id.
        key: dedup key: at most one unresolved alert per key.
        severity, source, title, detail: from the latest `raise_alert` for this alert.
        first_seen_ms, last_seen_ms: first and latest firing.
        count: how many times it fired (>= 1).
        state: see AlertState.
        snoozed_until_ms: the snooze deadline when state is snoozed, else None.
        changed_by, changed_ms: actor and time of the last state change (for a new
            alert: its source and first_seen_ms).
        last_notified_ms: when a notification was last sent for it (None: never).
        notified_count: notifications sent for it (first, repeats, snooze ends, escalations).
        last_escalated_ms: when it was last re-notified for escalation (None: never).
    """

    id: int
    key: str
    severity: Severity
    source: str
    title: str
    detail: str
    first_seen_ms: int
    last_seen_ms: int
    count: int
    state: AlertState
    snoozed_until_ms: int | None
    changed_by: str
    changed_ms: int
    last_notified_ms: int | None
    notified_count: int
    last_escalated_ms: int | None

    @property
    def is_open(self) -> bool:
        """True unless resolved."""
        return self.state is not AlertState.RESOLVED

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (enums as their string values, times ms UTC)."""
        d = asdict(self)
        d["severity"] = self.severity.value
        d["state"] = self.state.value
        return d


def display_order(alert: Alert) -> tuple[int, int, int, int]:
    """Sort key: unresolved first, then most severe, most recently seen, newest id."""
    return (0 if alert.is_open else 1, -alert.severity.rank, -alert.last_seen_ms, -alert.id)


@dataclass(frozen=True)
class CommandResult:
    """Outcome of an operator command (ack, snooze): never raised, always returned.

    Attributes:
        ok: the command did what was asked (or it was already so).
        message: one line for the operator, e.g. "acknowledged alert 3: feed stale"
            or "no alert with id 99".
        alert: the alert after the command (None when unknown).
        error: None when ok, else one of "invalid" (bad id/duration/deadline/actor),
            "unknown_id", "resolved", "storage" (database failure).
    """

    ok: bool
    message: str
    alert: Alert | None = None
    error: str | None = None

    @classmethod
    def success(cls, message: str, alert: Alert) -> "CommandResult":
        """An ok result."""
        return cls(True, message, alert, None)

    @classmethod
    def failure(cls, error: str, message: str, alert: Alert | None = None) -> "CommandResult":
        """A failed result with its error kind."""
        return cls(False, message, alert, error)
