"""When an alert is notified: the engine's settings and the pure decision rules.

Rules (times ms UTC):
* A firing of an *active* alert (new, or repeated) is notified unless a
  notification for the same dedup key went out less than `rate_limit_ms` ago
  (across alerts: a flapping condition that resolves and re-opens is limited
  too). Counts and last-seen go up either way.
* Acknowledged and snoozed alerts are never notified on firing.
* A snooze that ends on an unresolved alert makes it active and notifies it
  (not rate limited: the operator asked to be reminded).
* An active *critical* alert is re-notified (escalation) every
  `escalate_after_ms` after it became active (or was last escalated), until it
  is acknowledged, snoozed or resolved (not rate limited).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from core.alerts.model import Alert, AlertInputError, AlertState, Severity


class NotifyReason(StrEnum):
    """Why a notification is sent."""

    NEW = "new"                    # a new alert opened
    REPEAT = "repeat"              # an active alert fired again after the rate-limit interval
    SNOOZE_ENDED = "snooze_ended"  # a snooze ran out and the alert is still unresolved
    ESCALATION = "escalation"      # a critical alert is still not acknowledged


@dataclass(frozen=True)
class AlertConfig:
    """Settings of the alert engine.

    Attributes:
        rate_limit_ms: at most one firing notification per dedup key per this
            interval (ms, >= 0; 0: no limit). Default 10 minutes.
        escalate_after_ms: an unacknowledged active critical alert is re-notified
            every this many ms (> 0), or None for no escalation. Default 15 minutes.
        poll_interval_s: seconds between checks for changes made by other
            processes (`radar alerts ack`) and snooze/escalation deadlines
            (0.05 .. 0.5 so external changes show within one second). Default 0.3.
        keep_resolved: how many most recently resolved alerts the engine keeps in
            its in-memory view besides the unresolved ones (>= 0). Default 200.
        max_detail_chars: a longer detail is cut to this length (ends with "…"). Default 4000.

    Raises:
        AlertInputError: a value out of range (the message names the field).
    """

    rate_limit_ms: int = 10 * 60_000
    escalate_after_ms: int | None = 15 * 60_000
    poll_interval_s: float = 0.3
    keep_resolved: int = 200
    max_detail_chars: int = 4000

    def __post_init__(self) -> None:
        if not isinstance(self.rate_limit_ms, int) or self.rate_limit_ms < 0:
            raise AlertInputError(f"AlertConfig.rate_limit_ms must be an int >= 0, got {self.rate_limit_ms!r}")
        if self.escalate_after_ms is not None and (
                not isinstance(self.escalate_after_ms, int) or self.escalate_after_ms <= 0):
            raise AlertInputError(
                f"AlertConfig.escalate_after_ms must be an int > 0 or None, got {self.escalate_after_ms!r}")
        if not 0.05 <= self.poll_interval_s <= 0.5:
            raise AlertInputError(f"AlertConfig.poll_interval_s must be in 0.05..0.5, got {self.poll_interval_s!r}")
        if not isinstance(self.keep_resolved, int) or self.keep_resolved < 0:
            raise AlertInputError(f"AlertConfig.keep_resolved must be an int >= 0, got {self.keep_resolved!r}")
        if not isinstance(self.max_detail_chars, int) or self.max_detail_chars < 100:
            raise AlertInputError(
                f"AlertConfig.max_detail_chars must be an int >= 100, got {self.max_detail_chars!r}")


def firing_reason(alert: Alert, created: bool, key_last_notified_ms: int | None, now_ms: int,
                  config: AlertConfig) -> NotifyReason | None:
    """Whether a firing that left `alert` as it is gets notified, and why.

    Args:
        alert: the alert after the firing was recorded.
        created: the firing opened `alert` (no unresolved alert had its key).
        key_last_notified_ms: the last notification for any alert with this key (None: never).
        now_ms: the time of the firing.
    """
    if alert.state is not AlertState.ACTIVE:
        return None
    if key_last_notified_ms is not None and now_ms - key_last_notified_ms < config.rate_limit_ms:
        return None
    return NotifyReason.NEW if created else NotifyReason.REPEAT


def snooze_ended(alert: Alert, now_ms: int) -> bool:
    """True when `alert` is snoozed and its deadline is at or before `now_ms`."""
    return (alert.state is AlertState.SNOOZED and alert.snoozed_until_ms is not None
            and alert.snoozed_until_ms <= now_ms)


def escalation_due(alert: Alert, now_ms: int, config: AlertConfig) -> bool:
    """True when `alert` is an active critical alert unacknowledged for `escalate_after_ms`
    since it became active or was last escalated, whichever is later."""
    if config.escalate_after_ms is None:
        return False
    if alert.state is not AlertState.ACTIVE or alert.severity is not Severity.CRITICAL:
        return False
    since = max(alert.changed_ms, alert.last_escalated_ms or alert.changed_ms)
    return now_ms - since >= config.escalate_after_ms
