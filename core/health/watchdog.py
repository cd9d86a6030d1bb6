"""Watchdog: runs the registered health checks periodically, publishes changes, raises and resolves alerts.

Registering a subsystem (any part of the engine can; do it on the loop):

    watchdog.register("gateway", exchange_check(gateway_breaker.stats))  # down -> critical alert
    watchdog.register("database", DatabaseProbe(db_path))          # an async check
    watchdog.register("my-subsystem", lambda: Check.ok())          # any () -> Check

A check is a plain callable or a coroutine function taking no arguments and
returning a `Check`. Plain callables run on the event loop and must be cheap
(read counters); anything that touches disk or network must be async and
keep the loop free (e.g. `DatabaseProbe` uses a worker thread). A check that
raises, returns something else than a `Check`, or (async) does not finish
within `check_timeout_s` counts as down with the reason saying so.

Each round (`run_once`, every `interval_s` once `start()`ed) runs every check
concurrently, keeps the latest `SubsystemHealth` per subsystem (`snapshot()`;
`since_ms` = when it entered its status) and, for each subsystem whose status
changed, calls `listeners` (a HookSet of callables taking the new
`SubsystemHealth`) and syncs the AlertEngine, dedup key "health:<subsystem>":

* degraded -> `raise_alert(..., degraded_severity)` (warning by default);
* down -> `raise_alert(..., down_severity)` (error by default; critical for "executor" and "gateway");
* ok -> `resolve(key, "health-watchdog")`; the first round also resolves
  "health:*" alerts of subsystems that are not registered (left by an earlier run).

Alerts are raised on a status change only, not every round. An alert call that
fails (database trouble) is logged and retried on the next round.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Awaitable, Callable

from core.alerts.model import Severity
from core.alerts.notify import HookSet
from core.health.status import Check, HealthStatus, SubsystemHealth, worst
from core.model.clock import Clock, system_clock

if TYPE_CHECKING:
    from core.alerts.engine import AlertEngine

log = logging.getLogger(__name__)

#: A health check: no arguments, returns a Check or an awaitable of one.
CheckFn = Callable[[], "Check | Awaitable[Check]"]

#: Prefix of the dedup keys of health alerts.
ALERT_KEY_PREFIX = "health:"
#: Source of health alerts.
ALERT_SOURCE = "health"
#: Actor recorded when a health alert resolves.
RESOLVE_ACTOR = "health-watchdog"
#: Subsystems whose "down" is critical by default (trading stops without them).
CRITICAL_SUBSYSTEMS = frozenset({"executor", "gateway"})

_MAX_TITLE = 200


def alert_key(subsystem: str) -> str:
    """The dedup key of `subsystem`'s health alert, e.g. "health:feed:BTC/USDT:USDT"."""
    return ALERT_KEY_PREFIX + subsystem


@dataclass(frozen=True)
class Registration:
    """One registered subsystem: its check and the alert severities of its statuses."""

    subsystem: str
    check: CheckFn
    degraded_severity: Severity
    down_severity: Severity


class Watchdog:
    """Runs health checks, keeps the latest status per subsystem, alerts on changes (module docstring).

    Args:
        alerts: the AlertEngine health changes go through (None: no alerts, e.g. in tools).
        clock: int ms UTC (since/checked times); pass the AlertEngine's clock.
        interval_s: seconds between rounds once started (> 0; default 5).
        check_timeout_s: seconds an async check may take before it counts as down (> 0; default 10).

    Raises:
        ValueError: a non-positive interval or timeout.
    """

    def __init__(self, *, alerts: "AlertEngine | None" = None, clock: Clock = system_clock,
                 interval_s: float = 5.0, check_timeout_s: float = 10.0) -> None:
        if not interval_s > 0 or not check_timeout_s > 0:
            raise ValueError(f"interval_s and check_timeout_s must be > 0 seconds, got {interval_s} "
                             f"and {check_timeout_s}")
        self.alerts = alerts
        self.interval_s = float(interval_s)
        self.check_timeout_s = float(check_timeout_s)
        self._clock = clock
        self._regs: dict[str, Registration] = {}
        self._health: dict[str, SubsystemHealth] = {}
        self._alerted: dict[str, HealthStatus] = {}  # status the alert engine was last synced to
        self._unregistered: set[str] = set()  # subsystems whose alert still needs resolving
        self._orphans_done = False
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        #: how `start()` runs the background task: `spawn(name, factory) -> Task` (the engine
        #: passes its supervisor's, which logs, alerts and restarts a task that dies); None: a
        #: plain task
        self.spawn: Callable[[str, Callable[[], Awaitable[None]]], asyncio.Task] | None = None
        #: Called with the new SubsystemHealth whenever a subsystem's status changes.
        self.listeners: HookSet[SubsystemHealth] = HookSet("health listener")
        #: Alert calls that failed (retried on the next round).
        self.alert_errors = 0

    # ------------------------------------------------------------------- registration

    def register(self, subsystem: str, check: CheckFn, *, degraded_severity: Severity | str = Severity.WARNING,
                 down_severity: Severity | str | None = None, replace: bool = False) -> None:
        """Check `subsystem` with `check` from the next round on.

        Args:
            subsystem: a name, e.g. "executor", "feed:BTC/USDT:USDT" (1..190 characters, no surrounding spaces).
            check: `() -> Check` or an async one (see the module docstring).
            degraded_severity: alert severity when degraded (default warning).
            down_severity: alert severity when down (default: critical for the names in
                `CRITICAL_SUBSYSTEMS` - "executor", "gateway" - else error).
            replace: allow replacing an existing registration of the same name.

        Raises:
            ValueError: a bad name, `check` not callable, or the name is taken and not `replace`.
            AlertInputError: an unknown severity.
        """
        if not isinstance(subsystem, str) or not subsystem.strip() or subsystem != subsystem.strip() \
                or len(subsystem) > 190:
            raise ValueError(f"health subsystem name must be 1..190 characters without surrounding spaces, "
                             f"got {subsystem!r}")
        if not callable(check):
            raise ValueError(f"health check of {subsystem} must be callable, got {check!r}")
        if subsystem in self._regs and not replace:
            raise ValueError(f"health subsystem {subsystem} is already registered")
        if down_severity is None:
            down_severity = Severity.CRITICAL if subsystem in CRITICAL_SUBSYSTEMS else Severity.ERROR
        self._regs[subsystem] = Registration(subsystem, check, Severity.parse(degraded_severity),
                                             Severity.parse(down_severity))
        self._unregistered.discard(subsystem)

    def unregister(self, subsystem: str) -> None:
        """Stop checking `subsystem` (no error if unknown); its open alert is resolved on the next round."""
        if self._regs.pop(subsystem, None) is not None:
            self._health.pop(subsystem, None)
            self._unregistered.add(subsystem)

    @property
    def subsystems(self) -> list[str]:
        """The registered subsystem names, sorted."""
        return sorted(self._regs)

    # ------------------------------------------------------------------- state

    def snapshot(self) -> dict[str, SubsystemHealth]:
        """The latest health of every registered subsystem checked at least once, by name."""
        return {k: self._health[k] for k in sorted(self._health)}

    def get(self, subsystem: str) -> SubsystemHealth | None:
        """The latest health of `subsystem`, or None before its first check."""
        return self._health.get(subsystem)

    def overall(self) -> HealthStatus:
        """The worst status over all subsystems (ok when none was checked)."""
        return worst(h.status for h in self._health.values())

    # ------------------------------------------------------------------- rounds

    async def _run_check(self, reg: Registration) -> Check:
        """`reg.check()` with failures turned into a down Check; never raises (except cancellation)."""
        try:
            result = reg.check()
            if inspect.isawaitable(result):
                result = await asyncio.wait_for(result, self.check_timeout_s)
        except asyncio.TimeoutError:
            return Check.down(f"health check did not finish within {self.check_timeout_s:g}s")
        except Exception as exc:
            log.warning("health check of %s raised %s: %s", reg.subsystem, type(exc).__name__, exc)
            return Check.down(f"health check failed: {type(exc).__name__}: {exc}")
        if not isinstance(result, Check):
            return Check.down(f"health check returned {type(result).__name__}, not a Check")
        return result

    async def run_once(self) -> list[SubsystemHealth]:
        """Run every check once, publish and alert the changes; returns the subsystems whose status changed.

        Never raises for a failing check or alert call (logged; alerts retried next round).
        """
        async with self._lock:
            regs = list(self._regs.values())
            results = await asyncio.gather(*(self._run_check(r) for r in regs))
            now = self._clock()
            changed: list[SubsystemHealth] = []
            for reg, res in zip(regs, results):
                if self._regs.get(reg.subsystem) is not reg:  # unregistered/replaced meanwhile
                    continue
                old = self._health.get(reg.subsystem)
                since = old.since_ms if old is not None and old.status is res.status else now
                new = SubsystemHealth(reg.subsystem, res.status, res.reason, since, now, res.metrics)
                self._health[reg.subsystem] = new
                if old is None or old.status is not new.status:
                    changed.append(new)
                    level = logging.INFO if new.status is HealthStatus.OK else logging.WARNING
                    log.log(level, "health %s: %s -> %s %s", reg.subsystem,
                            old.status.value if old else "-", new.status.value, new.reason)
            for h in changed:
                self.listeners.deliver(h)
            await self._sync_alerts()
        return changed

    async def _sync_alerts(self) -> None:
        if self.alerts is None:
            return
        if not self._orphans_done:
            await self._resolve_orphans()
        for subsystem in sorted(self._unregistered):
            if await self._call_alerts(subsystem, None):
                self._unregistered.discard(subsystem)
                self._alerted.pop(subsystem, None)
        for subsystem, h in list(self._health.items()):
            if self._alerted.get(subsystem) is not h.status and await self._call_alerts(subsystem, h):
                self._alerted[subsystem] = h.status

    async def _resolve_orphans(self) -> None:
        assert self.alerts is not None
        try:
            for alert in self.alerts.list():
                sub = alert.key[len(ALERT_KEY_PREFIX):]
                if alert.key.startswith(ALERT_KEY_PREFIX) and sub not in self._regs:
                    await self.alerts.resolve(alert.key, RESOLVE_ACTOR)
            self._orphans_done = True
        except Exception as exc:
            self.alert_errors += 1
            log.error("resolving health alerts of unregistered subsystems failed: %s", exc)

    async def _call_alerts(self, subsystem: str, h: SubsystemHealth | None) -> bool:
        """Raise or resolve `subsystem`'s alert to match `h` (None / ok: resolve); True when it worked."""
        assert self.alerts is not None
        key = alert_key(subsystem)
        try:
            if h is None or h.status is HealthStatus.OK:
                await self.alerts.resolve(key, RESOLVE_ACTOR)
                return True
            reg = self._regs[subsystem]
            severity = reg.down_severity if h.status is HealthStatus.DOWN else reg.degraded_severity
            title = f"{subsystem} {h.status.value}: {h.reason}" if h.reason else f"{subsystem} {h.status.value}"
            if len(title) > _MAX_TITLE:
                title = title[: _MAX_TITLE - 1] + "…"
            detail = h.reason
            if h.metrics:
                detail += ("\n" if detail else "") + "metrics: " + json.dumps(dict(h.metrics), sort_keys=True)
            await self.alerts.raise_alert(key, severity, ALERT_SOURCE, title, detail)
            return True
        except Exception as exc:
            self.alert_errors += 1
            log.error("health alert for %s failed (retried next round): %s", subsystem, exc)
            return False

    # ------------------------------------------------------------------- background task

    def start(self) -> None:
        """Run a round now and then every `interval_s` seconds in a background task (idempotent)."""
        if self._task is None or self._task.done():
            self._task = (self.spawn("health-watchdog", self._run) if self.spawn is not None
                          else asyncio.get_running_loop().create_task(self._run(), name="health-watchdog"))

    @property
    def running(self) -> bool:
        """True while the background task runs."""
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:  # a bug in a listener hook set or the like: keep watching
                log.exception("health watchdog round failed")
            await asyncio.sleep(self.interval_s)

    async def stop(self) -> None:
        """Stop the background task (idempotent); statuses and open alerts are left as they are."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
