"""The run's services (alerts, jobs, health) of an engine reached through its API socket, shaped
like the in-process ones the console uses (`app.alerts`, `app.jobs`, `app.health`).

Each keeps the last answer of its endpoint; `RemoteEngine` (tui.remote) calls `refresh(client)`
about once a second and at once after an alert or health event. Queries are synchronous reads
of that cache; commands (ack, snooze) go to the engine and return a `CommandResult` as
`AlertEngine.ack/snooze` do, a refusal included (a read-only connection: "refused by the
engine: read-only console"). Jobs are listed here; the console submits and cancels them
through the port's `job_submit` / `job_cancel` commands.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.alerts.model import Alert, AlertState, CommandResult, Severity
from core.api.protocol import ApiClientError, ApiError, CommandRefused, refusal_text  # noqa: F401 (re-exported)
from core.health.status import HealthStatus, SubsystemHealth
from core.jobs.model import JobEvent, JobRecord

log = logging.getLogger(__name__)

_DURATION = re.compile(r"^\s*(\d+)\s*([mhd])\s*$")
_MINUTES = {"m": 1, "h": 60, "d": 1440}


def duration_minutes(text: str) -> int:
    """"15m" / "1h" / "4h" / "24h" / "2d" as minutes.

    Raises:
        ValueError: another form.
    """
    m = _DURATION.match(text or "")
    if m is None:
        raise ValueError(f"bad duration {text!r}: expected e.g. 15m, 1h, 2d")
    return int(m.group(1)) * _MINUTES[m.group(2)]


def alert_of(d: dict) -> Alert:
    """The `Alert` of its `to_dict()` form (extra keys ignored)."""
    names = {f.name for f in dataclasses.fields(Alert)}
    vals = {k: v for k, v in d.items() if k in names}
    vals["severity"] = Severity(vals["severity"])
    vals["state"] = AlertState(vals["state"])
    return Alert(**vals)


class RemoteAlerts:
    """`AlertEngine` look-alike over the socket (see the module docstring).

    Attributes:
        listeners: callables taking a new or changed `Alert` (the console's toasts).
        available: False when the engine runs without an alert engine.
    """

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self.listeners: set[Callable[[Alert], Any]] = set()
        self.available = True
        self._open: dict[int, Alert] = {}           # unresolved alerts, display order
        self._resolved: dict[int, Alert] = {}
        self._want_resolved = False

    # ------------------------------------------------------------------ queries
    def list(self, state: Any = None, severity: Any = None) -> list[Alert]:
        """Alerts in display order; `state` None: every unresolved one (see `AlertEngine.list`).

        Raises:
            AlertInputError: an unknown state or severity.
        """
        st = AlertState.parse(state) if state is not None else None
        sev = Severity.parse(severity) if severity is not None else None
        if st is AlertState.RESOLVED:
            if not self._want_resolved:
                self._want_resolved = True
                self._engine.wake(slow=True)
            rows = list(self._resolved.values())
        else:
            rows = [a for a in self._open.values() if st is None or a.state is st]
        return [a for a in rows if sev is None or a.severity is sev]

    def get(self, alert_id: int) -> Alert | None:
        """The alert `alert_id` as last read, or None."""
        return self._open.get(alert_id) or self._resolved.get(alert_id)

    def unacknowledged_count(self) -> int:
        """How many alerts are active (neither acknowledged, snoozed nor resolved)."""
        return sum(1 for a in self._open.values() if a.state is AlertState.ACTIVE)

    # ------------------------------------------------------------------ commands
    async def ack(self, alert_id: int, actor: str) -> CommandResult:
        """Acknowledge through the engine (`actor` is set by the engine from the connection)."""
        return await self._command("ack", alert_id)

    async def snooze(self, alert_id: int, actor: str, duration: str = "1h", **_: Any) -> CommandResult:
        """Snooze for `duration` ("15m", "1h", ...) through the engine."""
        try:
            minutes = duration_minutes(duration)
        except ValueError as exc:
            return CommandResult(False, str(exc), error="invalid")
        return await self._command("snooze", alert_id, minutes)

    async def _command(self, name: str, alert_id: int, *args: Any) -> CommandResult:
        client = self._engine.client
        if client is None:
            return CommandResult(False, f"{name}: not sent: {self._engine.status_text()}", error="gone")
        try:
            res = await getattr(client, name)(alert_id, *args)
        except ApiClientError as exc:
            return CommandResult(False, f"{name}: {refusal_text(exc)}",
                                 error=getattr(exc, "code", None) or "unreachable")
        alert = None
        raw = (res.get("result") or {}).get("alert")
        if raw:
            alert = alert_of(raw)
            self._store(alert)
        self._engine.wake(slow=True)
        return CommandResult(True, str(res.get("message") or f"{name} done"), alert=alert)

    # ------------------------------------------------------------------ refresh
    def _store(self, a: Alert) -> None:
        if a.is_open:
            self._open[a.id] = a
            self._resolved.pop(a.id, None)
        else:
            self._open.pop(a.id, None)
            self._resolved[a.id] = a

    async def refresh(self, client: Any) -> bool:
        """Read the alerts; tell the listeners about each new or changed one. True when changed."""
        try:
            rows = await client.alerts()
            resolved = await client.alerts(state="resolved") if self._want_resolved else None
        except ApiError as exc:
            if exc.status == 409:
                self.available = False
                return False
            raise
        fresh = {a.id: a for a in map(alert_of, rows)}
        changed = [a for a in fresh.values() if self._open.get(a.id) != a]
        gone = set(self._open) - set(fresh)
        self._open = fresh
        if resolved is not None:
            res = {a.id: a for a in map(alert_of, resolved)}
            changed += [a for a in res.values() if self._resolved.get(a.id) != a]
            self._resolved = res
        for a in changed:
            for fn in list(self.listeners):
                try:
                    fn(a)
                except Exception:                  # a listener must not stop the refresh
                    log.exception("alert listener failed")
        return bool(changed or gone)


class RemoteHealth:
    """The watchdog look-alike: `snapshot()` -> {subsystem: SubsystemHealth} as last read (None
    before the first answer)."""

    def __init__(self) -> None:
        self._snap: dict[str, SubsystemHealth] | None = None
        self.overall = "unknown"

    def snapshot(self) -> dict[str, SubsystemHealth] | None:
        """The subsystems' health as last read from the engine."""
        return self._snap

    async def refresh(self, client: Any) -> bool:
        """Read `/v1/health`; True when it changed."""
        h = await client.health()
        snap = {}
        for s in h.get("subsystems") or []:
            try:
                status = HealthStatus(s.get("status"))
            except ValueError:
                status = HealthStatus.DOWN
            snap[s["subsystem"]] = SubsystemHealth(s["subsystem"], status, s.get("reason") or "",
                                                   int(s.get("since_ms") or 0), int(s.get("checked_ms") or 0),
                                                   dict(s.get("metrics") or {}))
        changed = snap != self._snap
        self._snap, self.overall = snap, str(h.get("overall") or "unknown")
        return changed


def job_of(d: dict) -> JobRecord:
    """The `JobRecord` of its JSON form (missing fields None, extra ones ignored)."""
    names = [f.name for f in dataclasses.fields(JobRecord)]
    return JobRecord(**{n: d.get(n) for n in names})


class RemoteJobs:
    """The job manager look-alike: the engine's job list (read-only; see the module docstring).

    `subscribe(fn)` gets a `JobEvent` for each job whose state or progress changed between two
    reads; `jobs(limit)` and `get(id)` answer from the last read; `db_path` is the engine's
    database (the results view reads the stored results from it)."""

    def __init__(self, db_path: str | Path | None = None) -> None:
        self.db_path = Path(db_path) if db_path else None
        self.available = True
        self._jobs: dict[int, JobRecord] = {}
        self._subs: list[Callable[[JobEvent], Any]] = []

    def jobs(self, limit: int = 50) -> list[JobRecord]:
        """The newest jobs first, as last read."""
        return sorted(self._jobs.values(), key=lambda j: -j.id)[:limit]

    def get(self, job_id: int) -> JobRecord | None:
        """Job `job_id` as last read, or None."""
        return self._jobs.get(job_id)

    def subscribe(self, fn: Callable[[JobEvent], Any]) -> Callable[[], None]:
        """Call `fn(JobEvent)` on each change seen; returns the unsubscribe function."""
        self._subs.append(fn)

        def unsubscribe() -> None:
            if fn in self._subs:
                self._subs.remove(fn)
        return unsubscribe

    async def refresh(self, client: Any) -> bool:
        """Read `/v1/jobs`; tell the subscribers about each changed job. True when changed."""
        try:
            rows = [job_of(d) for d in await client.jobs(50)]
        except ApiError as exc:
            if exc.status == 409:
                self.available = False
                return False
            raise
        changed = [j for j in rows if self._jobs.get(j.id) != j]
        self._jobs = {j.id: j for j in rows}
        for j in changed:
            ev = JobEvent(j.id, j.kind, j.state, float(j.progress or 0.0), j.phase or "", error=j.error)
            for fn in list(self._subs):
                try:
                    fn(ev)
                except Exception:
                    log.exception("job subscriber failed")
        return bool(changed)
