"""Alerts: one engine through which every alert in Radar is raised, notified, acknowledged and persisted.

* `model`      Alert, Severity, AlertState, CommandResult, errors
* `policy`     AlertConfig and the notification rules (rate limit, snooze end, escalation)
* `store`      SQLite persistence and state changes (shared by the engine and `radar alerts`)
* `engine`     AlertEngine (asyncio facade, in-memory view, polling of external changes)
* `notify`     Notification and isolated delivery to sinks
* `clock`      injectable ms-UTC clock
* `durations`  "30m" / "2h" / "1d"
"""

from core.alerts.engine import AlertEngine
from core.alerts.model import Alert, AlertError, AlertInputError, AlertState, AlertStoreError, CommandResult, Severity
from core.alerts.notify import Notification
from core.alerts.policy import AlertConfig, NotifyReason
from core.model.clock import Clock, ManualClock, system_clock

__all__ = [
    "Alert", "AlertConfig", "AlertEngine", "AlertError", "AlertInputError", "AlertState", "AlertStoreError",
    "Clock", "CommandResult", "ManualClock", "Notification", "NotifyReason", "Severity", "system_clock",
]
